"""Cached bg-removed render through the full stack vs a static file of the same size, one run.

Usage: .venv/bin/python bench/cached_render.py [--seconds 8] [--connections 8]

Starts the web server (granian) and a worker exactly as platform/Procfile does (embedded
defaults), makes the cutout of tests/fixtures/astronaut.jpg, then loads the same server with
keep-alive clients (wrk when installed) for
  - the cached render:  /render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp
  - a static file with the very same bytes, served by the same server through WhiteNoise;
and, with --gunicorn, the same cached render from the same application under gunicorn
(2 workers × 4 threads, the server the platform used before granian; installed into the
project's virtual environment if missing). Prints the server's CPU milliseconds per request (from
/proc, all its processes), requests/s and p50/p99 latency, and the ratios; CPU per request is the
headline on a shared machine.
"""

import argparse
import os
import signal
import subprocess
import sys

from common import ROOT, Stack, free_port, group_members, load, report, wait_for


def gunicorn_start(stack: Stack):
    if subprocess.run([sys.executable, "-c", "import gunicorn"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "gunicorn>=23"], check=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                             "--workers", "2", "--threads", "4"], cwd=ROOT, env=stack.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, port

RENDER = "/render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp"
STATIC = "/static/bench/same-size.webp"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--gunicorn", action="store_true", help="also the cached render under gunicorn")
    args = parser.parse_args()
    peer = None
    stack = Stack([ROOT / "tests" / "fixtures" / "astronaut.jpg"])
    try:
        stack.start()
        body = wait_for(stack.port, RENDER)
        stack.stop()
        # WhiteNoise reads its files at start-up: put the same bytes there, then start again.
        (stack.tmp / "static" / "bench").mkdir(parents=True, exist_ok=True)
        (stack.tmp / "static" / "bench" / "same-size.webp").write_bytes(body)
        stack.start()
        wait_for(stack.port, STATIC)
        wait_for(stack.port, RENDER)
        for path in (RENDER, STATIC):
            load(stack.port, [path], 1, args.connections)  # Warm.
        web = lambda: group_members(stack.proc.pid)  # noqa: E731  The web server's processes.
        cached = load(stack.port, [RENDER], args.seconds, args.connections, server=web)
        static = load(stack.port, [STATIC], args.seconds, args.connections, server=web)
        if args.gunicorn:
            proc, port = gunicorn_start(stack)
            try:
                wait_for(port, RENDER)
                load(port, [RENDER], 1, args.connections)  # Warm.
                peer = load(port, [RENDER], args.seconds, args.connections, server=lambda: group_members(proc.pid))
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    finally:
        stack.close()
    print(f"{len(body)} bytes, {args.connections} keep-alive connections, {args.seconds:g} s each, cpus: {os.cpu_count()}")
    report("cached render", cached)
    report("static file", static)
    print(f"CPU per request cached/static: {cached['cpu_ms'] / static['cpu_ms']:.2f}  (the headline)")
    print(f"throughput cached/static: {cached['rps'] / static['rps']:.2f}")
    print(f"p50 cached/static: {cached['p50_ms'] / static['p50_ms']:.2f}")
    if peer is not None:
        report("cached render, gunicorn", peer)
        print(f"throughput granian/gunicorn: {cached['rps'] / peer['rps']:.2f}")


if __name__ == "__main__":
    main()
