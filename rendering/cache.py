"""The render cache: finished images in object storage, indexed by what their URL means."""

import hashlib
import io
import logging
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import IntegrityError, transaction

from config.exceptions import ServiceUnavailableError
from config.local_cache import ExpiringCache

from .models import Render

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
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(str(exc)) from exc  # S3's way of saying the object is gone.
        logger.warning("object storage failed: %s: %s", type(exc).__name__, exc)
        raise StorageUnavailableError() from exc

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif",
              "image/gif": "gif", "application/json": "json"}


def render_key(*, source_id: int, path: str, model: str, canonical: str, fmt: str) -> str:
    raw = "\x1f".join([str(source_id), path, model, canonical, fmt])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


# key → render: a web process answers repeated hits without a query. A purge in
# another process shows within RENDER_LOOKUP_CACHE_SECONDS; until then a purged object's absence
# is noticed when it is opened, and the image is rendered again (views.py).
_renders = ExpiringCache(max_entries=50_000)


def render_get(*, key: str) -> Render | None:
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    render = _renders.get(key, None) if ttl > 0 else None
    if render is not None:
        return render
    found = list(Render.objects.filter(key=key)[:1])  # No ORDER BY, unlike first().
    render = found[0] if found else None
    if render is not None:  # Misses are not kept: the render is usually made right after.
        _renders.set(key, render, ttl)
    return render


def render_store(*, key: str, source, path: str, data: bytes, content_type: str, storage_name: str = "") -> Render:
    """Writes the bytes (unless already stored under `storage_name`) and records the render.

    Concurrent writers of one key each write their own file; the loser of the row insert
    removes its file, so a reader never sees a file being overwritten.
    """
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    own_file = not storage_name
    if own_file:
        ext = EXTENSIONS.get(content_type, "bin")
        with storage_errors():
            storage_name = default_storage.save(
                f"renders/{source.id}/{key[:2]}/{key}-{uuid.uuid4().hex[:8]}.{ext}", ContentFile(data)
            )
    try:
        with transaction.atomic():
            return Render.objects.create(
                key=key, source=source, path=path, storage_name=storage_name,
                content_type=content_type, size=len(data), etag=etag,
            )
    except IntegrityError:
        if own_file:
            default_storage.delete(storage_name)
        return Render.objects.get(key=key)


# Renders up to this size are read whole and sent from memory; larger ones are streamed.
SMALL_RENDER_BYTES = 256 * 1024
# (storage name, etag) → bytes of small renders, for as long as their lookups are kept: a hit
# repeated within that time reads neither a file nor S3. Bounded by RENDER_MEMORY_CACHE_BYTES.
_bodies = ExpiringCache(max_entries=50_000, max_weight=0)


def render_read(render: Render) -> bytes:
    """A small render's stored bytes."""
    ident = (render.storage_name, render.etag)
    data = _bodies.get(ident, None)
    if data is not None:
        return data
    with storage_errors(), default_storage.open(render.storage_name, "rb") as fh:
        data = fh.read()
    budget = settings.RENDER_MEMORY_CACHE_BYTES
    if budget > 0:
        _bodies.max_weight = budget
        _bodies.set(ident, data, settings.RENDER_LOOKUP_CACHE_SECONDS, weight=len(data))
    return data


def render_open(render: Render):
    """The stored bytes, ready to send. A remote store is read whole first, so an outage is a
    clean 503 rather than a response that breaks off; local files are streamed."""
    with storage_errors():
        fh = default_storage.open(render.storage_name, "rb")
        if isinstance(default_storage, FileSystemStorage):
            return fh
        with fh:
            return io.BytesIO(fh.read())


def render_forget(render: Render) -> None:
    """Drops a render whose stored object is gone, so the next request makes it again."""
    _renders.pop(render.key)
    _bodies.pop((render.storage_name, render.etag))
    Render.objects.filter(pk=render.pk).delete()


def render_lookup_cache_clear() -> None:
    _renders.clear()
    _bodies.clear()
