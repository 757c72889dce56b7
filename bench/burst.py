"""Uncached renders arriving at random (Poisson) at a given rate, beside cached hits: how many are 503.

Usage: .venv/bin/python bench/burst.py [--rates 20,40] [--seconds 60] [--hits 20] [--root DIR] [--env K=V]

Starts the production stack (bench/prod_stack.py: Postgres, Redis, moto S3; platform/Procfile's
web line, 2 granian processes) from `--root` (default: this checkout; point it at an export of
another commit to measure before and after), then for each rate sends uncached renders at that
mean rate, each URL new (the demo's two photos at a new width and quality, WebP), and cached hits
at `--hits` per second, both open loop: a request is sent at its time whatever the answers before
it, as independent clients do, from a pool of client threads with keep-alive connections. Prints
per rate: the renders' statuses (the share of 503 render_busy), their latency, the cached hits'
latency and errors, the web processes' CPU milliseconds per request (from /proc) and how busy the
machine was.
"""

import argparse
import http.client
import itertools
import queue
import random
import statistics
import sys
import threading
import time
from pathlib import Path

from common import ROOT, cpu_seconds
from prod_stack import ProdStack, machine_busy, rss_mib

HIT_PATHS = [f"/render/demo/astronaut.jpg?w={w}&fm=webp" for w in range(40, 60)]
IMAGES = ("astronaut.jpg", "aitzgorri.jpg")


def render_paths():
    """New renders without end: each photo at each width 100–899, then again at the next quality."""
    n = 0
    while True:
        q, rest = divmod(n, 800 * len(IMAGES))
        w, image = divmod(rest, len(IMAGES))
        yield f"/render/demo/{IMAGES[image]}?w={100 + w}&q={90 - q}&fm=webp"
        n += 1


class Client:
    """Open-loop load: each request is sent at its scheduled time by one of `threads` workers."""

    def __init__(self, port: int, threads: int = 128):
        self.port = port
        self.jobs = queue.SimpleQueue()
        self.results = []  # (kind, status, code, seconds, lag)
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        for worker in self.workers:
            worker.start()

    def _work(self):
        conn, last_used, idle_limit = None, 0.0, None
        while True:
            job = self.jobs.get()
            if job is None:
                return
            kind, path, due = job
            # A path, or (method, path, body, headers).
            method, path, body, headers = path if isinstance(path, tuple) else ("GET", path, None, {})
            started = time.monotonic()
            if conn is not None and idle_limit is not None and started - last_used >= idle_limit:
                # Idle as long as the server's `Keep-Alive: timeout=N` said it keeps a connection:
                # a new one, as Node's http.Agent does (a client that ignores the hint gets errors).
                conn.close()
                conn = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request(method, path, body=body, headers={"Accept": "image/webp", **headers})
                response = conn.getresponse()
                body = response.read()
                status = response.status
                hint = response.getheader("Keep-Alive", "")
                idle_limit = int(hint.partition("timeout=")[2]) if "timeout=" in hint else None
                last_used = time.monotonic()
                code = body[body.find(b'"code"'):][:40].split(b'"')[3].decode() if status >= 400 else ""
            except (OSError, http.client.HTTPException) as exc:
                status, code, conn = 0, type(exc).__name__, None
            with self.lock:
                self.results.append((kind, status, code, time.monotonic() - started, started - due))

    def run(self, streams: dict, seconds: float):
        """`streams`: kind → (rate per second, iterator of paths). Returns this run's results."""
        first = len(self.results)
        rng = random.Random(7)
        start = time.monotonic()
        arrivals = []
        for kind, (rate, paths) in streams.items():
            t = 0.0
            while rate > 0:
                t += rng.expovariate(rate)
                if t >= seconds:
                    break
                arrivals.append((t, kind, next(paths)))
        arrivals.sort()
        for t, kind, path in arrivals:
            delay = start + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.jobs.put((kind, path, start + t))
        while True:
            with self.lock:
                if len(self.results) - first == len(arrivals):
                    return self.results[first:]
            time.sleep(0.05)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def summary(rate, results, cpu_s, busy):
    renders = [r for r in results if r[0] == "render"]
    hits = [r for r in results if r[0] == "hit"]
    ok = [r[3] for r in renders if r[1] == 200]
    busy_503 = [r for r in renders if r[1] == 503]
    other = [(r[1], r[2]) for r in renders if r[1] not in (200, 503)]
    hit_times = [r[3] for r in hits]
    hit_errors = [(r[1], r[2]) for r in hits if r[1] != 200]
    lag = max(r[4] for r in results)
    print(f"{rate:>4g}/s renders: {len(renders)} sent, {len(ok)} × 200, {len(busy_503)} × 503 "
          f"({100 * len(busy_503) / max(len(renders), 1):.1f} %), other {other[:3] or 0}; "
          f"200 p50 {1000 * statistics.median(ok) if ok else float('nan'):.0f} ms, p99 {1000 * pct(ok, 0.99):.0f} ms; "
          f"503: {sum(r[3] < 1 for r in busy_503)} within 1 s, {sum(r[3] >= 1 for r in busy_503)} after")
    print(f"       hits: {len(hits)}, errors {len(hit_errors)} {hit_errors[:3]}, p50 {1000 * statistics.median(hit_times):.1f} ms,"
          f" p99 {1000 * pct(hit_times, 0.99):.0f} ms, max {1000 * max(hit_times):.0f} ms")
    print(f"       web CPU {1000 * cpu_s / len(results):.2f} ms per request ({1000 * cpu_s / max(len(ok), 1):.1f} ms "
          f"per render served, hits included); machine {100 * busy:.0f} % busy; client lag max {1000 * lag:.0f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="20,40")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--hits", type=float, default=20)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--env", action="append", default=[], help="K=V for the stack's environment")
    args = parser.parse_args()
    stack = ProdStack(root=args.root, env=dict(item.split("=", 1) for item in args.env))
    try:
        stack.start()
        client = Client(stack.port)
        paths = render_paths()
        # Warm-up: the hits' renders made, every process and thread past its first request.
        client.run({"hit": (50, itertools.cycle(HIT_PATHS)), "render": (5, paths)}, 5)
        print(f"root {args.root}, web processes {stack.web_pids()}, {args.seconds:g} s per rate, "
              f"hits {args.hits:g}/s; {' '.join(args.env)}")
        for rate in (float(r) for r in args.rates.split(",")):
            pids = stack.web_pids()
            cpu0, busy0 = cpu_seconds(pids), machine_busy()
            results = client.run({"hit": (args.hits, itertools.cycle(HIT_PATHS)), "render": (rate, paths)},
                                 args.seconds)
            busy1 = machine_busy()
            summary(rate, results, cpu_seconds(pids) - cpu0, (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]))
        print(f"web RSS: {', '.join(f'{rss_mib(pid):.0f}' for pid in stack.web_pids())} MiB")
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
