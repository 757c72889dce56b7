"""Hostile requests against the real web server: what each one costs it, next to a normal render.

Usage: .venv/bin/python bench/hostile.py [--repeat 1] [--only SUBSTRING] [--timeout 120] [--slow-only | --no-slow]

Starts the `make run` stack (platform/Procfile: granian, 2 workers × 4 threads, and a Celery
worker; embedded defaults) in a temporary folder with tiny origins (2×2 pixels), a 12 MB noise
PNG (the costliest content an encoder meets) and, when tests/hostile.py is there, every hostile
origin file of its HOSTILE registry. Sends each case once, one at a time, and prints the web
server's CPU-seconds (utime + stime of every granian process, from /proc) and its RSS growth (the
largest VmHWM after the request minus VmRSS before it, over the granian processes, with VmHWM
reset through /proc/PID/clear_refs first), the status and the wall time. A case is flagged when
it costs over 3 CPU-s or 600 MB, or answers 5xx (503 render_busy excepted: cases run one at a time).

Then the slow peers and the loop (issue 20), each measured the same way over the whole attack, while
a client asks for a cached render every 50 ms (its latencies say whether the server still answers),
next to a normal request of the same kind: 20 clients sending a request body a byte a second
(`slow body`), 20 renders of a web-folder source whose origin trickles a byte a second
(`trickling origin`), 20 clients that ask for a 16.7 MB render and read none of it (`slow
readers`), and a mark on another host that redirects to our own render URL carrying the same mark
(`redirect loop`), watched for 15 s after its client gave up.
"""

import argparse
import http.client
import io
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import numpy as np
from common import ROOT, Stack, cpu_seconds, wait_for
from PIL import Image

sys.path.insert(0, str(ROOT))

CPU_LIMIT = 3.0  # CPU-seconds per request (issue 11's target).
RSS_LIMIT = 600  # MB of RSS growth per request.
BIG = "w=8192&h=8192&fit=scale"
AVIF_ACCEPT = "image/avif,image/webp,*/*"
MARK = "w=2000&h=2000&fit=scale&fm=png"  # A mark at its largest allowed: 4 MP of PNG (budget.py).

# (name, path?query, Accept): the output budget's levers, each at its worst, and the worst that is allowed.
CASES = [
    ("normal: 512² photo → w=400 webp", "astronaut.jpg?w=400&fm=webp", ""),
    ("normal: 512² photo → w=1200 jpg", "astronaut.jpg?w=1200&fm=jpg", ""),
    ("2×2 → 8192² jpg (clamped)", f"tiny.png?{BIG}&fm=jpg", ""),
    ("2×2 → 8192² pjpg (clamped)", f"tiny.png?{BIG}&fm=pjpg", ""),
    ("2×2 → 8192² png", f"tiny.png?{BIG}&fm=png", ""),
    ("2×2 → 8192² png8", f"tiny.png?{BIG}&fm=png8", ""),
    ("2×2 → 8192² gif", f"tiny.png?{BIG}&fm=gif", ""),
    ("2×2 → 8192² webp", f"tiny.png?{BIG}&fm=webp", ""),
    ("2×2 → 8192² webp lossless", f"tiny.png?{BIG}&fm=webp&lossless=true", ""),
    ("2×2 → 8192² avif", f"tiny.png?{BIG}&fm=avif", ""),
    ("2×2 → 8192² auto=format", f"tiny.png?{BIG}&auto=format", AVIF_ACCEPT),
    ("2×2 → 2500² auto=format (avif→webp)", "tiny.png?w=2500&h=2500&fit=scale&auto=format", AVIF_ACCEPT),
    ("2×2 → dpr=5 crop 8192²", "tiny.png?w=1639&h=1639&dpr=5&fit=crop&fm=jpg", ""),
    ("2×2 → 8192² fill=blur", "tiny.png?w=8192&h=4096&fit=fill&fill=blur&fm=jpg", ""),
    ("2×2 → 8192² fit=fill (transparent) webp", "tiny.png?w=8192&h=2048&fit=fill&fm=webp", ""),
    ("2×2 → 8192² fit=clamp", "tiny.png?w=8192&h=8192&fit=clamp&fm=jpg", ""),
    ("photo → 8192² crop=entropy", "astronaut.jpg?w=8192&h=8192&fit=crop&crop=entropy&fm=jpg", ""),
    ("2×2 alpha → 8192² bg=80FF0000", f"tiny-alpha.png?{BIG}&bg=80ff0000&fm=jpg", ""),
    ("2×2 alpha → 8192² bg, webp", f"tiny-alpha.png?{BIG}&bg=80ff0000&fm=webp", ""),
    ("mark-tile=grid, 2 px mark, 8192²", f"tiny.png?{BIG}&fm=jpg&mark=dot.png&mark-tile=grid&mark-pad=0", ""),
    ("mark-tile=grid, 50 px mark (5041 tiles)", f"tiny.png?{BIG}&fm=jpg&mark=mark50.png&mark-tile=grid&mark-pad=0", ""),
    ("mark-w=8192 mark-rot=45", "tiny.png?w=2000&h=2000&fit=scale&fm=jpg&mark=dot.png&mark-w=8192&mark-h=8192&mark-rot=45", ""),
    ("mark-w=1998 mark-rot=45 (allowed)", "tiny.png?w=2000&h=2000&fit=scale&fm=jpg&mark=dot.png&mark-w=1998&mark-h=1998&mark-rot=45", ""),
    ("mark-scale=100 on 8192²", f"tiny.png?{BIG}&fm=jpg&mark=dot.png&mark-scale=100", ""),
    ("noise 2000² → avif at its own size (scaled to the AVIF ceiling)", "noise.png?fm=avif", ""),
    ("noise → 1449² avif (allowed)", "noise.png?w=1449&h=1449&fit=scale&fm=avif", ""),
    ("noise → 1000² gif (allowed)", "noise.png?w=1000&h=1000&fit=scale&fm=gif", ""),
    ("noise → 1000² png8 (allowed)", "noise.png?w=1000&h=1000&fit=scale&fm=png8", ""),
    ("noise → 1414² webp lossless (allowed)", "noise.png?w=1414&h=1414&fit=scale&fm=webp&lossless=true", ""),
    ("noise 2000² → png (allowed)", "noise.png?fm=png", ""),
    ("noise 2000² → webp (allowed)", "noise.png?fm=webp", ""),
    ("noise → 3464² jpg (allowed)", f"noise.png?{BIG}&fm=jpg", ""),
    ("noise → 3840×2160 webp (allowed)", "noise.png?w=3840&h=2160&fit=scale&fm=webp", ""),
    ("noise → 4000² webp (over budget)", "noise.png?w=4000&h=4000&fit=scale&fm=webp", ""),
    # Marks that are renderings, nested as deep as allowed, each level at its worst allowed size.
    ("nested marks, two deep, 2000² PNG marks on 8192²", f"tiny.png?{BIG}&fm=jpg&mark=" + quote(
        f"tiny-alpha.png?{MARK}&mark=" + quote(f"dot.png?{MARK}", safe=""), safe=""), ""),
    # trim decodes at full size (its box needs every pixel); pad grows the canvas.
    ("trim=auto on noise 2000²", "noise.png?trim=auto&trim-md=255&trim-sd=255&fm=png", ""),
    ("trim=color, trim-tol=255 on noise → w=2000 jpg", "noise.png?trim=color&trim-tol=255&w=2000&fm=jpg", ""),
    ("pad=8192 on every side of 2×2", "tiny.png?pad=8192&fm=jpg", ""),
    ("pad=8192 with w=h=8192 fit=fill", "tiny.png?w=8192&h=8192&fit=fill&pad=8192&fm=jpg", ""),
    # Issue 22's stages, each at its worst on the largest output (the 2×2 origin scaled to the
    # output ceiling, noise where content matters) — one stage per case.
    ("stage: blur=1 (full-size σ) on 8192²", f"noise.png?{BIG}&blur=1&fm=jpg", ""),
    ("stage: blur=2000 on 8192²", f"noise.png?{BIG}&blur=2000&fm=jpg", ""),
    ("stage: px=2 on 8192²", f"noise.png?{BIG}&px=2&fm=jpg", ""),
    ("stage: htn=1 on 8192²", f"noise.png?{BIG}&htn=1&fm=jpg", ""),
    ("stage: monochrome, sepia, duotone on 8192²", f"noise.png?{BIG}&mono=80c82828&sepia=50&duotone=000,ff0&fm=jpg", ""),
    ("stage: rot=45 pivot on 8192²", f"noise.png?{BIG}&rot=45&rot-type=pivot&fm=jpg", ""),
    ("stage: rot=45 straighten on 8192²", f"noise.png?{BIG}&rot=45&fm=jpg", ""),
    ("stage: border 4000 + radii + stroke on 8192²", f"noise.png?{BIG}&border=4000,80ff0000&border-radius=8192"
     "&border-radius-inner=3000&border-stroke-size=2000&border-stroke-color=800000ff&fm=jpg", ""),
    ("stage: mask=ellipse on 8192²", f"noise.png?{BIG}&mask=ellipse&mask-bg=80ff0000&fm=png", ""),
    ("stage: fill=gradient radial lch, 8192²", "tiny.png?w=8192&h=8192&fit=fill&fill=gradient&fill-gradient-type=radial"
     "&fill-gradient-radial=80ff0000,blue&fill-gradient-cs=lch&fm=jpg", ""),
    ("stage: transparency=grid&grid-size=1 on 8192² alpha", f"tiny-alpha.png?{BIG}&transparency=grid&grid-size=1&fm=jpg", ""),
    # shadow: the whole canvas casting (a translucent 2×2 scaled up), at the largest blur still
    # done at full size, the largest blur and offsets (× dpr 5, on a reduced copy), a hard
    # contact ellipse as wide as the canvas, and a photo's rectangle cast into pad's margins.
    ("stage: shadow=drop, full-size σ (blur=11) on 8192² alpha", f"tiny-alpha.png?{BIG}&shadow=drop&shadow-blur=11"
     "&fm=jpg", ""),
    ("stage: shadow=drop, blur and offsets at their largest, dpr=5", f"tiny-alpha.png?{BIG}&dpr=5&shadow=drop"
     "&shadow-blur=1000&shadow-x=-1000&shadow-y=1000&fm=jpg", ""),
    ("stage: shadow=contact&shadow-blur=0 on 8192² alpha", f"tiny-alpha.png?{BIG}&shadow=contact&shadow-blur=0"
     "&fm=jpg", ""),
    ("stage: shadow=drop on 8192² noise inside pad=1000", f"noise.png?{BIG}&pad=1000&shadow=drop&shadow-blur=11&bg=fff"
     "&fm=jpg", ""),
    ("stage: txt: 1024 W at 2048 px, outline, shadow", f"noise.png?{BIG}&fm=jpg&txt=" + "W" * 1024
     + "&txt-size=2048&txt-line=100&txt-shad=10&txt-clip=middle,ellipsis&txt-align=middle,center", ""),
    ("stage: txt: lines of 256 px filling 8192²", f"noise.png?{BIG}&fm=jpg&txt=" + quote(("W" * 36 + "\n") * 27)
     + "&txt-size=256&txt-line=100&txt-shad=10&txt-align=top,left", ""),
    ("stage: blend hue (3D table) on 8192²", f"noise.png?{BIG}&blend=ff8000&bm=hue&fm=jpg", ""),
    ("stage: blend overlay on 8192²", f"noise.png?{BIG}&blend=ff8000&fm=jpg", ""),
    ("stage: blend image (noise, inherit) overlay", f"noise.png?{BIG}&blend=noise.png&bs=inherit&fm=jpg", ""),
    ("stage: blend image hue at its 2 MP bound", "noise.png?w=1414&h=1414&fit=scale&blend=noise.png&bs=inherit"
     "&bm=hue&fm=jpg", ""),
    ("stage: blend image hue over its bound (refused)", f"noise.png?{BIG}&blend=noise.png&bs=inherit&bm=hue"
     "&fm=jpg", ""),
    ("stage: mask image (noise) on 8192²", f"noise.png?{BIG}&mask=noise.png&fm=png", ""),
    ("stage: auto=enhance on 8192²", f"noise.png?{BIG}&auto=enhance&fm=jpg", ""),
    ("stage: palette=json&colors=16 on 8192²", f"noise.png?{BIG}&palette=json&colors=16", ""),
    ("stage: fp-debug on an 8192² crop", f"noise.png?{BIG}&fit=crop&crop=focalpoint&fp-debug=true&fm=jpg", ""),
    ("stage: jpg q=100, 4:4:4, progressive, colorquant=255", f"noise.png?{BIG}&fm=jpg&q=100&chromasub=444"
     "&jpg-progressive=true&colorquant=255", ""),
    ("stage: webp colorquant=255 q=100", f"noise.png?{BIG}&fm=webp&q=100&colorquant=255", ""),
    ("stage: every adjustment at once on 8192²", f"noise.png?{BIG}&bri=10&con=10&exp=10&gam=10&high=-50&shad=50"
     "&hue=90&sat=20&vib=50&invert=true&fm=jpg", ""),
    ("stage: nr=100&nrs=100 on 8192²", f"noise.png?{BIG}&nr=100&nrs=100&fm=jpg", ""),
    ("stage: sharp=100&usm=100&usmrad=1.5 on 8192²", f"noise.png?{BIG}&sharp=100&usm=100&usmrad=1.5&fm=jpg", ""),
    ("stage: sharpen on an 8192² alpha canvas", f"tiny-alpha.png?{BIG}&sharp=100&usm=100&usmrad=1.5&fm=png", ""),
    ("stage: crop=faces on 8192² noise", f"noise.png?{BIG}&fit=crop&crop=faces&fm=jpg", ""),
    ("stage: face-blur, face-pixel, redeye on 8192²", f"noise.png?{BIG}&face-blur=100&face-pixel=100&auto=redeye"
     "&fm=jpg", ""),
    ("stage: fit=facearea facepad=10", "noise.png?w=4000&h=4000&fit=facearea&facepad=10&fm=jpg", ""),
    ("nested marks, three deep (refused)", "tiny.png?w=100&fm=jpg&mark=" + quote(
        "tiny-alpha.png?w=50&mark=" + quote("dot.png?w=20&mark=" + quote("mark50.png?w=5", safe=""), safe=""),
        safe=""), ""),
]


def origins(folder: Path) -> list[Path]:
    """The origin files the cases name, written into `folder`."""
    def save(name, image, **options):
        image.save(folder / name, **options)
        return folder / name

    noise = np.random.default_rng(11).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    return [
        ROOT / "tests" / "fixtures" / "astronaut.jpg",
        save("tiny.png", Image.new("RGB", (2, 2), (200, 30, 30))),
        save("tiny-alpha.png", Image.new("RGBA", (2, 2), (200, 30, 30, 128))),
        save("dot.png", Image.new("RGBA", (2, 2), (0, 0, 255, 200))),
        save("mark50.png", Image.new("RGBA", (50, 50), (0, 0, 255, 200))),
        save("noise.png", Image.fromarray(noise), compress_level=1),
    ]


def hostile_origins(folder: Path) -> list[tuple[str, str, str]]:
    """tests/hostile.py's files (decode branch), each requested plain and resized, when it is there."""
    try:
        from tests.hostile import EXPECTED, HOSTILE
    except ImportError:
        return []
    cases = []
    for name, build in HOSTILE.items():
        filename = f"hostile-{name}"
        (folder / filename).write_bytes(build())
        expected = EXPECTED.get(name, (None, None))
        # As tests/imaging/test_decode_hostile.py asks (w=256), and with no parameters at all.
        cases.append((f"{name} w=256", f"{filename}?w=256", "", expected))
        cases.append((f"{name} (no parameters)", f"{filename}", "", (None, None)))
        if name.endswith(("_at_limits", "_at_ceiling")):
            # trim needs every pixel: no reduced-scale decode for the largest files allowed.
            cases.append((f"{name} trim=auto w=256", f"{filename}?trim=auto&w=256", "", (None, None)))
    return cases


def web_pids(root_pid: int) -> list[int]:
    """The web server's processes: `root_pid` (the Procfile's shell) and all its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root_pid], [root_pid]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def status_kib(pid, key) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peaks(pids) -> bool:
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def measure(port, pids, path, accept, timeout):
    """Status, CPU-s, RSS growth (MB: VmHWM after − VmRSS before, the largest over the processes),
    peak RSS (MB: the largest VmHWM), wall seconds, and what came back."""
    reset_peaks(pids)
    time.sleep(0.2)
    before_rss = {pid: status_kib(pid, "VmRSS") for pid in pids}
    cpu = cpu_seconds(pids)
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", f"/render/demo/{path}", headers={"Accept": accept or "*/*"})
        response = conn.getresponse()
        body = response.read()
        status = response.status
        info = _describe(response, body)
    except (OSError, http.client.HTTPException) as exc:
        status, info = 0, f"{type(exc).__name__}"
    wall = time.perf_counter() - started
    time.sleep(0.3)  # Let the response's last CPU tick and the render's storage write land.
    cpu = cpu_seconds(pids) - cpu
    peaks = {pid: status_kib(pid, "VmHWM") for pid in pids}
    growth = max(peaks[pid] - before_rss[pid] for pid in pids)
    return status, cpu, max(growth, 0) / 1024, max(peaks.values()) / 1024, wall, info


def _describe(response, body) -> str:
    kind = response.getheader("Content-Type", "")
    if kind.startswith("image/"):
        try:
            with Image.open(io.BytesIO(body)) as image:
                return f"{kind.split('/')[1]} {image.width}×{image.height}"
        except OSError:
            return kind
    if kind == "application/json":
        import json

        try:
            return json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return "json"
    return kind


# --- Slow peers and the redirect loop (issue 20) ------------------------------------------------

SLOW_CLIENTS = 20
HIT = "/render/demo/astronaut.jpg?w=64&fm=webp"


class _Peer(BaseHTTPRequestHandler):
    """What the bench plays on another host: an origin that declares 100 kB and sends a byte a
    second (/trickle/…), and a mark server that redirects to `redirect_to` (/mark.png)."""

    stop = threading.Event()
    redirect_to = ""
    asked: ClassVar[list] = []
    files: ClassVar[dict] = {}  # /ok/NAME: a normal origin or mark, sent at once.

    def do_GET(self):
        _Peer.asked.append((self.path, time.monotonic()))
        if self.path in _Peer.files:
            body = _Peer.files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg" if self.path.endswith(".jpg") else "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/mark.png"):
            self.send_response(302)
            self.send_header("Location", _Peer.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            self.wfile.write(b"\x89")
            self.wfile.flush()
            while not _Peer.stop.wait(1):
                self.wfile.write(b"P")
                self.wfile.flush()
        except OSError:
            pass

    def log_message(self, *args):
        pass


class Attack:
    """A case of this section: the server's CPU-seconds and RSS over `run()`, while a client asks
    for a cached render every 50 ms."""

    def __init__(self, port, pids):
        self.port, self.pids = port, pids
        self.hits = []
        self.stop_hits = threading.Event()

    def _hit_loop(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop_hits.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", HIT, headers={"Accept": "image/webp"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.hits.append((status, time.perf_counter() - started))
            self.stop_hits.wait(0.05)

    def measure(self, run, *, hits=True):
        reset_peaks(self.pids)
        time.sleep(0.2)
        before_rss = {pid: status_kib(pid, "VmRSS") for pid in self.pids}
        cpu = cpu_seconds(self.pids)
        watcher = threading.Thread(target=self._hit_loop)
        if hits:
            watcher.start()
        started = time.perf_counter()
        answer = run()
        wall = time.perf_counter() - started
        self.stop_hits.set()
        if hits:
            watcher.join()
        time.sleep(0.3)
        cpu = cpu_seconds(self.pids) - cpu
        peaks = {pid: status_kib(pid, "VmHWM") for pid in self.pids}
        growth = max(max(peaks[pid] - before_rss[pid] for pid in self.pids), 0) / 1024
        if self.hits:
            latencies = sorted(seconds for _, seconds in self.hits)
            bad = sum(1 for status, _ in self.hits if status != 200)
            answer += (f"; cached hits meanwhile: {len(latencies)}, p50 {statistics.median(latencies) * 1000:.0f} ms, "
                       f"max {latencies[-1] * 1000:.0f} ms, not 200: {bad}")
        return cpu, growth, max(peaks.values()) / 1024, wall, answer


def _csrf_cookie(port) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/admin/login/")
    response = conn.getresponse()
    response.read()
    return re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie", "")).group(1)


def _login_post(port, cookie, body_bytes: int, byte_every: float | None, results: list):
    """POST /admin/login/ declaring `body_bytes`; with `byte_every`, one byte per that many
    seconds after the first few, as a slow client sends it. Records (status, seconds)."""
    started = time.monotonic()
    form = f"csrfmiddlewaretoken={cookie}&username=a&password=b".encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = (f"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: csrftoken={cookie}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {body_bytes}\r\n"
            "Connection: close\r\n\r\n").encode()
    answer = b""
    try:
        if byte_every is None:
            sock.sendall(head + form + b"&x=" + b"a" * (body_bytes - len(form) - 3))
        else:
            sock.sendall(head + form)
            sock.settimeout(byte_every)
        while time.monotonic() - started < 120:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b"a")
                continue
            if not data:
                break
            answer += data
    except OSError:
        pass
    finally:
        sock.close()
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else 0
    results.append((status, time.monotonic() - started))


def _summary(results) -> str:
    statuses = {}
    for status, seconds in results:
        statuses.setdefault(status, []).append(seconds)
    return ", ".join(f"{len(times)}× {status} after {min(times):.1f}–{max(times):.1f} s"
                     for status, times in sorted(statuses.items()))


def _requests_logged(stack, pattern: str) -> int:
    return len(re.findall(pattern, (stack.tmp / "stack.log").read_text(errors="replace")))


def slow_cases(stack, pids, peer_port) -> list[tuple[str, tuple]]:
    """(name, measure's result) for each case of this section and its normal counterpart."""
    port = stack.port
    cookie = _csrf_cookie(port)
    rows = []

    def normal_hits():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(200):
            conn.request("GET", HIT, headers={"Accept": "image/webp"})
            conn.getresponse().read()
        return "200 cached hits, one after another"

    rows.append(("normal: 200 cached hits", Attack(port, pids).measure(normal_hits, hits=False)))

    def normal_post():
        results = []
        _login_post(port, cookie, 100_000, None, results)
        return _summary(results)

    rows.append(("normal: POST /admin/login/, 100 kB form", Attack(port, pids).measure(normal_post)))

    def slow_body():
        logged = _requests_logged(stack, r"POST /admin/login/")
        results = []
        clients = [threading.Thread(target=_login_post, args=(port, cookie, 100_000, 1.0, results))
                   for _ in range(SLOW_CLIENTS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        reached = _requests_logged(stack, r"POST /admin/login/") - logged
        return f"{SLOW_CLIENTS} clients, 1 byte/s: {_summary(results)}; reached Django: {reached}"

    rows.append((f"slow body: {SLOW_CLIENTS} × POST, 1 byte/s", Attack(port, pids).measure(slow_body)))

    def one_render(path, results, timeout=180):
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("GET", path, headers={"Accept": "*/*"})
            response = conn.getresponse()
            response.read()
            results.append((response.status, time.monotonic() - started))
        except (OSError, http.client.HTTPException):
            results.append((0, time.monotonic() - started))

    def normal_origin():
        results = []
        one_render("/render/bench-web/astronaut.jpg?w=64&fm=webp", results)
        return f"web-folder origin, uncached: {_summary(results)}"

    rows.append(("normal: web-folder origin, w=64", Attack(port, pids).measure(normal_origin)))

    def trickling_origin():
        _Peer.stop.clear()
        results = []
        clients = [threading.Thread(target=one_render, args=(f"/render/bench-trickle/t{n}.png?w=10", results))
                   for n in range(SLOW_CLIENTS)]
        for t in clients:
            t.start()
        # The origin trickles for at most 90 s, then ends its responses.
        threading.Timer(90, _Peer.stop.set).start()
        for t in clients:
            t.join()
        _Peer.stop.set()
        return f"{SLOW_CLIENTS} renders, origin 1 byte/s: {_summary(results)}"

    rows.append((f"trickling origin: {SLOW_CLIENTS} renders, 1 byte/s", Attack(port, pids).measure(trickling_origin)))

    # Noise does not compress: a 16.7 MB PNG, stored as a local file.
    noise = np.random.default_rng(1).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
    Image.fromarray(noise).save(stack.tmp / "demo" / "origin" / "noise.png")
    large = "/render/demo/noise.png?fm=png&w=2400&fit=scale"
    one_render(large, [])  # Rendered and stored once, before either case.

    def normal_large():
        results = []
        one_render(large, results)
        return f"a 16.7 MB render, read at once: {_summary(results)}"

    rows.append(("normal: a 16.7 MB stored render", Attack(port, pids).measure(normal_large)))

    def slow_readers():
        readers = []
        for _ in range(SLOW_CLIENTS):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {large} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            sock.recv(256)
            readers.append(sock)
        time.sleep(5)  # Reading nothing more, while the hits go on.
        for sock in readers:
            sock.close()
        return f"{SLOW_CLIENTS} clients read 256 bytes of it, then nothing for 5 s"

    rows.append((f"slow readers: {SLOW_CLIENTS} × a 16.7 MB render", Attack(port, pids).measure(slow_readers)))

    def normal_mark():
        results = []
        mark = quote(f"http://127.0.0.1:{peer_port}/ok/mark50.png", safe="")
        one_render(f"/render/demo/astronaut.jpg?w=100&fm=jpg&mark={mark}", results)
        return f"a mark on another host: {_summary(results)}"

    rows.append(("normal: a mark on another host", Attack(port, pids).measure(normal_mark)))

    def redirect_loop():
        _Peer.asked.clear()
        mark = f"http://127.0.0.1:{peer_port}/mark.png"
        _Peer.redirect_to = f"http://127.0.0.1:{port}/render/demo/astronaut.jpg?w=40&fm=png&mark={quote(mark, safe='')}"
        results = []
        one_render(f"/render/demo/astronaut.jpg?w=100&fm=jpg&mark={quote(mark, safe='')}", results, timeout=30)
        gave_up = time.monotonic()
        time.sleep(15)  # Does the loop go on without its client?
        after = sum(1 for _, at in _Peer.asked if at > gave_up)
        return (f"first request: {_summary(results)}; the mark server was asked {len(_Peer.asked)} times, "
                f"{after} after the client gave up")

    rows.append(("redirect loop: mark → our render with the same mark", Attack(port, pids).measure(redirect_loop)))
    return rows


def _peer_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _peer_sources(stack, peer_port, folder: Path):
    """Two web-folder sources of the demo account on the bench's other host: one whose origin
    trickles, one that answers at once (the normal case)."""
    _Peer.files.update({"/ok/astronaut.jpg": (ROOT / "tests" / "fixtures" / "astronaut.jpg").read_bytes(),
                        "/ok/mark50.png": (folder / "mark50.png").read_bytes()})
    code = (
        "from accounts.models import Account; from sources.models import Source\n"
        "account = Account.objects.get(slug='demo')\n"
        f"Source.objects.update_or_create(slug='bench-trickle', defaults=dict(account=account, kind='web', "
        f"base_url='http://127.0.0.1:{peer_port}/trickle/'))\n"
        f"Source.objects.update_or_create(slug='bench-web', defaults=dict(account=account, kind='web', "
        f"base_url='http://127.0.0.1:{peer_port}/ok/'))\n"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=stack.env, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="send each case this many times (distinct q)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--slow-only", action="store_true", help="only the slow peers and the redirect loop")
    parser.add_argument("--no-slow", action="store_true", help="without the slow peers and the redirect loop")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cutout-hostile-"))
    files = origins(folder)
    cases = [(*case, (None, None)) for case in CASES] + hostile_origins(folder)
    files += [p for p in folder.iterdir() if p.name.startswith("hostile-")]
    cases = [] if args.slow_only else [c for c in cases if args.only in c[0]]
    stack = Stack(files)
    peer = _peer_server()
    stack.env["ORIGIN_ALLOW_LOOPBACK"] = "true"  # The bench's "other host" is this machine.
    _peer_sources(stack, peer.server_address[1], folder)
    flagged, unexpected = [], []
    try:
        stack.start()
        wait_for(stack.port, "/healthz")
        wait_for(stack.port, "/render/demo/tiny.png?w=10&fm=png")  # Warm: imports, connections, caches.
        pids = web_pids(stack.proc.pid)
        if not reset_peaks(pids):
            print("note: /proc/PID/clear_refs not writable; RSS growth is VmHWM growth over the run")
        print(f"web server: {len(pids)} processes (granian, WEB_WORKERS × WEB_THREADS from platform/Procfile); "
              f"cpus: {os.cpu_count()}; flag over {CPU_LIMIT:g} CPU-s or {RSS_LIMIT} MB or 5xx\n")
        warm = ", ".join(str(status_kib(pid, "VmRSS") // 1024) for pid in pids)
        print(f"web processes' RSS after warm-up: {warm} MB\n")
        if cases:
            print(f"{'case':48s} {'status':>6s} {'CPU-s':>7s} {'RSS+ MB':>8s} {'peak MB':>8s} {'wall s':>7s}  answer")
        for name, path, accept, (want_status, want_code) in cases:
            for i in range(args.repeat):
                query = path if i == 0 else f"{path}{'&' if '?' in path else '?'}q={70 - i}"
                status, cpu, growth, peak, wall, info = measure(stack.port, pids, query, accept, args.timeout)
                over = cpu > CPU_LIMIT or growth > RSS_LIMIT or status >= 500 or status == 0
                note = "  <-- OVER" if over else ""
                if over:
                    flagged.append(name)
                if want_status is not None and (status != want_status or (want_code and want_code != info)):
                    unexpected.append(name)
                    note += f"  (tests/hostile.py expects {want_status} {want_code or ''})"
                print(f"{name:48s} {status:6d} {cpu:7.2f} {growth:8.0f} {peak:8.0f} {wall:7.2f}  {info}{note}",
                      flush=True)
        wait_for(stack.port, HIT)
        slow = [] if args.no_slow else slow_cases(stack, pids, peer.server_address[1])
        print(f"\n{'slow peers and loops':52s} {'CPU-s':>7s} {'RSS+ MB':>8s} {'peak MB':>8s} {'wall s':>7s}  answer")
        for name, (cpu, growth, peak, wall, info) in slow:
            # Over: more than the per-request limits for the 20 requests together, or a cached hit
            # that failed or took a second or more while the case ran.
            slow_hit = re.search(r"max (\d+) ms, not 200: (\d+)", info)
            over = (cpu > CPU_LIMIT * SLOW_CLIENTS or growth > RSS_LIMIT
                    or (slow_hit is not None and (int(slow_hit.group(1)) >= 1000 or int(slow_hit.group(2)) > 0)))
            if over:
                flagged.append(name)
            print(f"{name:52s} {cpu:7.2f} {growth:8.0f} {peak:8.0f} {wall:7.2f}  {info}"
                  f"{'  <-- OVER' if over else ''}", flush=True)
    finally:
        _Peer.stop.set()
        peer.shutdown()
        stack.close()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{len(flagged)} case(s) over the target" + (": " + ", ".join(flagged) if flagged else ""))
    if unexpected:
        print(f"{len(unexpected)} answer(s) not as tests/hostile.py expects: " + ", ".join(unexpected))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
