"""`cutout` (the batch command) against the same kind of folder done one request at a time, in one run.

Starts the `make run` stack (granian, the Celery worker with u2netp; SQLite, `filesystem://`
broker) in a temporary folder, generates four folders of N distinct small images (a shape on a
background, as tests/cutout_client/ does), and cuts them out:

- remove.bg's API: `cutout removebg -j J` on one folder, a sequential curl-like loop (one POST at
  a time, a new connection each, waiting out 429s by their Retry-After) on another;
- rendering URLs: `cutout render -j J` on a folder of the demo source, and a sequential loop
  (one GET at a time, following each 202 after its Retry-After) on another.

Each folder is new to the server (distinct images, so every file is a new upload and a new job),
so both sides do the same work. Reports files/s, the server's CPU-seconds per file (web and
worker, from /proc) and the client's (the `cutout` process, or this loop).

    .venv/bin/python bench/batch_cutout.py [--files 40] [--jobs 4]
"""

import argparse
import http.client
import io
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Stack, cpu_seconds, group_members  # noqa: E402


def shape_image(n: int, size=(320, 240)) -> bytes:
    rng = random.Random(n)
    w, h = size
    image = Image.new("RGB", size, tuple(rng.randrange(150, 256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    box = (w // 4 + rng.randrange(-20, 20), h // 5, 3 * w // 4, 4 * h // 5 + rng.randrange(-20, 20))
    (draw.ellipse if n % 2 else draw.rectangle)(box, fill=tuple(rng.randrange(0, 110) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def folder(root: Path, name: str, count: int, seed: int) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for n in range(count):
        (path / f"{name}-{n:03d}.jpg").write_bytes(shape_image(seed * 10_000 + n))
    return path


def server_cpu(stack: Stack) -> float:
    return cpu_seconds([pid for proc in stack.procs for pid in group_members(proc.pid)])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(stack, files: int, work, client_cpu) -> dict:
    server_before, client_before = server_cpu(stack), client_cpu()
    started = time.perf_counter()
    failures = work()
    seconds = time.perf_counter() - started
    return {"files": files, "seconds": seconds, "rate": files / seconds, "failures": failures,
            "server_cpu": (server_cpu(stack) - server_before) / files,
            "client_cpu": (client_cpu() - client_before) / files}


def cutout_command(stack, mode, source_dir, out, jobs, extra) -> int:
    """The batch command as a user runs it; the number of files it did not cut out."""
    result = subprocess.run([sys.executable, "-m", "cutout_client", mode, str(source_dir), str(out), "--server",
                             f"http://127.0.0.1:{stack.port}", "-j", str(jobs), "--no-progress", *extra],
                            cwd=ROOT, env=stack.env, capture_output=True, text=True)
    summary = [line for line in result.stdout.splitlines() if line.startswith("cutout:")]
    print("   ", summary[-1] if summary else result.stdout[-500:] + result.stderr[-500:])
    made = len(list(Path(out).glob("*.png")))
    return len(list(Path(source_dir).glob("*.jpg"))) - made


def _send(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # A new connection, as curl's.
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Retry-After"), response.read()
    finally:
        conn.close()


def sequential_removebg(port, key, source_dir: Path, out: Path) -> int:
    out.mkdir(parents=True)
    failures = 0
    for path in sorted(source_dir.glob("*.jpg")):
        boundary = "cutoutbench"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image_file\"; filename=\"{path.name}\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        headers = {"X-Api-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        for _ in range(30):
            status, retry_after, data = _send(port, "POST", "/v1.0/removebg", body, headers)
            if status not in (429, 503):
                break
            time.sleep(float(retry_after or 1))
        if status == 200:
            (out / f"{path.stem}.png").write_bytes(data)
        else:
            failures += 1
    return failures


def sequential_render(port, source_dir: Path, out: Path, prefix: str) -> int:
    out.mkdir(parents=True)
    failures = 0
    for path in sorted(source_dir.glob("*.jpg")):
        url = f"/render/demo/{prefix}/{path.name}?bg-remove=true&fm=png"
        for _ in range(120):
            status, retry_after, data = _send(port, "GET", url)
            if status not in (202, 429, 503):
                break
            time.sleep(float(retry_after or 1))
        if status == 200:
            (out / f"{path.stem}.png").write_bytes(data)
        else:
            failures += 1
    return failures


def report(name, result):
    print(f"{name:34s} {result['files']:4d} files {result['seconds']:7.1f} s {result['rate']:6.2f} files/s  "
          f"server CPU {result['server_cpu']:6.3f} s/file  client CPU {result['client_cpu']:6.3f} s/file  "
          f"failed {result['failures']}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=40, help="images per folder (default 40)")
    parser.add_argument("--jobs", type=int, default=4, help="the batch command's -j (default 4)")
    args = parser.parse_args()

    stack = Stack([])
    try:
        stack.env.update(REMOVEBG_DEFAULT_CREDITS="100000", BG_REMOVE_RATE_LIMIT="100000/m",
                         RENDER_RATE_LIMIT="1000000/m",
                         # A worktree without its own .venv and var/models: this interpreter's, the set models.
                         PATH=f"{Path(sys.executable).parent}:{stack.env['PATH']}",
                         BG_REMOVE_MODEL_HOME=os.environ.get("BG_REMOVE_MODEL_HOME", stack.env["BG_REMOVE_MODEL_HOME"]))
        key = subprocess.run([sys.executable, "manage.py", "create_api_key", "demo", "--scopes", "removebg"],
                             cwd=ROOT, env=stack.env, check=True, capture_output=True, text=True).stdout.strip()
        origin = stack.tmp / "demo" / "origin"
        sets = {name: folder(origin, name, args.files, seed) for seed, name in
                enumerate(["warm", "api-batch", "api-seq", "url-batch", "url-seq"])}
        outputs = stack.tmp / "out"
        stack.start()
        port = stack.port
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if _send(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        print(f"server http://127.0.0.1:{port}, {args.files} images of 320×240 per folder, -j {args.jobs}", flush=True)
        # Warm-up: both worker pool processes load the model, the web processes their code.
        sequential_removebg(port, key, sets["warm"], outputs / "warm")

        n = args.files
        results = {
            "removebg, one at a time": measured(stack, n, lambda: sequential_removebg(
                port, key, sets["api-seq"], outputs / "api-seq"), own_cpu),
            f"removebg, cutout -j {args.jobs}": measured(stack, n, lambda: cutout_command(
                stack, "removebg", sets["api-batch"], outputs / "api-batch", args.jobs,
                ["--key", key]), children_cpu),
            "render URLs, one at a time": measured(stack, n, lambda: sequential_render(
                port, sets["url-seq"], outputs / "url-seq", "url-seq"), own_cpu),
            f"render URLs, cutout -j {args.jobs}": measured(stack, n, lambda: cutout_command(
                stack, "render", sets["url-batch"], outputs / "url-batch", args.jobs,
                ["--source", "demo", "--prefix", "url-batch"]), children_cpu),
        }
        for name, result in results.items():
            report(name, result)
        api = results[f"removebg, cutout -j {args.jobs}"]["rate"] / results["removebg, one at a time"]["rate"]
        url = results[f"render URLs, cutout -j {args.jobs}"]["rate"] / results["render URLs, one at a time"]["rate"]
        print(f"batch / sequential files/s: removebg {api:.2f}×, render URLs {url:.2f}×")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
