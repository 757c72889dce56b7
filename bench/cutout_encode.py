"""What storing a cutout costs: PNG encodings of a real 4-megapixel cutout, time and size.

Usage: .venv/bin/python bench/cutout_encode.py [--repeat 5]

The cutout is u2netp's on astronaut.jpg (tests/fixtures) scaled to 2000×2000, as a worker would
store it. Each encoding is timed in this process (CPU time, best of --repeat) and decoded back to
check it is lossless. Ratios are against the encoding workers used before (level 6, Z_RLE).
"""

import argparse
import io
import os
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("BG_REMOVE_MODEL_HOME", str(ROOT / "var" / "models"))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cutouts.remover import cutout  # noqa: E402

ENCODINGS = {
    "level 6, Z_RLE (before)": {"compress_level": 6, "compress_type": zlib.Z_RLE},
    "level 1, Z_RLE": {"compress_level": 1, "compress_type": zlib.Z_RLE},
    "level 1": {"compress_level": 1},
    "level 3, Z_RLE": {"compress_level": 3, "compress_type": zlib.Z_RLE},
    "level 6": {"compress_level": 6},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with Image.open(ROOT / "tests" / "fixtures" / "astronaut.jpg") as photo:
        big = photo.convert("RGB").resize((2000, 2000), Image.Resampling.LANCZOS)
    result, _ = cutout(big, model="u2netp")
    pixels = np.asarray(result)
    rows = []
    for name, options in ENCODINGS.items():
        best = float("inf")
        for _ in range(args.repeat):
            buf = io.BytesIO()
            started = time.process_time()
            result.save(buf, "PNG", **options)
            best = min(best, time.process_time() - started)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue()))), pixels), name
        rows.append((name, best, len(buf.getvalue())))
    base_time, base_size = rows[0][1], rows[0][2]
    print(f"cutout {result.width}×{result.height} RGBA, best of {args.repeat}; cpus: {os.cpu_count()}")
    print(f"{'encoding':28} {'CPU s':>7} {'× time':>7} {'bytes':>10} {'× size':>7}")
    for name, seconds, size in rows:
        print(f"{name:28} {seconds:7.3f} {seconds / base_time:7.2f} {size:10d} {size / base_size:7.2f}")


if __name__ == "__main__":
    main()
