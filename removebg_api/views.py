"""remove.bg's endpoints: parse the request as remove.bg does, call the services, answer in its
shapes (an image or JSON; errors as `{"errors": [...]}` with its statuses and headers)."""

import base64
import json
import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import HttpResponse, JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.limits import account_limits, rate_parse, rate_status, render_admit
from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from core.errors import ServiceError
from core.handlers import service_error_for
from cutouts.queueing import bg_remove_job_enqueue
from removebg_api import services
from removebg_api.errors import ApiKeyError, RemoveBgError
from removebg_api.options import options_parse
from usage.services import usage_record

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
OPTION_FIELDS = ("size", "type", "type_level", "format", "roi", "crop", "crop_margin", "scale", "position",
                 "channels", "add_shadow", "semitransparency", "bg_color")


def _api(methods: tuple):
    """A remove.bg endpoint: its methods only, its key, every error in its shape."""

    def wrap(view):
        @csrf_exempt  # An API authenticated by a header: no cookie, nothing to forge.
        def handle(request):
            account = None
            try:
                if request.method not in methods:
                    response = _errors(405, "method_not_allowed", f"Method {request.method} not allowed.")
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


def _errors(status: int, code: str, title: str, detail: str = "") -> JsonResponse:
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
    response = _errors(status, code, error.message, detail)
    if error.retry_after is not None:
        response["Retry-After"] = str(int(error.retry_after))
    if status == 429 and account is not None:
        _rate_headers(response, account, error)
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


def _fields(request) -> tuple[dict, dict]:
    """(fields, files) of a multipart, urlencoded or JSON body, refused from its Content-Length
    when over REMOVEBG_MAX_REQUEST_BYTES before a byte is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.REMOVEBG_MAX_REQUEST_BYTES
    if length > limit:
        raise RemoveBgError("file_too_large", "File too large", f"The request is over {limit} bytes.")
    content_type = request.content_type
    try:
        if content_type == "multipart/form-data":
            # Django's parser: files stream to disk past 2.5 MB; a plain (non-file) field is
            # bounded by DATA_UPLOAD_MAX_MEMORY_SIZE, so large base64 goes in JSON or urlencoded.
            return {k: request.POST.get(k) for k in request.POST}, {k: request.FILES.get(k) for k in request.FILES}
        body = request.read(limit + 1)
        if len(body) > limit:
            raise RemoveBgError("file_too_large", "File too large", f"The request is over {limit} bytes.")
        if content_type == "application/x-www-form-urlencoded":
            query = QueryDict(body, encoding=request.encoding or "utf-8")
            return {k: query.get(k) for k in query}, {}
        if content_type == "application/json":
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return data, {}
    except RequestDataTooBig:
        raise RemoveBgError("file_too_large", "File too large", (
            "A plain multipart field is limited to 2.5 MB: send the image as image_file, or its base64 "
            "in a JSON or urlencoded body.")) from None
    except (ValueError, RecursionError, TooManyFieldsSent, MultiPartParserError, SuspiciousOperation):
        raise RemoveBgError("invalid_parameters", "Invalid parameters",
                            f"The {content_type} body could not be parsed.") from None
    return {}, {}


def _text(fields: dict, name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise RemoveBgError("invalid_parameters", "Invalid parameters", f"{name} must be a string.")


@_api(("POST",))
def removebg_view(request, account):
    """POST /v1.0/removebg: waits for the image's cutout job (one per distinct image), then
    answers the result; 429 with Retry-After when it is not ready in REMOVEBG_WAIT_SECONDS."""
    fields, files = _fields(request)
    options = options_parse({name: fields.get(name) for name in OPTION_FIELDS})
    # Counted like a rendering request, once the request is known to be well formed.
    render_admit(account=account)
    data = services.image_bytes(file=files.get("image_file"), b64=_text(fields, "image_file_b64"),
                                url=_text(fields, "image_url"))
    if data is None:
        raise RemoveBgError("missing_source", "No image given", "Please provide the source image in the image_url, "
                            "image_file or image_file_b64 parameter.")
    if options.bg_color is not None and (files.get("bg_image_file") or fields.get("bg_image_url")):
        raise RemoveBgError("multiple_bg_sources", "Multiple background sources given: Please provide either the "
                            "bg_color, the bg_image_url or the bg_image_file parameter.")
    background = services.image_bytes(file=files.get("bg_image_file"), url=_text(fields, "bg_image_url"), what="bg")
    charge = services.charge_check(account=account, options=options)
    given = services.input_store(account=account, data=data)
    job, queue = services.removebg_job_ensure(input=given, options=options)
    cached = job.status == job.Status.DONE
    if queue:
        bg_remove_job_enqueue(job)  # 503 when the broker cannot take it.
    if not cached:
        with services.waiting_slot():
            job = services.job_wait(job=job)
    result = services.result_render(job=job, upload=given.upload, options=options, background=background)
    services.call_record(account=account, job=job, upload=given.upload, options=options, charge=charge,
                         result=result)
    usage_record(source_id=given.source.id, day=timezone.now().date(), served_bytes=len(result.data), hit=cached)
    return _result_response(request, result, options, charge, account)


def _result_response(request, result, options, charge, account):
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
    if options.type_level != "none":
        # No classifier here: the type asked for, else "other" (docs/removebg.md).
        response["X-Type"] = options.type if options.type in ("person", "product", "car", "animal", "graphics",
                                                              "transportation") else "other"
    _rate_headers(response, account)
    return response


@_api(("GET",))
def account_view(request, account):
    """GET /v1.0/account: the account's credit balance and free calls, in remove.bg's shape."""
    credit = services.credit_account_ensure(account=account)
    balance = float(services.credits_left(account=account, credit=credit))
    response = JsonResponse({"data": {"attributes": {
        "credits": {"total": balance, "subscription": balance, "payg": 0.0, "enterprise": 0.0},
        "api": {"free_calls": services.free_calls_left(account=account, credit=credit), "sizes": "all"},
    }}})
    response["Cache-Control"] = "no-store"
    return response


@_api(("POST",))
def improve_view(request, account):
    """POST /v1.0/improve: keeps the image for the account (admin: remove.bg improvement submissions)."""
    fields, files = _fields(request)
    data = services.image_bytes(file=files.get("image_file"), b64=_text(fields, "image_file_b64"),
                                url=_text(fields, "image_url"))
    if data is None:
        raise RemoveBgError("missing_source", "No image given", "Please provide the source image in the image_url, "
                            "image_file or image_file_b64 parameter.")
    upload = files.get("image_file")
    filename = _text(fields, "image_filename") or (upload.name if upload is not None else "")
    improvement = services.improvement_store(account=account, data=data, tag=_text(fields, "tag") or "",
                                             filename=filename)
    return JsonResponse({"id": str(improvement.id)})
