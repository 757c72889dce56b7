"""The rendering pipeline: one request in, a stored render or a job in progress out."""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from core.errors import ServiceError, ServiceUnavailableError
from core.metrics import ORIGIN_ERRORS
from core.storage import storage_put
from cutouts.models import BgRemoveJob
from cutouts.selectors import job_find
from cutouts.services import bg_remove_job_ensure, bg_remove_job_raise_failure
from imaging.decode import image_alpha_possible, image_decode, image_geometry, image_sniff, image_transparency
from rendering.budget import RenderBusyError, render_budget_check, render_slot
from rendering.encode import format_default, format_negotiate, format_resolve, image_encode, image_has_alpha
from rendering.gate import Door, Entry, MarkPass, Pass, render_gate
from rendering.models import Render
from rendering.operations.bg import bg_apply
from rendering.operations.mark import mark_apply
from rendering.operations.pad import pad_apply
from rendering.operations.resize import rect_apply, resize_apply
from rendering.operations.trim import trim_apply
from rendering.params import MAX_DIMENSION, RenderParams
from rendering.store import mark_name, render_get, render_inputs, render_key, render_store, storage_errors
from sources.models import Source
from sources.origins import OriginError, origin_for
from sources.origins.net import fetch_url
from sources.selectors import source_bg_remove_model, source_get


class UriTooLongError(ServiceError):
    status_code = 414
    code = "uri_too_long"
    default_message = "The URL is longer than 8000 characters."


@dataclass(frozen=True)
class RenderRequest:
    """What the HTTP layer hands over: the source, the path, and the request as received."""

    source_slug: str
    path: str
    raw_query: str
    accept: str
    # The path as the client sent it, in the encodings it may have been signed in: a callable,
    # since only a source that requires signatures (or a very long URL) needs them worked out.
    signed_paths_for: Callable[[], list[str]]

    @cached_property
    def signed_paths(self) -> tuple:
        return tuple(self.signed_paths_for())


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
    # Jobs whose messages need publishing (this image's, a mark's): the caller, an entry point,
    # publishes them (cutouts/queueing.py).
    queue: tuple = ()
    # With a fallback: why the image is not the cutout (a header, as imgix's failure reason).
    failure_reason: str = ""
    # The earliest `expires` of the request and its nested marks, and how many entries it counted
    # against the account's rate: what a replay of the same request must check and count.
    expires: int | None = None
    admits: int = 1


def render_request(req: RenderRequest) -> RenderOutcome:
    """A rendering request: its length, then the gate (gate.py: source kind, signature, expires,
    entitlement, rate, and the same for each nested mark), then the render."""
    # A character percent-encoded is 12 long at most (4 UTF-8 bytes), and the signed path holds
    # /render/{source}/ too: only a URL that may be too long has its path encoded to measure it.
    bound = 12 * len(req.path) + 3 * len(req.source_slug) + len("/render//") + len(req.raw_query) + 1
    may_be_long = bound > settings.RENDER_MAX_URL_LENGTH
    if may_be_long and len(req.signed_paths[0]) + len(req.raw_query) + 1 > settings.RENDER_MAX_URL_LENGTH:
        raise UriTooLongError()
    entry = Entry(door=Door.REQUEST, source=source_get(slug=req.source_slug), path=req.path,
                  raw_query=req.raw_query, signed_paths=lambda: req.signed_paths)
    return render_serve(gate=render_gate(entry), accept=req.accept)


def render_serve(*, gate: Pass, accept: str) -> RenderOutcome:
    """The render of an entry that passed the gate (gate.py), from cache or made now."""
    outcome = _serve(gate=gate, accept=accept)
    return replace(outcome, expires=gate.expires, admits=gate.admits)


def _serve(*, gate: Pass, accept: str) -> RenderOutcome:
    """The whole order of a render on one screen, after the gate's checks: lookup → source image
    (the cutout, or the origin) → the mark's image → decode → trim → budget → stages (STAGES) →
    encode → store. Each step answers or hands on; the fallbacks are renders under keys of their
    own."""
    source, path, params = gate.source, gate.path, gate.params
    fmt = format_negotiate(params, accept)

    # 1. Lookup: a finished render is one indexed lookup away, with no image work at all.
    key = _render_key(source, path, params, fmt)
    render = render_get(key=key)
    if render is not None:
        return RenderOutcome(source=source, params=params, render=render, hit=True)

    # 2. The source image. With bg-remove: the cutout once its job is done; until then a 202, or
    # (imgix's bg-remove-fallback) the image without removal, under that render's own key. An
    # origin that is transparent enough already (bg-remove-transparency-threshold) is its own
    # cutout, and no job is made for it.
    job, queue, stage_params, reason, as_is = None, (), params, "", None
    if params.bg_remove:
        identity = {"source": source, "path": path, "model": _model(source, params),
                    "refinement": source.bg_remove_refinement}
        found = job_find(**identity)
        if found is None:
            as_is = _transparent_origin(source, path, params)
        if as_is is None:
            # A finished job is the common case: its row, read once, is all a render needs.
            done = found is not None and found.status == BgRemoveJob.Status.DONE
            job, needs_queue = (found, False) if done else bg_remove_job_ensure(**identity)
            queue = (job,) if needs_queue else ()
            if job.status != BgRemoveJob.Status.DONE:
                if not params.bg_remove_fallback:
                    if job.status == BgRemoveJob.Status.FAILED:
                        bg_remove_job_raise_failure(job)
                    return RenderOutcome(source=source, params=params, job=job, queue=queue)
                reason = job.error_message if job.status == BgRemoveJob.Status.FAILED else PROCESSING
                stage_params = replace(params, bg_remove=False)
                key = _render_key(source, path, stage_params, fmt)
                render = render_get(key=key)
                if render is not None:
                    return RenderOutcome(source=source, params=params, render=render, job=job, queue=queue,
                                         fallback=True, hit=True, failure_reason=reason)
    fallback = stage_params is not params
    cutout = stage_params.bg_remove
    if cutout and as_is is None:
        data = _storage_read(job.cutout_name)
        small_enough = max(job.width or 0, job.height or 0) <= MAX_DIMENSION
        if (format_resolve(fmt, params=params, has_alpha=True, default="png") == "png"
                and not params.has_operations and params.q is None and small_enough):
            # The stored cutout is already the answer: the render points at it, no copy.
            render = render_store(key=key, source=source, path=path, data=data, content_type="image/png",
                                  storage_name=job.cutout_name)
            return RenderOutcome(source=source, params=params, render=render, job=job)

    # 2b. The mark's bytes, before the render slot: a mark that is a rendering URL is rendered by
    # this same function (in a slot of its own), and while its cutout is made, the composite
    # answers as that render does (202) or with the mark's fallback, under a key of its own.
    mark = _Mark()
    if stage_params.mark and fmt != "json":
        mark = _mark_fetch(source, gate.mark)
        queue += mark.queue
        if mark.waiting is not None:
            return RenderOutcome(source=source, params=params, job=mark.waiting.job, queue=queue)
        if mark.fallback is not None:
            fallback, job, reason = True, mark.fallback.job, mark.fallback.failure_reason
            key = _render_key(source, path, stage_params, fmt, variant="mark-fallback")
            render = render_get(key=key)
            if render is not None:
                return RenderOutcome(source=source, params=params, render=render, job=job, queue=queue,
                                     fallback=True, hit=True, failure_reason=reason)
    outcome = {"source": source, "params": params, "job": job, "queue": queue, "fallback": fallback,
               "failure_reason": reason}

    # 3–7. In a render slot (cached hits never wait for one).
    with render_slot():
        # 3. Decode: the origin at the smallest scale the output needs (JPEG draft), or the cutout.
        if as_is is not None:
            image, kind, size = as_is
        elif cutout:
            image, kind, size = image_decode(data), "png", len(data)
        else:
            image, kind, size = _origin_image(source, path, at_least=_decode_size(stage_params, fmt))
        if fmt == "json":
            body = json.dumps(_metadata(image, kind=kind, size=size)).encode()
            render = render_store(key=key, source=source, path=path, data=body, content_type="application/json")
            return RenderOutcome(render=render, **outcome)
        mark_image = image_decode(mark.data) if mark.data else None
        if mark.store_as:
            with storage_errors():
                storage_put(mark.store_as, mark.data)  # Whole or not at all: a kept mark is complete.
        # Trim first, before the budget: the output's size follows the trimmed image's.
        image = trim_apply(image, stage_params)
        # 4. Budget: what the output may cost, checked before any work on pixels (budget.py).
        default = format_default(kind, cutout=cutout)
        budget = render_budget_check(size=image_geometry(image).size, params=stage_params, requested=fmt,
                                     default=default, accept=accept, has_alpha=_may_have_alpha(image, stage_params),
                                     mark_size=mark_image.size if mark_image is not None else None)
        # 5. Stages, in imgix's order.
        context = StageContext(mark=mark_image, max_pixels=budget.max_pixels)
        for stage in STAGES:
            image = stage(image, stage_params, context)
        # 6. Encode, 7. store.
        data, content_type = image_encode(
            image, format_resolve(budget.fmt, params=stage_params, has_alpha=image_has_alpha(image), default=default),
            stage_params)
        render = render_store(key=key, source=source, path=path, data=data, content_type=content_type,
                              inputs=mark.inputs, capped=budget.capped)
    return RenderOutcome(render=render, **outcome)


PROCESSING = "Processing background removal request."


# Names of origins that may come cut out. Others are not fetched in the request to be measured:
# the first request for a photo stays a cheap 202 (its worker fetches it).
_MAYBE_TRANSPARENT = (".png", ".webp", ".gif")


def _transparent_origin(source: Source, path: str, params: RenderParams):
    """(image, kind, size) of an origin more transparent than bg-remove-transparency-threshold
    (a product shot that comes cut out), else None. The name only chooses whether to look: the
    file's header (and then its pixels) decides."""
    if not path.lower().endswith(_MAYBE_TRANSPARENT):
        return None
    try:
        # In a render slot, fetch included: a slow origin holds a slot, never a thread beyond them.
        with render_slot():
            obj = origin_for(source).fetch(path, max_bytes=settings.ORIGIN_MAX_BYTES)
            if not image_alpha_possible(obj.data):
                return None
            image = image_decode(obj.data)
    except RenderBusyError:
        raise
    except ServiceError:
        return None  # A missing, oversized or broken origin: its job says so, as for any other.
    if image_transparency(image) <= params.bg_remove_threshold:
        return None
    return image, image_sniff(obj.data), len(obj.data)


def _model(source: Source, params: RenderParams) -> str:
    return source_bg_remove_model(source=source, requested=params.bg_remove_model)


def _render_key(source: Source, path: str, params: RenderParams, fmt: str, variant: str = "") -> str:
    model = f"{_model(source, params)}/{source.bg_remove_refinement}" if params.bg_remove else ""
    canonical = params.canonical(fmt) + (f"\x1f{variant}" if variant else "")
    return render_key(source_id=source.id, path=path, model=model, canonical=canonical, fmt=fmt)


# --- Stages ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageContext:
    """What stages need beyond the image and the parameters."""

    mark: object = None  # The decoded watermark, when `mark` is asked for.
    # The encoder's pixel budget for an image served at its own size (budget.py).
    max_pixels: int | None = None


def _mask(image, params: RenderParams, context: StageContext):
    # bg-remove-output=mask: the cutout's alpha as a greyscale image (white: the subject).
    if not (params.bg_remove and params.bg_remove_output == "mask"):
        return image
    return image.getchannel("A") if "A" in image.getbands() else Image.new("L", image.size, 255)


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
# the matte when it is asked for instead of the cutout → rect → fit/crop/resize (w, h, dpr, ar,
# min/max) → fill → pad → bg → mark. Each stage: (image, params, context).
STAGES = (_mask, _rect, _resize, _pad, _bg, _mark)


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


def _origin_fetch(source: Source, path: str):
    try:
        return origin_for(source).fetch(path, max_bytes=settings.ORIGIN_MAX_BYTES)
    except OriginError as exc:
        ORIGIN_ERRORS.labels(kind=exc.code).inc()
        raise


def _origin_image(source: Source, path: str, *, at_least=None):
    obj = _origin_fetch(source, path)
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


# --- Marks -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Mark:
    data: bytes = b""
    # The images the mark was made from, (source id, path): purging one purges the composite.
    inputs: frozenset = frozenset()
    queue: tuple = ()
    # The mark's own render, when it is not the finished mark: waiting for its job (a 202), or
    # its bg-remove-fallback.
    waiting: RenderOutcome | None = None
    fallback: RenderOutcome | None = None
    # Where to keep fetched bytes once they decode (a file that is not an image is never kept).
    store_as: str = ""


def _mark_fetch(source: Source, mark: MarkPass) -> _Mark:
    """The mark's bytes: a rendering URL rendered here, with its own parameters, entitlement,
    model and cache (it passed the gate with the request); a file of the source or an image on
    the web fetched under the origin rules (network safety, size cap, deadline) in a render slot,
    as an origin is, and kept in storage under the source, so purging the source (or the mark's
    own path) removes it."""
    ref = mark.ref
    if mark.render is not None:
        inner = _serve(gate=mark.render, accept="")
        if inner.render is None:
            return _Mark(queue=inner.queue, waiting=inner)
        inputs = frozenset({(mark.render.source.id, ref.path), *render_inputs(inner.render)})
        return _Mark(data=_storage_read(inner.render.storage_name), inputs=inputs, queue=inner.queue,
                     fallback=inner if inner.fallback else None)
    name = mark_name(source_id=source.id, mark=ref.url or ref.path)
    with storage_errors():
        cached = default_storage.exists(name)
    if cached:
        data = _storage_read(name)
    else:
        # A slow or far mark server holds a slot as a slow origin does, never a thread beyond them.
        with render_slot():
            if ref.kind == "url":
                data = fetch_url(ref.url, max_bytes=settings.ORIGIN_MAX_BYTES).data
            else:
                data = origin_for(source).fetch(ref.path, max_bytes=settings.ORIGIN_MAX_BYTES).data
    return _Mark(data=data, inputs=frozenset({(source.id, ref.path)}) if ref.kind == "path" else frozenset(),
                 store_as="" if cached else name)


def _storage_read(name: str) -> bytes:
    try:
        with storage_errors(), default_storage.open(name, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ServiceUnavailableError("A stored image is missing; purge the image to recompute it.") from None
