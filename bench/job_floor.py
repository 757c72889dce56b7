"""The floor under a cutout job's cost: decoding the origin and encoding the stored PNG, against
the model's inference alone, at each size (CPU time of this process, best of --runs).

Usage: .venv/bin/python bench/job_floor.py [--runs 5] [--sizes 0.25,1,4,10] [--model u2netp]

Whatever else a job does (the model's input, the mask scaled up, straight alpha, clean edges,
storage), it decodes the photo and encodes the cutout: if those two alone are over a target
ratio of job to model, no work on the rest meets it. The photo is tests/fixtures/astronaut.jpg
scaled with LANCZOS and saved as JPEG quality 90; the PNG is cutouts/encoding.py's, of the photo
with an alpha that is opaque on a disc and transparent around it (a cutout's kind of image).
"""

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_best(fn, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="0.25,1,4,10", help="Megapixels, comma-separated.")
    parser.add_argument("--model", default="u2netp")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(name, None)
    os.environ.update(CUTOUT_ENV_FILE=os.devnull, DJANGO_SECRET_KEY="bench", DJANGO_DEBUG="false",
                      CUTOUT_VAR_DIR=tempfile.mkdtemp(prefix="job-floor-"), DJANGO_SETTINGS_MODULE="config.settings")
    os.environ.setdefault("BG_REMOVE_MODEL_HOME", str(ROOT / "var" / "models"))
    import django

    django.setup()
    import numpy as np
    from PIL import Image, ImageDraw

    from cutouts.encoding import cutout_png
    from cutouts.removers import remover_get

    remover = remover_get(args.model)
    session = remover.session.inner_session
    width, height = remover.input_size
    tensor = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    feed = {session.get_inputs()[0].name: tensor}
    model = cpu_best(lambda: session.run(None, feed), args.runs)
    print(f"{args.model} inference alone: {model:.3f} CPU-s (intra-op threads: "
          f"{os.environ.get('BG_REMOVE_INTRA_OP_THREADS', '1')})")
    print("| MP | JPEG decode | PNG encode | decode + encode | (decode + encode) / model |")
    print("|---|---|---|---|---|")
    photo = Image.open(ROOT / "tests" / "fixtures" / "astronaut.jpg").convert("RGB")
    for megapixels in (float(size) for size in args.sizes.split(",")):
        scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
        big = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        big.save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        alpha = Image.new("L", big.size, 0)
        ImageDraw.Draw(alpha).ellipse((big.width * 0.2, big.height * 0.1, big.width * 0.8, big.height * 0.95), fill=255)
        cutout = big.copy()
        cutout.putalpha(alpha)
        decode = cpu_best(lambda: Image.open(io.BytesIO(data)).load(), args.runs)
        encode = cpu_best(lambda: cutout_png(cutout), args.runs)
        print(f"| {megapixels:g} | {decode:.3f} | {encode:.3f} | {decode + encode:.3f} | {(decode + encode) / model:.2f}× |")


if __name__ == "__main__":
    main()
