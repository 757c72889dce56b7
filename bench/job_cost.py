"""What a cutout job costs beyond its model: CPU time per image size, against the model alone and bare rembg.

Usage: .venv/bin/python bench/job_cost.py [--runs 5] [--sizes 0.25,1,4,10] [--image tests/fixtures/astronaut.jpg]

In this process, on a temporary SQLite database and local storage, with the workers' session (ONNX
Runtime intra-op threads = BG_REMOVE_INTRA_OP_THREADS, 1 by default), it measures at each size:
  - the model alone: `session.inner_session.run` on an input prepared once (what no job can avoid),
  - bare `rembg.remove(jpeg bytes, session=...)` on the same session (decode, model, PNG), and
  - the job: `bg_remove_job_process` from the claim to the cutout stored (fetch from a local
    folder, decode, model, straight alpha, encode, storage, the row's updates),
all as CPU time of this process, interleaved round by round: the ratios of the medians over --runs,
and of the best runs (the least disturbed by other load on a shared machine). It also prints
the stored file's bytes against rembg's file, the stored alpha against rembg's mask (IoU at 128,
mean |delta alpha| out of 255), and the peak RSS (VmHWM) of a fresh process that loads the models
as a worker does and runs a job at the smallest size, then three at the largest.

The photo is used as it is at its own size (within 10 %) and scaled up with LANCZOS, saved as JPEG
quality 90, for the larger sizes; the scaled copies live in the temporary folder only. The
encoding's deflate (ISA-L or zlib, cutouts/encoding.py) is printed with the results.
"""

import argparse
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(tmp: Path) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(name, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings", DJANGO_SECRET_KEY="bench", DJANGO_DEBUG="false",
                      CUTOUT_VAR_DIR=str(tmp / "var"), ORIGIN_LOCAL_ROOT=str(tmp / "demo"),
                      CUTOUT_ENV_FILE="/dev/null")
    os.environ.setdefault("BG_REMOVE_MODEL_HOME", str(ROOT / "var" / "models"))
    import django

    django.setup()


def make_inputs(image: Path, sizes: list[float], folder: Path) -> dict[float, str]:
    """Each size's file name in `folder`: the photo itself at its own size, else scaled to it."""
    from PIL import Image

    names = {}
    with Image.open(image) as photo:
        photo = photo.convert("RGB")
        for megapixels in sizes:
            scale = math.sqrt(megapixels * 1e6 / (photo.width * photo.height))
            name = f"photo-{megapixels:g}mp.jpg"
            if abs(scale * scale - 1) <= 0.1 and image.suffix.lower() in (".jpg", ".jpeg"):
                shutil.copy(image, folder / name)
            else:
                size = (round(photo.width * scale), round(photo.height * scale))
                photo.resize(size, Image.Resampling.LANCZOS).save(folder / name, "JPEG", quality=90)
            names[megapixels] = name
    return names


def source_create():
    from accounts.models import Account
    from sources.models import Source

    account = Account.objects.create(name="Bench", slug="bench")
    return Source.objects.create(account=account, slug="bench", kind=Source.Kind.LOCAL_FOLDER, local_path="photos")


def job_run(source, name: str, model: str):
    """One job from claim to stored, on a new name for the file (a job is unique per path):
    (CPU s, wall s, the finished job)."""
    from django.conf import settings

    from cutouts.models import BgRemoveJob
    from cutouts.services import bg_remove_job_process

    folder = Path(settings.ORIGIN_LOCAL_ROOT) / source.local_path
    path = f"{BgRemoveJob.objects.count()}-{name}"
    os.link(folder / name, folder / path)
    job = BgRemoveJob.objects.create(source=source, path=path, model=model)
    cpu, wall = time.process_time(), time.perf_counter()
    done = bg_remove_job_process(job_id=job.id)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert done.status == "done", (done.status, done.error_message)
    return cpu, wall, done


def cpu_of(fn):
    started = time.process_time()
    result = fn()
    return time.process_time() - started, result


def peak_rss_kib() -> int:
    # Peak (VmHWM), not current RSS: how much of the heap glibc has handed back varies run to run.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def rss_child(tmp: Path, small: str, large: str, model: str) -> None:
    """In a fresh process: the models loaded as a worker's pool process loads them, a job on the
    smallest photo, then three on the largest (ONNX Runtime may allocate more on later runs)."""
    setup_django(tmp)
    from django.conf import settings

    from cutouts.remover import session_get
    from sources.models import Source

    for each in settings.BG_REMOVE_MODELS:
        session_get(each)
    source = Source.objects.get(slug="bench")
    peaks = {"loaded": peak_rss_kib()}
    job_run(source, small, model)
    peaks["small"] = peak_rss_kib()
    for _ in range(3):
        job_run(source, large, model)
    peaks["large"] = peak_rss_kib()
    print(json.dumps(peaks))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="0.25,1,4,10", help="Megapixels, comma-separated.")
    parser.add_argument("--image", type=Path, default=ROOT / "tests" / "fixtures" / "astronaut.jpg")
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--no-rss", action="store_true", help="Skip the peak-RSS child.")
    parser.add_argument("--rss-child", nargs=3, metavar=("TMP", "SMALL", "LARGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(Path(args.rss_child[0]), *args.rss_child[1:], args.model)

    sizes = [float(size) for size in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="job-cost-"))
    try:
        (tmp / "demo" / "photos").mkdir(parents=True)
        names = make_inputs(args.image.resolve(), sizes, tmp / "demo" / "photos")
        setup_django(tmp)
        import numpy as np
        from django.conf import settings
        from django.core.files.storage import default_storage
        from django.core.management import call_command
        from PIL import Image
        from rembg import remove

        from cutouts.remover import session_get

        call_command("migrate", verbosity=0)
        source = source_create()
        session = session_get(args.model)
        job_run(source, names[sizes[0]], args.model)  # Warm: first-use costs are not a job's.
        rows = []
        for megapixels in sizes:
            data = (tmp / "demo" / "photos" / names[megapixels]).read_bytes()
            with Image.open(io.BytesIO(data)) as photo:
                size = photo.size
                feed = session.normalize(photo.convert("RGB"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                         (320, 320))
            rembg_bytes = len(remove(data, session=session))  # Also warms this size's allocations.
            model, bare, job, wall, stored = [], [], [], [], 0
            for _ in range(args.runs):  # Interleaved: a busy moment costs all three alike.
                model.append(cpu_of(lambda: session.inner_session.run(None, feed))[0])
                bare.append(cpu_of(lambda: remove(data, session=session))[0])
                cpu, seconds, done = job_run(source, names[megapixels], args.model)
                job.append(cpu)
                wall.append(seconds)
                stored = default_storage.size(done.cutout_name)
            with default_storage.open(done.cutout_name) as fh, Image.open(fh) as cutout:
                alpha = np.asarray(cutout.getchannel("A"), dtype=np.int16)
            with Image.open(io.BytesIO(remove(data, session=session, only_mask=True))) as mask:
                # Above BG_REMOVE_MAX_PIXELS the job's cutout is scaled down: so is rembg's mask here.
                theirs = np.asarray(mask.resize(alpha.shape[::-1], Image.Resampling.LANCZOS), dtype=np.int16)
            iou = ((alpha >= 128) & (theirs >= 128)).sum() / ((alpha >= 128) | (theirs >= 128)).sum()
            rows.append((megapixels, size, *map(statistics.median, (model, bare, job, wall)), min(job) / min(model),
                         min(job) / min(bare), stored, rembg_bytes, iou, np.abs(alpha - theirs).mean()))
        rss = None
        if not args.no_rss:
            smallest, largest = min(sizes), max(sizes)
            child = subprocess.run([sys.executable, __file__, "--model", args.model, "--rss-child", str(tmp),
                                    names[smallest], names[largest]], capture_output=True, text=True, check=True)
            rss = smallest, largest, json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    try:
        from cutouts.encoding import DEFLATE
    except ImportError:  # A checkout from before cutouts/encoding.py: Pillow's PNG encoder.
        DEFLATE = "Pillow's PNG encoder"
    print(f"photo: {args.image.name}, model: {args.model}, intra-op threads: {settings.BG_REMOVE_INTRA_OP_THREADS}, "
          f"runs: {args.runs} (medians of CPU time), cpus: {os.cpu_count()}, deflate: {DEFLATE}")
    print("| MP | size | model alone | bare rembg | job | job / model | job / rembg | job / model, job / rembg "
          "(best of each) | job wall | stored bytes | rembg's bytes | × rembg's | mask IoU, mean abs Δα vs rembg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for megapixels, size, model, bare, job, wall, best_model, best_bare, stored, rembg_bytes, iou, delta in rows:
        print(f"| {megapixels:g} | {size[0]}×{size[1]} | {model:.3f} | {bare:.3f} | {job:.3f} | "
              f"**{job / model:.2f}** | **{job / bare:.2f}** | {best_model:.2f}, {best_bare:.2f} | {wall:.3f} | "
              f"{stored:,} | {rembg_bytes:,} | {stored / rembg_bytes:.2f} | {iou:.4f}, {delta:.2f} |")
    if rss:
        smallest, largest, peaks = rss
        print(f"peak RSS (VmHWM) of a fresh process that loads the models as a worker does "
              f"({', '.join(settings.BG_REMOVE_MODELS)}): {peaks['loaded'] / 1024:.0f} MiB loaded, "
              f"{peaks['small'] / 1024:.0f} MiB after a {smallest:g} MP job, "
              f"**{peaks['large'] / 1024:.0f} MiB** after three {largest:g} MP jobs")


if __name__ == "__main__":
    sys.exit(main())
