"""The rendering pipeline: one request in, a stored render or a job in progress out."""

from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage

from config.exceptions import ForbiddenError, NotFoundError, ServiceUnavailableError
from sources.models import Source
from sources.origins import origin_for, path_clean
from sources.selectors import source_bg_remove_enabled, source_bg_remove_model, source_get

from . import jobs
from .cache import render_get, render_key, render_store
from .encode import format_default, format_negotiate, image_encode
from .images import image_decode, image_sniff
from .models import BgRemoveJob, Render
from .params import RenderParams, params_parse


class SourceNotFoundError(NotFoundError):
    code = "source_not_found"
    default_message = "No such source."


class BgRemoveNotEnabledError(ForbiddenError):
    code = "bg_remove_not_enabled"
    default_message = (
        "Background removal is not enabled for this source; ask your account manager to enable it."
    )


@dataclass(frozen=True)
class RenderOutcome:
    """Either a finished render to send, or the job a client should wait for."""

    source: Source
    params: RenderParams
    render: Render | None = None
    job: BgRemoveJob | None = None


def render_request(*, source_slug: str, path: str, raw_query: str, accept: str) -> RenderOutcome:
    source = source_get(slug=source_slug)
    if source is None:
        raise SourceNotFoundError()
    path = path_clean(path)
    params = params_parse(raw_query)
    model = ""
    if params.bg_remove:
        if not source_bg_remove_enabled(source=source):
            raise BgRemoveNotEnabledError()
        model = source_bg_remove_model(source=source, requested=params.bg_remove_model)

    fmt = format_negotiate(params, accept)
    key = render_key(source_id=source.id, path=path, model=model, canonical=params.canonical(), fmt=fmt)
    # The hot path: a finished render is one indexed lookup away, with no image work at all.
    render = render_get(key=key)
    if render is not None:
        return RenderOutcome(source=source, params=params, render=render)

    if params.bg_remove:
        job = jobs.bg_remove_job_ensure(source=source, path=path, model=model)
        if job.status == BgRemoveJob.Status.FAILED:
            jobs.bg_remove_job_raise_failure(job)
        if job.status != BgRemoveJob.Status.DONE:
            return RenderOutcome(source=source, params=params, job=job)
        render = _render_cutout(job=job, params=params, fmt=fmt, key=key)
    else:
        render = _render_origin(source=source, path=path, params=params, fmt=fmt, key=key)
    return RenderOutcome(source=source, params=params, render=render)


def _render_cutout(*, job: BgRemoveJob, params: RenderParams, fmt: str, key: str) -> Render:
    fmt = fmt or format_default(None, cutout=True)
    data = _storage_read(job.cutout_name)
    if fmt == "png":
        # The stored cutout is already the answer: the render points at it, no copy.
        return render_store(key=key, source=job.source, path=job.path, data=data,
                            content_type="image/png", storage_name=job.cutout_name)
    return _encode_and_store(image=image_decode(data), source=job.source, path=job.path,
                             params=params, fmt=fmt, key=key)


def _render_origin(*, source: Source, path: str, params: RenderParams, fmt: str, key: str) -> Render:
    obj = origin_for(source).fetch(path, max_bytes=settings.ORIGIN_MAX_BYTES)
    image = image_decode(obj.data)
    fmt = fmt or format_default(image_sniff(obj.data), cutout=False)
    return _encode_and_store(image=image, source=source, path=path, params=params, fmt=fmt, key=key)


def _encode_and_store(*, image, source, path, params, fmt, key) -> Render:
    image = render_pipeline(image, params)
    data, content_type = image_encode(image, fmt, params)
    return render_store(key=key, source=source, path=path, data=data, content_type=content_type)


def render_pipeline(image, params: RenderParams):
    """The order of operations after decode and background removal (SPEC, one place):
    rect → fit/crop/resize → fill → bg → mark. Encoding follows in `image_encode`.
    """
    return image


def _storage_read(name: str) -> bytes:
    try:
        with default_storage.open(name, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ServiceUnavailableError("A stored cutout is missing; purge the image to recompute it.") from None
