"""CPU per request of each class of request on the production stack, one class at a time.

Usage: DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/classes.py [--seconds 20]

Starts the production stack (bench/prod_stack.py: Postgres, Redis, moto S3; platform/Procfile's
web line, 2 granian processes, and its worker line with one process), then sends each class alone,
open loop (bench/burst.py's client), for `--seconds` at its rate, and prints the web processes' and
the worker's CPU milliseconds per request (from /proc), requests/s and the answers:
  - cached hits (the same 40 URLs again and again, 50/s);
  - cached hits, each URL new to the processes' memory (a new spelling of the query: through
    Django, the lookup and the node cache; 20/s);
  - new renders (the demo's two photos at a new width and quality, WebP; 4/s);
  - new cutouts (`bg-remove=true` of a new 300² crop: the 202, then the worker's job; 0.5/s);
  - purges through the API (one URL each; 2/s);
  - remove.bg calls (`POST /v1.0/removebg`, size=preview, a new crop each; 0.5/s, each waits for
    its cutout).
Then all of them at once at those rates: the sustained mixed load, with the same figures.
"""

import argparse
import io
import itertools
import subprocess
import sys
import time
import uuid
from collections import Counter

from burst import Client
from common import ROOT, cpu_seconds, group_members
from prod_stack import ProdStack
from soak import HIT_PATHS, crops


def hits():
    return itertools.cycle(HIT_PATHS)


def new_spellings():
    # Empty pairs (`&&`) change the query's spelling, not its meaning: the same 40 renders, each
    # request a query the processes have not kept (through Django, the lookup and the node cache).
    for n in itertools.count():
        yield f"/render/demo/astronaut.jpg?w={40 + n % 40}&fm=webp" + "&" * (1 + n // 40)


def renders():
    for n in itertools.count():
        image = "aitzgorri.jpg" if n % 2 else "astronaut.jpg"
        yield f"/render/demo/{image}?w={120 + (n * 37) % 900}&q={40 + n % 50}&fm=webp"


def cutouts(start: int):
    for n in itertools.count(start):
        yield f"/render/demo/crop-{n:05d}.jpg?bg-remove=true"


def purges(port: int, key: str):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
    for n in itertools.count():
        body = f'{{"url": "http://127.0.0.1:{port}/render/demo/astronaut.jpg?w={100 + n}&fm=png"}}'
        yield ("POST", "/api/v1/purge", body, headers)


def removebg_calls(folder, key: str, start: int):
    for n in itertools.count(start):
        boundary = uuid.uuid4().hex
        photo = (folder / f"crop-{n:05d}.jpg").read_bytes()
        body = io.BytesIO()
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\npreview\r\n".encode())
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image_file\"; filename=\"c.jpg\"\r\n"
                   f"Content-Type: image/jpeg\r\n\r\n".encode() + photo + f"\r\n--{boundary}--\r\n".encode())
        yield ("POST", "/v1.0/removebg", body.getvalue(),
               {"X-Api-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})


def measure(stack, client, worker_pids, streams, seconds):
    web_pids = stack.web_pids()
    web, worker = cpu_seconds(web_pids), cpu_seconds(worker_pids)
    started = time.monotonic()
    results = client.run(streams, seconds)
    time.sleep(2)  # A cutout's job finishes after its 202.
    wall = time.monotonic() - started
    web, worker = cpu_seconds(web_pids) - web, cpu_seconds(worker_pids) - worker
    return results, web, worker, wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    env = {"WORKER_CONCURRENCY": "1", "BG_REMOVE_RATE_LIMIT": "1000000/m", "BG_REMOVE_MAX_PENDING": "100000",
           "BG_REMOVE_MAX_PENDING_PER_ACCOUNT": "100000", "REMOVEBG_WAIT_SECONDS": "60"}
    stack = ProdStack(lines=("web", "worker"), env=env)
    folder = stack.tmp / "demo" / "origin"
    crops(folder, 400)
    run = {"cwd": ROOT, "env": stack.env, "check": True, "capture_output": True, "text": True}
    key = subprocess.run([sys.executable, "manage.py", "create_api_key", "demo", "--scopes", "read,write,purge"],
                         **run).stdout.strip()
    removebg_key = subprocess.run([sys.executable, "manage.py", "create_api_key", "demo", "--scopes", "removebg"],
                                  **run).stdout.strip()
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from accounts.models import Account; from removebg_api.credits import credit_account_ensure;"
                    "c = credit_account_ensure(account=Account.objects.get(slug='demo')); c.credits = 100000; c.save()"],
                   **run)
    try:
        stack.start()
        deadline = time.monotonic() + 120
        while b" ready." not in (stack.tmp / "stack.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        worker_pids = group_members(stack.procs["worker"].pid)
        client = Client(stack.port)
        client.run({"hit": (50, hits())}, 3)  # Every kept URL rendered once.
        classes = [
            ("cached hit, repeated", {"hit": (50, hits())}),
            ("cached hit, new spelling (Django)", {"spelling": (20, new_spellings())}),
            ("new render, WebP", {"render": (4, renders())}),
            ("new cutout (202, then the job)", {"cutout": (0.5, cutouts(0))}),
            ("purge", {"purge": (2, purges(stack.port, key))}),
            ("remove.bg call, preview", {"removebg": (0.5, removebg_calls(folder, removebg_key, 100))}),
        ]
        mixed = {"hit": (10, hits()), "spelling": (2, new_spellings()), "render": (2, renders()),
                 "cutout": (0.4, cutouts(200)), "purge": (0.3, purges(stack.port, key)),
                 "removebg": (0.3, removebg_calls(folder, removebg_key, 300))}
        print(f"{'class':40s} {'req/s':>6s} {'web CPU ms/req':>15s} {'worker CPU ms/req':>18s}  answers")
        for name, streams in [*classes, ("mixed, all at once (15/s)", mixed)]:
            results, web, worker, wall = measure(stack, client, worker_pids, streams, args.seconds)
            n = len(results) or 1
            answers = Counter(status for _, status, *_ in results)
            print(f"{name:40s} {len(results) / args.seconds:6.1f} {1000 * web / n:15.3f} {1000 * worker / n:18.1f}  "
                  f"{dict(sorted(answers.items()))}", flush=True)
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
