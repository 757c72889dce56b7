"""u2netp-int8 against u2netp: inference CPU time per image, file sizes, and mask IoU, in one run.

Usage: .venv/bin/python bench/quantized_model.py [--repeat 10]

provision_models builds u2netp-int8 into a temporary model home from var/models/u2netp.onnx (the
build's own CPU time is reported too). Both models then run, alternately so that the load of the
machine falls on both alike, on the committed photos (tests/fixtures, demo/origin), through the
real rembg sessions of cutouts.remover at BG_REMOVE_INTRA_OP_THREADS (1 by default): the model
alone (the session's ONNX Runtime run on the prepared input), and the whole cutout
(cutouts.remover.cutout: preparation, model, mask, straight alpha). CPU time of this process,
best of --repeat; IoU of the masks thresholded at 128, quantised against u2netp.
"""

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from PIL import Image  # noqa: E402

from cutouts.quantization import calibration_input  # noqa: E402
from cutouts.remover import cutout, session_get  # noqa: E402

MODELS = ("u2netp", "u2netp-int8")
PHOTOS = [ROOT / "tests" / "fixtures" / "astronaut.jpg", ROOT / "tests" / "fixtures" / "chelsea.png",
          ROOT / "demo" / "origin" / "aitzgorri.jpg"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="quantized-bench-"))
    try:
        settings.BG_REMOVE_MODEL_HOME = home
        shutil.copy(ROOT / "var" / "models" / "u2netp.onnx", home / "u2netp.onnx")
        started = time.process_time()
        call_command("provision_models", "u2netp-int8", stdout=io.StringIO())
        build = time.process_time() - started
        sessions = {name: session_get(name) for name in MODELS}
        sizes = {name: (home / f"{name}.onnx").stat().st_size for name in MODELS}
        rows = []
        for path in PHOTOS:
            with Image.open(path) as photo:
                image = photo.convert("RGB")
            feed = calibration_input(path)  # u2netp's input, as rembg prepares it.
            model_cpu, cutout_cpu, masks = {}, {}, {}
            for name in MODELS:  # Warm: the first run allocates ONNX Runtime's arenas.
                inner = sessions[name].inner_session
                inner.run(None, {inner.get_inputs()[0].name: feed})
                result, _ = cutout(image, model=name)
                masks[name] = np.asarray(result.getchannel("A")) >= 128
            for _ in range(args.repeat):
                for name in MODELS:
                    inner = sessions[name].inner_session
                    started = time.process_time()
                    inner.run(None, {inner.get_inputs()[0].name: feed})
                    run, started = time.process_time() - started, time.process_time()
                    cutout(image, model=name)
                    whole = time.process_time() - started
                    model_cpu[name] = min(model_cpu.get(name, run), run)
                    cutout_cpu[name] = min(cutout_cpu.get(name, whole), whole)
            reference, quantised = masks.values()
            iou = (reference & quantised).sum() / (reference | quantised).sum()
            rows.append((path.name, image.size, model_cpu, cutout_cpu, iou))
    finally:
        shutil.rmtree(home)
    print(f"best of {args.repeat}; intra-op threads {settings.BG_REMOVE_INTRA_OP_THREADS}; cpus: {os.cpu_count()}")
    print(f"files: u2netp {sizes['u2netp']:,} bytes, u2netp-int8 {sizes['u2netp-int8']:,} "
          f"({sizes['u2netp-int8'] / sizes['u2netp']:.2f}×); build {build:.1f} CPU-s")
    print(f"{'photo':16} {'size':>9} {'model s fp32':>12} {'int8':>7} {'×':>5} {'cutout s fp32':>13} {'int8':>7} "
          f"{'×':>5} {'IoU':>6}")
    for name, (width, height), model_cpu, cutout_cpu, iou in rows:
        fp32, int8 = model_cpu.values()
        whole_fp32, whole_int8 = cutout_cpu.values()
        print(f"{name:16} {width:>4}×{height:<4} {fp32:12.3f} {int8:7.3f} {int8 / fp32:5.2f} "
              f"{whole_fp32:13.3f} {whole_int8:7.3f} {whole_int8 / whole_fp32:5.2f} {iou:6.3f}")
    ratios = [r[2]["u2netp-int8"] / r[2]["u2netp"] for r in rows]
    print(f"model time int8/fp32: mean {np.mean(ratios):.2f}; IoU mean {np.mean([r[4] for r in rows]):.3f}, "
          f"worst {min(r[4] for r in rows):.3f}")


if __name__ == "__main__":
    main()
