"""Cached bg-removed render through the full stack vs a static file of the same size, one run.

Usage: .venv/bin/python bench/cached_render.py [--seconds 10] [--connections 8]

Starts gunicorn exactly as platform/Procfile does (embedded defaults: SQLite, local storage),
makes the cutout of tests/fixtures/astronaut.jpg (first request + a worker), then loads the same
server with keep-alive HTTP/1.1 clients for two URLs in turn:
  - the cached render:  /render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp
  - a static file with the very same bytes, served by the same gunicorn through WhiteNoise.
Prints requests/s and p50/p99 latency for each, and the ratios.
"""

import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RENDER = "/render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(conn, path):
    conn.request("GET", path, headers={"Accept": "image/webp"})
    response = conn.getresponse()
    body = response.read()
    return response.status, body


def load(port, path, seconds, connections):
    latencies, errors = [], []
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            status, _ = get(conn, path)
            mine.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
        latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "errors": len(errors),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cutout-bench-"))
    (tmp / "demo" / "origin").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "astronaut.jpg", tmp / "demo" / "origin")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME")}
    env.update(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="bench", CUTOUT_VAR_DIR=str(tmp / "var"),
               ORIGIN_LOCAL_ROOT=str(tmp / "demo"), DJANGO_STATIC_ROOT=str(tmp / "static"),
               BG_REMOVE_MODEL_HOME=str(ROOT / "var" / "models"), RENDER_RATE_LIMIT="1000000/s",
               PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}")
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "-v0"], ["bootstrap_demo"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    log = (tmp / "stack.log").open("wb")
    stack = subprocess.Popen(["honcho", "-f", "platform/Procfile", "-d", ".", "start", "-p", str(port)],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, body = get(conn, RENDER)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("no cutout in 120 s")
            time.sleep(0.3)
        # The same bytes as a static file, served by the same server.
        static = tmp / "static" / "bench"
        static.mkdir(parents=True, exist_ok=True)
        (static / "same-size.webp").write_bytes(body)
        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(timeout=30)
        stack = subprocess.Popen(["honcho", "-f", "platform/Procfile", "-d", ".", "start", "-p", str(port)],
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if get(conn, "/static/bench/same-size.webp")[0] == 200 and get(conn, RENDER)[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        for path in (RENDER, "/static/bench/same-size.webp"):  # Warm both.
            load(port, path, 1, args.connections)
        cached = load(port, RENDER, args.seconds, args.connections)
        static_result = load(port, "/static/bench/same-size.webp", args.seconds, args.connections)
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{len(body)} bytes, {args.connections} keep-alive connections, {args.seconds:g} s each, cpus: {os.cpu_count()}")
    for name, result in (("cached render", cached), ("static file", static_result)):
        print(f"{name:14s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
              f"  errors {result['errors']}")
    print(f"throughput cached/static: {cached['rps'] / static_result['rps']:.2f}")
    print(f"p50 cached/static: {cached['p50_ms'] / static_result['p50_ms']:.2f}")


if __name__ == "__main__":
    main()
