"""remove.bg's endpoints: authenticate, admit, parse the request as remove.bg does, call one
service, answer in its shapes (an image or JSON; errors as `{"errors": [...]}` with its statuses
and headers). Nothing reads the body before the service has admitted the call."""

import base64
import logging
import time

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.limits import account_limits, rate_parse, rate_status
from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from core.errors import ServiceError
from core.handlers import service_error_for
from cutouts.queueing import bg_remove_job_enqueue
from removebg_api import services
from removebg_api.credits import credit_account_ensure, credits_left, free_calls_left
from removebg_api.errors import ApiKeyError
from removebg_api.parsing import request_fields

logger = logging.getLogger(__name__)

# Our errors as remove.bg's: the statuses its spec has (400, 402, 403, 429) keep theirs; the
# checks on the image (ours answer 413, 415, 422) are its 400s, with its codes.
_IMAGE_CODES = {
    "origin_too_large": "file_too_large",
    "too_many_pixels": "resolution_too_high",
    "not_an_image": "failed_to_read_image",
    "too_many_scans": "failed_to_read_image",
    "too_many_segments": "failed_to_read_image",
    "unsupported_image_type": "invalid_file_type",
    "output_too_large": "resolution_too_high",
}
# This process's render slots all taken: the call is fine, the server busy for a moment.
_BUSY_CODES = {"render_busy"}
# The request-rate counter every call counts against (accounts/limits.py render_admit).
_REQUEST_RATE = "request rate"
# GET /v1.0/account's balance of an unmetered account (docs/removebg.md, Limits and credits).
UNMETERED_CREDITS = 1e9


def _api(methods: tuple):
    """A remove.bg endpoint: its methods only, its key, every error in its shape."""

    def wrap(view):
        @csrf_exempt  # An API authenticated by a header: no cookie, nothing to forge.
        def handle(request):
            account = None
            try:
                if request.method not in methods:
                    response = error_json(405, "method_not_allowed", f"Method {request.method} not allowed.")
                    response["Allow"] = ", ".join(methods)
                    return response
                account = _authenticate(request)
                request.log_account = account.slug
                return view(request, account)
            except Exception as exc:
                error = service_error_for(exc)
                if error is None:
                    raise  # A real 500: logged with its traceback; the client sees none of it.
                return _error_response(error, account)

        return handle

    return wrap


def _authenticate(request):
    key = request.META.get("HTTP_X_API_KEY", "").strip()
    if not key:
        raise ApiKeyError("Missing API Key", code="missing_api_key")
    api_key = api_key_authenticate(key=key)
    if api_key is None:
        raise ApiKeyError()
    if ApiKey.Scope.REMOVEBG not in api_key.scopes:
        raise ApiKeyError(f"The API key lacks the `{ApiKey.Scope.REMOVEBG}` scope this API needs.",
                          code="scope_missing")
    return api_key.account


def error_json(status: int, code: str, title: str, detail: str = "") -> JsonResponse:
    error = {"title": title, "code": code}
    if detail:
        error["detail"] = detail
    return JsonResponse({"errors": [error]}, status=status, headers={"Cache-Control": "no-store"})


def _error_response(error: ServiceError, account) -> JsonResponse:
    status, code = error.status_code, error.code
    detail = getattr(error, "detail", "")
    if status in (413, 415, 422) or (400 <= status < 500 and status not in (402, 403, 429)):
        status, code = 400, _IMAGE_CODES.get(code, code)
    elif code in _BUSY_CODES:
        status = 429  # remove.bg's way of saying "retry after a while", which its clients do.
    response = error_json(status, code, error.message, detail)
    if error.retry_after is not None:
        response["Retry-After"] = str(int(error.retry_after))
    if status == 429 and account is not None:
        _rate_headers(response, account, error)
    charged = getattr(error, "credits_charged", None)
    if charged is not None:
        response["X-Credits-Charged"] = f"{charged.normalize():f}"  # Charged: the model ran for it.
    return response


def _rate_headers(response, account, error: ServiceError | None = None) -> None:
    """X-RateLimit-Limit/Remaining/Reset, as remove.bg sends them: the request rate every call
    counts against; on a 429, the limit that refused it (Reset: when to try again, Unix time)."""
    limits = account_limits(account)
    rate = limits.bg_remove_rate if error is not None and error.code == "bg_remove_rate_limited" else limits.render_rate
    now = int(time.time())
    if error is not None:
        response["X-RateLimit-Limit"] = str(rate_parse(rate)[0])
        response["X-RateLimit-Remaining"] = "0"
        response["X-RateLimit-Reset"] = str(now + int(error.retry_after or 1))
        return
    usage = rate_status(group=_REQUEST_RATE, account=account, rate=rate)
    if usage is not None:
        response["X-RateLimit-Limit"] = str(usage.limit)
        response["X-RateLimit-Remaining"] = str(usage.remaining)
        response["X-RateLimit-Reset"] = str(now + usage.reset_seconds)


@_api(("POST",))
def removebg_view(request, account):
    """POST /v1.0/removebg: waits for the image's cutout job (one per distinct image), then
    answers the result; 429 with Retry-After when it is not ready in REMOVEBG_WAIT_SECONDS."""
    source = services.removebg_admit(account=account)
    fields, files = request_fields(request)
    answer = services.removebg_call(account=account, source=source, fields=fields, files=files,
                                    enqueue=bg_remove_job_enqueue)
    return _result_response(request, answer, account)


def _result_response(request, answer, account):
    result, options, charge = answer.result, answer.options, answer.charge
    left, top, width, height = result.foreground
    if "application/json" in request.META.get("HTTP_ACCEPT", ""):
        response = JsonResponse({"data": {
            "result_b64": base64.b64encode(result.data).decode("ascii"),
            "foreground_top": top, "foreground_left": left,
            "foreground_width": width, "foreground_height": height,
        }})
    else:
        response = HttpResponse(result.data, content_type=result.content_type)
        if result.content_type == "application/zip":
            response["Content-Disposition"] = 'attachment; filename="no-bg.zip"'
    response["Cache-Control"] = "no-store"
    response["X-Width"] = str(result.width)
    response["X-Height"] = str(result.height)
    response["X-Credits-Charged"] = f"{charge.credits.normalize():f}"
    response["X-Foreground-Top"] = str(top)
    response["X-Foreground-Left"] = str(left)
    response["X-Foreground-Width"] = str(width)
    response["X-Foreground-Height"] = str(height)
    # Ours, not remove.bg's: which model made the cutout (`type=person` may choose another).
    response["X-Bg-Remove-Model"] = answer.model
    response["X-Bg-Remove-Refinement"] = answer.refinement
    if options.x_type is not None:
        response["X-Type"] = options.x_type  # No classifier here: the type asked for (docs/removebg.md).
    _rate_headers(response, account)
    return response


@_api(("GET",))
def account_view(request, account):
    """GET /v1.0/account: the account's credit balance and free calls, in remove.bg's shape."""
    credit = credit_account_ensure(account=account)
    if credit.metered:
        balance = float(credits_left(credit=credit))
        credits = {"total": balance, "subscription": balance, "payg": 0.0, "enterprise": 0.0, "metered": True}
        free_calls = free_calls_left(credit=credit)
    else:
        # remove.bg's shape has numbers only: a balance no call can use up, as enterprise credits
        # (billed after use, if at all), so a client that checks its balance first goes on;
        # `metered` (ours) says so plainly. No free calls are counted: every call is served.
        credits = {"total": UNMETERED_CREDITS, "subscription": 0.0, "payg": 0.0, "enterprise": UNMETERED_CREDITS,
                   "metered": False}
        free_calls = 0
    response = JsonResponse({"data": {"attributes": {
        "credits": credits, "api": {"free_calls": free_calls, "sizes": "all"},
    }}})
    response["Cache-Control"] = "no-store"
    return response


@_api(("POST",))
def improve_view(request, account):
    """POST /v1.0/improve: keeps the image for the account (admin: remove.bg improvement submissions)."""
    services.removebg_admit(account=account, payable=False)
    fields, files = request_fields(request)
    improvement = services.improvement_submit(account=account, fields=fields, files=files)
    return JsonResponse({"id": str(improvement.id)})
