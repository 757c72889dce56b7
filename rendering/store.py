"""The render store: finished images in object storage, indexed by what their URL means, with
eviction and purge."""

import functools
import hashlib
import io
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from core.errors import ServiceUnavailableError
from core.generation import generation_bump
from core.local_cache import ExpiringCache
from core.sql import CompiledLookup
from core.storage import storage_holds, storage_missing, storage_put
from cutouts.models import BgRemoveJob
from rendering.hot import hot_clear
from rendering.models import Render, RenderInput
from rendering.node_cache import (
    node_cache_enabled,
    node_cache_index,
    node_cache_keep,
    node_cache_read,
    node_cache_render,
)
from sources.models import Source, Upload
from sources.origins.uploads import upload_folder, upload_name

logger = logging.getLogger(__name__)


class StorageUnavailableError(ServiceUnavailableError):
    code = "storage_unavailable"
    default_message = "Object storage is unavailable; try again shortly."


@contextmanager
def storage_errors():
    """Storage backends raise their own types; all but a missing file mean "try again later"."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as exc:
        if storage_missing(exc):
            raise FileNotFoundError(str(exc)) from exc  # S3's way of saying the object is gone.
        logger.warning("object storage failed: %s: %s", type(exc).__name__, exc)
        raise StorageUnavailableError() from exc

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif",
              "image/gif": "gif", "application/json": "json",
              "text/css": "css"}


def render_key(*, source_id: int, path: str, model: str, canonical: str, fmt: str) -> str:
    return _render_key(source_id, path, model, canonical, fmt)


# Hits repeat keys: hashing ~600 characters each time cost 3 % of one. 1024 entries: a canonical
# form may carry a mark URL of thousands of characters, so this stays within about 10 MB.
@functools.lru_cache(maxsize=1024)
def _render_key(source_id: int, path: str, model: str, canonical: str, fmt: str) -> str:
    raw = "\x1f".join([str(source_id), path, model, canonical, fmt])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


# key → render: a web process answers repeated hits without a query. A purge in any process
# ends it before this process's next request (the cache generation, core/generation.py); an
# object lost otherwise is noticed when it is opened, and the image is rendered again (views.py).
_renders = ExpiringCache(max_entries=50_000)


# The lookup every render that is not in this process's cache makes: its SQL built once.
_render_by_key = CompiledLookup(lambda key: Render.objects.filter(key=key)[:1])  # [:1]: no ORDER BY.


def render_get(*, key: str) -> Render | None:
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    render = _renders.get(key, None) if ttl > 0 else None
    if render is not None:
        return render
    try:
        render = _render_by_key.get(key)
    except (OperationalError, InterfaceError):
        # The database is down: the render as this machine last read it, when nothing was purged
        # or changed since (rendering/node_cache.py), else the error (503).
        render = _render_kept(key)
        if render is None:
            raise
        return render
    if render is not None:  # Misses are not kept: the render is usually made right after.
        _render_touch(render)
        _renders.set(key, render, ttl)
        _render_index(render)
    return render


_ROW_FIELDS = ("id", "source_id", "path", "storage_name", "content_type", "size", "etag", "capped", "cutout_by")
_ROW_FIELDS_LATER = ("capped", "cutout_by")  # Not in rows kept before renders said so.


def _render_index(render: Render) -> None:
    if node_cache_enabled():
        row = {name: getattr(render, name) for name in _ROW_FIELDS}
        row.update(created_at=render.created_at.isoformat(), last_used_at=render.last_used_at.isoformat())
        node_cache_index(key=render.key, row=row)


def _render_kept(key: str) -> Render | None:
    row = node_cache_render(key=key) if node_cache_enabled() else None
    if row is None:
        return None
    try:
        fields = {name: row[name] for name in _ROW_FIELDS if name not in _ROW_FIELDS_LATER}
        fields.update((name, row.get(name, "")) for name in _ROW_FIELDS_LATER)
        fields.update(created_at=datetime.fromisoformat(row["created_at"]),
                      last_used_at=datetime.fromisoformat(row["last_used_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    logger.info("database unavailable: render %s served as this machine kept it", key)
    return Render(key=key, **fields)


def render_inputs(render: Render) -> set[tuple[int, str]]:
    """The other images `render` was made from (see render_store)."""
    return set(RenderInput.objects.filter(render=render).values_list("source_id", "path"))


def _render_touch(render: Render) -> None:
    """Marks the render used now, at most once per RENDER_LAST_USED_SECONDS: a hit answered from
    the lookup cache writes nothing, and a refill writes only when the mark has grown old."""
    now = timezone.now()
    if render.last_used_at <= now - timedelta(seconds=settings.RENDER_LAST_USED_SECONDS):
        Render.objects.filter(pk=render.pk).update(last_used_at=now)
        render.last_used_at = now


def render_store(*, key: str, source, path: str, data: bytes, content_type: str, storage_name: str = "",
                 inputs: Iterable[tuple[int, str]] = (), capped: str = "", cutout_by: str = "") -> Render:
    """Writes the bytes (unless already stored under `storage_name`) and records the render, with
    the other images it was made from (`inputs`: (source id, path) of its marks), so a purge of
    any of them purges it too.

    Objects are named by their content under the source: bytes equal to another render's of the
    source are not written again (the new render points at that object), without a query to
    find it. Writers of one key race on the row insert; the loser releases its object, which
    is deleted only if no render refers to it, so the winner's (often the same name) stays.
    """
    digest = hashlib.sha256(data).hexdigest()
    etag = f'"{digest[:32]}"'
    own_file = not storage_name
    if own_file:
        name = f"{render_folder(source.id)}/{digest[:2]}/{digest[:40]}.{EXTENSIONS.get(content_type, 'bin')}"
        with storage_errors():
            storage_name, own_file = _object_put(name, data)
    inputs = sorted(set(inputs))
    try:
        # One INSERT in autocommit needs no transaction of its own; with input rows, all or none,
        # and inside a caller's transaction a savepoint, so a lost race leaves that usable.
        with transaction.atomic() if inputs or transaction.get_connection().in_atomic_block else nullcontext():
            render = Render.objects.create(
                key=key, source=source, path=path, storage_name=storage_name,
                content_type=content_type, size=len(data), etag=etag, capped=capped, cutout_by=cutout_by,
            )
            if inputs:
                RenderInput.objects.bulk_create(
                    [RenderInput(render=render, source_id=source_id, path=input_path) for source_id, input_path in inputs])
    except IntegrityError:
        if own_file:
            storage_objects_release({storage_name})
        return Render.objects.get(key=key)
    # The request that made it sends it next, and repeats find it without a query.
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    if ttl > 0:
        _renders.set(key, render, ttl)
        _body_keep(render, data)
    if node_cache_enabled():
        node_cache_keep(etag=etag, data=data)  # The next hit on this machine reads no store.
        _render_index(render)
    _ceiling_check(account_id=source.account_id, size=len(data))
    return render


# --- The per-account ceiling ---------------------------------------------------------------------

# account id → [renders, bytes, when counted]: this process's estimate of an account's stored
# renders, so a new render costs a count over the account's rows only when the estimate nears a
# ceiling or is older than this (other processes' renders are seen then).
_TOTALS_RECOUNT_SECONDS = 60
EVICT_BATCH = 100  # Renders evicted by one call at most.
_totals: dict[int, list] = {}


def _ceiling_check(*, account_id: int, size: int) -> None:
    max_count, max_bytes = settings.RENDER_MAX_STORED_PER_ACCOUNT, settings.RENDER_MAX_STORED_BYTES_PER_ACCOUNT
    if not max_count and not max_bytes:
        return
    totals = _totals.get(account_id)
    if totals is not None and time.monotonic() - totals[2] < _TOTALS_RECOUNT_SECONDS:
        totals[0] += 1
        totals[1] += size
        if (not max_count or totals[0] <= max_count) and (not max_bytes or totals[1] <= max_bytes):
            return
    try:
        render_evict(account_id=account_id)
    except StorageUnavailableError:
        pass  # The render is stored and served; eviction is tried again with the next one.


def render_evict(*, account_id: int) -> int:
    """Evicts the account's least recently used renders while it is over a ceiling
    (RENDER_MAX_STORED_PER_ACCOUNT, RENDER_MAX_STORED_BYTES_PER_ACCOUNT), down to 1% below it
    so the next renders do not each evict one, at most EVICT_BATCH at a time. Objects still used
    elsewhere (another render, a job's cutout) stay. The number of renders evicted."""
    max_count, max_bytes = settings.RENDER_MAX_STORED_PER_ACCOUNT, settings.RENDER_MAX_STORED_BYTES_PER_ACCOUNT
    renders = Render.objects.filter(source__account_id=account_id)
    totals = renders.aggregate(count=Count("id"), bytes=Sum("size"))
    count, size = totals["count"], totals["bytes"] or 0
    drop_count = count - (max_count - max_count // 100) if max_count and count > max_count else 0
    drop_bytes = size - (max_bytes - max_bytes // 100) if max_bytes and size > max_bytes else 0
    chosen = []
    if drop_count > 0 or drop_bytes > 0:
        # At most one batch per call, so no single request pays for a long eviction: an account
        # still over its ceiling is recounted, and evicts again, on its next new render.
        for row in renders.order_by("last_used_at", "id").values_list("pk", "key", "storage_name", "etag",
                                                                      "size")[:EVICT_BATCH]:
            if drop_count <= 0 and drop_bytes <= 0:
                break
            chosen.append(row)
            drop_count, drop_bytes = drop_count - 1, drop_bytes - row[4]
    if chosen:
        Render.objects.filter(pk__in=[row[0] for row in chosen]).delete()
        for _, key, name, etag, _ in chosen:
            _renders.pop(key)
            _bodies.pop((name, etag))
        hot_clear()
        storage_objects_release({row[2] for row in chosen})
        count, size = count - len(chosen), size - sum(row[4] for row in chosen)
    evicted = len(chosen)
    _totals[account_id] = [count, size, time.monotonic()]
    if evicted:
        logger.info("evicted %d renders of account %s (now %d renders, %d bytes)", evicted, account_id, count, size)
    return evicted


# --- Deleting objects ----------------------------------------------------------------------------

def storage_objects_release(names: Iterable[str]) -> int:
    """Deletes those of `names` that no render and no job refers to any more (rows already gone).
    The number of objects deleted."""
    names = set(names)
    if not names:
        return 0
    used = set(Render.objects.filter(storage_name__in=names).values_list("storage_name", flat=True))
    used |= set(BgRemoveJob.objects.filter(cutout_name__in=names).values_list("cutout_name", flat=True))
    return storage_objects_delete(names - used)


def storage_objects_delete(names: Iterable[str]) -> int:
    removed = 0
    for name in names:
        with storage_errors():
            if default_storage.exists(name):
                default_storage.delete(name)
                removed += 1
    return removed


def storage_tree(prefix: str) -> Iterator[str]:
    """Every object name below `prefix` (a folder, no trailing slash), on any storage backend."""
    try:
        with storage_errors():
            folders, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{prefix}/{name}"
    for folder in folders:
        yield from storage_tree(f"{prefix}/{folder}")


def source_storage_prefixes(source_id: int) -> list[str]:
    """The folders holding a source's objects: renders, cutouts (named in cutouts/services.py),
    marks, and an uploads source's images."""
    return [render_folder(source_id), f"cutouts/{source_id}", mark_folder(source_id), upload_folder(source_id)]


def render_folder(source_id: int) -> str:
    return f"renders/{source_id}"


def mark_folder(source_id: int) -> str:
    return f"marks/{source_id}"


def mark_name(*, source_id: int, mark: str) -> str:
    """Where a source's watermark is kept: a path on the source (as fetched, e.g. `logo.png`) or
    an absolute URL; under the source, so purging or deleting the source removes it."""
    kind = "url" if "://" in mark else "path"
    return f"{mark_folder(source_id)}/{kind}-" + hashlib.sha256(mark.encode()).hexdigest()


# Renders up to this size are read whole and sent from memory; larger ones are streamed.
SMALL_RENDER_BYTES = 256 * 1024
# (storage name, etag) → bytes of small renders, for as long as their lookups are kept: a hit
# repeated within that time reads neither a file nor S3. Bounded by RENDER_MEMORY_CACHE_BYTES.
_bodies = ExpiringCache(max_entries=50_000, max_weight=0)


def render_read(render: Render) -> bytes:
    """A small render's stored bytes."""
    data = _bodies.get((render.storage_name, render.etag), None)
    if data is not None:
        return data
    data = _remote_read(render)
    _body_keep(render, data)
    return data


def _remote_read(render: Render) -> bytes:
    """The render's bytes from this machine's node cache (rendering/node_cache.py) when it holds
    them whole, else from the store (then kept there)."""
    kept = node_cache_enabled()
    data = node_cache_read(etag=render.etag, size=render.size) if kept else None
    if data is None:
        with storage_errors(), default_storage.open(render.storage_name, "rb") as fh:
            data = fh.read()
        if kept and len(data) == render.size:
            node_cache_keep(etag=render.etag, data=data)
    return data


def _body_keep(render: Render, data: bytes) -> None:
    budget = settings.RENDER_MEMORY_CACHE_BYTES
    if budget > 0 and len(data) <= SMALL_RENDER_BYTES:
        _bodies.max_weight = budget
        _bodies.set((render.storage_name, render.etag), data, settings.RENDER_LOOKUP_CACHE_SECONDS, weight=len(data))


def _object_put(name: str, data: bytes) -> tuple[str, bool]:
    """Stores `data` under its content name: (the name it is stored under, whether this wrote it).
    Written whole or not at all (core/storage.py), so a write that failed half-way (a full
    disk) leaves no short object for the next request to take. A store that overwrites (S3) is
    written to (the same bytes: no reader sees a change); a local folder's object is reused
    only when it holds these very bytes (size and digest), and replaced otherwise."""
    if not getattr(default_storage, "file_overwrite", False) and default_storage.exists(name):
        if storage_holds(name, data):
            return name, False
        logger.warning("stored object %s did not hold its content; written again", name)
    return storage_put(name, data), True


def render_open(render: Render):
    """The stored bytes, ready to send. A remote store is read whole first, so an outage is a
    clean 503 rather than a response that breaks off; local files are streamed."""
    if not isinstance(default_storage, FileSystemStorage):
        return io.BytesIO(_remote_read(render))
    with storage_errors():
        return default_storage.open(render.storage_name, "rb")


def render_forget(render: Render) -> None:
    """Drops a render whose stored object is gone, so the next request makes it again."""
    _renders.pop(render.key)
    _bodies.pop((render.storage_name, render.etag))
    hot_clear()
    Render.objects.filter(pk=render.pk).delete()


def render_lookup_cache_clear() -> None:
    _renders.clear()
    _bodies.clear()
    hot_clear()
    _totals.clear()


# --- Purge ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PurgeResult:
    renders: int
    cutouts: int
    files: int


def render_purge(*, source: Source, path: str | None = None) -> PurgeResult:
    """Everything cached for one image (all its derived renders and cutouts, the stored mark when
    the image is a watermark of its source, every render that drew it as a mark, and on an
    uploads source the uploaded image itself), or for a whole source (its marks included).

    Idempotent: purging again finds nothing and removes nothing.
    """
    # The images a render could be made from go first (a stored mark, an uploaded image), so a
    # request between two steps cannot make a new render from the old ones.
    removed = 0
    marks = [mark_name(source_id=source.id, mark=path)] if path is not None else storage_tree(mark_folder(source.id))
    removed += storage_objects_delete(marks)
    if source.kind == Source.Kind.UPLOADS:
        # An uploaded image goes with what was made from it (the remove.bg API uploads it again).
        uploads = Upload.objects.filter(source=source)
        uploads = uploads.filter(path=path) if path is not None else uploads
        uploads.delete()
        if path is not None:
            removed += storage_objects_delete([upload_name(source_id=source.id, path=path)])
        else:
            removed += storage_objects_delete(list(storage_tree(upload_folder(source.id))))
    renders = Render.objects.filter(source=source)
    users = Render.objects.filter(inputs__source=source)
    jobs = BgRemoveJob.objects.filter(source=source)
    if path is not None:
        renders, users, jobs = renders.filter(path=path), users.filter(inputs__path=path), jobs.filter(path=path)
    renders = Render.objects.filter(pk__in={*renders.values_list("pk", flat=True), *users.values_list("pk", flat=True)})
    names = set(renders.values_list("storage_name", flat=True)) | {
        name for name in jobs.values_list("cutout_name", flat=True) if name
    }
    render_count = renders.count()
    renders.delete()
    job_count, _ = jobs.delete()
    render_lookup_cache_clear()
    _purge_announce()
    removed += storage_objects_release(names)
    return PurgeResult(renders=render_count, cutouts=job_count, files=removed)


class PurgeNotAnnouncedError(ServiceUnavailableError):
    code = "purge_not_announced"
    default_message = ("The purge is done, but the web processes could not all be told (the cache is "
                       "unavailable); purge again.")


def _purge_announce() -> None:
    """Every web process learns of the purge before its next request (core/generation.py), so the
    purge answers only once none can serve what it removed."""
    try:
        generation_bump()
    except Exception as exc:  # The cache's client raises its own types.
        logger.warning("purge not announced, cache unavailable: %s", exc)
        raise PurgeNotAnnouncedError() from exc
