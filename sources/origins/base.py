"""The origin contract: fetch one image's bytes for a path, within a byte cap."""

import functools
from dataclasses import dataclass
from posixpath import normpath

from django.db import models

from core.errors import BadRequestError, ServiceError


class OriginKind(models.TextChoices):
    """Where a source's images come from (Source.Kind)."""

    WEB_FOLDER = "web", "Web folder"
    S3 = "s3", "Amazon S3 (or compatible)"
    LOCAL_FOLDER = "local", "Local folder (development)"
    # An account's images uploaded through the remove.bg API (removebg_api/): one implicit source per
    # account, never rendered through /render/ (rendering/services.py).
    UPLOADS = "uploads", "Uploads (remove.bg API)"


class OriginError(ServiceError):
    """The origin could not give the image; subclasses carry the status a client sees."""


class OriginNotFoundError(OriginError):
    status_code = 404
    code = "origin_not_found"
    default_message = "The image was not found at the origin."


class OriginForbiddenError(OriginError):
    status_code = 403
    code = "origin_forbidden"
    default_message = "The origin refused access to the image."


class OriginTooLargeError(OriginError):
    status_code = 413
    code = "origin_too_large"


class OriginUnavailableError(OriginError):
    status_code = 502
    code = "origin_unavailable"
    default_message = "The origin could not be reached or answered with an error."
    retry_after = 10


class OriginTimeoutError(OriginError):
    status_code = 504
    code = "origin_timeout"
    default_message = "The origin did not answer in time."
    retry_after = 10


class OriginAddressError(OriginError):
    status_code = 403
    code = "origin_address_refused"
    default_message = "The origin's address is not allowed (private, loopback or reserved network)."


class OriginLoopError(OriginError):
    """The URL, or a redirect, leads back to this service: a render would wait on itself."""

    status_code = 508
    code = "origin_loop"
    default_message = ("The URL leads back to this service (one of its host names or addresses); "
                       "images are never fetched from the service itself.")


class PathError(BadRequestError):
    code = "bad_path"


@dataclass(frozen=True)
class OriginObject:
    data: bytes
    # Changes when the origin's bytes change (ETag, or mtime and size): recorded with the job.
    version: str
    content_type: str = ""


class Origin:
    """Subclasses implement `fetch`; they raise OriginError subclasses, never vendor errors."""

    def fetch(self, path: str, *, max_bytes: int) -> OriginObject:
        raise NotImplementedError


def too_large(max_bytes: int) -> OriginTooLargeError:
    return OriginTooLargeError(
        f"The origin image is larger than the limit of {max_bytes // (1024 * 1024)} MB."
        if max_bytes % (1024 * 1024) == 0
        else f"The origin image is larger than the limit of {max_bytes} bytes."
    )


def read_capped(chunks, max_bytes: int) -> bytes:
    """Joins chunks, counting as it goes: a size header is never trusted."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise too_large(max_bytes)
    return bytes(buf)


@functools.lru_cache(maxsize=8192)  # Every render checks its path; a refused one is not kept.
def path_clean(path: str) -> str:
    """The path below a source's base, or PathError: no escaping, no absolute or odd paths."""
    if not path or len(path) > 1024:
        raise PathError("The image path is empty or too long.")
    if "\x00" in path or "\\" in path:
        raise PathError("The image path contains a forbidden character.")
    segments = path.split("/")
    if path.startswith("/") or any(seg in ("", ".", "..") for seg in segments):
        raise PathError("The image path may not be absolute or contain empty, '.' or '..' segments.")
    if normpath(path) != path:
        raise PathError("The image path is not in normal form.")
    return path
