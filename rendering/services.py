"""The rendering pipeline: one request in, a stored render or a job in progress out."""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from django.conf import settings
from django.core.files.storage import default_storage

from core.errors import ServiceError, ServiceUnavailableError
from core.metrics import ORIGIN_ERRORS
from core.storage import storage_put
from cutouts.models import BgRemoveJob
from cutouts.selectors import job_find
from cutouts.services import bg_remove_job_ensure, bg_remove_job_raise_failure
from imaging.decode import (
    Animation,
    image_alpha_possible,
    image_animation,
    image_decode,
    image_frames,
    image_geometry,
    image_orientation,
    image_sniff,
    image_transparency,
)
from rendering.budget import RenderBusyError, animation_budget_check, render_budget_check, render_slot
from rendering.encode import (
    PALETTE,
    format_default,
    format_negotiate,
    format_resolve,
    frame_prepare,
    frames_encode,
    image_encode,
    image_has_alpha,
)
from rendering.gate import Door, Entry, MarkPass, Pass, render_gate
from rendering.models import Render
from rendering.operations.animation import ANIMATED_KINDS, animation_durations, animation_output, animation_plan
from rendering.operations.blend import STAGE as blend_stage
from rendering.operations.delivery import client_hints_apply
from rendering.operations.faces import faces_json
from rendering.operations.output import png_plain
from rendering.operations.palette import palette_document
from rendering.operations.trim import STAGE as TRIM
from rendering.operations.trim import trim_box
from rendering.params import MAX_DIMENSION, RenderParams
from rendering.stage import StageContext
from rendering.stages import EARLY_STAGES, stages_apply, stages_decode_size, stages_size
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
    # The client hint headers the request sends (delivery.hints_from_environ): read when the URL
    # names them (`ch`).
    hints: Mapping[str, str] = field(default_factory=dict)

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
    return render_serve(gate=render_gate(entry), accept=req.accept, hints=req.hints)


def render_serve(*, gate: Pass, accept: str, hints: Mapping[str, str] | None = None) -> RenderOutcome:
    """The render of an entry that passed the gate (gate.py), from cache or made now, with the
    client hints its URL names (`ch`) applied: the cache key holds the sizes they set."""
    if gate.params.ch:
        gate = replace(gate, params=client_hints_apply(gate.params, hints or {}))
    outcome = _serve(gate=gate, accept=accept)
    return replace(outcome, expires=gate.expires, admits=gate.admits)


def _serve(*, gate: Pass, accept: str) -> RenderOutcome:
    """The render of an entry that passed the gate; the images drawn on it (its mark, an image as
    its blend), when they are rendering URLs themselves (at any depth), rendered first by
    `_nested_render`'s loop."""
    return _render(gate=gate, accept=accept, nested_for=lambda: _nested_render(gate))


def _render(*, gate: Pass, accept: str, nested_for: Callable[[], dict]) -> RenderOutcome:
    """The whole order of one render on one screen, after the gate's checks. Each step answers
    or hands on; the fallbacks are renders under keys of their own."""
    source, path, params = gate.source, gate.path, gate.params
    fmt = format_negotiate(params, accept)
    key = _render_key(source, path, params, fmt)

    # 1. Lookup: a finished render is one indexed lookup away, with no image work at all.
    render = render_get(key=key)
    if render is not None:
        return RenderOutcome(source=source, params=params, render=render, hit=True)

    # 2. The source image: the cutout once its job is done (until then a 202 or the fallback), or
    # the origin.
    origin = _source_resolve(source, path, params, fmt, key)
    if origin.answer is not None:
        return origin.answer

    # 3. The images drawn on it (mark; an image as the blend or the mask), before the render slot
    # (one that is a rendering URL takes its own).
    nested = {}
    if gate.nested and fmt != "json":
        nested = nested_for()
        origin = replace(origin, queue=origin.queue + sum((image.queue for image in nested.values()), ()))
        waiting = next((image.waiting for image in nested.values() if image.waiting is not None), None)
        if waiting is not None:
            return RenderOutcome(source=source, params=params, job=waiting.job, queue=origin.queue)
        fallback = next((image.fallback for image in nested.values() if image.fallback is not None), None)
        if fallback is not None:
            origin = replace(origin, fallback=True, job=fallback.job, reason=fallback.failure_reason,
                             key=_render_key(source, path, origin.params, fmt, variant="mark-fallback"))
            render = render_get(key=origin.key)
            if render is not None:
                return origin.outcome(render, hit=True)
    inputs = frozenset().union(*(image.inputs for image in nested.values()))

    # 4–7. In a render slot (cached hits never wait for one).
    with render_slot():
        # 4. Decode: the origin at the smallest scale the output needs (JPEG draft), or the cutout;
        # an animated origin whose render animates, as its frames (`_Frames`), decoded in step 5.
        image, kind, size = _source_decode(origin, fmt)
        if fmt == "json":
            body = json.dumps(_metadata(image, kind=kind, size=size, faces=origin.params.faces)).encode()
            return origin.outcome(render_store(key=origin.key, source=source, path=path, data=body,
                                               content_type="application/json", cutout_by=origin.cutout_by))
        drawn = {name: _mark_decode(nested.get(name)) for name in ("mark", "blend", "mask")}
        # 5. Stages (rendering/stages.py), under the output budget, then 6. encode; an animation
        # runs the stages on each frame as it is decoded.
        if isinstance(image, _Frames):
            data, content_type, capped = _frames_run(image, origin, fmt=fmt, accept=accept, **drawn)
        else:
            image, budget, default = _stages_run(image, origin, kind=kind, fmt=fmt, accept=accept, **drawn)
            if fmt == PALETTE:
                # The rendered image's colours in place of the image (palette=css|json).
                body, content_type = palette_document(image, origin.params)
                return origin.outcome(render_store(key=origin.key, source=source, path=path, data=body,
                                                   content_type=content_type, inputs=inputs,
                                                   cutout_by=origin.cutout_by))
            data, content_type = image_encode(
                image, format_resolve(budget.fmt, params=origin.params, has_alpha=image_has_alpha(image),
                                      default=default),
                origin.params)
            capped = budget.capped
        # 7. Store.
        render = render_store(key=origin.key, source=source, path=path, data=data, content_type=content_type,
                              inputs=inputs, capped=capped, cutout_by=origin.cutout_by)
    return origin.outcome(render)


@dataclass(frozen=True)
class _Source:
    """Where a render's pixels come from, once step 2 has decided: the parameters the stages run
    with (without bg-remove for its fallback), the key the render is stored under, and the job."""

    source: Source
    path: str
    request_params: RenderParams
    params: RenderParams
    key: str
    job: BgRemoveJob | None = None
    queue: tuple = ()
    fallback: bool = False
    reason: str = ""
    # An origin transparent enough to be its own cutout: (image, kind, size), decoded.
    as_is: tuple | None = None
    cutout: bytes | None = None  # The cutout's PNG bytes.
    # What made the cutout drawn from: "<model>/<refinement>" of its job, or "origin" (Render.cutout_by).
    cutout_by: str = ""
    # The step's own answer, when it ends the render (a 202, a fallback's or the cutout's render).
    answer: RenderOutcome | None = None

    def outcome(self, render: Render, *, hit: bool = False) -> RenderOutcome:
        return RenderOutcome(source=self.source, params=self.request_params, render=render, job=self.job,
                             queue=self.queue, fallback=self.fallback, hit=hit, failure_reason=self.reason)


def _source_resolve(source: Source, path: str, params: RenderParams, fmt: str, key: str) -> _Source:
    """Step 2. With bg-remove: the cutout once its job is done; until then a 202, or (imgix's
    bg-remove-fallback) the image without removal, under that render's own key. An origin that
    is transparent enough already (bg-remove-transparency-threshold) is its own cutout, and no
    job is made for it. Without bg-remove: the origin, fetched in step 4."""
    plain = _Source(source=source, path=path, request_params=params, params=params, key=key)
    if not params.bg_remove:
        return plain
    identity = {"source": source, "path": path, "model": _model(source, params),
                "refinement": source.bg_remove_refinement}
    found = job_find(**identity)
    if found is None:
        as_is = _transparent_origin(source, path, params)
        if as_is is not None:
            return replace(plain, as_is=as_is, cutout_by="origin")
    # A finished job is the common case: its row, read once, is all a render needs.
    done = found is not None and found.status == BgRemoveJob.Status.DONE
    job, needs_queue = (found, False) if done else bg_remove_job_ensure(**identity)
    queue = (job,) if needs_queue else ()
    if job.status != BgRemoveJob.Status.DONE:
        if not params.bg_remove_fallback:
            if job.status == BgRemoveJob.Status.FAILED:
                bg_remove_job_raise_failure(job)
            return replace(plain, job=job, queue=queue,
                           answer=RenderOutcome(source=source, params=params, job=job, queue=queue))
        reason = job.error_message if job.status == BgRemoveJob.Status.FAILED else PROCESSING
        without = replace(params, bg_remove=False)
        fallback = replace(plain, params=without, key=_render_key(source, path, without, fmt), job=job, queue=queue,
                           fallback=True, reason=reason)
        render = render_get(key=fallback.key)
        return replace(fallback, answer=fallback.outcome(render, hit=True)) if render is not None else fallback
    cutout = _Source(source=source, path=path, request_params=params, params=params, key=key, job=job,
                     cutout=_storage_read(job.cutout_name), cutout_by=f"{job.model}/{job.refinement}")
    small_enough = max(job.width or 0, job.height or 0) <= MAX_DIMENSION
    if (format_resolve(fmt, params=params, has_alpha=True, default="png") == "png"
            and not params.has_operations and params.q is None and png_plain(params) and small_enough):
        # The stored cutout is already the answer: the render points at it, no copy.
        render = render_store(key=key, source=source, path=path, data=cutout.cutout, content_type="image/png",
                              storage_name=job.cutout_name, cutout_by=cutout.cutout_by)
        return replace(cutout, answer=RenderOutcome(source=source, params=params, render=render, job=job))
    return cutout


def _source_decode(origin: _Source, fmt: str):
    """Step 4: (image, kind, size in bytes) of the source image; the image is `_Frames` for an
    animated origin whose render animates."""
    if origin.as_is is not None:
        return origin.as_is
    if origin.cutout is not None:
        return image_decode(origin.cutout), "png", len(origin.cutout)
    obj = _origin_fetch(origin.source, origin.path)
    kind = image_sniff(obj.data)
    if kind in ANIMATED_KINDS and fmt != "json":
        frames = _animation_decode(obj.data, origin.params, fmt, kind)
        if frames is not None:
            return frames, kind, len(obj.data)
    return image_decode(obj.data, at_least=_decode_size(origin.params, fmt)), kind, len(obj.data)


@dataclass(frozen=True)
class _Frames:
    """An animated origin on its way to an animated render: decoded frame by frame in step 5."""

    data: bytes
    kind: str
    animation: Animation
    indices: list  # The frames served (0-based), in the order served.


def _animation_decode(data: bytes, params: RenderParams, fmt: str, kind: str):
    """An animated GIF or WebP: its frames to render (`_Frames`) when the output animates, the
    one frame asked for (`frame=N`, or where a range starts when the output cannot animate) as
    a still, or None for the still path's first frame (a still origin, or no frame asked for).
    The frame count and the decoding's cost are checked from the file's structure first."""
    animated = animation_output(params, fmt, kind)
    if not animated and params.frame is None:
        return None  # The first frame, as any still output of an animation: nothing to count.
    animation = image_animation(data, max_frames=settings.RENDER_MAX_FRAMES)
    if animation is None:
        return None
    indices = animation_plan(animation.frames, params, animated=animated)
    if not animated and indices == [0]:
        return None  # frame=1 as a still: the still path's first frame.
    animation_budget_check(decoded=max(indices) + 1, canvas=animation.extent)
    if animated and len(indices) > 1:
        return _Frames(data=data, kind=kind, animation=animation, indices=indices)
    still = None
    for still, _ in image_frames(data, count=indices[0] + 1, alpha=animation.alpha):
        pass  # Each frame is drawn over the ones before it: all are decoded, one held at a time.
    return still


def _frames_run(frames: _Frames, origin: _Source, *, fmt: str, accept: str, mark, blend=None,
                mask=None) -> tuple[bytes, str, str]:
    """Steps 5 and 6 for an animation: each frame decoded in turn, cropped to the box trim finds
    on the first one served (so every frame has one size), the budget checked on that first one
    (the output's size, then every frame's pixels together), every other stage run on each
    frame, each palettised for GIF as it comes; then the frames in the order served, encoded."""
    params, animation = origin.params, frames.animation
    served = set(frames.indices)
    prepared, durations = {}, {}
    box = context = final = capped = None
    for index, (frame, duration) in enumerate(image_frames(frames.data, count=max(served) + 1, alpha=animation.alpha)):
        if index not in served:
            continue
        if context is None:
            box, context, final, capped = _frames_budget(frame, frames, params, fmt=fmt, accept=accept, mark=mark,
                                                         blend=blend, mask=mask)
        if box is not None:
            frame = frame.crop(box)
        prepared[index] = frame_prepare(stages_apply(frame, params, context), final)
        durations[index] = duration
    order = frames.indices
    data, content_type = frames_encode([prepared[i] for i in order], final, params,
                                       durations=animation_durations([durations[i] for i in order], params),
                                       loop=params.loop)
    return data, content_type, capped


def _frames_budget(first, frames: _Frames, params: RenderParams, *, fmt: str, accept: str, mark, blend=None,
                   mask=None):
    """On an animation's first frame served: the box trim crops every frame to (None: no trim),
    the stages' context, the output format, after the output budget (as a still's) and the
    animation's (every frame's pixels together) have passed."""
    animation = frames.animation
    box = trim_box(first, params) if TRIM.active(params) else None
    size = first.size if box is None else (box[2] - box[0], box[3] - box[1])
    orientation = image_orientation(first)
    default = format_default(frames.kind, cutout=False)
    budget = render_budget_check(size=size, params=params, requested=fmt, default=default, accept=accept,
                                 has_alpha=_may_have_alpha(first, params),
                                 mark_size=mark.size if mark is not None else None, orientation=orientation)
    context = StageContext(mark=mark, blend=blend, mask=mask, max_pixels=budget.max_pixels, orientation=orientation,
                           memo={})
    final = format_resolve(budget.fmt, params=params, has_alpha=animation.alpha, default=default)
    out = stages_size(size, params, context)
    animation_budget_check(decoded=max(frames.indices) + 1, canvas=animation.extent, frames=len(frames.indices),
                           out=out, fmt=final)
    if blend is not None:
        blend_stage.check(out, blend.size, params)
    return box, context, final, budget.capped


def _stages_run(image, origin: _Source, *, kind: str, fmt: str, accept: str, mark, blend=None, mask=None):
    """Step 5: the stages whose size depends on pixels (trim), the output budget (budget.py: what
    the output may cost, checked before any further work on pixels), then the other stages."""
    params, cutout = origin.params, origin.params.bg_remove
    orientation = image_orientation(image)
    image = stages_apply(image, params, StageContext(orientation=orientation), EARLY_STAGES)
    default = format_default(kind, cutout=cutout)
    budget = render_budget_check(size=image_geometry(image).size, params=params, requested=fmt, default=default,
                                 accept=accept, has_alpha=_may_have_alpha(image, params),
                                 mark_size=mark.size if mark is not None else None, orientation=orientation)
    if blend is not None:
        blend_stage.check(stages_size(image_geometry(image).size, params, StageContext(orientation=orientation)),
                          blend.size, params)
    image = stages_apply(image, params, StageContext(mark=mark, blend=blend, mask=mask, max_pixels=budget.max_pixels,
                                                     orientation=orientation))
    return image, budget, default


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


def _may_have_alpha(image, params: RenderParams) -> bool:
    """Whether the render may come out with transparency (for auto=compress's choice of encoder
    before the work): an opaque bg removes it, a transparent fill or pad adds it."""
    if params.bg and params.bg[3] == 255:
        return False
    return image_has_alpha(image) or params.fit in ("fill", "fillmax") or any(params.pad)


def _decode_size(params: RenderParams, fmt: str) -> tuple[int, int] | None:
    """The smallest decoded size the render needs, when it is known before decoding."""
    return None if fmt == "json" else stages_decode_size(params)


def _origin_fetch(source: Source, path: str):
    try:
        return origin_for(source).fetch(path, max_bytes=settings.ORIGIN_MAX_BYTES)
    except OriginError as exc:
        ORIGIN_ERRORS.labels(kind=exc.code).inc()
        raise


def _metadata(image, *, kind, size, faces=False) -> dict:
    metadata = {
        "Content-Type": f"image/{kind}" if kind else "application/octet-stream",
        "Content-Length": size,
        "PixelWidth": image.width,
        "PixelHeight": image.height,
        "ColorModel": "RGB" if image.mode in ("RGB", "RGBA", "P") else "Gray",
        "HasAlpha": "A" in image.getbands(),
    }
    if faces:
        metadata["Faces"] = faces_json(image)  # imgix's faces=1.
    return metadata


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


def _nested_render(gate: Pass) -> dict[str, "_Mark"]:
    """The images drawn on `gate`'s render, by the parameter naming them (`mark`, `blend`). One
    that is a rendering URL is rendered here, with its own parameters, entitlement, model and
    cache (it passed the gate with the request), and so on down: the tree of nested renders is
    walked with a stack, each render made after the images drawn on it (a file or an image on the
    web fetched, a rendering URL rendered). While a nested cutout is made, the composite answers as
    that render does (202) or with its fallback, under a key of its own."""
    order, stack = [], [(gate, False)]
    while stack:
        node, below_done = stack.pop()
        if below_done:
            order.append(node)  # After every render it draws on.
            continue
        stack.append((node, True))
        stack.extend((image.render, False) for _, image in node.nested if image.render is not None)
    made: dict[int, dict] = {}
    for node in order:
        made[id(node)] = {
            name: _mark_fetch(node.source, image) if image.render is None else _mark_of(
                image, _render(gate=image.render, accept="", nested_for=lambda below=made[id(image.render)]: below))
            for name, image in node.nested
        }
    return made[id(gate)]


def _mark_of(mark: MarkPass, inner: RenderOutcome) -> _Mark:
    """A rendering URL's render as the mark of the render above it."""
    if inner.render is None:
        return _Mark(queue=inner.queue, waiting=inner)
    inputs = frozenset({(mark.render.source.id, mark.ref.path), *render_inputs(inner.render)})
    return _Mark(data=_storage_read(inner.render.storage_name), inputs=inputs, queue=inner.queue,
                 fallback=inner if inner.fallback else None)


def _mark_fetch(source: Source, mark: MarkPass) -> _Mark:
    """A mark that is a file of the source or an image on the web: fetched under the origin rules
    (network safety, size cap, deadline) in a render slot, as an origin is, and kept in storage
    under the source, so purging the source (or the mark's own path) removes it."""
    ref = mark.ref
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


def _mark_decode(mark: "_Mark | None"):
    """The mark's (or blend's) image; fetched bytes are kept once they decode (a file that is
    not an image never is)."""
    if mark is None or not mark.data:
        return None
    image = image_decode(mark.data)
    if mark.store_as:
        with storage_errors():
            storage_put(mark.store_as, mark.data)  # Whole or not at all: a kept mark is complete.
    return image


def _storage_read(name: str) -> bytes:
    try:
        with storage_errors(), default_storage.open(name, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ServiceUnavailableError("A stored image is missing; purge the image to recompute it.") from None
