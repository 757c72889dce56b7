"""glibc's malloc bounded for a long-lived web process whose threads decode and encode images."""

import ctypes
import logging
import os
import threading
import time

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt(3)'s parameter, from glibc's malloc.h.


def malloc_arenas_bound(arenas: int) -> bool:
    """At most `arenas` malloc arenas for the threads this process runs from now on, unless the
    operator set glibc's own variable for it (MALLOC_ARENA_MAX, or glibc.malloc.arena_max in
    GLIBC_TUNABLES), which then stands. False where the C library is not glibc (musl has neither
    arenas nor mallopt): nothing is changed.

    Why: glibc gives each thread that finds the heap busy an arena of its own, up to 8 per core, and
    an image's buffers (megabytes each) freed in one arena stay there for that arena's next
    allocations; its mmap threshold rises to the size of the largest such block freed (up to 32 MiB),
    so later ones land in the arenas too. Under mixed load each of a web process's threads came to
    hold its largest renders' worth of heap: processes grew from about 170 MiB to 560 MiB in five
    minutes and went on; with two arenas they level off near 400 MiB, at no cost in CPU per render
    (bench/soak.py, bench/README.md)."""
    if "MALLOC_ARENA_MAX" in os.environ or "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        logger.info("not glibc: malloc arenas left as they are")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if not mallopt(M_ARENA_MAX, arenas):
        raise RuntimeError(f"mallopt refused M_ARENA_MAX={arenas}")
    return True


def malloc_trim_every(seconds: float) -> None:
    """Every `seconds`, glibc's malloc_trim(0) on a daemon thread of this process (and of any
    process forked from it): free pages anywhere in the arenas go back to the system, not only at
    the top of each heap as free() gives them. Two arenas leave fragments all the same, freed pages
    between live blocks that an image's buffers left behind; trimming them costs a few milliseconds
    each time. Nothing where the C library is not glibc."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = (ctypes.c_size_t,)

    def loop():
        while True:
            time.sleep(seconds)
            trim(0)

    def start():
        threading.Thread(target=loop, name="malloc-trim", daemon=True).start()

    os.register_at_fork(after_in_child=start)
    start()
