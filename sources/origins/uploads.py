"""Uploads origin: images an account uploaded (the remove.bg API), kept in object storage."""

import logging

from django.core.files.storage import default_storage

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
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise OriginNotFoundError("The uploaded image is gone (expired or purged); upload it again.") from None
            logger.warning("uploads origin: storage failed: %s: %s", type(exc).__name__, exc)
            raise OriginUnavailableError("Object storage is unavailable.") from exc
        # The path is the content's SHA-256: the bytes never change under it.
        return OriginObject(data=data, version=path.partition(".")[0])
