"""Cold bg-remove through the whole `make run` stack vs a bare warm `rembg.remove`, one run.

Usage: .venv/bin/python bench/bg_remove_latency.py [--runs 15] [--image tests/fixtures/astronaut.jpg]

Starts the embedded stack (granian + one Celery worker, SQLite, filesystem:// broker, local
storage) in a temporary folder, requests `?bg-remove=true` for N copies of the image under new
names (so each is a cold job), and records
  - first request → cutout served (what a user waits, including the client's polling), and
  - the job's own time (worker claimed → cutout stored), from the job status endpoint;
then stops the stack and times `rembg.remove(bytes, session=...)` with a warm session on the
same bytes and model. Prints medians and the ratio job / bare rembg.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise TimeoutError(url)


def measure_stack(image: Path, runs: int, model_home: Path, poll_interval: float):
    tmp = Path(tempfile.mkdtemp(prefix="cutout-bench-"))
    origin = tmp / "demo" / "origin"
    origin.mkdir(parents=True)
    for i in range(runs + 1):
        shutil.copy(image, origin / f"img{i}{image.suffix}")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME", "DJANGO_SETTINGS_MODULE")}
    env.update(PORT=str(port), CUTOUT_VAR_DIR=str(tmp / "var"), ORIGIN_LOCAL_ROOT=str(tmp / "demo"),
               BG_REMOVE_MODEL_HOME=str(model_home))
    log = (tmp / "stack.log").open("wb")
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    first_to_cutout, job_times = [], []
    try:
        wait_for(base + "/admin/login/")
        for i in range(runs + 1):  # The first one warms the worker's process and is dropped.
            url = f"{base}/render/demo/img{i}{image.suffix}?bg-remove=true"
            started = time.monotonic()
            response = requests.get(url, timeout=30)
            status_url = response.json()["status_url"]
            while response.status_code == 202:
                time.sleep(poll_interval)
                response = requests.get(url, timeout=30)
            elapsed = time.monotonic() - started
            assert response.status_code == 200, response.text
            job = requests.get(status_url, timeout=10).json()
            if i:
                first_to_cutout.append(elapsed)
                job_times.append(job["duration_seconds"])
        worker_rss = pool_rss_kib(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return first_to_cutout, job_times, worker_rss


def pool_rss_kib(root: int) -> int:
    """RSS of the Celery pool process (the one that runs jobs) among the stack's descendants."""
    rows = [line.split(None, 3) for line in subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,rss=,args="], capture_output=True, text=True).stdout.splitlines()]
    family, grew = {str(root)}, True
    while grew:
        before = len(family)
        family |= {row[0] for row in rows if row[1] in family}
        grew = len(family) > before
    celery = {row[0] for row in rows if row[0] in family and "celery" in row[3] and "worker" in row[3]}
    parents = {row[1] for row in rows if row[0] in celery}
    # The pool process is the celery process with no celery child (the shell and main process have one).
    pool = next(row[0] for row in rows if row[0] in celery and row[0] not in parents)
    return peak_rss_kib(f"/proc/{pool}/status")


def peak_rss_kib(status="/proc/self/status") -> int:
    # Peak (VmHWM), not current RSS: how much of the heap glibc has handed back varies run to run.
    return next(int(line.split()[1]) for line in open(status) if line.startswith("VmHWM:"))


def measure_bare_rembg(image: Path, runs: int, model_home: Path, model: str):
    os.environ["U2NET_HOME"] = str(model_home)
    from rembg import new_session, remove

    session = new_session(model, providers=["CPUExecutionProvider"])
    data = image.read_bytes()
    remove(data, session=session)  # Warm.
    times = []
    for _ in range(runs):
        started = time.monotonic()
        remove(data, session=session)
        times.append(time.monotonic() - started)
    return times


def spread(times) -> str:
    # The machine may be shared: the quartiles and extremes show how far to trust the medians.
    q1, _, q3 = statistics.quantiles(times, n=4)
    return f"(min {min(times):.3f}, quartiles {q1:.3f}-{q3:.3f}, max {max(times):.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--image", type=Path, default=ROOT / "tests" / "fixtures" / "astronaut.jpg")
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--poll-interval", type=float, default=0.1,
                        help="How often the client re-asks while it gets 202 (seconds).")
    args = parser.parse_args()
    model_home = Path(os.environ.get("BG_REMOVE_MODEL_HOME", ROOT / "var" / "models")).resolve()

    first, jobs, worker_rss = measure_stack(args.image, args.runs, model_home, args.poll_interval)
    bare = measure_bare_rembg(args.image, args.runs, model_home, args.model)
    bare_rss = peak_rss_kib()  # This process: Python, requests, rembg and one warm session.
    med = statistics.median
    print(f"image: {args.image.name}, model: {args.model}, runs: {args.runs}, cpus: {os.cpu_count()}")
    print(f"first request -> cutout served (median): {med(first):.3f} s  (poll every {args.poll_interval}s)")
    print(f"job time, worker claim -> stored (median): {med(jobs):.3f} s  {spread(jobs)}")
    print(f"bare rembg.remove, warm session (median):  {med(bare):.3f} s  {spread(bare)}")
    print(f"ratio job / bare rembg: {med(jobs) / med(bare):.2f}")
    print(f"ratio first-request-to-cutout / bare rembg: {med(first) / med(bare):.2f}")
    print(f"peak RSS, worker pool process: {worker_rss / 1024:.0f} MiB; rembg alone: {bare_rss / 1024:.0f} MiB; "
          f"ratio {worker_rss / bare_rss:.2f}")


if __name__ == "__main__":
    sys.exit(main())
