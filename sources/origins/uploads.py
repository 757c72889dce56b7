"""Uploads origin: images an account uploaded (the remove.bg API), kept in object storage."""

import logging

from django.core.files.storage import default_storage

from core.storage import storage_missing, storage_put
from sources.origins.base import (
    Origin,
    OriginError,
    OriginNotFoundError,
    OriginObject,
    OriginUnavailableError,
    read_capped,
)

logger = logging.getLogger(__name__)


def upload_folder(source_id: int) -> str:
    """Where an uploads source's images are stored; purging or deleting the source removes it."""
    return f"uploads/{source_id}"


def upload_name(*, source_id: int, path: str) -> str:
    return f"{upload_folder(source_id)}/{path}"


def upload_store(*, source_id: int, path: str, data: bytes) -> str:
    """Keeps an uploaded image under its name whole or not at all (core/storage.py): an upload
    that exists is complete, so a later call may take it as it is. The name stored under."""
    return storage_put(upload_name(source_id=source_id, path=path), data)


def upload_stored(*, source_id: int, path: str, size: int) -> bool:
    """Whether the upload is in storage at the size its row records (one stat, or one HEAD on
    S3): an upload row whose object is missing or of another size is stored again."""
    name = upload_name(source_id=source_id, path=path)
    try:
        return default_storage.size(name) == size
    except Exception as exc:  # S3's missing key too; anything else is the storage failing.
        if storage_missing(exc):
            return False
        raise


class UploadsOrigin(Origin):
    def __init__(self, source_id: int):
        self.source_id = source_id

    def fetch(self, path, *, max_bytes):
        name = upload_name(source_id=self.source_id, path=path)
        try:
            with default_storage.open(name, "rb") as fh:
                data = read_capped(iter(lambda: fh.read(256 * 1024), b""), max_bytes)
        except OriginError:
            raise  # Over the byte cap.
        except FileNotFoundError:
            raise OriginNotFoundError("The uploaded image is gone (expired or purged); upload it again.") from None
        except OSError as exc:
            raise OriginUnavailableError(f"Object storage failed: {exc}") from exc
        except Exception as exc:  # Storage vendors raise their own types; S3's missing key among them.
            if storage_missing(exc):
                raise OriginNotFoundError("The uploaded image is gone (expired or purged); upload it again.") from None
            logger.warning("uploads origin: storage failed: %s: %s", type(exc).__name__, exc)
            raise OriginUnavailableError("Object storage is unavailable.") from exc
        # The path is the content's SHA-256: the bytes never change under it.
        return OriginObject(data=data, version=path.partition(".")[0])
