"""The web application's front door: what every request meets before Django's handlers.

Rendering requests (`/render/…` and `{source}.{RENDER_DOMAIN}` hosts) are most of the traffic
and use neither sessions, CSRF, authentication nor messages, so they go through a Django handler
that runs only the middleware they need (`RENDER_MIDDLEWARE`), with the render route matched by
hand; everything else (admin, API) through the full `MIDDLEWARE`. Both are ordinary Django
handlers: signals, database connection handling and error pages are the same. A repeated hit is
answered before either (rendering/hot.py).

The server is granian (platform/Procfile), whose WSGI environ also carries the process's own
environment, secrets included; those keys are dropped before Django sees them, so no error
report or debug page can show them as request metadata. Imported once Django is set up
(config/wsgi.py).
"""

import json
import logging
import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import ResolverMatch

from rendering.hot import hot_keep, hot_serve
from rendering.urls import RenderPathUrls, render_route
from sources.addresses import source_slug_for_host
from sources.origins.net import FETCH_MARKER_ENVIRON, fetch_markers


class RenderHandler(WSGIHandler):
    """A WSGIHandler built from `settings.RENDER_MIDDLEWARE` instead of `settings.MIDDLEWARE`,
    resolving `/render/…` against rendering.urls.RenderPathUrls (a source host's paths are set to
    rendering.urls.SourceHostUrls by RenderHostMiddleware)."""

    def get_response(self, request):
        request.urlconf = self.urlconf
        return super().get_response(request)

    def resolve_request(self, request):
        """`/render/{source}/{path}` matched by hand, as Django's resolver would match it
        (`<str:source>/<path:path>`: a source without `/`, a path of at least one character):
        resolving it was a tenth of a cached hit. Anything else (a source host's URLconf, job
        status, a 404) goes through Django's resolver. `reverse` needs no URLconf of its own here:
        ROOT_URLCONF names the same routes."""
        path = request.path_info
        if request.urlconf is self.urlconf and path.startswith(_RENDER_PREFIX):
            source, slash, image = path[len(_RENDER_PREFIX):].partition("/")
            if source and slash and image:
                match = ResolverMatch(self.render_view, (), {"source": source, "path": image},
                                      url_name="render", route=_RENDER_ROUTE)
                request.resolver_match = match
                return match
        return super().resolve_request(request)

    def load_middleware(self, is_async=False):
        # BaseHandler reads settings.MIDDLEWARE; it is swapped only while this handler is built,
        # at import time, before any request is served.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.RENDER_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_RENDER_PREFIX = "/render/"
_RENDER_ROUTE = "render/<str:source>/<path:path>"


# The names CGI and WSGI give a request; nothing else of the process environment belongs in it.
_REQUEST_KEYS = {"REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
                 "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "GATEWAY_INTERFACE",
                 "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "RAW_URI", "REQUEST_URI", "HTTPS"}


_LOOP_BODY = json.dumps({"error": {
    "code": "request_loop",
    "message": "This request was made by this service itself (a fetch that led back here); it is not served.",
}}).encode()
_LOOP_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(_LOOP_BODY))),
                 ("Cache-Control", "no-store")]


class Application:
    def __init__(self):
        # A web process's log lines (settings.LOGGING's formats) carry neither thread nor process
        # names: each record skips looking them up, a tenth of a kept hit's cost (Python's
        # logging documentation, "Optimization").
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        # Process variables a server may have copied into each request's environ (an HTTP_PROXY
        # among them would pose as a request header: httpoxy).
        self._process_keys = tuple(k for k in os.environ if k not in _REQUEST_KEYS)
        RenderHandler.urlconf = RenderPathUrls
        RenderHandler.render_view = staticmethod(render_route.callback)
        assert str(render_route.pattern) == _RENDER_ROUTE, "rendering.urls changed its render route"
        self.full = WSGIHandler()
        self.render = RenderHandler()
        self._source_slug_for_host = source_slug_for_host
        self._hot_serve, self._hot_keep = hot_serve, hot_keep
        self._marker_key, self._markers = FETCH_MARKER_ENVIRON, fetch_markers()

    def handler_for(self, environ) -> WSGIHandler:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            return self.full
        if path.startswith("/render/"):
            return self.render
        if settings.RENDER_DOMAIN:
            host = environ.get("HTTP_X_FORWARDED_HOST") if settings.USE_X_FORWARDED_HOST else None
            host = host or environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
            if self._source_slug_for_host(host) is not None:
                return self.render
        return self.full

    def __call__(self, environ, start_response):
        for key in self._process_keys:
            environ.pop(key, None)
        if environ.get(self._marker_key) in self._markers:
            # One of our own fetches came back to us (a redirect, an alias): refused before any
            # work, so a render never waits on a fetch of itself and no loop sustains itself.
            start_response("508 Loop Detected", _LOOP_HEADERS)
            return [_LOOP_BODY]
        body = self._hot_serve(environ, start_response)  # A repeated hit, answered before Django.
        if body is not None:
            return body
        handler = self.handler_for(environ)
        response = handler(environ, start_response)
        if handler is self.render:
            self._hot_keep(environ, response)
        return response
