"""The remove.bg API's costliest calls against the real web server, next to a normal one.

Usage: .venv/bin/python bench/removebg_hostile.py [--timeout 180] [--only json]

Starts the `make run` stack (platform/Procfile: granian and a Celery worker, embedded defaults)
with the astronaut, at 512² and at 10 megapixels (the largest cutout a job stores,
BG_REMOVE_MAX_PIXELS), and a 10-megapixel noise background, gives the demo account a key with the `removebg` scope and credits, has
the worker cut both out, then sends each call once, one at a time, and prints what it cost the
web server: CPU-seconds (every granian process, from /proc), RSS growth and peak (VmHWM, reset
through clear_refs first, as bench/hostile.py), status and wall time. The first call of a set of
options makes its result; the same call again reads it from the render store ("again" rows).
The JSON-structure cases (33 MB of nested empty objects, once and four at once; a million flat
fields) need no cutout: `--only json` sends just those, next to a normal call's refusal.
"""

import argparse
import base64
import http.client
import io
import json
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
from common import ROOT, Stack, cpu_seconds, wait_for
from hostile import reset_peaks, status_kib, web_pids
from PIL import Image

sys.path.insert(0, str(ROOT))


def multipart(fields: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):  # (filename, bytes)
            head = f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n' \
                   "Content-Type: application/octet-stream\r\n\r\n"
            parts.append(f"--{boundary}\r\n{head}".encode() + value[1] + b"\r\n")
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(port, key, path, body, content_type, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, body=body, headers={"X-Api-Key": key, "Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.getheader("Content-Type", ""), response.read()


def measure(port, pids, key, fields, timeout, *, json_body=None, raw=None, at_once=1):
    """One call (or `at_once` identical calls in parallel; the status is the first's)."""
    if raw is not None:
        body, kind = raw, "application/json"
    elif json_body is not None:
        body, kind = json.dumps(json_body).encode(), "application/json"
    else:
        body, kind = multipart(fields)
    reset_peaks(pids)
    time.sleep(0.2)
    before = {pid: status_kib(pid, "VmRSS") for pid in pids}
    cpu = cpu_seconds(pids)
    started = time.perf_counter()
    others = [threading.Thread(target=_post_quietly, args=(port, key, body, kind, timeout)) for _ in range(at_once - 1)]
    for thread in others:
        thread.start()
    try:
        status, content_type, data = post(port, key, "/v1.0/removebg", body, kind, timeout)
        info = content_type
        if content_type.startswith("image/"):
            with Image.open(io.BytesIO(data)) as image:
                info = f"{content_type.split('/')[1]} {image.width}×{image.height}"
        elif "json" in content_type:
            info = json.loads(data).get("errors", [{}])[0].get("code", "")
        elif content_type == "application/zip":
            info = f"zip {len(data)} bytes"
    except (OSError, http.client.HTTPException) as exc:
        status, info = 0, type(exc).__name__
    for thread in others:
        thread.join()
    wall = time.perf_counter() - started
    time.sleep(0.3)
    cpu = cpu_seconds(pids) - cpu
    peaks = {pid: status_kib(pid, "VmHWM") for pid in pids}
    # Summed over the processes: calls at once may land on different ones.
    growth = sum(max(peaks[pid] - before[pid], 0) for pid in pids)
    return status, cpu, growth / 1024, max(peaks.values()) / 1024, wall, info


def _post_quietly(port, key, body, kind, timeout):
    try:
        post(port, key, "/v1.0/removebg", body, kind, timeout)
    except (OSError, http.client.HTTPException):
        pass


def json_cases(port, pids, key, timeout) -> list:
    """A body of nested empty objects just under REMOVEBG_MAX_REQUEST_BYTES (json.loads builds
    every object before anything can look at it), and a million flat fields, next to a normal
    small JSON call (refused for its missing image, so no cutout is needed)."""
    nested = b'{"image_url": "x", "a": [' + b"{}," * 11_000_000 + b"{}]}"
    flat = b"{" + b",".join(b'"f%d":0' % i for i in range(1_000_000)) + b"}"
    return [
        ("JSON: a normal small call (no image)", measure(port, pids, key, {}, timeout, json_body={"size": "preview"})),
        (f"JSON: {len(nested) / 1e6:.0f} MB of nested empty objects",
         measure(port, pids, key, {}, timeout, raw=nested)),
        (f"JSON: {len(nested) / 1e6:.0f} MB of nested empty objects, 4 at once",
         measure(port, pids, key, {}, timeout, raw=nested, at_once=4)),
        (f"JSON: a million flat fields ({len(flat) / 1e6:.0f} MB)", measure(port, pids, key, {}, timeout, raw=flat)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--only", choices=["json"], help="send only these cases (no cutouts needed)")
    args = parser.parse_args()
    photo = (ROOT / "tests" / "fixtures" / "astronaut.jpg").read_bytes()
    # The astronaut at 10 megapixels (3162²): the largest cutout a job keeps, with a subject in it.
    big = io.BytesIO()
    Image.open(io.BytesIO(photo)).resize((3162, 3162), Image.Resampling.LANCZOS).save(big, "JPEG", quality=90)
    big = big.getvalue()
    noise = np.random.default_rng(7).integers(0, 256, (2500, 4000, 3), dtype=np.uint8)
    back = io.BytesIO()
    Image.fromarray(noise).save(back, "JPEG", quality=60)  # A 10 MP background of noise, under 12 MB.
    back = back.getvalue()
    stack = Stack([ROOT / "tests" / "fixtures" / "astronaut.jpg"])
    stack.env["REMOVEBG_WAIT_SECONDS"] = "120"
    stack.env["REMOVEBG_DEFAULT_CREDITS"] = "1000"
    key = subprocess.run([sys.executable, "manage.py", "create_api_key", "demo", "--scopes", "removebg"],
                         cwd=ROOT, env=stack.env, check=True, capture_output=True, text=True).stdout.strip()
    rows = []
    try:
        stack.start()
        wait_for(stack.port, "/render/demo/astronaut.jpg?w=10")
        pids = web_pids(stack.proc.pid)
        if args.only == "json":
            rows.extend(json_cases(stack.port, pids, key, args.timeout))
            return
        # The cutouts first (the worker's work, not measured here): a preview call waits for each.
        for image in (photo, big):
            status, _, body = post(stack.port, key, "/v1.0/removebg", *multipart({"image_file": ("i.jpg", image)}),
                                   args.timeout)
            assert status == 200, body[:300]
        cases = [
            ("normal: 512² photo, preview png", {"image_file": ("a.jpg", photo)}),
            ("normal: 512² photo, full png", {"image_file": ("a.jpg", photo), "size": "full"}),
            ("10 MP photo, full png", {"image_file": ("n.jpg", big), "size": "full"}),
            ("10 MP photo, full zip + shadow + crop_margin",
             {"image_file": ("n.jpg", big), "size": "full", "format": "zip", "add_shadow": "true",
              "crop": "true", "crop_margin": "10%"}),
            ("10 MP photo, full, 10 MP noise bg_image_file, shadow, jpg",
             {"image_file": ("n.jpg", big), "size": "full", "bg_image_file": ("b.jpg", back), "add_shadow": "true",
              "format": "jpg"}),
            ("10 MP photo, full, scale=10% position=0% 100%, webp",
             {"image_file": ("n.jpg", big), "size": "full", "scale": "10%", "position": "0% 100%", "format": "webp"}),
        ]
        for name, fields in cases:
            rows.append((name, measure(stack.port, pids, key, fields, args.timeout)))
            rows.append((name + " (again)", measure(stack.port, pids, key, fields, args.timeout)))
        bomb = io.BytesIO()
        Image.new("L", (30000, 30000)).save(bomb, "PNG", optimize=True)  # 900 MP of zeros, a few hundred KB.
        rows.append(("decompression bomb PNG (900 MP) upload",
                     measure(stack.port, pids, key, {"image_file": ("bomb.png", bomb.getvalue())}, args.timeout)))
        rows.append(("20 MB base64 in JSON (over the byte cap)",
                     measure(stack.port, pids, key, {}, args.timeout,
                             json_body={"image_file_b64": base64.b64encode(b"\xff" * 15_000_000).decode()})))
        rows.extend(json_cases(stack.port, pids, key, args.timeout))
    finally:
        stack.close()
        report(rows)


def report(rows):
    print(f"{'case':58s} {'status':>6s} {'CPU-s':>7s} {'RSS +MB':>8s} {'peak MB':>8s} {'wall s':>7s}  answer")
    for name, (status, cpu, growth, peak, wall, info) in rows:
        print(f"{name:58s} {status:6d} {cpu:7.2f} {growth:8.0f} {peak:8.0f} {wall:7.2f}  {info}")


if __name__ == "__main__":
    main()
