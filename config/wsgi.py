"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

from config import heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
heap.enable("web application loaded")
