"""The cache generation: a number shared by every web process, moved by each change that makes
their own caches stale (a purge, a source's or an account's change) and read before a process
answers from them, so a change that has answered is seen by every process's next request.

Where it lives: in Redis when Redis is the default cache (read in the same round trip as the
request's rate count, core/redis_cache.py, so a hit pays nothing more), else in a file under
CUTOUT_VAR_DIR mapped into each process's memory (the web processes of one machine, as `make run`
starts them), read at the start of each request for a fraction of a microsecond.

Each process turns what it reads into a `version` of its own: a new value, or a value that could
not be read (Redis down), makes a new version, and a cached entry is used only while the version
it was stored under is current. A value that comes back after an outage makes a new version too,
so nothing stored before the outage is trusted again. Entries are stamped with the version the
request began under, before it read the database, so an entry read before a change and stored
after it is never taken for a new one.
"""

import logging
import mmap
import os
import secrets
import struct
import threading
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.core.signals import request_finished

from core.redis_cache import AtomicIncrRedisCache

_MISSING = object()
logger = logging.getLogger(__name__)
_warned: list = []


class GenerationMovedError(Exception):
    """The generation moved while a request was using cached reads: it starts again (views.py)."""


class _State(threading.local):
    # The version this thread's request began under (None: no request; the current one is used).
    begun: int | None = None
    # Whether a GenerationMovedError may be raised (the caller starts the request again), and
    # (account id, usage) of an event already counted, by the attempt that raised it or by the
    # hot path that handed the request to Django.
    restartable: bool = False
    counted: tuple | None = None


_thread = _State()
_lock = threading.Lock()
_last = _MISSING  # The shared value last read.
version = 0  # This process's version; stamps and checks read it as `generation.version`.


def generation_observe(value) -> bool:
    """Records the shared value just read (None: it could not be read); whether it moved."""
    global _last, version
    if value is not None and value == _last:
        return False
    with _lock:
        if value is None or value != _last:
            _last = value
            version += 1
    return True


def generation_stamp() -> int:
    """The version a cached entry stored now is valid under: the one its request began under."""
    begun = _thread.begun
    return version if begun is None else begun


def generation_shared() -> int | None:
    """The shared value as this process last read it, when the current request began under it:
    what an entry kept outside the process's memory (rendering/node_cache.py's index, shared by
    the machine's processes) is stamped with and checked against. None when it could not be read,
    or moved during the request."""
    value = _last
    if value is _MISSING or value is None or generation_stamp() != version:
        return None
    return value


def generation_in_redis() -> bool:
    """Whether the shared value is in Redis (the default cache), else in the file."""
    key = id(settings.CACHES)
    if _in_redis[0] != key:
        _in_redis[:] = [key, isinstance(caches["default"], AtomicIncrRedisCache)]
    return _in_redis[1]


_in_redis = [None, False]


def generation_begin() -> int:
    """Starts a request: without Redis, reads the shared file first (with Redis, the request's
    rate count reads it, accounts/limits.py)."""
    if not generation_in_redis():
        try:
            value = _file_counter().read()
        except OSError as exc:  # CUTOUT_VAR_DIR not writable: no cached entry can be trusted.
            if not _warned:
                _warned.append(exc)
                logger.warning("cache generation file unusable, per-process caches are off: %s", exc)
            value = None
        generation_observe(value)
    _thread.begun = version
    _thread.restartable = False
    _thread.counted = None
    return version


def generation_end(**kwargs) -> None:
    """Ends the request (request_finished, and the hot path's own answers): what the thread
    stores after it is stamped with the current version."""
    _thread.begun = None
    _thread.restartable = False
    _thread.counted = None


request_finished.connect(generation_end, dispatch_uid="core_generation_end")


def generation_restartable(value: bool) -> None:
    _thread.restartable = value


def generation_restart_if_moved(*, account_id: int, usage) -> None:
    """After the request's rate count read the shared value: when the request began under an
    older version, it goes on under the new one, and raises GenerationMovedError if its caller
    starts it again (generation_restartable); that attempt finds its event counted
    (generation_counted). Not when the value could not be read: nothing can have answered then
    (generation_bump fails too), and the next requests trust no cached entry."""
    restartable, _thread.restartable = _thread.restartable, False  # Only at the request's first count.
    begun = _thread.begun
    if begun is None or begun == version:
        return
    _thread.begun = version
    if restartable and _last is not None:
        generation_mark_counted(account_id=account_id, usage=usage)
        raise GenerationMovedError()


def generation_mark_counted(*, account_id: int, usage) -> None:
    """The request's event for the account is counted (with `usage`): its next count is not made."""
    _thread.counted = (account_id, usage)


def generation_counted(*, account_id: int) -> tuple[bool, object]:
    """(whether this request's event for the account was counted already, its usage), once."""
    counted = _thread.counted
    if counted is not None and counted[0] == account_id:
        _thread.counted = None
        return True, counted[1]
    return False, None


def generation_bump() -> None:
    """Moves the shared value to a new random one (never back to an old one, even after Redis
    lost its data or the file was recreated). Raises what the cache's client raises when Redis
    cannot be reached."""
    value = secrets.randbits(52) + 1  # Exact as a Lua number (core/redis_cache.py), never 0 (none set).
    if generation_in_redis():
        caches["default"].generation_set(value)
    else:
        _file_counter().write(value)
    generation_observe(value)


class _FileCounter:
    """Eight bytes in a file, mapped into memory: every process of the machine reads the same page."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> int:
        # Read while a writer copies a new value in, it may mix the two: that reads as one more
        # new value, which costs one more round of cache misses and nothing else.
        return struct.unpack_from("<Q", self._map)[0]

    def write(self, value: int) -> None:
        # No lock: a writer sets a new random value rather than adding to the old one.
        struct.pack_into("<Q", self._map, 0, value)


_counter: _FileCounter | None = None


def _file_counter() -> _FileCounter:
    global _counter
    counter, var_dir = _counter, settings.VAR_DIR
    if counter is None or counter.var_dir is not var_dir:
        counter = _counter = _FileCounter(Path(var_dir) / "cache-generation")
        counter.var_dir = var_dir
    return counter
