"""The rendering endpoint: parse, call the pipeline, send the stored bytes or a 202."""

from pathlib import PurePath
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.csrf import csrf_exempt

from core.errors import BadRequestError
from core.generation import GenerationMovedError, generation_begin, generation_restartable
from core.handlers import error_body, error_json_response, service_error_for
from cutouts.admission import job_retry_after
from cutouts.queueing import bg_remove_job_enqueue
from cutouts.views import job_status_url
from rendering.hot import GENERATION_BEGUN, HotResponse
from rendering.operations.delivery import download_filename, hint_environ_name, hint_headers, hints_from_environ
from rendering.services import RenderRequest, render_request
from rendering.signing import raw_path_candidates, url_signed
from rendering.store import SMALL_RENDER_BYTES, render_forget, render_open, render_read
from sources.origins.local import local_root_for
from sources.selectors import source_get
from usage.services import usage_record


@csrf_exempt  # GET and HEAD only; anything else is a 405.
def render_view(request, source, path):
    """The hot path, so a plain Django view (no DRF): every cached hit pays for what runs here."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse(error_body("method_not_allowed", f"Method {request.method} not allowed."),
                                status=405, headers={"Allow": "GET, HEAD", "Cache-Control": "no-store"})
        return response
    try:
        _host_check(request)
        return _render(request, source, path)
    except Exception as exc:
        error = service_error_for(exc)
        if error is None:
            raise  # A real 500: Django logs it, core.views.internal_error answers without a traceback.
        return error_json_response(error)


class HostNotAllowedError(BadRequestError):
    code = "host_not_allowed"
    default_message = "This host name is not served here (ALLOWED_HOSTS)."


# Host headers already found valid, with the settings they were judged by: Django's check cost
# a cached hit 37 µs on the 2-core bench machine, this lookup 6 µs. Only valid ones are kept.
_valid_hosts: set = set()


def _host_check(request) -> None:
    """The Host header first: a refused host gets 400 before anything is looked up or started
    (a job's status URL is built from it)."""
    meta = request.META
    ident = (meta.get("HTTP_HOST"), meta.get("HTTP_X_FORWARDED_HOST"), meta.get("SERVER_NAME"),
             meta.get("SERVER_PORT"), id(settings.ALLOWED_HOSTS), settings.USE_X_FORWARDED_HOST)
    if ident in _valid_hosts:
        return
    try:
        request.get_host()
    except DisallowedHost:
        raise HostNotAllowedError() from None
    if len(_valid_hosts) >= 256:
        _valid_hosts.clear()
    _valid_hosts.add(ident)


def _render(request, source, path):
    if GENERATION_BEGUN not in request.META:
        generation_begin()  # Called without rendering/wsgi.py's hot path first (tests, another server).
    render_req = RenderRequest(
        source_slug=source,
        path=path,
        raw_query=request.META.get("QUERY_STRING", ""),
        accept=request.META.get("HTTP_ACCEPT", ""),
        signed_paths_for=lambda: raw_path_candidates(request.META),
        hints=hints_from_environ(request.META),
    )
    outcome = _render_and_queue(render_req)
    request.render_cache = "processing" if outcome.render is None else ("hit" if outcome.hit else "miss")
    request.log_account = outcome.source.account.slug
    if outcome.render is None:
        response = processing_response(request, outcome.job)
    else:
        try:
            response = image_response(request, outcome)
        except FileNotFoundError:
            # The stored object vanished (a purge racing this request, or a lost file):
            # forget it and render again rather than fail.
            render_forget(outcome.render)
            outcome = _render_and_queue(render_req)
            if outcome.render is None:
                return processing_response(request, outcome.job)
            response = image_response(request, outcome)
        # A 304 or a HEAD is a render served, but sends no image bytes.
        sent = outcome.render.size if response.status_code == 200 and request.method == "GET" else 0
        usage_record(source_id=outcome.source.id, day=timezone.now().date(), served_bytes=sent, hit=outcome.hit)
        match = request.resolver_match  # None when the view is called directly (tests).
        # A composite whose marks are rendering URLs counted more than one entry at the gate: it is
        # not replayed before Django, which counts (and checks) each of them again.
        if sent and not outcome.fallback and match is not None and outcome.admits == 1:
            # The same request again may be answered before Django, with this response (hot.py).
            response.hot = HotResponse(account=outcome.source.account, source_id=outcome.source.id,
                                       expires=outcome.expires, route=match.route,
                                       varies=tuple(hint_environ_name(h) for h in _varies(outcome.params)))
    return outcome_headers(response, outcome)


def outcome_headers(response, outcome):
    """What a response says of its render besides the image: a fallback and why, what the URL
    asked for that the image lacks, the headers it varies on and the hints it asks for."""
    if outcome.fallback:
        # The image without removal, for now: never cached downstream; the headers say why
        # (X-Bg-Remove-Failure-Reason, as imgix's failure-reason header).
        response["Cache-Control"] = "no-store"
        failed = outcome.job is not None and outcome.job.status == outcome.job.Status.FAILED
        response["X-Bg-Remove-Status"] = "failed" if failed else "processing"
        # ASCII on one line: a job's message may hold "×" or a newline.
        reason = " ".join(outcome.failure_reason.split()).encode("ascii", "replace").decode()
        response["X-Bg-Remove-Failure-Reason"] = reason
    if outcome.params.fallbacks:
        # What the URL asked for that the image does not have, and why (rendering/operations/unsupported.py).
        response["X-Render-Fallback"] = "; ".join(outcome.params.fallbacks)
    varies = _varies(outcome.params)
    if varies:
        response["Vary"] = ", ".join(varies)
    if outcome.params.ch:
        # The hints this URL reads, asked of the browser for its next requests.
        response["Accept-CH"] = ", ".join(hint_headers(outcome.params))
    return response


def _varies(params) -> tuple[str, ...]:
    """The request headers the response depends on: Accept when the URL negotiates its format
    (auto=format), and the client hints it names (ch)."""
    return (("Accept",) if params.auto_format else ()) + hint_headers(params)


def _render_and_queue(render_req: RenderRequest):
    generation_restartable(True)
    try:
        outcome = render_request(render_req)
    except GenerationMovedError:
        # The request's count read a new cache generation (a purge or a change in some process)
        # after it had used cached reads: once more, from the database, without a second count.
        outcome = render_request(render_req)
    finally:
        generation_restartable(False)
    for job in outcome.queue:
        bg_remove_job_enqueue(job)  # 503 when the broker cannot take it.
    return outcome


def image_response(request, outcome):
    render = outcome.render
    max_age = outcome.source.cache_max_age
    headers = {
        "Cache-Control": f"public, max-age={settings.RENDER_CACHE_MAX_AGE if max_age is None else max_age}",
        "ETag": render.etag,
        "Last-Modified": _last_modified(render),
    }
    if render.capped:
        # Served smaller than asked, to keep within a ceiling; kept with the render, so every
        # response of it says so, hits replayed before Django (hot.py) included.
        headers["X-Render-Capped"] = render.capped
    if render.cutout_by:
        # What made the cutout, kept with the render like X-Render-Capped: the model and the
        # refinement of its job, or none for an origin transparent enough to be its own cutout.
        model, _, refinement = render.cutout_by.partition("/")
        headers["X-Bg-Remove-Model"] = "none" if model == "origin" else model
        headers["X-Bg-Remove-Refinement"] = refinement or "none"
        if model == "origin":
            headers["X-Bg-Remove-Status"] = "origin-transparent"
    if _not_modified(request.META, render):
        # The 200's headers without the body's (RFC 9110 §15.4.5): a cache that refreshes its copy
        # from this must not take Django's default text/html for the image's type.
        response = HttpResponse(status=304)
        del response["Content-Type"]
    elif request.method == "HEAD":
        response = HttpResponse(content_type=render.content_type)
        headers["Content-Length"] = str(render.size)
    elif render.size <= SMALL_RENDER_BYTES:
        # Most renders are small: sent from memory, no streaming machinery.
        response = HttpResponse(render_read(render), content_type=render.content_type)
    else:
        response = FileResponse(render_open(render), content_type=render.content_type)
        del response["Content-Disposition"]  # It would name the storage object.
        headers["Content-Length"] = str(render.size)
    filename = download_filename(outcome.params, render.path, render.content_type)
    if filename is not None:
        headers["Content-Disposition"] = _attachment(filename)
    for name, value in headers.items():
        response[name] = value
    return response


def _attachment(filename: str) -> str:
    """Content-Disposition for a download (RFC 6266): an ASCII `filename` for old clients and the
    exact name as UTF-8 in `filename*` (RFC 8187). The name is already clean of quotes and control
    characters (delivery.download_filename)."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _last_modified(render) -> str:
    # Kept on the render, which the lookup cache shares between requests: formatting the date
    # was a tenth of a cached hit's own work.
    value = render.__dict__.get("_last_modified")
    if value is None:
        value = render.__dict__["_last_modified"] = http_date(render.created_at.timestamp())
    return value


def _not_modified(meta, render) -> bool:
    """If-None-Match names this render; or, without If-None-Match (which wins, RFC 9110 §13.2.2),
    If-Modified-Since is at or after the render was made (a CDN that revalidates by date alone)."""
    none_match = meta.get("HTTP_IF_NONE_MATCH")
    if none_match:
        return _none_match(none_match, render.etag)
    since = parse_http_date_safe(meta.get("HTTP_IF_MODIFIED_SINCE", ""))
    return since is not None and int(render.created_at.timestamp()) <= since


def _none_match(header: str | None, etag: str) -> bool:
    """Whether If-None-Match names this render: `*` (any current representation, RFC 9110
    §13.1.2) or its ETag, compared weakly (a `W/` prefix is ignored)."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def processing_response(request, job):
    response = JsonResponse(
        {
            "status": job.status,
            "job": str(job.id),
            "status_url": job_status_url(request, job),
        },
        status=202,
    )
    response["Retry-After"] = str(job_retry_after(job))
    response["Cache-Control"] = "no-store"
    return response


# The three examples of the background-removal product text, on photographs demo/origin/ ships
# (its LICENSE.md): the cutout, the cutout on a new colour, the cutout as a watermark in front
# of a landscape.
DEMO_PERSON = "astronaut.jpg"
DEMO_LANDSCAPE = "aitzgorri.jpg"
DEMO_COLOUR = "F2C14E"
DEMO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def home(request):
    """A landing page; in development it shows the three examples and the demo source's files
    before and after."""
    context = {"demo_slug": "demo", "demo_files": [], "examples": []}
    demo = source_get(slug="demo")
    if demo is not None and demo.kind == demo.Kind.LOCAL_FOLDER:
        try:
            names = {p.name for p in local_root_for(demo.local_path).iterdir()}
        except (OSError, ImproperlyConfigured):
            names = set()  # A misconfigured demo folder just shows no files.
        context["demo_files"] = sorted(n for n in names if PurePath(n).suffix.lower() in DEMO_SUFFIXES)[:12]
        if {DEMO_PERSON, DEMO_LANDSCAPE} <= names:
            context["examples"] = [{"title": title, "src": url, "url": request.build_absolute_uri(url)}
                                   for title, url in demo_examples(demo)]
    return render(request, "home.html", context)


def demo_examples(source) -> list[tuple[str, str]]:
    """(caption, URL) of each example on `source`, signed when the source requires it."""
    base = f"/render/{source.slug}/"
    cutout = f"{quote(DEMO_PERSON)}?bg-remove=true"
    # The watermark is itself a render on the same source: its query travels percent-encoded
    # inside the `mark` value, so its `&` does not end `mark` and start the outer parameters.
    mark = quote(f"{cutout}&w=240", safe="")
    examples = [
        ("The background removed", f"{cutout}&w=300"),
        ("On a new colour", f"{cutout}&bg={DEMO_COLOUR}&w=300"),
        ("Using a watermark", f"{quote(DEMO_LANDSCAPE)}?w=600&mark={mark}&mark-align=bottom,center"),
    ]
    return [(title, url_signed(source=source, url=base + url)) for title, url in examples]
