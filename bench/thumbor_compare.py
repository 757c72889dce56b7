"""The platform vs Thumbor on the same machine, image and sizes, one run.

Usage: .venv/bin/python bench/thumbor_compare.py [--seconds 8] [--connections 8] [--renders 300]

Installs Thumbor into its own virtual environment (var/bench/thumbor-venv, once), then runs
  1. a cached render: ours, /render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp (a stored
     derived render of the cutout), against Thumbor's result-storage hit for the same cutout PNG
     at the same size and format (/unsafe/256x0/filters:format(webp)/cutout.png);
  2. uncached resize + WebP renders: N distinct widths of astronaut.jpg, each requested once, on
     both (/render/demo/astronaut.jpg?w=W&fm=webp vs /unsafe/Wx0/filters:format(webp)/astronaut.jpg).
Both servers get two processes (granian: 2 workers × 4 threads, as platform/Procfile; Thumbor:
--processes 2), file result storage, quality 75. Prints each server's CPU milliseconds per
request (from /proc, all its processes: the headline on a shared machine), req/s, p50/p99 and
the ratios.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import ROOT, Stack, free_port, group_members, load, once, report, wait_for

THUMBOR_VERSION = "7.8.0"
VENV = ROOT / "var" / "bench" / "thumbor-venv"
RENDER = "/render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp"
THUMBOR_HIT = "/unsafe/256x0/filters:format(webp)/cutout.png"


def thumbor_install():
    thumbor = VENV / "bin" / "thumbor"
    if not thumbor.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"thumbor=={THUMBOR_VERSION}"], check=True)
    return thumbor


def thumbor_start(thumbor, root: Path, port: int):
    conf = root / "thumbor.conf"
    conf.write_text(
        "LOADER = 'thumbor.loaders.file_loader'\n"
        f"FILE_LOADER_ROOT_PATH = '{root / 'images'}'\n"
        "STORAGE = 'thumbor.storages.no_storage'\n"
        "RESULT_STORAGE = 'thumbor.result_storages.file_storage'\n"
        f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = '{root / 'results'}'\n"
        "RESULT_STORAGE_STORES_UNSAFE = True\n"
        "ALLOW_UNSAFE_URL = True\n"
        "QUALITY = 75\n"
        "AUTO_WEBP = False\n"
    )
    log = (root / "thumbor.log").open("wb")
    return subprocess.Popen([str(thumbor), "-p", str(port), "-i", "127.0.0.1", "-c", str(conf), "--processes", "2"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--renders", type=int, default=300)
    # Uncached renders: no more clients than one web process has render slots
    # (RENDER_MAX_CONCURRENT=2): beyond them it answers 503 render_busy at once, by design, and
    # granian may hand several connections to one process.
    parser.add_argument("--render-connections", type=int, default=2)
    args = parser.parse_args()
    thumbor = thumbor_install()
    photo = ROOT / "tests" / "fixtures" / "astronaut.jpg"
    stack = Stack([photo])
    root = stack.tmp / "thumbor"
    (root / "images").mkdir(parents=True)
    shutil.copy(photo, root / "images")
    tport = free_port()
    tproc = None
    try:
        stack.start()
        wait_for(stack.port, RENDER)
        # Thumbor serves the very cutout our worker made.
        (root / "images" / "cutout.png").write_bytes(wait_for(stack.port, "/render/demo/astronaut.jpg?bg-remove=true"))
        tproc = thumbor_start(thumbor, root, tport)
        wait_for(tport, THUMBOR_HIT)
        for port, path in ((stack.port, RENDER), (tport, THUMBOR_HIT)):
            load(port, [path], 1, args.connections)  # Warm.
        ours, theirs = (lambda: group_members(stack.proc.pid)), (lambda: group_members(tproc.pid))
        ours_hit = load(stack.port, [RENDER], args.seconds, args.connections, server=ours)
        their_hit = load(tport, [THUMBOR_HIT], args.seconds, args.connections, server=theirs)

        widths = range(100, 100 + args.renders)
        ours_new = once(stack.port, [f"/render/demo/astronaut.jpg?w={w}&fm=webp" for w in widths],
                        args.render_connections, server=ours)
        their_new = once(tport, [f"/unsafe/{w}x0/filters:format(webp)/astronaut.jpg" for w in widths],
                         args.render_connections, server=theirs)
    finally:
        if tproc is not None:
            os.killpg(tproc.pid, 15)
            tproc.wait(timeout=30)
        stack.close()

    print(f"Thumbor {THUMBOR_VERSION}; {args.connections} keep-alive connections; cpus: {os.cpu_count()}")
    report("cached render (ours)", ours_hit)
    report("result-storage hit (Thumbor)", their_hit)
    print(f"cached hit CPU per request ours/Thumbor: {ours_hit['cpu_ms'] / their_hit['cpu_ms']:.2f}  (the headline)")
    print(f"cached hit throughput ours/Thumbor: {ours_hit['rps'] / their_hit['rps']:.2f}  "
          f"p50 ours/Thumbor: {ours_hit['p50_ms'] / their_hit['p50_ms']:.2f}")
    report(f"uncached {args.renders} (ours)", ours_new)
    report(f"uncached {args.renders} (Thumbor)", their_new)
    print(f"uncached CPU per request ours/Thumbor: {ours_new['cpu_ms'] / their_new['cpu_ms']:.2f}  (the headline)")
    print(f"uncached throughput ours/Thumbor: {ours_new['rps'] / their_new['rps']:.2f}")


if __name__ == "__main__":
    main()
