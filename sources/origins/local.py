"""Local-folder origin (development): files below a folder below ORIGIN_LOCAL_ROOT."""

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sources.origins.base import Origin, OriginForbiddenError, OriginNotFoundError, OriginObject, read_capped


def local_root_for(local_path: str) -> Path:
    """The source's folder, resolved; refuses anything outside the configured root: `..`, an
    absolute path, and a folder that is (or passes through) a symlink out of the root."""
    root = Path(settings.ORIGIN_LOCAL_ROOT).resolve()
    folder = (root / local_path).resolve()
    if folder != root and root not in folder.parents:
        raise ImproperlyConfigured(f"The folder must lie below the local root {root}.")
    return folder


class LocalFolderOrigin(Origin):
    def __init__(self, local_path: str):
        self.local_path = local_path

    def fetch(self, path, *, max_bytes):
        try:
            # Checked again on every fetch: the folder may have become a symlink since it was saved.
            folder = local_root_for(self.local_path)
        except ImproperlyConfigured:
            raise OriginForbiddenError("The source's folder lies outside the local root.") from None
        file = (folder / path).resolve()
        # Resolved first, so a symlink cannot lead out of the source's folder.
        if folder not in file.parents or not file.is_file():
            raise OriginNotFoundError()
        try:
            with file.open("rb") as fh:
                stat = os.fstat(fh.fileno())
                data = read_capped(iter(lambda: fh.read(256 * 1024), b""), max_bytes)
        except FileNotFoundError:
            raise OriginNotFoundError() from None
        return OriginObject(data=data, version=f"{stat.st_mtime_ns}-{stat.st_size}")
