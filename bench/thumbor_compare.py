"""The platform vs Thumbor and ipx on the same machine, image and sizes, one run.

Usage: .venv/bin/python bench/thumbor_compare.py [--seconds 8] [--connections 8] [--renders 300]
       [--rounds 5] [--no-ipx]

Installs Thumbor into its own virtual environment (var/bench/thumbor-venv) and ipx with the
machine's npm (var/bench/ipx), once each, then runs
  1. a cached render: ours, /render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp (a stored
     derived render of the cutout), against Thumbor's result-storage hit for the same cutout PNG
     at the same size and format (/unsafe/256x0/filters:format(webp)/cutout.png); ipx stores no
     results, so it has no cached hit to compare;
  2. uncached resize + WebP renders: N distinct widths of astronaut.jpg, each requested once, on
     all three (/render/demo/astronaut.jpg?w=W&fm=webp, /unsafe/Wx0/filters:format(webp)/astronaut.jpg,
     /w_W,f_webp,q_75/astronaut.jpg), in --rounds interleaved rounds (the servers take turns),
     then checks that the three give the same dimensions.
Each server gets two processes (granian: 2 workers × 4 threads, as platform/Procfile; Thumbor:
--processes 2; ipx: a node cluster of 2, bench/ipx_server.cjs), quality 75, WebP effort 4
(Pillow's method=4, sharp's default effort). Prints each server's CPU milliseconds per request
(from /proc, all its processes: the headline on a shared machine), req/s, p50/p99 and the ratios.
"""

import argparse
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, Stack, free_port, get, group_members, group_stop, load, once, once_combine, report, wait_for
from PIL import Image

THUMBOR_VERSION = "7.8.0"
VENV = ROOT / "var" / "bench" / "thumbor-venv"
# ipx pins sharp only as ^0.34.3: sharp is pinned too, so a later install encodes with the same libvips.
IPX_VERSION = "3.1.1"
SHARP_VERSION = "0.34.5"
IPX_PREFIX = ROOT / "var" / "bench" / "ipx"
QUALITY = 75
RENDER = "/render/demo/astronaut.jpg?bg-remove=true&w=256&fm=webp"
THUMBOR_HIT = "/unsafe/256x0/filters:format(webp)/cutout.png"


def thumbor_install():
    thumbor = VENV / "bin" / "thumbor"
    if not thumbor.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"thumbor=={THUMBOR_VERSION}"], check=True)
    return thumbor


def thumbor_start(thumbor, root: Path, port: int):
    conf = root / "thumbor.conf"
    conf.write_text(
        "LOADER = 'thumbor.loaders.file_loader'\n"
        f"FILE_LOADER_ROOT_PATH = '{root / 'images'}'\n"
        "STORAGE = 'thumbor.storages.no_storage'\n"
        "RESULT_STORAGE = 'thumbor.result_storages.file_storage'\n"
        f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = '{root / 'results'}'\n"
        "RESULT_STORAGE_STORES_UNSAFE = True\n"
        "ALLOW_UNSAFE_URL = True\n"
        f"QUALITY = {QUALITY}\n"
        "AUTO_WEBP = False\n"
    )
    log = (root / "thumbor.log").open("wb")
    return subprocess.Popen([str(thumbor), "-p", str(port), "-i", "127.0.0.1", "-c", str(conf), "--processes", "2"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def ipx_install():
    """ipx and sharp at the pinned versions under IPX_PREFIX (npm install --prefix), once."""
    if not (shutil.which("node") and shutil.which("npm")):
        raise SystemExit("ipx needs node and npm on the PATH (or pass --no-ipx)")
    if _npm_version("ipx") != IPX_VERSION or _npm_version("sharp") != SHARP_VERSION:
        IPX_PREFIX.mkdir(parents=True, exist_ok=True)
        # sharp's install script only checks for the prebuilt libvips that npm installs beside it.
        subprocess.run(["npm", "install", "--prefix", str(IPX_PREFIX), "--save-exact", "--no-audit", "--no-fund",
                        "--loglevel=error", f"ipx@{IPX_VERSION}", f"sharp@{SHARP_VERSION}"], check=True)


def _npm_version(package):
    try:
        return json.loads((IPX_PREFIX / "node_modules" / package / "package.json").read_text())["version"]
    except OSError:
        return None


def ipx_start(root: Path, port: int, processes: int):
    log = (root / "ipx.log").open("wb")
    return subprocess.Popen(["node", str(ROOT / "bench" / "ipx_server.cjs"), str(IPX_PREFIX), str(root / "images"),
                             str(port), str(processes)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def webp_size(port, path):
    """The dimensions of the WebP that `path` answers."""
    status, body = get(http.client.HTTPConnection("127.0.0.1", port, timeout=60), path)
    image = Image.open(io.BytesIO(body))
    if status != 200 or image.format != "WEBP":
        raise SystemExit(f"{path} answered {status} {image.format}")
    return image.size, len(body)


def pillow_work_ms(photo: Path, widths) -> float:
    """CPU milliseconds of the image work alone, as both Python servers do it (JPEG draft at the
    size, LANCZOS resize, WebP at quality 75 and method 4), in this process after the loads: what
    each server spends beyond it is its per-request overhead."""
    data = photo.read_bytes()
    started = time.process_time()
    for w in widths:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (w, w))
        image = image.convert("RGB").resize((w, round(w * image.height / image.width)), Image.Resampling.LANCZOS)
        image.save(io.BytesIO(), "WEBP", quality=QUALITY, method=4)
    return (time.process_time() - started) * 1000 / len(widths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--renders", type=int, default=300)
    # Uncached renders: no more clients than one web process has render slots
    # (RENDER_MAX_CONCURRENT=2): beyond them it answers 503 render_busy at once, by design, and
    # granian may hand several connections to one process.
    parser.add_argument("--render-connections", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ipx-processes", type=int, default=2)
    parser.add_argument("--no-ipx", action="store_true", help="leave ipx out (no node/npm on this machine)")
    args = parser.parse_args()
    thumbor = thumbor_install()
    if not args.no_ipx:
        ipx_install()
    photo = ROOT / "tests" / "fixtures" / "astronaut.jpg"
    stack = Stack([photo])
    root = stack.tmp / "thumbor"
    (root / "images").mkdir(parents=True)
    shutil.copy(photo, root / "images")
    tport, iport = free_port(), free_port()
    tproc = iproc = None
    widths = range(100, 100 + args.renders)
    uncached = {
        "ours": lambda w: f"/render/demo/astronaut.jpg?w={w}&fm=webp",
        "Thumbor": lambda w: f"/unsafe/{w}x0/filters:format(webp)/astronaut.jpg",
        # No `effort` modifier in ipx: sharp's default WebP effort, 4, is Pillow's method=4, ours.
        "ipx": lambda w: f"/w_{w},f_webp,q_{QUALITY}/astronaut.jpg",
    }
    if args.no_ipx:
        del uncached["ipx"]
    try:
        stack.start()
        wait_for(stack.port, RENDER)
        # Thumbor serves the very cutout our worker made.
        (root / "images" / "cutout.png").write_bytes(wait_for(stack.port, "/render/demo/astronaut.jpg?bg-remove=true"))
        tproc = thumbor_start(thumbor, root, tport)
        wait_for(tport, THUMBOR_HIT)
        ports = {"ours": stack.port, "Thumbor": tport}
        servers = {"ours": lambda: group_members(stack.proc.pid), "Thumbor": lambda: group_members(tproc.pid)}
        if not args.no_ipx:
            iproc = ipx_start(root, iport, args.ipx_processes)
            ports["ipx"], servers["ipx"] = iport, lambda: group_members(iproc.pid)
            wait_for(iport, uncached["ipx"](99))
        for port, path in ((stack.port, RENDER), (tport, THUMBOR_HIT)):
            load(port, [path], 1, args.connections)  # Warm.
        ours_hit = load(stack.port, [RENDER], args.seconds, args.connections, server=servers["ours"])
        their_hit = load(tport, [THUMBOR_HIT], args.seconds, args.connections, server=servers["Thumbor"])

        for name, url in uncached.items():
            # Warm every process on widths outside the measured ones: first renders load codecs.
            once(ports[name], [url(w) for w in range(90, 100)], args.render_connections)
        # The widths in rounds, each server in turn and the order turning each round, so that
        # the load of a shared machine changing during the run falls on all three alike.
        rounds = {name: [] for name in uncached}
        for r in range(args.rounds):
            names = list(uncached)[r % len(uncached):] + list(uncached)[:r % len(uncached)]
            for name in names:
                rounds[name].append(once(ports[name], [uncached[name](w) for w in widths[r::args.rounds]],
                                         args.render_connections, server=servers[name]))
        new = {name: once_combine(results) for name, results in rounds.items()}
        # Afterwards, so the check's renders are not in the figures (ours and Thumbor's are stored hits now).
        sample = list(widths)[:: max(len(widths) // 10, 1)] + [widths[-1]]
        outputs = {name: [webp_size(ports[name], url(w)) for w in sample] for name, url in uncached.items()}
    finally:
        group_stop(*[proc for proc in (tproc, iproc) if proc is not None])
        stack.close()

    left = [name for name, proc in (("Thumbor", tproc), ("ipx", iproc)) if proc and group_members(proc.pid)]
    print(f"Thumbor {THUMBOR_VERSION}" + ("" if args.no_ipx else f", ipx {IPX_VERSION} (sharp {SHARP_VERSION}, "
          f"{args.ipx_processes} processes)") + f"; {args.connections} keep-alive connections; cpus: {os.cpu_count()}"
          + (f"; still running: {left}" if left else ""))
    report("cached render (ours)", ours_hit)
    report("result-storage hit (Thumbor)", their_hit)
    print(f"cached hit CPU per request ours/Thumbor: {ours_hit['cpu_ms'] / their_hit['cpu_ms']:.2f}  (the headline)")
    print(f"cached hit throughput ours/Thumbor: {ours_hit['rps'] / their_hit['rps']:.2f}  "
          f"p50 ours/Thumbor: {ours_hit['p50_ms'] / their_hit['p50_ms']:.2f}")
    for name, result in new.items():
        report(f"uncached {args.renders} ({name})", result)
    work = pillow_work_ms(photo, widths)
    print(f"image work alone (Pillow, the same widths): {work:.2f} ms; beyond it, per request: "
          + ", ".join(f"{name} {result['cpu_ms'] - work:.2f} ms" for name, result in new.items()))
    for name in list(new)[1:]:
        print(f"uncached CPU per request ours/{name}: {new['ours']['cpu_ms'] / new[name]['cpu_ms']:.2f}  (the headline)"
              f"  throughput ours/{name}: {new['ours']['rps'] / new[name]['rps']:.2f}")
    same = all(len({size for size, _ in row}) == 1 for row in zip(*outputs.values()))
    print(f"output dimensions at widths {sample[0]}..{sample[-1]} ({len(sample)} sampled): "
          + ("the same on every server" if same else f"DIFFER: {outputs}"))
    for name, sizes in outputs.items():
        print(f"  {name:8s} mean WebP bytes {sum(n for _, n in sizes) / len(sizes):8.0f}  "
              f"e.g. {sizes[-1][0][0]}×{sizes[-1][0][1]}")
    if not same or left:
        sys.exit(1)


if __name__ == "__main__":
    main()
