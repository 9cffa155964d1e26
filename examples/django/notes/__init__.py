"""A small Django project for berth's example and tests: routing, JSON, CSRF, uploads, files, streaming."""
