"""Total deadlines for outgoing fetches: a watchdog shuts a fetch's sockets down when its time is up.

A per-receive timeout bounds each wait, not their sum: a peer that sends one byte a second keeps
every `recv` short and a fetch going for ever (headers, TLS handshake or body alike). Shutting the
socket down (shutdown(2) on a duplicate of its descriptor: it acts on the connection, whichever
descriptor names it) makes the blocked `recv` return at once, for a plain socket and for TLS over
it, in the middle of the handshake too, and in any library (urllib3, http.client, botocore). One
thread per process sleeps until the nearest deadline, so a waiting fetch costs no CPU. The reader
sees an end of stream, which can look like a complete body without a length: callers ask
`expired` after every fetch, successful or not.
"""

import heapq
import itertools
import os
import socket
import threading
import time
from contextlib import contextmanager

from sources.origins.base import OriginTimeoutError


class Deadline:
    """One fetch's total deadline (monotonic `at`) and the sockets it shuts down when it passes."""

    __slots__ = ("_inodes", "_socks", "at", "closed", "expired")

    def __init__(self, at: float):
        self.at = at
        self.expired = False
        self.closed = False
        self._socks: list[socket.socket] = []
        self._inodes: set[int] = set()

    def remaining(self) -> float:
        return self.at - time.monotonic()


_cond = threading.Condition()
_heap: list = []  # (at, sequence, Deadline), the nearest first.
_sequence = itertools.count()
_watchdog_pid = None  # The thread does not survive a fork (Celery's prefork pool): started per process.
_local = threading.local()


def _expire(deadline: Deadline) -> None:
    deadline.expired = True
    for sock in deadline._socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # Never connected, or already closed by the peer.


def _watch() -> None:
    with _cond:
        while True:
            now = time.monotonic()
            while _heap and (_heap[0][2].closed or _heap[0][0] <= now):
                _, _, deadline = heapq.heappop(_heap)
                if not deadline.closed:
                    _expire(deadline)
            _cond.wait(_heap[0][0] - now if _heap else None)


def _forget_parents_deadlines() -> None:
    # A child forked while a fetch held the lock (a pool forking beside a fetching thread) would
    # otherwise wait on it for ever; the parent's deadlines are not the child's to watch.
    global _cond, _heap, _watchdog_pid
    _cond, _heap, _watchdog_pid = threading.Condition(), [], None


os.register_at_fork(after_in_child=_forget_parents_deadlines)


def _ensure_watchdog() -> None:
    global _watchdog_pid
    if _watchdog_pid != os.getpid():
        _watchdog_pid = os.getpid()
        threading.Thread(target=_watch, name="fetch-deadline-watchdog", daemon=True).start()


@contextmanager
def fetch_deadline(seconds: float):
    """Every socket that the network-safe connections open or use in this thread while inside is
    shut down `seconds` from now; `Deadline.expired` then says the fetch ran out of time."""
    deadline = Deadline(time.monotonic() + seconds)
    with _cond:
        _ensure_watchdog()
        heapq.heappush(_heap, (deadline.at, next(_sequence), deadline))
        if _heap[0][2] is deadline:
            _cond.notify()
    outer = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield deadline
    finally:
        _local.deadline = outer
        with _cond:
            deadline.closed = True
            for sock in deadline._socks:
                sock.close()  # The duplicate only: the connection is its owner's to close or keep.
            deadline._socks.clear()


def deadline_check() -> None:
    """OriginTimeoutError when this thread's fetch is past its deadline (before a new connection)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and (deadline.expired or deadline.remaining() <= 0):
        raise OriginTimeoutError()


def deadline_watch(sock: socket.socket) -> None:
    """Puts `sock` (plain or TLS) under this thread's fetch deadline, once; none, nothing to do."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None or sock is None:
        return
    fd = sock.fileno()
    if fd < 0:
        return
    inode = os.fstat(fd).st_ino  # Names the socket itself: a descriptor number is reused.
    with _cond:
        if inode in deadline._inodes:
            return
        duplicate = socket.socket(fileno=os.dup(fd))
        deadline._socks.append(duplicate)
        deadline._inodes.add(inode)
        if deadline.expired:
            _expire(deadline)


def deadline_cap(timeout: float | None) -> float | None:
    """`timeout`, shortened to what is left of this thread's fetch deadline (connect waits: a
    connecting socket's shutdown does not end its wait)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    remaining = max(deadline.remaining(), 0.01)
    return remaining if timeout is None else min(timeout, remaining)
