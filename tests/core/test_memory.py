"""malloc arenas bounded: counted by glibc itself (malloc_stats) in a process whose threads allocate."""

import subprocess
import sys

from tests.conftest import ROOT

# Twelve threads each allocate (ctypes releases the GIL): glibc gives each a new arena while it may.
PROBE = """
import ctypes, sys, threading
from core.memory import malloc_arenas_bound
print(malloc_arenas_bound(2) if sys.argv[1] == "bound" else "-", flush=True)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
barrier = threading.Barrier(12)
def work():
    barrier.wait()
    for block in [libc.malloc(200_000) for _ in range(50)]:
        libc.free(block)
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(12)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()
"""


def _arenas(mode: str, **env) -> tuple[str, int]:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr.count("Arena ")


def test_threads_share_two_arenas_once_bounded():
    assert _arenas("free")[1] >= 6  # The hostile case: glibc's own limit is 8 per core.
    assert _arenas("bound") == ("True", 2)


def test_the_operators_own_setting_stands():
    assert _arenas("bound", MALLOC_ARENA_MAX="3") == ("False", 3)
    assert _arenas("bound", GLIBC_TUNABLES="glibc.malloc.arena_max=4") == ("False", 4)


TRIM_PROBE = """
import ctypes, sys, time
from core.memory import malloc_trim_every
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) // 1024
blocks = [libc.malloc(100_000) for _ in range(2000)]  # Under the mmap threshold: all in the heap.
for block in blocks:
    ctypes.memset(block, 1, 100_000)
for block in blocks[::2]:
    libc.free(block)  # 100 MB free between live blocks: free() cannot give it back.
before = rss()
if sys.argv[1] == "trim":
    malloc_trim_every(0.1)
time.sleep(0.6)
print(before, rss())
"""


def test_free_pages_between_live_blocks_go_back_to_the_system():
    def run(mode):
        result = subprocess.run([sys.executable, "-c", TRIM_PROBE, mode], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return [int(mib) for mib in result.stdout.split()]

    before, after = run("none")
    assert after >= before - 5 and before > 190  # Fragmented: kept.
    before, after = run("trim")
    assert after <= before - 80, (before, after)
