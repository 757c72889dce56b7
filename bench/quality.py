"""Background removal against true alpha: matting errors, colour of the edge on white, stray alpha, CPU per cutout.

Usage:
    BG_REMOVE_MODEL_HOME=/path/to/models DJANGO_SECRET_KEY=x .venv/bin/python bench/quality.py \\
        [--models u2netp,u2net,u2netp-int8] [--refinements none,clean-edges] [--split test|tune|all] \\
        [--backgrounds white,grey,dark,similar,busy] [--limit N] [--json out.json]

Defaults: u2netp, every refinement of cutouts.remover.REFINEMENTS (a refinement added there is
measured without touching this file), the test split, every background. A derived model that is
not provisioned (u2netp-int8) is built first with `manage.py provision_models`; a model that cannot
be had is skipped with a line saying why.

The set (bench/quality/manifest.json; licences in bench/quality/LICENSE.md) is 30 photographic
cut-outs with a hand-cut alpha, split into `tune` (what a refinement may be tuned on) and `test`
(what it is judged on). Each is centred on a canvas with a margin of a tenth of its longest side
all round (the subject is about 83 % of the canvas: a subject touching the frame would make the
bounding-box measure meaningless) and composited over each background in 8-bit sRGB, as photos
are stored: photo = round(α·F + (1 − α)·B), α the stamp's alpha, F its colours. So α is the true
matte of the photo and F its true foreground colours. Backgrounds: `white` (255), `grey` (224),
`dark` (16), `similar` (the subject's own mean colour along the inside of its edge, with a
low-frequency texture of ±8 levels and a grain of ±3), `busy` (a real texture or photo with no
second object in it, one per foreground in turn: bench/quality/backgrounds and the demo landscape
for the test split, regions of the int8 calibration photos for the tune split).

Each photo goes through cutouts.remover.cutout(image, model=…, refinement=…) in this process, one
ONNX Runtime thread (BG_REMOVE_INTRA_OP_THREADS, default 1 here). Per model × refinement (and per
split), the mean over images × backgrounds of, with alphas in [0, 1] over the whole image (there
is no trimap):
- SAD: Σ|α − α*| / 1000, and MSE: mean (α − α*)², reported ×10³ (alphamatting.com conventions);
- Grad: Σ(|∇α| − |∇α*|)² / 1000, gradients by first-derivative-of-Gaussian filters, σ = 1.4,
  normalised and padded as in the Composition-1k evaluation code (Rhemann et al. 2009);
- IoU of α ≥ 0.5 against α* ≥ 0.5;
- edge colour: the cutout over white against the true foreground over white with the true alpha,
  mean |difference| in 0–255 units over the edge band (pixels with 0 < α* < 1, dilated by 3 px),
  and over the whole image;
- far alpha: the share of the cutout's alpha mass farther than 8 px from the subject (α* > 0), the
  count of such pixels with α > 0, and the IoU of the α > 0 bounding box (what trim=alpha crops to)
  with the true one;
- CPU: process time of cutout() plus its forked children's (clean-edges and alpha-matting refine
  in a child), after a warm-up cutout per model.
"""

import argparse
import contextlib
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
SET = ROOT / "bench" / "quality"
BACKGROUNDS = ("white", "grey", "dark", "similar", "busy")
SPLITS = ("test", "tune")
PLAIN = {"white": 255, "grey": 224, "dark": 16}
MARGIN = 0.1  # Of the subject's longest side, on every side of the canvas.
BAND_PX = 3
FAR_PX = 8
GRADIENT_SIGMA = 1.4
METRICS = ("sad", "mse", "grad", "iou", "edge_colour", "image_colour", "far_share", "far_pixels", "bbox_iou", "cpu")


# The metrics: plain functions of float alphas in [0, 1] (and colours in 0–255), tested on their own.

def sad(alpha: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(alpha - truth).sum() / 1000.0)


def mse(alpha: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((alpha - truth) ** 2))


def _gaussian_gradient_kernel(sigma: float) -> np.ndarray:
    # The Composition-1k evaluation's gaussgradient: a separable Gaussian × derivative-of-Gaussian
    # kernel, cut where the Gaussian falls under 1 % of its peak, scaled to unit L2 norm.
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * 1e-2))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-x**2 / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dgauss = -x * gauss / sigma**2
    kernel = np.outer(gauss, dgauss)  # Rows smooth, columns differentiate: the x derivative.
    return kernel / np.sqrt(np.sum(kernel**2))


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    kernel = _gaussian_gradient_kernel(sigma)
    gx = ndimage.convolve(alpha, kernel, mode="nearest")
    gy = ndimage.convolve(alpha, kernel.T, mode="nearest")
    return np.hypot(gx, gy)


def gradient_error(alpha: np.ndarray, truth: np.ndarray, sigma: float = GRADIENT_SIGMA) -> float:
    return float(np.sum((gradient_magnitude(alpha, sigma) - gradient_magnitude(truth, sigma)) ** 2) / 1000.0)


def iou(alpha: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    ours, true = alpha >= threshold, truth >= threshold
    union = np.logical_or(ours, true).sum()
    return float(np.logical_and(ours, true).sum() / union) if union else 1.0


def edge_band(truth: np.ndarray, px: int = BAND_PX) -> np.ndarray:
    """Pixels within `px` (Euclidean) of a partly transparent pixel of the true alpha."""
    soft = (truth > 0) & (truth < 1)
    if not soft.any():
        return soft
    return ndimage.distance_transform_edt(~soft) <= px


def over_white(colours: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return alpha[..., None] * colours + (1.0 - alpha[..., None]) * 255.0


def colour_error(colours: np.ndarray, alpha: np.ndarray, true_colours: np.ndarray, truth: np.ndarray,
                 where: np.ndarray | None = None) -> float:
    """Mean |difference| (0–255, over pixels and channels) of the cutout over white and the true
    foreground over white, within `where` (the whole image when None)."""
    difference = np.abs(over_white(colours, alpha) - over_white(true_colours, truth))
    if where is not None:
        if not where.any():
            return 0.0
        difference = difference[where]
    return float(difference.mean())


def far_alpha(alpha: np.ndarray, truth: np.ndarray, px: int = FAR_PX) -> tuple[float, int]:
    """The share of the cutout's alpha mass, and the count of its pixels with α > 0, farther than
    `px` from any pixel of the true subject (α* > 0)."""
    far = ndimage.distance_transform_edt(truth <= 0) > px
    mass = alpha.sum()
    return (float(alpha[far].sum() / mass) if mass > 0 else 0.0), int(np.count_nonzero(alpha[far] > 0))


def bbox(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom), exclusive, of the pixels with α > 0; None when there are none."""
    inside = alpha > 0
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def bbox_iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    ours, true = bbox(alpha), bbox(truth)
    if ours is None or true is None:
        return float(ours is None and true is None)
    width = min(ours[2], true[2]) - max(ours[0], true[0])
    height = min(ours[3], true[3]) - max(ours[1], true[1])
    inter = max(width, 0) * max(height, 0)

    def area(box):
        return (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area(ours) + area(true) - inter)


def case_metrics(cutout_rgba: np.ndarray, truth: dict) -> dict:
    """Every metric of one cutout (uint8 RGBA) against its truth (from `truth_make`)."""
    alpha = cutout_rgba[..., 3].astype(np.float64) / 255.0
    colours = cutout_rgba[..., :3].astype(np.float64)
    share, pixels = far_alpha(alpha, truth["alpha"])
    return {
        "sad": sad(alpha, truth["alpha"]),
        "mse": mse(alpha, truth["alpha"]),
        "grad": gradient_error(alpha, truth["alpha"]),
        "iou": iou(alpha, truth["alpha"]),
        "edge_colour": colour_error(colours, alpha, truth["colours"], truth["alpha"], truth["band"]),
        "image_colour": colour_error(colours, alpha, truth["colours"], truth["alpha"]),
        "far_share": share,
        "far_pixels": pixels,
        "bbox_iou": bbox_iou(alpha, truth["alpha"]),
    }


# The set: foregrounds on canvases, backgrounds, composites.

def manifest_load() -> dict:
    return json.loads((SET / "manifest.json").read_text())


def truth_make(entry: dict) -> dict:
    """The foreground on its canvas: true alpha, true colours, edge band, and its mean edge colour."""
    with Image.open(SET / entry["file"]) as image:
        rgba = np.asarray(image.convert("RGBA"))
    height, width = rgba.shape[:2]
    margin = int(np.ceil(MARGIN * max(width, height)))
    alpha = np.zeros((height + 2 * margin, width + 2 * margin))
    colours = np.zeros((*alpha.shape, 3))
    alpha[margin:margin + height, margin:margin + width] = rgba[..., 3] / 255.0
    colours[margin:margin + height, margin:margin + width] = rgba[..., :3]
    inside = alpha >= 0.5
    rim = inside & (ndimage.distance_transform_edt(inside) <= 3)
    return {"alpha": alpha, "colours": colours, "band": edge_band(alpha),
            "edge_colour": colours[rim].mean(axis=0) if rim.any() else np.full(3, 128.0)}


def background_make(kind: str, entry: dict, truth: dict, busy: list[dict]) -> np.ndarray:
    height, width = truth["alpha"].shape
    if kind in PLAIN:
        return np.full((height, width, 3), float(PLAIN[kind]))
    rng = np.random.default_rng(zlib.crc32(entry["name"].encode()))
    if kind == "similar":
        low = ndimage.gaussian_filter(rng.standard_normal((height, width)), 16)
        low *= 8.0 / max(np.abs(low).max(), 1e-9)
        grain = rng.uniform(-3, 3, (height, width))
        return np.clip(truth["edge_colour"][None, None, :] + (low + grain)[..., None], 0, 255)
    if kind == "busy":
        # One texture per foreground, in turn through its split's list (manifest order).
        names = [e["name"] for e in manifest_load()["foregrounds"] if e["split"] == entry["split"]]
        chosen = busy[names.index(entry["name"]) % len(busy)]
        with Image.open(SET / chosen["file"]) as image:
            photo = image.convert("RGB")
        if "box" in chosen:
            photo = photo.crop(tuple(chosen["box"]))
        scale = max(width / photo.width, height / photo.height)
        size = (max(width, round(photo.width * scale)), max(height, round(photo.height * scale)))
        photo = photo.resize(size, Image.Resampling.LANCZOS)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return np.asarray(photo.crop((left, top, left + width, top + height)), dtype=np.float64)
    raise ValueError(f"Unknown background {kind!r}; known: {', '.join(BACKGROUNDS)}.")


def composite(truth: dict, background: np.ndarray) -> Image.Image:
    """The input photo: the true foreground over `background` with the true alpha, 8-bit sRGB."""
    alpha = truth["alpha"][..., None]
    pixels = alpha * truth["colours"] + (1.0 - alpha) * background
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


# The run.

def _cpu() -> float:
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def models_ready(names: list[str]) -> list[str]:
    """Those of `names` this process can run; a derived one missing is built first. Each one left
    out is said on stdout, with why."""
    import io

    from django.core.management import call_command

    from core.model_files import MODELS, model_provisioned

    ready = []
    for name in names:
        if name not in MODELS:
            print(f"{name}: skipped: not a model this platform knows ({', '.join(MODELS)}).")
            continue
        if not model_provisioned(name) and MODELS[name].derived_from:
            try:
                call_command("provision_models", name, stdout=io.StringIO())
            except Exception as exc:  # Any failure to build: said, and the model left out.
                print(f"{name}: skipped: building it failed: {exc}")
                continue
        if not model_provisioned(name):
            print(f"{name}: skipped: not provisioned; run `manage.py provision_models {name}`.")
            continue
        ready.append(name)
    return ready


def run(*, models: list[str], refinements: list[str], entries: list[dict], backgrounds: list[str],
        busy: dict, progress=None) -> list[dict]:
    """One row per model × refinement × foreground × background: its metrics, CPU and note."""
    from cutouts.remover import cutout

    truths = {entry["name"]: truth_make(entry) for entry in entries}
    photos = {(entry["name"], kind): composite(truths[entry["name"]],
                                               background_make(kind, entry, truths[entry["name"]], busy[entry["split"]]))
              for entry in entries for kind in backgrounds}
    rows = []
    for model in models:
        cutout(next(iter(photos.values())), model=model)  # Warm: loads the session, not timed.
        for refinement in refinements:
            for entry in entries:
                for kind in backgrounds:
                    started = _cpu()
                    result, note = cutout(photos[entry["name"], kind], model=model, refinement=refinement)
                    cpu = _cpu() - started
                    rgba = np.asarray(result.convert("RGBA"))
                    row = {"model": model, "refinement": refinement, "split": entry["split"], "image": entry["name"],
                           "kind": entry["kind"], "background": kind, **case_metrics(rgba, truths[entry["name"]]),
                           "cpu": cpu, "note": note}
                    rows.append(row)
                    if progress:
                        progress(row)
    return rows


def summarise(rows: list[dict], by=("split", "model", "refinement")) -> list[dict]:
    groups: dict = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in by), []).append(row)
    summary = []
    for key, group in groups.items():
        means = {metric: float(np.mean([row[metric] for row in group])) for metric in METRICS}
        summary.append({**dict(zip(by, key)), "n": len(group), **means,
                        "fallbacks": sum(1 for row in group if row["note"])})
    return summary


def table(summary: list[dict]) -> str:
    lines = [
        "| split | model | refinement | n | SAD | MSE×10³ | Grad | IoU@0.5 | edge colour err | image colour err "
        "| far α share | far px | bbox IoU | CPU s/cutout | fallbacks |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['split']} | {s['model']} | {s['refinement']} | {s['n']} | {s['sad']:.2f} | {s['mse'] * 1e3:.2f} "
            f"| {s['grad']:.2f} | {s['iou']:.4f} | {s['edge_colour']:.2f} | {s['image_colour']:.3f} "
            f"| {s['far_share'] * 100:.3f} % | {s['far_pixels']:.0f} | {s['bbox_iou']:.3f} | {s['cpu']:.3f} "
            f"| {s['fallbacks']} |")
    return "\n".join(lines)


def background_table(summary: list[dict], backgrounds: list[str]) -> str:
    """SAD / edge colour error by background."""
    cells: dict = {}
    for s in summary:
        cells.setdefault((s["split"], s["model"], s["refinement"]), {})[s["background"]] = s
    lines = ["| split | model | refinement | " + " | ".join(backgrounds) + " |",
             "|---|---|---|" + "---:|" * len(backgrounds)]
    for (split, model, refinement), row in cells.items():
        lines.append(f"| {split} | {model} | {refinement} | " + " | ".join(
            f"{row[b]['sad']:.2f} / {row[b]['edge_colour']:.1f}" if b in row else "" for b in backgrounds) + " |")
    return "\n".join(lines)


def _names(value: str, known, what: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if known is not None and name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or '(none given)'}; "
                                         f"known: {', '.join(known)}")
    return names


def main(argv=None):
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("BG_REMOVE_INTRA_OP_THREADS", "1")
    # As the worker (config/celery_app.py): numba's own threads survive the refinement's fork.
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    import django
    from django.apps import apps

    if not apps.ready:  # Already set up when a test calls main().
        django.setup()
    from cutouts.remover import REFINEMENTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="u2netp", type=lambda v: _names(v, None, "model"),
                        help="Comma-separated model names (default u2netp).")
    parser.add_argument("--refinements", default=",".join(REFINEMENTS),
                        type=lambda v: _names(v, REFINEMENTS, "refinement"),
                        help=f"Comma-separated, of {', '.join(REFINEMENTS)} (default all).")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="test")
    parser.add_argument("--backgrounds", default=",".join(BACKGROUNDS),
                        type=lambda v: _names(v, BACKGROUNDS, "background"),
                        help=f"Comma-separated, of {', '.join(BACKGROUNDS)} (default all).")
    parser.add_argument("--limit", type=int, default=0, help="At most this many foregrounds per split (0: all).")
    parser.add_argument("--json", type=Path, help="Write the summary and every case here.")
    args = parser.parse_args(argv)

    manifest = manifest_load()
    splits = SPLITS if args.split == "all" else (args.split,)
    entries = []
    for split in splits:
        chosen = [entry for entry in manifest["foregrounds"] if entry["split"] == split]
        entries += chosen[:args.limit] if args.limit > 0 else chosen
    models = models_ready(args.models)
    if not models:
        sys.exit("No model to measure.")

    def progress(row):
        sys.stderr.write(f"\r{row['model']} {row['refinement']} {row['image']} {row['background']}"
                         f"{' ' * 20}")
        sys.stderr.flush()

    started = time.monotonic()
    # pymatting prints its solver's warnings; to stderr, away from the tables (the refining child
    # inherits the redirection with the fork).
    with contextlib.redirect_stdout(sys.stderr):
        rows = run(models=models, refinements=args.refinements, entries=entries, backgrounds=args.backgrounds,
                   busy=manifest["busy"], progress=progress)
    sys.stderr.write("\n")
    summary = summarise(rows)
    by_background = summarise(rows, by=("split", "model", "refinement", "background"))
    import onnxruntime
    import rembg
    from django.conf import settings

    print(f"{len(entries)} foregrounds × {len(args.backgrounds)} backgrounds ({args.split}); "
          f"{settings.BG_REMOVE_INTRA_OP_THREADS} ONNX Runtime thread(s); rembg {rembg.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; {time.monotonic() - started:.0f} s\n")
    print(table(summary))
    print("\nSAD / edge colour error, by background:\n")
    print(background_table(by_background, args.backgrounds))
    for row in rows:
        if row["note"]:
            print(f"- {row['model']} {row['refinement']} {row['image']} on {row['background']}: {row['note']}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "by_background": by_background, "cases": rows},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
