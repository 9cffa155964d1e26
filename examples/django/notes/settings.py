"""Settings of the notes example. No database: the notes live in memory."""
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

# An example value, public on purpose: a real site reads its own secret from
# the environment or a file (berth's `env` attribute, a systemd credential).
SECRET_KEY = "example-only-not-secret-berth-django-notes"

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = ["notes"]  # for notes/templates/

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "notes.urls"
WSGI_APPLICATION = "notes.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# Nothing needs one; the project directory may be read-only under systemd.
DATABASES = {}

# The CSRF token lives in the csrftoken cookie (no sessions, so no database).
CSRF_USE_SESSIONS = False

# Uploads above 2.5 MB are spooled to a temporary file in $TMPDIR (or /tmp:
# PrivateTmp= under systemd), never into the project directory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Files shipped with the project, served by notes.views.static_file.
STATIC_DIR = BASE_DIR / "static"

# Leave Python's logging unconfigured: records no handler takes (Django's
# warnings and errors, such as a refused CSRF check or a traceback) reach
# berth's log with their level and logger name.
LOGGING_CONFIG = None
