"""Hostile requests against the real web server: what each one costs it, next to a normal render.

Usage: .venv/bin/python bench/hostile.py [--repeat 1] [--only SUBSTRING] [--timeout 120]

Starts the `make run` stack (platform/Procfile: granian, 2 workers × 4 threads, and a Celery
worker; embedded defaults) in a temporary folder with tiny origins (2×2 pixels), a 12 MB noise
PNG (the costliest content an encoder meets) and, when tests/hostile.py is there, every hostile
origin file of its HOSTILE registry. Sends each case once, one at a time, and prints the web
server's CPU-seconds (utime + stime of every granian process, from /proc) and its RSS growth (the
largest VmHWM after the request minus VmRSS before it, over the granian processes, with VmHWM
reset through /proc/PID/clear_refs first), the status and the wall time. A case is flagged when
it costs over 3 CPU-s or 600 MB, or answers 5xx (503 render_busy excepted: cases run one at a time).
"""

import argparse
import http.client
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="send each case this many times (distinct q)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cutout-hostile-"))
    files = origins(folder)
    cases = [(*case, (None, None)) for case in CASES] + hostile_origins(folder)
    files += [p for p in folder.iterdir() if p.name.startswith("hostile-")]
    cases = [c for c in cases if args.only in c[0]]
    stack = Stack(files)
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
    finally:
        stack.close()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{len(flagged)} case(s) over the target" + (": " + ", ".join(flagged) if flagged else ""))
    if unexpected:
        print(f"{len(unexpected)} answer(s) not as tests/hostile.py expects: " + ", ".join(unexpected))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
