"""Turning errors into HTTP responses: one JSON shape for the API (DRF) and the rendering path."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from core.errors import NotFoundError, ServiceError, ServiceUnavailableError

logger = logging.getLogger(__name__)


def error_body(code, message):
    return {"error": {"code": code, "message": message}}


def error_json(status: int, code: str, message: str) -> JsonResponse:
    """An error answer in the one shape, from its parts (core/middleware.py JsonErrorsMiddleware)."""
    return JsonResponse(error_body(code, message), status=status, headers={"Cache-Control": "no-store"})


def _error_parts(exc: ServiceError) -> tuple[dict, dict]:
    body = error_body(exc.code, exc.message)
    if getattr(exc, "fields", None):
        body["error"]["fields"] = exc.fields
    headers = {"Cache-Control": "no-store"}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    return body, headers


def error_response(exc: ServiceError) -> Response:
    """The error as a DRF response (the management API)."""
    body, headers = _error_parts(exc)
    return Response(body, status=exc.status_code, headers=headers)


def error_json_response(exc: ServiceError) -> JsonResponse:
    """The same error as a plain Django response (the rendering path, which does without DRF)."""
    body, headers = _error_parts(exc)
    return JsonResponse(body, status=exc.status_code, headers=headers)


def service_error_for(exc: Exception) -> ServiceError | None:
    """The ServiceError a view's exception stands for, or None for a real 500."""
    if isinstance(exc, ServiceError):
        if exc.status_code >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        return exc
    if isinstance(exc, Http404):
        return NotFoundError()
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable (down, restarting, out of connections): retry shortly.
        logger.warning("database unavailable: %s", exc)
        return ServiceUnavailableError("The database is unavailable; try again shortly.", code="database_unavailable")
    return None


def exception_handler(exc, context):
    """DRF's exception handler: one JSON error shape for service errors and DRF's own."""
    error = service_error_for(exc)
    if error is not None:
        return error_response(error)
    if isinstance(exc, drf_exceptions.APIException):
        response = error_response(
            ServiceError(str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Invalid input.",
                         code=exc.default_code)
        )
        response.status_code = exc.status_code
        if isinstance(exc.detail, (dict, list)):
            response.data["error"]["fields"] = exc.detail
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(max(1, int(exc.wait)))
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        return response
    # Anything else stays a 500: Django logs the traceback, the client never sees it.
    return None
