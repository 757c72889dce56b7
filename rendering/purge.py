"""Purging: removes cached cutouts and renders from storage, so the next request recomputes."""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings

from core.errors import BadRequestError, NotFoundError
from sources.models import Source
from sources.origins import path_clean

from .cache import (
    mark_folder, mark_name, render_lookup_cache_clear, storage_objects_delete, storage_objects_release, storage_tree,
)
from .models import BgRemoveJob, Render


@dataclass(frozen=True)
class PurgeResult:
    renders: int
    cutouts: int
    files: int


def render_url_parse(*, url: str) -> tuple[str, str]:
    """(source slug, path) of a rendering URL on either form; the query is ignored."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError("url must be an absolute http(s) rendering URL.", code="bad_url")
    path = unquote(parts.path)
    domain = settings.RENDER_DOMAIN
    if domain and parts.hostname.endswith("." + domain):
        return parts.hostname[: -len(domain) - 1], path_clean(path.lstrip("/"))
    if path.startswith("/render/"):
        slug, _, rest = path[len("/render/"):].partition("/")
        return slug, path_clean(rest)
    raise BadRequestError("url is not a rendering URL (/render/{source}/{path} or {source}.RENDER_DOMAIN).",
                          code="bad_url")


def render_purge(*, source: Source, path: str | None = None) -> PurgeResult:
    """Everything cached for one image (all its derived renders and cutouts, and the stored mark
    when the image is a watermark of its source), or for a whole source (its marks included).

    Idempotent: purging again finds nothing and removes nothing.
    """
    renders = Render.objects.filter(source=source)
    jobs = BgRemoveJob.objects.filter(source=source)
    if path is not None:
        renders, jobs = renders.filter(path=path), jobs.filter(path=path)
    names = set(renders.values_list("storage_name", flat=True)) | {
        name for name in jobs.values_list("cutout_name", flat=True) if name
    }
    render_count, _ = renders.delete()
    render_lookup_cache_clear()
    job_count, _ = jobs.delete()
    removed = storage_objects_release(names)
    marks = [mark_name(source_id=source.id, mark=path)] if path is not None else storage_tree(mark_folder(source.id))
    removed += storage_objects_delete(marks)
    return PurgeResult(renders=render_count, cutouts=job_count, files=removed)


def source_for_account(*, account, slug: str) -> Source:
    source = Source.objects.select_related("account").filter(account=account, slug=slug).first()
    if source is None:
        raise NotFoundError("No such source.")
    return source
