"""Health probes before host checks; per-request metrics and one log line per request; JSON
errors under the APIs' paths."""

import functools
import logging
import time
from http import HTTPStatus

from django.conf import settings
from django.utils.module_loading import import_string

from core import health
from core.metrics import RENDER_SECONDS, REQUESTS

logger = logging.getLogger("cutout.requests")


class RequestObservabilityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        seconds = time.monotonic() - started
        match = getattr(request, "resolver_match", None)
        # The route pattern, not the path, so label values stay few.
        route = match.route if match is not None else "unmatched"
        request_observed(route=route, method=request.method, path=request.path, status=response.status_code,
                         seconds=seconds, account=getattr(request, "log_account", None),
                         cache=getattr(request, "render_cache", None))
        return response


# The methods Django and the API answer; any other name a client sends is counted as "other", so a
# stranger cannot add label series (memory in every process, and on the scraper) by inventing them.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


@functools.lru_cache(maxsize=1024)  # Routes and statuses are few; labels() takes a lock each time.
def _requests_child(route: str, method: str, status: int):
    return REQUESTS.labels(route, method if method in _METHODS else "other", str(status))


@functools.lru_cache(maxsize=16)
def _render_seconds_child(cache: str):
    return RENDER_SECONDS.labels(cache)


def request_observed(*, route: str, method: str, path: str, status: int, seconds: float, account: str | None,
                     cache: str | None, **fields) -> None:
    """The request's metrics (by route, method and status; a render's time by cache outcome) and
    its log line (none for the probes), with `fields` added to the line's."""
    _requests_child(route, method, status).inc()
    if cache is not None:
        _render_seconds_child(cache).observe(seconds)
    if route not in ("healthz", "readyz", "metrics") and logger.isEnabledFor(logging.INFO):
        # The record made here rather than by logger.info: its search of the stack for the caller
        # (a line number no one reads in an access log) and its checks of `extra` were a third
        # of the line's cost, on every request.
        record = logging.LogRecord(logger.name, logging.INFO, __file__, 0, "%s %s %s %.1fms",
                                   (method, path, status, seconds * 1000), None, "request_observed")
        record.__dict__.update(method=method, path=path, status=status, duration_ms=round(seconds * 1000, 1),
                               route=route, account=account, cache=cache, **fields)
        logger.handle(record)


class HealthCheckMiddleware:
    """Answers /healthz and /readyz before anything reads the Host header, so a load balancer
    probing by IP address is not refused by ALLOWED_HOSTS."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return health.healthz(request)
        if request.path == "/readyz":
            return health.readyz(request)
        return self.get_response(request)


# What a bare error (an HTML page, plain text, or no body: Django's own 404, 405, 500 or CSRF
# page, DRF's TemplateHTMLRenderer, a debug page) says once it is JSON.
_ERROR_TEXTS = {
    404: ("not_found", "No such URL: {path}. The API's documentation lists its routes."),
    405: ("method_not_allowed", "Method {method} is not allowed here."),
    500: ("internal_error", "Internal error."),
}


class JsonErrorsMiddleware:
    """Every error answered under a path of `settings.JSON_ERROR_SHAPES` is JSON, in the shape
    of that path's API: what a view answered in JSON passes through, anything else (Django's
    HTML pages, the debug pages with DEBUG on, an empty 405) is replaced by the same status,
    headers kept, with a body made by the shape's `(status, code, message) -> response`.

    A mechanism rather than a catch-all route per API, so no error path (a 500 in a view, a
    404 before any view, a renderer's plain-text error) is left to remember it; the rest of the
    site keeps its HTML error pages."""

    _KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or getattr(request, "json_errors", False):
            return response  # A source's host: its own URLconf, whose errors are JSON already.
        content_type = response.get("Content-Type", "").split(";")[0].strip()
        if content_type == "application/json" or content_type.endswith("+json"):
            return response
        renderer = getattr(response, "accepted_renderer", None)
        if getattr(renderer, "format", None) == "api":
            return response  # DRF's browsable API, which the client asked for: its page shows the error.
        shape = _error_shape(request.path)
        if shape is None:
            return response
        status = response.status_code
        code, message = _ERROR_TEXTS.get(status) or (_status_code_name(status), f"{_status_phrase(status)}.")
        # The path and method as sent, cut short: an error body is never bigger than a line.
        replaced = shape(status, code, message.format(path=request.path[:200], method=request.method[:20]))
        for header in self._KEPT_HEADERS:
            if header in response:
                replaced[header] = response[header]
        replaced["Cache-Control"] = "no-store"
        response.close()
        return replaced


def _error_shape(path: str):
    for prefix, shape in settings.JSON_ERROR_SHAPES.items():
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return _import(shape)
    return None


@functools.lru_cache(maxsize=8)
def _import(name: str):
    return import_string(name)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _status_code_name(status: int) -> str:
    return _status_phrase(status).lower().replace(" ", "_").replace("-", "_").replace("'", "")
