"""Cached bg-removed render through the full stack vs a static file of the same size, one run.

Usage: .venv/bin/python bench/cached_render.py [--seconds 8] [--connections 8]

Starts the web server (granian) and a worker exactly as platform/Procfile does (embedded
defaults), makes the cutout of tests/fixtures/astronaut.jpg, then loads the same server with
keep-alive clients (wrk when installed) for
  - the cached render, repeated:  /render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp
    (answered before Django, rendering/hot.py);
  - the cached render through Django: the same render under a new spelling of its query each
    time (characters percent-encoded by a counter; wrk and a Lua script), so no URL repeats, as
    behind a CDN, and every request goes through Django to the (cached) render lookup;
  - a static file with the very same bytes, served by granian itself (--static-path-mount);
  - the same static file served by the same server through WhiteNoise (Django);
With --s3, instead: a hit that misses the processes' memory (RENDER_LOOKUP_CACHE_SECONDS=0, so
every request looks its render up and reads its bytes), on local files, on S3 (moto[server] over
HTTP) through the node cache, and on S3 without it (RENDER_NODE_CACHE_BYTES=0); CPU per request
of each and the ratios to local files (target: S3 through the node cache <= 1.5x local).

And, with --gunicorn, the same cached render from the same application under gunicorn
(2 workers × 4 threads, the server the platform used before granian; installed into the
project's virtual environment if missing). Prints the server's CPU milliseconds per request (from
/proc, all its processes), requests/s and p50/p99 latency, and the ratios; CPU per request is the
headline on a shared machine.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from common import ROOT, Stack, cpu_seconds, free_port, group_members, load, report, wait_for, wrk_available


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
# granian's own static files (its --static-path-* options, set through the environment).
GRANIAN_STATIC = "/granian-static/same-size.webp"

# Each request a spelling of RENDER's query not sent before: the counter's bits choose which
# letters and digits are percent-encoded. Each wrk thread counts from its own offset.
_VARIANTS_LUA = """
local path, query = "%s", "%s"
local thread_id, counter = 0, 0
function setup(thread) thread:set("offset", thread_id * 1000000); thread_id = thread_id + 1 end
function init(args) counter = offset end
function request()
  counter = counter + 1
  local n, out = counter, {}
  for i = 1, #query do
    local c = query:sub(i, i)
    if c:match("%%w") then
      if n %% 2 == 1 then c = string.format("%%%%%%02X", c:byte()) end
      n = math.floor(n / 2)
    end
    out[#out + 1] = c
  end
  return wrk.format(nil, path .. "?" .. table.concat(out))
end
"""


def load_variants(port, seconds, connections, server):
    """RENDER under a new spelling of its query for each request (wrk): CPU ms per request."""
    path, _, query = RENDER.partition("?")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_VARIANTS_LUA % (path, query))
    try:
        pids = server()
        before = cpu_seconds(pids)
        out = subprocess.run(["wrk", "--latency", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s",
                              "-s", script.name, "-H", "Accept: image/webp", f"http://127.0.0.1:{port}"],
                             check=True, capture_output=True, text=True).stdout
        spent = cpu_seconds(pids) - before
    finally:
        os.unlink(script.name)
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    return {"requests": done, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": float(p50.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p50.group(2)], "p99_ms": 0.0,
            "errors": int(bad.group(1)) if bad else 0, "client": "wrk", "cpu_ms": 1000 * spent / max(done, 1)}


# A plain render (no cutout, so no worker is needed), larger than one socket read.
PLAIN = "/render/demo/astronaut.jpg?w=256&fm=webp"


def moto_start():
    """An S3-compatible server (moto[server]) with a bucket: (process, endpoint)."""
    import boto3

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                         aws_secret_access_key="bench").create_bucket(Bucket="bench")
            return proc, endpoint
        except Exception:  # Not listening yet.
            time.sleep(0.1)
    raise TimeoutError("moto did not start")


def s3_main(args):
    moto, endpoint = moto_start()
    s3 = {"AWS_STORAGE_BUCKET_NAME": "bench", "AWS_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
          "AWS_SECRET_ACCESS_KEY": "bench"}
    stacks = {"local files": {}, "S3, node cache": s3, "S3, no node cache": {**s3, "RENDER_NODE_CACHE_BYTES": "0"}}
    results = {}
    try:
        for name, extra in stacks.items():
            stack = Stack([ROOT / "tests" / "fixtures" / "astronaut.jpg"])
            stack.env.update(RENDER_LOOKUP_CACHE_SECONDS="0", **extra)
            try:
                stack.start()
                body = wait_for(stack.port, PLAIN)
                load(stack.port, [PLAIN], 1, args.connections)  # Warm: every process has read it once.
                web = lambda: group_members(stack.proc.pid)  # noqa: E731
                results[name] = load(stack.port, [PLAIN], args.seconds, args.connections, server=web)
            finally:
                stack.close()
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(timeout=30)
    print(f"{len(body)} bytes, a hit with no per-process caching (RENDER_LOOKUP_CACHE_SECONDS=0), "
          f"{args.connections} keep-alive connections, {args.seconds:g} s each, cpus: {os.cpu_count()}")
    for name, result in results.items():
        report(name, result)
    local = results["local files"]["cpu_ms"]
    for name in ("S3, node cache", "S3, no node cache"):
        print(f"CPU per request {name} / local files: {results[name]['cpu_ms'] / local:.2f}")
    print("(target: S3 through the node cache <= 1.5)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--gunicorn", action="store_true", help="also the cached render under gunicorn")
    parser.add_argument("--s3", action="store_true", help="a hit on local files vs on S3, with and without the node cache")
    args = parser.parse_args()
    if args.s3:
        return s3_main(args)
    peer = None
    stack = Stack([ROOT / "tests" / "fixtures" / "astronaut.jpg"])
    try:
        stack.start()
        body = wait_for(stack.port, RENDER)
        stack.stop()
        # WhiteNoise reads its files at start-up: put the same bytes there, then start again.
        (stack.tmp / "static" / "bench").mkdir(parents=True, exist_ok=True)
        (stack.tmp / "static" / "bench" / "same-size.webp").write_bytes(body)
        (stack.tmp / "granian-static").mkdir(exist_ok=True)
        (stack.tmp / "granian-static" / "same-size.webp").write_bytes(body)
        stack.env.update(GRANIAN_STATIC_PATH_MOUNT=str(stack.tmp / "granian-static"),
                         GRANIAN_STATIC_PATH_ROUTE="/granian-static")
        stack.start()
        wait_for(stack.port, STATIC)
        wait_for(stack.port, GRANIAN_STATIC)
        wait_for(stack.port, RENDER)
        for path in (RENDER, STATIC, GRANIAN_STATIC):
            load(stack.port, [path], 1, args.connections)  # Warm.
        web = lambda: group_members(stack.proc.pid)  # noqa: E731  The web server's processes.
        cached = load(stack.port, [RENDER], args.seconds, args.connections, server=web)
        own = load(stack.port, [GRANIAN_STATIC], args.seconds, args.connections, server=web)
        django = load_variants(stack.port, args.seconds, args.connections, web) if wrk_available() else None
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
    report("cached render, repeated", cached)
    if django is not None:
        report("cached render, via Django", django)
    report("static file, granian", own)
    report("static file, WhiteNoise", static)
    print(f"CPU per request repeated hit / granian's static file: {cached['cpu_ms'] / own['cpu_ms']:.2f}"
          "  (the headline; target <= 1.1)")
    if django is not None:
        print(f"CPU per request of a hit through Django: {django['cpu_ms']:.3f} ms  (target <= 0.3 ms)")
    print(f"CPU per request cached/WhiteNoise static: {cached['cpu_ms'] / static['cpu_ms']:.2f}")
    print(f"throughput cached/static: {cached['rps'] / static['rps']:.2f}")
    print(f"p50 cached/static: {cached['p50_ms'] / static['p50_ms']:.2f}")
    if peer is not None:
        report("cached render, gunicorn", peer)
        print(f"throughput granian/gunicorn: {cached['rps'] / peer['rps']:.2f}")


if __name__ == "__main__":
    main()
