"""Stored objects written whole: a name in object storage holds a complete object or nothing."""

import hashlib
import os
import secrets

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage


def storage_put(name: str, data: bytes, *, storage=None) -> str:
    """Stores `data` under `name`, replacing what was there, so that no reader ever finds part of
    it there (a disk that fills up half-way leaves the name as it was): a local folder is
    written to a temporary name beside it, flushed to disk and renamed over it (a rename is
    atomic); S3 takes one PUT, which it makes visible only whole. The name stored under."""
    storage = default_storage if storage is None else storage
    if not isinstance(storage, FileSystemStorage):
        # S3Storage with file_overwrite (config/settings.py) stores under exactly this name.
        return storage.save(name, ContentFile(data))
    path = storage.path(name)
    folder, base = os.path.split(path)
    os.makedirs(folder, mode=storage.directory_permissions_mode or 0o777, exist_ok=True)
    # A dot name in the same folder: the same filesystem, so the rename cannot turn into a copy.
    temporary = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.part")
    # os.open's mode goes through the umask, as Django's own save does.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        # Some filesystems (NFS, a full thin volume) report a failed write only at the flush.
        os.fsync(fd)
        os.close(fd)
        fd = None
        if storage.file_permissions_mode is not None:
            os.chmod(temporary, storage.file_permissions_mode)
        os.replace(temporary, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return name


def storage_holds(name: str, data: bytes, *, storage=None) -> bool:
    """Whether `name` holds exactly `data` (size, then SHA-256): before a name that exists is
    reused for the same bytes, so an object cut short by an older writer is never taken."""
    storage = default_storage if storage is None else storage
    try:
        if storage.size(name) != len(data):
            return False
        with storage.open(name, "rb") as fh:
            digest = hashlib.sha256()
            for chunk in iter(lambda: fh.read(256 * 1024), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.digest() == hashlib.sha256(data).digest()


def storage_missing(exc: BaseException) -> bool:
    """Whether a storage backend's exception says the object is not there (S3's NoSuchKey and
    404 come as a ClientError with a response; a broken connection's error has none, or None)."""
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("NoSuchKey", "404", "NotFound")
