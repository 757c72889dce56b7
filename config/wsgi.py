"""WSGI entry point: Django set up, then rendering/wsgi.py's application (the front door every
request meets: the hot path, the render handler, the full handler)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from rendering.wsgi import Application  # noqa: E402 (apps must be ready first)

application = Application()
