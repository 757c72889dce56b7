"""What storing a cutout costs: PNG encodings of a real cutout, time and size.

Usage: .venv/bin/python bench/cutout_encode.py [--repeat 5] [--side 2000]

The cutout is u2netp's on astronaut.jpg (tests/fixtures) scaled to side×side (2000: 4 MP), as a
worker would store it. Each encoding is timed in this process (CPU time, best of --repeat) and
decoded back to check it is lossless. Ratios are against Pillow's level 6 with Z_RLE (what workers
stored before issue 23). Workers now store cutouts/encoding.py's PNG: rows Up-filtered with numpy,
deflated with ISA-L when `isal` is installed, else zlib; both are measured when it is. The last
line is rembg's own file of the same photo for size (its composite over transparent black, Pillow's
default PNG: adaptive filters, level 6).
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
from rembg import remove  # noqa: E402

from cutouts import encoding  # noqa: E402
from cutouts.remover import cutout, session_get  # noqa: E402


def pillow(**options):
    def encode(image):
        buf = io.BytesIO()
        image.save(buf, "PNG", **options)
        return buf.getvalue()

    return encode


def ours(deflate):
    def encode(image):
        kept = encoding._deflate
        encoding._deflate = deflate
        try:
            return encoding.cutout_png(image)
        finally:
            encoding._deflate = kept

    return encode


ENCODINGS = {
    "Pillow level 6, Z_RLE (before)": pillow(compress_level=6, compress_type=zlib.Z_RLE),
    "Pillow level 1": pillow(compress_level=1),
    "Pillow level 6": pillow(compress_level=6),
    # What workers store without isal installed.
    "Up + zlib level 1" + (" (workers)" if encoding.DEFLATE == "zlib" else ""): ours(zlib),
}
if encoding.DEFLATE == "isal":
    ENCODINGS["Up + ISA-L level 1 (workers)"] = ours(encoding._deflate)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--side", type=int, default=2000)
    args = parser.parse_args()
    with Image.open(ROOT / "tests" / "fixtures" / "astronaut.jpg") as photo:
        big = photo.convert("RGB").resize((args.side, args.side), Image.Resampling.LANCZOS)
    result, _ = cutout(big, model="u2netp")
    pixels = np.asarray(result)
    rows = []
    for name, encode in ENCODINGS.items():
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            data = encode(result)
            best = min(best, time.process_time() - started)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels), name
        rows.append((name, best, len(data)))
    base_time, base_size = rows[0][1], rows[0][2]
    jpeg = io.BytesIO()
    big.save(jpeg, "JPEG", quality=90)
    rembg_size = len(remove(jpeg.getvalue(), session=session_get("u2netp")))
    print(f"cutout {result.width}×{result.height} RGBA, best of {args.repeat}; cpus: {os.cpu_count()}")
    print("| encoding | CPU s | × time | bytes | × size | × rembg's file |")
    print("|---|---|---|---|---|---|")
    for name, seconds, size in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / base_time:.2f} | {size:,} | {size / base_size:.2f} | "
              f"{size / rembg_size:.2f} |")
    print(f"| rembg's file (Pillow's default PNG of its composite) | | | {rembg_size:,} | "
          f"{rembg_size / base_size:.2f} | 1.00 |")


if __name__ == "__main__":
    main()
