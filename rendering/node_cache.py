"""The node cache: finished renders kept on this machine's disk in front of a remote object store.

A hit whose bytes are not in the process's memory (rendering/store.py keeps them a moment) would
read the object from S3: milliseconds of CPU, and a 503 while the store is down. The web processes
of a machine share a folder (RENDER_NODE_CACHE_DIR) holding the renders they served or made, and
read it first.

Bytes (`blobs/`) are named by the render's ETag (the first 32 hex digits of the SHA-256 of its
bytes, rendering/store.py:render_store) and are found only through a render the request looked
up, in the database or in a process's lookup cache, which a purge ends on every machine
(core/generation.py): a purged render's bytes are never reached again (a render of the very same
bytes may use them). A file is served only when its size and digest are the render's: one cut
short (a crash mid-write, a full disk) or changed is removed and read again from the store.

While the database is down, a hit is answered from what the machine kept (stale-if-error): the
index (`index/`) holds, under each render's key, the render's row as last read from the database,
stamped with the shared cache generation it was read under, and is used only while that is still
the generation (node_cache_render): any purge, or any change to a source or an account, since then
makes every entry of every machine unusable. The gate runs first, as for any hit: signature,
`expires`, entitlement and rate are checked (rendering/gate.py).

Bounded by RENDER_NODE_CACHE_BYTES across the machine's processes: each write is counted in a
shared ledger under a file lock, and a write that would pass the bound first evicts the least
recently used entries (a hit marks its bytes used at most once a minute) down to 90 % of it.
"""

import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from cachetools import LRUCache
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage

from core.generation import generation_shared
from core.storage import storage_put

logger = logging.getLogger(__name__)

# An entry read this long after it was last marked is marked again (its mtime): eviction goes by it.
TOUCH_SECONDS = 60
# A write evicts down to this share of the bound, so the writes after it do not each sweep.
LOW_WATER = 0.9
# Temporary files older than this are a writer that died mid-write: the sweep removes them.
STALE_PART_SECONDS = 300
_LEDGER = ".ledger"
_BLOBS, _INDEX = "blobs", "index"
_HEX = frozenset("0123456789abcdef")


def node_cache_enabled() -> bool:
    """Whether renders are kept on this machine: a byte budget, and a store that is not local files."""
    return settings.RENDER_NODE_CACHE_BYTES > 0 and not isinstance(default_storage, FileSystemStorage)


def _folder() -> Path:
    return Path(settings.RENDER_NODE_CACHE_DIR)


def _digest_of(etag: str) -> str | None:
    digest = etag.strip('"')
    return digest if len(digest) == 32 and _HEX.issuperset(digest) else None


# --- Bytes ---------------------------------------------------------------------------------------

def node_cache_read(*, etag: str, size: int) -> bytes | None:
    """The bytes kept for a render with this ETag and size, or None (not kept, or not whole)."""
    digest = _digest_of(etag)
    if digest is None:
        return None
    path = _folder() / _BLOBS / digest[:2] / digest
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.fstat(fd)
        data = os.read(fd, size + 1) if stat.st_size == size else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    # Size, then digest: a file cut short or changed is never served.
    if len(data) != size or hashlib.sha256(data).hexdigest()[:32] != digest:
        logger.warning("node cache entry %s was not whole; removed", digest)
        _unlink(path)
        return None
    if time.time() - stat.st_mtime > TOUCH_SECONDS:
        try:
            os.utime(path)
        except OSError:
            pass  # Evicted meanwhile: the bytes read are still the render's.
    return data


def node_cache_keep(*, etag: str, data: bytes) -> None:
    """Keeps a render's bytes (its ETag names them). Never fails the request: a full or read-only
    disk only means the next hit reads the store."""
    digest = _digest_of(etag)
    if digest is None or hashlib.sha256(data).hexdigest()[:32] != digest:
        return  # Only the render's own bytes are kept (a store's answer is checked here too).
    _write(f"{_BLOBS}/{digest[:2]}/{digest}", data)


# --- The index, for stale-if-error -----------------------------------------------------------------

# (folder, key) → (the generation its index entry was last written under by this process, when):
# a render looked up again under the same generation is written again only after
# INDEX_REWRITE_SECONDS, so the entry of a render in use stays young for the sweep.
_indexed = LRUCache(maxsize=20_000)
INDEX_REWRITE_SECONDS = 600
_indexed_lock = threading.Lock()


def node_cache_index(*, key: str, row: dict) -> None:
    """Records a render's row (JSON-able fields) as just read from the database, under the current
    shared generation; nothing when that is unknown (Redis down, or it moved meanwhile)."""
    generation = generation_shared()
    if generation is None or len(key) != 64 or not _HEX.issuperset(key):
        return
    folder, now = _folder(), time.monotonic()
    with _indexed_lock:
        written = _indexed.get((folder, key))
        if written is not None and written[0] == generation and now - written[1] < INDEX_REWRITE_SECONDS:
            return
        _indexed[(folder, key)] = (generation, now)
    data = json.dumps({"generation": generation, "row": row}, separators=(",", ":")).encode()
    _write(f"{_INDEX}/{key[:2]}/{key}", data)


def node_cache_render(*, key: str) -> dict | None:
    """The row recorded for a render's key, when it was recorded under the current shared
    generation (else None: a purge or a change since, or the generation cannot be read)."""
    generation = generation_shared()
    if generation is None or len(key) != 64 or not _HEX.issuperset(key):
        return None
    try:
        entry = json.loads((_folder() / _INDEX / key[:2] / key).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("generation") != generation:
        return None
    return entry.get("row")


# --- Writing, bounded --------------------------------------------------------------------------------

def _write(name: str, data: bytes) -> None:
    budget = settings.RENDER_NODE_CACHE_BYTES
    if len(data) > budget // 4:
        return  # One entry never takes a large share: the others would be evicted for it.
    try:
        folder = _folder()
        with _ledger(folder) as ledger:
            total = ledger.read()
            if total is None or total + len(data) > budget:
                total = _sweep(folder, target=int(budget * LOW_WATER) - len(data))
            ledger.write(total + len(data))
        # Written whole or not at all (a temporary name renamed over it): a reader never finds part.
        storage_put(name, data, storage=FileSystemStorage(location=folder))
    except OSError as exc:
        logger.warning("node cache not written: %s", exc)


def node_cache_size() -> int:
    """Bytes of the entries on disk now (what the ledger estimates, counted)."""
    return sum(size for _, size, _ in _entries(_folder()))


def _entries(folder: Path):
    """(path, size, mtime) of every entry; temporary files of dead writers are removed."""
    now = time.time()
    for kind in (_BLOBS, _INDEX):
        try:
            shards = [entry.path for entry in os.scandir(folder / kind) if entry.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            continue
        for shard in shards:
            for entry in os.scandir(shard):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.name.startswith("."):
                    if entry.name.endswith(".part") and now - stat.st_mtime > STALE_PART_SECONDS:
                        _unlink(Path(entry.path))
                    continue
                yield Path(entry.path), stat.st_size, stat.st_mtime


def _sweep(folder: Path, *, target: int) -> int:
    """Removes the least recently used entries until at most `target` bytes are left: the bytes left."""
    entries = sorted(_entries(folder), key=lambda entry: entry[2])
    total = sum(size for _, size, _ in entries)
    removed = 0
    for path, size, _ in entries:
        if total <= target:
            break
        _unlink(path)
        total -= size
        removed += 1
    if removed:
        logger.info("node cache: evicted %d entries, %d bytes kept", removed, total)
    return max(total, 0)


class _Ledger:
    """The bytes written, as the machine's processes have counted them, in the lock file itself."""

    def __init__(self, fd: int):
        self.fd = fd

    def read(self) -> int | None:
        """None for a new ledger: what the folder holds is then counted."""
        raw = os.pread(self.fd, 8, 0)
        return struct.unpack("<Q", raw)[0] if len(raw) == 8 else None

    def write(self, value: int) -> None:
        os.pwrite(self.fd, struct.pack("<Q", max(value, 0)), 0)


@contextmanager
def _ledger(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / _LEDGER, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # Released with the descriptor.
        yield _Ledger(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
