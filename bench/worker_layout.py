"""Cutouts per minute for worker layouts (processes × intra-op threads) on this machine.

Usage: .venv/bin/python bench/worker_layout.py [--seconds 20] [--model u2netp]

Each layout starts that many processes, each with its own rembg session (the model loaded once,
as a worker's pool process does) at that many ONNX Runtime intra-op threads ("default": ONNX
Runtime's own choice, every core), and runs cutouts.remover.cutout on the photo for --seconds.
Reported: cutouts per minute for the whole layout, and CPU-seconds per cutout, for a small photo
(astronaut.jpg, 512²) and a 4-megapixel one (the same photo scaled to 2000²).
"""

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = [(1, 1), (1, 2), (2, 1), (2, "default")]


def _run(threads, size, seconds, model, results):
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("BG_REMOVE_MODEL_HOME", str(ROOT / "var" / "models"))
    import django

    django.setup()
    from django.conf import settings
    from PIL import Image

    settings.BG_REMOVE_INTRA_OP_THREADS = 0 if threads == "default" else threads
    from cutouts.remover import cutout, session_get

    with Image.open(ROOT / "tests" / "fixtures" / "astronaut.jpg") as photo:
        image = photo.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    session_get(model)
    cutout(image, model=model)  # Warm: the first run allocates ONNX Runtime's arenas.
    done, cpu, deadline = 0, time.process_time(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        cutout(image, model=model)
        done += 1
    results.put((done, time.process_time() - cpu))


def layout(processes, threads, size, seconds, model):
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_run, args=(threads, size, seconds, model, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    done = sum(c[0] for c in counts)
    return done * 60 / seconds, sum(c[1] for c in counts) / max(done, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--model", default="u2netp")
    args = parser.parse_args()
    multiprocessing.set_start_method("spawn")
    print(f"model {args.model}, {args.seconds:g} s per layout, cpus: {os.cpu_count()}")
    print(f"{'photo':10} {'layout':22} {'cutouts/min':>12} {'CPU s/cutout':>13} {'× 1×1':>6}")
    for label, size in (("512²", 512), ("2000² 4MP", 2000)):
        base = None
        for processes, threads in LAYOUTS:
            rate, cpu = layout(processes, threads, size, args.seconds, args.model)
            base = base or rate
            name = f"{processes} process{'es' if processes > 1 else ''} × {threads} thread{'s' if threads != 1 else ''}"
            print(f"{label:10} {name:22} {rate:12.1f} {cpu:13.3f} {rate / base:6.2f}")


if __name__ == "__main__":
    main()
