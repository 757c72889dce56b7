"""Error pages: JSON, in the one error shape, for the API and rendering paths."""

from django.http import JsonResponse
from django.views.defaults import page_not_found, server_error

from core.handlers import error_body

JSON_PREFIXES = ("/api/", "/render/", "/_/")


def _json(request) -> bool:
    # json_errors: set by whatever routes a request to a JSON-only URLconf (a source's host).
    return request.path.startswith(JSON_PREFIXES) or getattr(request, "json_errors", False)


def not_found(request, exception=None):
    if _json(request):
        response = JsonResponse(error_body("not_found", "No such URL."), status=404)
        response["Cache-Control"] = "no-store"
        return response
    return page_not_found(request, exception)


def internal_error(request):
    if _json(request):
        # Never a traceback: the details are in the server's log.
        response = JsonResponse(error_body("internal_error", "Internal error."), status=500)
        response["Cache-Control"] = "no-store"
        return response
    return server_error(request)
