"""A Django site that knows nothing of proxies (no SECURE_PROXY_SSL_HEADER, no
USE_X_FORWARDED_HOST) yet insists on https: TestBehindNginx serves it through
nginx, which terminates TLS, and berth, which must tell it so."""
import os

SECRET_KEY = "test-only-not-secret-berth-securesite"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
SECURE_SSL_REDIRECT = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "securesite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# The test makes the database in its temporary directory.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["SECURESITE_DB"]}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"
USE_TZ = True
# Records no handler takes (a refused CSRF check) reach berth's log.
LOGGING_CONFIG = None
