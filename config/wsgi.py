"""WSGI entry point.

Rendering requests (`/render/…` and `{source}.{RENDER_DOMAIN}` hosts) are most of the traffic
and use neither sessions, CSRF, authentication nor messages, so they go through a Django handler
that runs only the middleware they need (`RENDER_MIDDLEWARE`); everything else (admin, API)
through the full `MIDDLEWARE`. Both are ordinary Django handlers: signals, database connection
handling and error pages are the same.
"""

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class RenderHandler(WSGIHandler):
    """A WSGIHandler built from `settings.RENDER_MIDDLEWARE` instead of `settings.MIDDLEWARE`."""

    def load_middleware(self, is_async=False):
        # BaseHandler reads settings.MIDDLEWARE; it is swapped only while this handler is built,
        # at import time, before any request is served.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.RENDER_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class Application:
    def __init__(self):
        django.setup(set_prefix=False)
        from rendering.middleware import render_host_source

        self.full = WSGIHandler()
        self.render = RenderHandler()
        self._render_host_source = render_host_source

    def handler_for(self, environ) -> WSGIHandler:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            return self.full
        if path.startswith("/render/"):
            return self.render
        if settings.RENDER_DOMAIN:
            host = environ.get("HTTP_X_FORWARDED_HOST") if settings.USE_X_FORWARDED_HOST else None
            host = host or environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
            if self._render_host_source(host) is not None:
                return self.render
        return self.full

    def __call__(self, environ, start_response):
        return self.handler_for(environ)(environ, start_response)


application = Application()
