"""The playground page and the calls its script makes: sign in, sources, a URL, a dropped image and its renders."""

import json
from functools import wraps
from itertools import islice
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.errors import BadRequestError, ForbiddenError
from core.handlers import error_json_response, service_error_for
from core.model_files import models_provisioned
from cutouts.queueing import bg_remove_job_enqueue
from playground.access import (
    SESSION_KEY,
    SignInError,
    UploadForbiddenError,
    api_key_sign_in,
    visitor_for,
    visitor_required,
)
from playground.services import playground_upload, playground_upload_gate, playground_url
from rendering.operations.output import FORMATS
from rendering.operations.resize import FITS
from rendering.operations.trim import TRIMS
from rendering.services import render_serve
from rendering.store import render_forget
from rendering.views import image_response, outcome_headers, processing_response
from sources.models import Source
from sources.origins.local import local_root_for
from sources.selectors import source_bg_remove_enabled, source_list_for
from usage.services import usage_record

# A local folder's image names offered for the path (the rest can be typed), from the first
# entries read: a folder of a million files costs a bounded read, not a sort of all of them.
FILES_LISTED = 200
ENTRIES_READ = 5000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Sent by the page's script with every render of an upload: a page of another site cannot send
# it (a custom header needs CORS), so no other site can make a signed-in browser start work.
PAGE_HEADER = "X-Playground"


def _json(view):
    """A call of the page's script: a signed-in visitor, every error as `{"error": {...}}`."""

    @wraps(view)
    def handle(request, *args, **kwargs):
        try:
            return view(request, visitor_required(request), *args, **kwargs)
        except Exception as exc:
            error = service_error_for(exc)
            if error is None:
                raise
            return error_json_response(error)

    return handle


@require_GET
def playground_page(request):
    return _page(request, visitor_for(request))


def _page(request, visitor, *, error: str = "", status: int = 200):
    config = None
    if visitor is not None:
        config = {
            "accounts": [{"slug": a.slug, "name": a.name} for a in visitor.accounts()],
            "models": models_provisioned(),
            "defaultModel": settings.BG_REMOVE_DEFAULT_MODEL,
            "fits": sorted(FITS),
            "trims": sorted(TRIMS),
            "formats": sorted(FORMATS - {"json"}),
            "maxBytes": settings.ORIGIN_MAX_BYTES,
            "mayUpload": visitor.may_upload,
            "urls": {"sources": reverse("playground-sources"), "url": reverse("playground-url"),
                     "upload": reverse("playground-upload")},
        }
    context = {"visitor": visitor, "error": error, "config": config, "max_mb": settings.ORIGIN_MAX_BYTES // 2**20}
    return render(request, "playground/index.html", context, status=status)


@require_POST
def sign_in(request):
    try:
        api_key = api_key_sign_in(key=request.POST.get("key", ""))
    except SignInError as exc:
        return _page(request, None, error=exc.message, status=exc.status_code)
    request.session.cycle_key()  # A new session id at sign-in: none planted before it is worth anything.
    request.session[SESSION_KEY] = api_key.pk
    return redirect("playground")


@require_POST
def sign_out(request):
    # The key's sign-in only: an admin session is signed out in the admin.
    request.session.pop(SESSION_KEY, None)
    return redirect("playground")


@require_GET
@_json
def sources_view(request, visitor):
    account = visitor.account(request.GET.get("account"))
    sources = [{
        "slug": source.slug, "kind": source.kind, "signed": source.require_signature,
        "bgRemove": source_bg_remove_enabled(source=source), "model": source.bg_remove_model,
        "files": _local_files(source),
    } for source in source_list_for(account=account).exclude(kind=Source.Kind.UPLOADS)]
    return JsonResponse({"account": account.slug, "sources": sources})


def _local_files(source) -> list[str]:
    if source.kind != Source.Kind.LOCAL_FOLDER:
        return []
    try:
        entries = islice(local_root_for(source.local_path).iterdir(), ENTRIES_READ)
        names = (p.name for p in entries if p.is_file())
        return sorted(n for n in names if PurePath(n).suffix.lower() in IMAGE_SUFFIXES)[:FILES_LISTED]
    except (OSError, ImproperlyConfigured):
        return []  # A folder gone or misconfigured: the path is typed instead.


@require_POST
@_json
def url_view(request, visitor):
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise BadRequestError("The body is not JSON.") from None
    if not isinstance(data, dict):
        raise BadRequestError("The body is not a JSON object.")
    fields = {name: data.get(name) for name in ("account", "source", "path", "query")}
    if not all(isinstance(value, str) for value in fields.values()):
        raise BadRequestError("Give account, source, path and query, each a string.")
    account = visitor.account(fields["account"])
    url, source = playground_url(account=account, slug=fields["source"], path=fields["path"], query=fields["query"])
    return JsonResponse({"url": request.build_absolute_uri(url), "signed": source.require_signature})


@require_POST
@_json
def upload_view(request, visitor):
    account = visitor.account(request.GET.get("account"))
    if not visitor.may_upload:
        raise UploadForbiddenError()
    upload = playground_upload(account=account, body=request, length=request.META.get("CONTENT_LENGTH"))
    return JsonResponse({
        "path": upload.path, "size": upload.size, "width": upload.width, "height": upload.height,
        "render": reverse("playground-upload-render", kwargs={"account": account.slug, "path": upload.path}),
    }, status=201)


@require_GET
@_json
def upload_render_view(request, visitor, account, path):
    """A render of an upload, answered as a rendering request is (the image, or 202 while its
    job runs), but private: the visitor's own, never kept by a shared cache."""
    if request.headers.get(PAGE_HEADER) != "1":
        raise ForbiddenError(f"Renders of uploads are fetched by the playground page (it sends {PAGE_HEADER}).",
                             code="playground_page_only")
    account = visitor.account(account)
    gate = playground_upload_gate(account=account, path=path, query=request.META.get("QUERY_STRING", ""))
    accept = request.META.get("HTTP_ACCEPT", "")
    outcome = _serve_and_queue(gate, accept)
    response = None
    if outcome.render is not None:
        try:
            response = image_response(request, outcome)
        except FileNotFoundError:
            # Purged or lost under this request: made again, as the rendering view does.
            render_forget(outcome.render)
            outcome = _serve_and_queue(gate, accept)
            if outcome.render is not None:
                response = image_response(request, outcome)
    if outcome.render is None:
        response = processing_response(request, outcome.job)
    else:
        sent = outcome.render.size if response.status_code == 200 else 0
        usage_record(source_id=outcome.source.id, day=timezone.now().date(), served_bytes=sent, hit=outcome.hit)
    response = outcome_headers(response, outcome)
    response["Cache-Control"] = "private, no-store"
    return response


def _serve_and_queue(gate, accept):
    outcome = render_serve(gate=gate, accept=accept)
    for job in outcome.queue:
        bg_remove_job_enqueue(job)  # 503 when the broker cannot take it.
    return outcome
