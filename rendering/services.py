"""The rendering pipeline: one request in, a stored render or a job in progress out."""

import json
import math
from dataclasses import dataclass, replace

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from accounts.limits import render_admit
from core.errors import BadRequestError, NotFoundError, ServiceError, ServiceUnavailableError
from core.metrics import ORIGIN_ERRORS
from cutouts.models import BgRemoveJob
from cutouts.services import BgRemoveNotEnabledError, bg_remove_job_ensure, bg_remove_job_raise_failure
from imaging.decode import image_decode, image_geometry, image_sniff
from rendering.budget import render_budget_check, render_slot
from rendering.encode import format_default, format_negotiate, format_resolve, image_encode, image_has_alpha
from rendering.models import Render
from rendering.operations.bg import bg_apply
from rendering.operations.mark import mark_apply
from rendering.operations.pad import pad_apply
from rendering.operations.resize import rect_apply, resize_apply
from rendering.operations.trim import trim_apply
from rendering.params import MAX_DIMENSION, RenderParams, params_parse
from rendering.signing import expires_check, signature_check
from rendering.store import mark_name, render_get, render_key, render_store, storage_errors
from sources.models import Source
from sources.origins import OriginError, origin_for, path_clean
from sources.origins.net import fetch_url
from sources.selectors import source_bg_remove_enabled, source_bg_remove_model, source_get


class SourceNotFoundError(NotFoundError):
    code = "source_not_found"
    default_message = "No such source."


class UriTooLongError(ServiceError):
    status_code = 414
    code = "uri_too_long"
    default_message = "The URL is longer than 8000 characters."


class MarkError(BadRequestError):
    code = "bad_mark"


@dataclass(frozen=True)
class RenderRequest:
    """What the HTTP layer hands over: the source, the path, and the request as received."""

    source_slug: str
    path: str
    raw_query: str
    accept: str
    # The path as the client sent it, in the encodings it may have been signed in.
    signed_paths: tuple


@dataclass(frozen=True)
class RenderOutcome:
    """A finished render to send, or the job a client should wait for."""

    source: Source
    params: RenderParams
    render: Render | None = None
    job: BgRemoveJob | None = None
    # bg-remove-fallback: the render is the image without removal while the job runs.
    fallback: bool = False
    # Served from the render cache, without any image work.
    hit: bool = False
    # The job needs its message published: the caller (an entry point) does it (cutouts/queueing.py).
    queue_job: bool = False


def render_request(req: RenderRequest) -> RenderOutcome:
    """Checks in a fixed order — signature, source, limits — then serves from cache or renders."""
    if len(req.signed_paths[0]) + len(req.raw_query) + 1 > settings.RENDER_MAX_URL_LENGTH:
        raise UriTooLongError()
    source = source_get(slug=req.source_slug)
    if source is None:
        raise SourceNotFoundError()
    if source.require_signature:
        signature_check(tokens=source.secure_tokens, paths=list(req.signed_paths), raw_query=req.raw_query)
    params = params_parse(req.raw_query)
    expires_check(params.expires)
    path = path_clean(req.path)
    if params.bg_remove and not source_bg_remove_enabled(source=source):
        raise BgRemoveNotEnabledError()
    if params.mark:
        _mark_target(params.mark)  # A bad mark is refused now, not once a job or an origin fetch is done.
    # Counted once the request is known to be valid: a refused one uses none of the budget.
    render_admit(account=source.account)
    return _serve(source=source, path=path, params=params, accept=req.accept)


def _serve(*, source: Source, path: str, params: RenderParams, accept: str) -> RenderOutcome:
    """The whole order of a render on one screen, after render_request's checks: lookup → source
    image (the cutout, or the origin) → decode → trim → budget → stages (STAGES) → encode → store. Each
    step answers or hands on; none calls back into another (the fallback is a second key)."""
    fmt = format_negotiate(params, accept)

    # 1. Lookup: a finished render is one indexed lookup away, with no image work at all.
    key = _render_key(source, path, params, fmt)
    render = render_get(key=key)
    if render is not None:
        return RenderOutcome(source=source, params=params, render=render, hit=True)

    # 2. The source image. With bg-remove: the cutout once its job is done; until then a 202, or
    # (imgix's bg-remove-fallback) the image without removal, under that render's own key.
    job, queue, stage_params = None, False, params
    if params.bg_remove:
        job, queue = bg_remove_job_ensure(source=source, path=path, model=_model(source, params),
                                          refinement=source.bg_remove_refinement)
        if job.status == BgRemoveJob.Status.FAILED:
            bg_remove_job_raise_failure(job)
        if job.status != BgRemoveJob.Status.DONE:
            if not params.bg_remove_fallback:
                return RenderOutcome(source=source, params=params, job=job, queue_job=queue)
            stage_params = replace(params, bg_remove=False)
            key = _render_key(source, path, stage_params, fmt)
            render = render_get(key=key)
            if render is not None:
                return RenderOutcome(source=source, params=params, render=render, job=job, queue_job=queue,
                                     fallback=True, hit=True)
    outcome = {"source": source, "params": params, "job": job, "queue_job": queue,
               "fallback": stage_params is not params}
    cutout = stage_params.bg_remove
    if cutout:
        data = _storage_read(job.cutout_name)
        small_enough = max(job.width or 0, job.height or 0) <= MAX_DIMENSION
        if (format_resolve(fmt, params=params, has_alpha=True, default="png") == "png"
                and not params.has_operations and params.q is None and small_enough):
            # The stored cutout is already the answer: the render points at it, no copy.
            render = render_store(key=key, source=source, path=path, data=data, content_type="image/png",
                                  storage_name=job.cutout_name)
            return RenderOutcome(render=render, **outcome)

    # 3–7. In a render slot (cached hits never wait for one).
    with render_slot():
        # 3. Decode: the origin at the smallest scale the output needs (JPEG draft), or the cutout.
        if cutout:
            image, kind, size = image_decode(data), "png", len(data)
        else:
            image, kind, size = _origin_image(source, path, at_least=_decode_size(stage_params, fmt))
        if fmt == "json":
            body = json.dumps(_metadata(image, kind=kind, size=size)).encode()
            render = render_store(key=key, source=source, path=path, data=body, content_type="application/json")
            return RenderOutcome(render=render, **outcome)
        # Trim first, before the budget: the output's size follows the trimmed image's.
        image = trim_apply(image, stage_params)
        # 4. Budget: what the output may cost, checked before any work on pixels (budget.py).
        mark = _mark_image(source, stage_params.mark) if stage_params.mark else None
        default = format_default(kind, cutout=cutout)
        budget = render_budget_check(size=image_geometry(image).size, params=stage_params, requested=fmt,
                                     default=default, accept=accept, has_alpha=_may_have_alpha(image, stage_params),
                                     mark_size=mark.size if mark is not None else None)
        # 5. Stages, in imgix's order.
        context = StageContext(mark=mark, max_pixels=budget.max_pixels)
        for stage in STAGES:
            image = stage(image, stage_params, context)
        # 6. Encode, 7. store.
        data, content_type = image_encode(
            image, format_resolve(budget.fmt, params=stage_params, has_alpha=image_has_alpha(image), default=default),
            stage_params)
        render = render_store(key=key, source=source, path=path, data=data, content_type=content_type)
    return RenderOutcome(render=render, **outcome)


def _model(source: Source, params: RenderParams) -> str:
    return source_bg_remove_model(source=source, requested=params.bg_remove_model)


def _render_key(source: Source, path: str, params: RenderParams, fmt: str) -> str:
    model = f"{_model(source, params)}/{source.bg_remove_refinement}" if params.bg_remove else ""
    return render_key(source_id=source.id, path=path, model=model, canonical=params.canonical(fmt), fmt=fmt)


# --- Stages ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageContext:
    """What stages need beyond the image and the parameters."""

    mark: object = None  # The decoded watermark, when `mark` is asked for.
    # The encoder's pixel budget for an image served at its own size (budget.py).
    max_pixels: int | None = None


def _rect(image, params: RenderParams, context: StageContext):
    return rect_apply(image, params.rect) if params.rect else image


def _resize(image, params: RenderParams, context: StageContext):
    # fit=fill/fillmax also lays the fill around the image.
    return resize_apply(image, params, max_pixels=context.max_pixels)


def _pad(image, params: RenderParams, context: StageContext):
    return pad_apply(image, params, max_pixels=context.max_pixels)


def _bg(image, params: RenderParams, context: StageContext):
    return bg_apply(image, params.bg) if params.bg else image


def _mark(image, params: RenderParams, context: StageContext):
    return mark_apply(image, context.mark, params) if context.mark is not None else image


# The order of operations after decode, background removal and trim (SPEC, docs/rendering.md):
# rect → fit/crop/resize (w, h, dpr, ar, min/max) → fill → pad → bg → mark. Each stage: (image,
# params, context).
STAGES = (_rect, _resize, _pad, _bg, _mark)


def _may_have_alpha(image, params: RenderParams) -> bool:
    """Whether the render may come out with transparency (for auto=compress's choice of encoder
    before the work): an opaque bg removes it, a transparent fill or pad adds it."""
    if params.bg and params.bg[3] == 255:
        return False
    return image_has_alpha(image) or params.fit in ("fill", "fillmax") or any(params.pad)


def _decode_size(params: RenderParams, fmt: str) -> tuple[int, int] | None:
    """The smallest decoded size the render needs, when it is known before decoding."""
    if fmt == "json" or params.rect or params.mark or params.trim:  # trim's box needs every pixel.
        return None
    if not (params.w or params.h):
        if params.ar:
            return None  # The output's size follows the decoded one.
        # No size asked: the output is the image clamped to RENDER_MAX_OUTPUT_PIXELS. A decode
        # whose shorter side is at least √ceiling still has more pixels than that, so it clamps
        # to the same size; a 50-megapixel JPEG then decodes at 1/2, for a second less CPU.
        side = math.isqrt(settings.RENDER_MAX_OUTPUT_PIXELS - 1) + 1
        return (side, side)
    if (params.w and params.w.ratio) or (params.h and params.h.ratio):
        return None
    scale = params.dpr if params.dpr > 0 else 1
    return (max(1, round((params.w.value if params.w else 1) * scale)),
            max(1, round((params.h.value if params.h else 1) * scale)))


def _origin_image(source: Source, path: str, *, at_least=None):
    try:
        obj = origin_for(source).fetch(path, max_bytes=settings.ORIGIN_MAX_BYTES)
    except OriginError as exc:
        ORIGIN_ERRORS.labels(kind=exc.code).inc()
        raise
    return image_decode(obj.data, at_least=at_least), image_sniff(obj.data), len(obj.data)


def _metadata(image, *, kind, size) -> dict:
    return {
        "Content-Type": f"image/{kind}" if kind else "application/octet-stream",
        "Content-Length": size,
        "PixelWidth": image.width,
        "PixelHeight": image.height,
        "ColorModel": "RGB" if image.mode in ("RGB", "RGBA", "P") else "Gray",
        "HasAlpha": "A" in image.getbands(),
    }


def _mark_target(mark: str) -> str | None:
    """The path of a mark on the same source, or None for an absolute http(s) URL; else 400."""
    if mark.startswith(("http://", "https://")):
        return None
    if "://" in mark:
        raise MarkError("mark must be an http(s) URL or a path on the same source.")
    return path_clean(mark.lstrip("/").split("?", 1)[0])


def _mark_image(source: Source, mark: str):
    """The watermark, fetched under the origin rules (network safety, size cap) and kept in
    storage under the source, so purging the source (or the mark's own path) removes it."""
    path = _mark_target(mark)
    name = mark_name(source_id=source.id, mark=mark if path is None else path)
    with storage_errors():
        cached = default_storage.exists(name)
    if cached:
        return image_decode(_storage_read(name))
    if path is None:
        data = fetch_url(mark, max_bytes=settings.ORIGIN_MAX_BYTES).data
    else:
        data = origin_for(source).fetch(path, max_bytes=settings.ORIGIN_MAX_BYTES).data
    image = image_decode(data)
    with storage_errors():
        default_storage.save(name, ContentFile(data))
    return image


def _storage_read(name: str) -> bytes:
    try:
        with storage_errors(), default_storage.open(name, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ServiceUnavailableError("A stored image is missing; purge the image to recompute it.") from None
