"""Cached bg-removed render through the full stack vs a static file of the same size, one run.

Usage: .venv/bin/python bench/cached_render.py [--seconds 8] [--connections 8]

Starts gunicorn and a worker exactly as platform/Procfile does (embedded defaults), makes the
cutout of tests/fixtures/astronaut.jpg, then loads the same server with keep-alive clients for
  - the cached render:  /render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp
  - a static file with the very same bytes, served by the same gunicorn through WhiteNoise.
Prints requests/s and p50/p99 latency for each, and the ratios.
"""

import argparse
import os

from common import ROOT, Stack, load, report, wait_for

RENDER = "/render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp"
STATIC = "/static/bench/same-size.webp"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
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
        cached = load(stack.port, [RENDER], args.seconds, args.connections)
        static = load(stack.port, [STATIC], args.seconds, args.connections)
    finally:
        stack.close()
    print(f"{len(body)} bytes, {args.connections} keep-alive connections, {args.seconds:g} s each, cpus: {os.cpu_count()}")
    report("cached render", cached)
    report("static file", static)
    print(f"throughput cached/static: {cached['rps'] / static['rps']:.2f}")
    print(f"p50 cached/static: {cached['p50_ms'] / static['p50_ms']:.2f}")


if __name__ == "__main__":
    main()
