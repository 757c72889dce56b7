"""The default refinement's cost (cutouts/edges.py) beside the model's, in one process, one thread.

Usage: .venv/bin/python bench/clean_edges.py

For each photo at 1, 4 and 10 megapixels: u2netp's mask (rembg, one intra-op thread), then
mask_clean and foreground_estimate on it, CPU seconds each; then the worst case, a 10 MP mask soft
at every pixel (what a hostile photo could make the model answer), with the process's peak RSS.
"""

import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("U2NET_HOME", str(ROOT / "var" / "models"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
from PIL import Image  # noqa: E402
from rembg import new_session, remove  # noqa: E402

from cutouts.edges import foreground_estimate, mask_clean  # noqa: E402

PHOTOS = ["cutouts/calibration/coffee.jpg", "tests/fixtures/astronaut.jpg", "tests/fixtures/chelsea.png",
          "cutouts/calibration/rocket.jpg"]


def cpu(fn, *args):
    started = time.process_time()
    result = fn(*args)
    return result, time.process_time() - started


def main():
    cv2.setNumThreads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = new_session("u2netp", sess_opts=options)
    print("| photo | MP | mask (model) s | mask_clean s | foreground_estimate s | refinement / mask | soft band |")
    print("|---|---|---|---|---|---|---|")
    for name in PHOTOS:
        with Image.open(ROOT / name) as photo:
            photo = photo.convert("RGB")
        for megapixels in (1, 4, 10):
            scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
            big = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
            mask, t_mask = cpu(lambda image: remove(image, session=session, only_mask=True), big)
            clean, t_clean = cpu(mask_clean, np.asarray(mask))
            _, t_fg = cpu(foreground_estimate, np.asarray(big), clean)
            band = ((clean > 0) & (clean < 255)).mean()
            print(f"| {Path(name).name} | {megapixels} | {t_mask:.3f} | {t_clean:.3f} | {t_fg:.3f} | "
                  f"{(t_clean + t_fg) / t_mask:.2f} | {band:.1%} |")
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (2736, 3648, 3), dtype=np.uint8)
    alpha = rng.integers(8, 247, (2736, 3648), dtype=np.uint8)
    alpha[0, 0] = 255
    clean, t_clean = cpu(mask_clean, alpha)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _, t_fg = cpu(foreground_estimate, image, clean)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nworst case, 10 MP soft everywhere: mask_clean {t_clean:.2f} s, foreground_estimate {t_fg:.2f} s, "
          f"peak RSS {peak / 1024:.0f} MB ({(peak - before) / 1024:+.0f} MB in the estimate)")


if __name__ == "__main__":
    main()
