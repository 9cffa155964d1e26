"""The WSGI entry point berth loads: module = "notes.wsgi:application"."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes.settings")

application = get_wsgi_application()
