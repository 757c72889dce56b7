"""Mixed load for a long while on the production stack: does the web processes' memory stay put?

Usage: .venv/bin/python bench/soak.py [--seconds 900] [--sample 15] [--root DIR] [--env K=V …]

Starts the production stack (bench/prod_stack.py: Postgres, Redis, moto S3; platform/Procfile's web
line, 2 granian processes, and its worker line with one process) and sends, open loop
(bench/burst.py's client), for `--seconds`:
  - cached hits on 40 renders of the same photo (`--hits` per second);
  - new renders (`--renders` per second): the demo's two photos at a new width each, 100 to 1700
    px, in turn WebP, JPEG, PNG and AVIF (an AVIF over its ceiling is a 422, also part of the mix);
  - new cutouts (`--cutouts` per second): `bg-remove=true&w=256&fm=webp` of a new 300² crop of the
    astronaut (202, the worker makes it), and the same URL of the crop asked 30 cutouts earlier
    (its render from the finished cutout);
  - purges (`--purges` per second) through the API: one of those crops, and every tenth time the
    photo of the cached hits (which are then rendered again).
Every `--sample` seconds it prints the RSS of each web process, then the curve and the growth
after warm-up (the first fifth of the run, at least 60 s).
"""

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from burst import Client
from common import ROOT
from PIL import Image, ImageOps
from prod_stack import ProdStack, rss_mib

HIT_PATHS = [f"/render/demo/astronaut.jpg?w={w}&fm=webp" for w in range(40, 80)]
FORMATS = ("webp", "jpg", "png", "avif")


def renders():
    for n in itertools.count():
        image, top = ("aitzgorri.jpg", 1700) if n % 2 else ("astronaut.jpg", 1024)
        w = 100 + (n * 37) % (top - 100)
        yield f"/render/demo/{image}?w={w}&q={90 - (n // 2000) % 50}&fm={FORMATS[(n // 2) % 4]}"


def crops(folder: Path, count: int):
    base = Image.open(folder / "astronaut.jpg").convert("RGB")
    for i in range(count):
        x, y = (i * 7) % 200, (i * 13) % 200
        image = base.crop((x, y, x + 300, y + 300)).rotate((i % 8) * 2)
        (ImageOps.mirror(image) if i % 2 else image).save(folder / f"crop-{i:05d}.jpg", quality=85)


def cutouts():
    for n in itertools.count():
        crop = n // 2 if n % 2 == 0 else n // 2 - 30
        yield f"/render/demo/crop-{max(crop, 0):05d}.jpg?bg-remove=true&w=256&fm=webp"


def purges(port: int, key: str):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
    for n in itertools.count():
        image = "astronaut.jpg" if n % 10 == 9 else f"crop-{n * 2:05d}.jpg"
        body = json.dumps({"url": f"http://127.0.0.1:{port}/render/demo/{image}"})
        yield ("POST", "/api/v1/purge", body, headers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--sample", type=float, default=15)
    parser.add_argument("--hits", type=float, default=10)
    parser.add_argument("--renders", type=float, default=4)
    parser.add_argument("--cutouts", type=float, default=0.4)
    parser.add_argument("--purges", type=float, default=0.1)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--env", action="append", default=[], help="K=V for the stack's environment")
    args = parser.parse_args()
    env = {"WORKER_CONCURRENCY": "1", "BG_REMOVE_RATE_LIMIT": "1000000/m", "BG_REMOVE_MAX_PENDING": "100000",
           "BG_REMOVE_MAX_PENDING_PER_ACCOUNT": "100000", **dict(item.split("=", 1) for item in args.env)}
    stack = ProdStack(root=args.root, lines=("web", "worker"), env=env)
    crops(stack.tmp / "demo" / "origin", int(args.cutouts * args.seconds) + 50)
    key = subprocess.run([sys.executable, "manage.py", "create_api_key", "demo", "--scopes", "read,write,purge"],
                         cwd=args.root, env=stack.env, check=True, capture_output=True, text=True).stdout.strip()
    samples, stop = [], threading.Event()
    try:
        stack.start()
        client = Client(stack.port)
        client.run({"hit": (50, itertools.cycle(HIT_PATHS))}, 3)
        pids = stack.web_pids()
        print(f"root {args.root}; web processes {pids}; {' '.join(args.env)}", flush=True)
        started = time.monotonic()

        def sample():
            while True:
                rss = [rss_mib(pid) for pid in pids]
                samples.append((time.monotonic() - started, rss))
                print(f"{samples[-1][0]:6.0f} s  web RSS {' '.join(f'{r:5.0f}' for r in rss)} MiB", flush=True)
                if stop.wait(args.sample):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results = client.run({"hit": (args.hits, itertools.cycle(HIT_PATHS)), "render": (args.renders, renders()),
                              "cutout": (args.cutouts * 2, cutouts()), "purge": (args.purges, purges(stack.port, key))},
                             args.seconds)
        stop.set()
        sampler.join()
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert alive == pids, f"a web process was replaced: {pids} → {stack.web_pids()}"
    finally:
        stop.set()
        stack.close()
    statuses = Counter((kind, status) for kind, status, *_ in results)
    print("answers:", ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(statuses.items())))
    hits = [r[3] for r in results if r[0] == "hit"]
    print(f"hits p50 {1000 * statistics.median(hits):.1f} ms; {len(results) / args.seconds:.1f} requests/s in all")
    warm = max(60.0, args.seconds / 5)
    after = [(t, rss) for t, rss in samples if t >= warm]
    if after:
        first, last = after[0][1], after[-1][1]
        peak = [max(rss[i] for _, rss in after) for i in range(len(pids))]
        for i, pid in enumerate(pids):
            print(f"web {pid}: {first[i]:.0f} MiB at {after[0][0]:.0f} s → {last[i]:.0f} MiB at {after[-1][0]:.0f} s "
                  f"(peak {peak[i]:.0f}); growth after warm-up {100 * (last[i] / first[i] - 1):+.1f} %")


if __name__ == "__main__":
    sys.exit(main())
