"""Shared by the benchmarks: start the `make run` stack in a temporary folder, and load a URL."""

import http.client
import os
import re
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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(conn, path, accept="image/webp"):
    conn.request("GET", path, headers={"Accept": accept})
    response = conn.getresponse()
    return response.status, response.read()


def wait_for(port, path, *, status=200, timeout=120):
    """GETs `path` until it answers `status` (a cutout is made on the way); returns the body."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, body = get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), path)
            if code == status:
                return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.3)


class Stack:
    """The web server and Celery exactly as platform/Procfile runs them, on the embedded defaults."""

    def __init__(self, images: list[Path]):
        self.tmp = Path(tempfile.mkdtemp(prefix="cutout-bench-"))
        (self.tmp / "demo" / "origin").mkdir(parents=True)
        for image in images:
            shutil.copy(image, self.tmp / "demo" / "origin")
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME", "DJANGO_SETTINGS_MODULE")}
        env.update(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="bench", CUTOUT_VAR_DIR=str(self.tmp / "var"),
                   ORIGIN_LOCAL_ROOT=str(self.tmp / "demo"), DJANGO_STATIC_ROOT=str(self.tmp / "static"),
                   BG_REMOVE_MODEL_HOME=str(ROOT / "var" / "models"), RENDER_RATE_LIMIT="1000000/s",
                   PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}")
        self.env = env
        for command in (["migrate", "-v0"], ["bootstrap_demo"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
        self.log = (self.tmp / "stack.log").open("wb")
        self.proc = None

    def start(self):
        """Each platform/Procfile line as its own process writing to the log file, as a process
        manager in production would run them. Not through honcho (which `make run` uses): its
        relay of every log line costs a third of the cached-hit throughput on two cores."""
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=self.env,
                       check=True)
        env = {**self.env, "PORT": str(self.port)}
        self.procs = []
        for line in (ROOT / "platform" / "Procfile").read_text().splitlines():
            name, _, command = line.partition(":")
            if name.strip() in ("web", "worker"):
                self.procs.append(subprocess.Popen(["sh", "-c", command.strip()], cwd=ROOT, env=env, stdout=self.log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
        self.proc = self.procs[0]

    def stop(self):
        """Every process the stack started is gone when this returns: each line's whole process
        group, which outlives its leader when a Celery pool process is still finishing a task."""
        group_stop(*getattr(self, "procs", []))
        self.procs = []

    def close(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def group_stop(*procs: subprocess.Popen):
    """SIGTERM to the process group of each of `procs` (each started with start_new_session),
    SIGKILL to what is left after 30 s; returns once no process of those groups is alive."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.poll()
        if group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        while group_members(proc.pid):
            time.sleep(0.05)
        proc.wait()


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def load(port, paths, seconds, connections, accept="image/webp", server=None):
    """Keep-alive clients request one path for `seconds`: req/s and latency percentiles, and,
    given `server` (a callable returning the server's process ids), the server's CPU
    milliseconds per request, read from /proc for all its processes: on a shared machine req/s
    mostly says how many threads each server got, CPU per request what a request costs it.

    With wrk installed (`apt-get install wrk`), wrk is the client: written in C, it leaves the
    two cores to the servers being compared. Without it, Python threads (slower, so the client's
    own cost narrows the gap between servers)."""
    pids = server() if server else []
    before = cpu_seconds(pids)
    if wrk_available() and len(paths) == 1:
        result = _wrk(port, paths[0], seconds, connections, accept)
    else:
        result = _python_load(port, paths, seconds, connections, accept)
    if server:
        result["cpu_ms"] = 1000 * (cpu_seconds(pids) - before) / max(result["requests"], 1)
    return result


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    """User and system CPU-seconds of `pids` (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _wrk(port, path, seconds, connections, accept):
    out = subprocess.run(
        ["wrk", "--latency", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "-H", f"Accept: {accept}",
         f"http://127.0.0.1:{port}{path}"], check=True, capture_output=True, text=True).stdout

    def ms(label):
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {"requests": requests_done, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "errors": (int(bad.group(1)) if bad else 0) + (1 if errors else 0), "client": "wrk"}


def _python_load(port, paths, seconds, connections, accept):
    latencies, errors = [], []
    stop = time.monotonic() + seconds
    counter = iter(range(10**9))
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop:
            with lock:
                path = paths[next(counter) % len(paths)]
            started = time.perf_counter()
            status, _ = get(conn, path, accept)
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
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[max(int(len(latencies) * 0.99) - 1, 0)],
        "errors": len(errors),
        "client": "python",
    }


def report(name, result):
    cpu = f"  CPU {result['cpu_ms']:6.3f} ms/req" if "cpu_ms" in result else ""
    print(f"{name:28s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms"
          f"{cpu}  errors {result['errors']}  ({result.get('client', 'python')} client)")


def once(port, paths, connections, accept="image/webp", server=None):
    """Each path requested exactly once (uncached work), spread over keep-alive clients; with
    `server`, its CPU milliseconds per request as for `load`."""
    pids = server() if server else []
    cpu_before = cpu_seconds(pids)
    queue = list(reversed(paths))
    lock = threading.Lock()
    latencies, errors = [], []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            started = time.perf_counter()
            status, _ = get(conn, path, accept)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before if server else None
    return _once_result(latencies, elapsed, len(errors), cpu)


def once_combine(results):
    """One result for several `once` runs on the same server (rounds interleaved with other
    servers, so a change in the machine's load falls on every server alike)."""
    cpu = [r["cpu_s"] for r in results]
    return _once_result([t for r in results for t in r["latencies"]], sum(r["elapsed"] for r in results),
                        sum(r["errors"] for r in results), None if None in cpu else sum(cpu))


def _once_result(latencies, elapsed, errors, cpu):
    latencies = sorted(latencies)
    result = {"requests": len(latencies), "rps": len(latencies) / elapsed,
              "p50_ms": 1000 * statistics.median(latencies),
              "p99_ms": 1000 * latencies[max(int(len(latencies) * 0.99) - 1, 0)], "errors": errors,
              "latencies": latencies, "elapsed": elapsed, "cpu_s": cpu}
    if cpu is not None:
        result["cpu_ms"] = 1000 * cpu / max(len(latencies), 1)
    return result
