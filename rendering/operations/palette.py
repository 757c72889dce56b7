"""Colour palette: the rendered image's dominant colours as a CSS stylesheet or a JSON document
(palette, colors, prefix), in place of the image, as imgix's color-palette parameters answer."""

from __future__ import annotations

import colorsys
import json
import re

import numpy as np
from PIL import Image

from rendering.stage import Param, Stage
from rendering.values import choice, integer

# The palette is measured on a sample whose long side is at most this: the colours of a photograph
# do not need its resolution, and the cost stays the same for any output size.
SAMPLE_SIZE = 256
# A pixel counts when it is at least half opaque (a cutout's background is not a colour of it).
OPAQUE = 128
MAX_COLORS = 16  # imgix's range of `colors`.
# Swatches the named ("dominance") colours are chosen from, as Vibrant.js quantises.
DOMINANCE_SWATCHES = 64
CONTENT_TYPES = {"css": "text/css", "json": "application/json"}
# imgix's CSS adds white and black after the image's colours, "to make a swatch set easier".
EXTRA_COLORS = ((255, 255, 255), (0, 0, 0))
# A CSS class name's start: nothing that could close the rule and start another one.
_PREFIX = re.compile(r"-?[A-Za-z_][A-Za-z0-9_-]{0,63}")

# The named colours (Vibrant.js's targets): (name, luma target, min, max, saturation target, min, max).
TARGETS = (
    ("vibrant", 0.5, 0.3, 0.7, 1.0, 0.35, 1.0),
    ("vibrant_dark", 0.26, 0.0, 0.45, 1.0, 0.35, 1.0),
    ("vibrant_light", 0.74, 0.55, 1.0, 1.0, 0.35, 1.0),
    ("muted", 0.5, 0.3, 0.7, 0.3, 0.0, 0.4),
    ("muted_dark", 0.26, 0.0, 0.45, 0.3, 0.0, 0.4),
    ("muted_light", 0.74, 0.55, 1.0, 0.3, 0.0, 0.4),
)
WEIGHT_SATURATION, WEIGHT_LUMA, WEIGHT_POPULATION = 3.0, 6.0, 1.0

Rgb = tuple[int, int, int]


def _prefix(value: str) -> str | None:
    value = value.strip()
    return value if _PREFIX.fullmatch(value) else None


def palette_document(image: Image.Image, p) -> tuple[bytes, str]:
    """The palette of `image` (the render, after every stage) as p.palette asks: (body, content type)."""
    pixels = _sample_pixels(image)
    colors = _frequent(pixels, p.colors) if p.colors else []
    dominant = _dominant(pixels)
    if p.palette == "css":
        body = _css(colors, dominant, p.prefix)
    else:
        body = json.dumps({
            "colors": [_color_json(rgb) for rgb in colors],
            "average_luminance": _round(_luminance(pixels)),
            "dominant_colors": {name: _color_json(rgb) for name, rgb in dominant.items()},
        })
    return body.encode(), CONTENT_TYPES[p.palette]


def _sample_pixels(image: Image.Image) -> np.ndarray:
    """The opaque pixels of a sample at most SAMPLE_SIZE on its long side, as an (n, 3) uint8 array.
    Nearest-neighbour: the image's own colours, counted, and no full-size copy (premultiplying a
    50-megapixel RGBA image to average it would be one)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or image.has_transparency_data else "RGB")
    shrink = min(1.0, SAMPLE_SIZE / max(image.size))
    size = (max(1, round(image.width * shrink)), max(1, round(image.height * shrink)))
    array = np.asarray(image.resize(size, Image.Resampling.NEAREST) if size != image.size else image)
    if image.mode == "RGBA":
        return np.ascontiguousarray(array[array[..., 3] >= OPAQUE][:, :3])
    return array.reshape(-1, 3)


def _swatches(pixels: np.ndarray, count: int) -> list[tuple[Rgb, int]]:
    """Up to `count` colours standing for `pixels` (median cut), with how many pixels each stands for,
    the most frequent first."""
    if count <= 0 or not len(pixels):
        return []
    strip = Image.fromarray(pixels.reshape(-1, 1, 3), "RGB")
    quantized = strip.quantize(count, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette()
    counts = np.bincount(np.asarray(quantized).ravel(), minlength=count)
    found: dict[Rgb, int] = {}
    for index in np.flatnonzero(counts):
        rgb = tuple(palette[3 * index:3 * index + 3])
        found[rgb] = found.get(rgb, 0) + int(counts[index])
    return sorted(found.items(), key=lambda item: (-item[1], item[0]))


def _frequent(pixels: np.ndarray, count: int) -> list[Rgb]:
    """imgix's default set: the `count` most frequent of the image's MAX_COLORS colours, most frequent
    first. Always cut into MAX_COLORS, so a smaller set is the start of a larger one (and colors=1 is
    the most frequent colour, not the mean of all)."""
    return [rgb for rgb, _ in _swatches(pixels, MAX_COLORS)][:count]


def _dominant(pixels: np.ndarray) -> dict[str, Rgb]:
    """imgix's "dominance" set, named as Vibrant.js names them: for each target, the swatch within its
    luma and saturation ranges closest to the target, weighted by population; a name no swatch fits
    is left out, and no swatch is used twice."""
    swatches = _swatches(pixels, DOMINANCE_SWATCHES)
    if not swatches:
        return {}
    most = max(population for _, population in swatches)
    hsl = [colorsys.rgb_to_hls(*(c / 255 for c in rgb)) for rgb, _ in swatches]
    chosen: dict[str, Rgb] = {}
    for name, luma, luma_min, luma_max, sat, sat_min, sat_max in TARGETS:
        best, best_score = None, -1.0
        for (rgb, population), (_, lightness, saturation) in zip(swatches, hsl, strict=True):
            if rgb in chosen.values():
                continue
            if not (luma_min <= lightness <= luma_max and sat_min <= saturation <= sat_max):
                continue
            score = (WEIGHT_SATURATION * (1 - abs(saturation - sat)) + WEIGHT_LUMA * (1 - abs(lightness - luma))
                     + WEIGHT_POPULATION * population / most) / (WEIGHT_SATURATION + WEIGHT_LUMA + WEIGHT_POPULATION)
            if score > best_score:
                best, best_score = rgb, score
        if best is not None:
            chosen[name] = best
    return chosen


def _luminance(pixels: np.ndarray) -> float:
    """The mean luma (Rec. 709 weights on the sRGB values), 0–1; 0 for an image with no opaque pixel."""
    if not len(pixels):
        return 0.0
    return float((pixels.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])).mean() / 255)


def _round(value: float) -> float:
    return float(f"{value:.6g}")  # imgix writes six significant digits.


def _hex(rgb: Rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _color_json(rgb: Rgb) -> dict:
    red, green, blue = (_round(c / 255) for c in rgb)
    return {"red": red, "green": green, "blue": blue, "hex": _hex(rgb)}


def _css(colors: list[Rgb], dominant: dict[str, Rgb], prefix: str) -> str:
    """A foreground (color) and a background (background-color) class per colour: the default set
    numbered from 1, white and black as ex-1 and ex-2, then the named ones."""
    classes = [(str(i), rgb) for i, rgb in enumerate(colors, 1)]
    classes += [(f"ex-{i}", rgb) for i, rgb in enumerate(EXTRA_COLORS, 1)]
    classes += [(name.replace("_", "-"), rgb) for name, rgb in dominant.items()]
    lines = []
    for suffix, rgb in classes:
        lines.append(f".{prefix}-fg-{suffix} {{ color:{_hex(rgb)} !important; }}")
        lines.append(f".{prefix}-bg-{suffix} {{ background-color:{_hex(rgb)} !important; }}")
    return "\n".join(lines) + "\n"


class PaletteStage(Stage):
    """palette, colors and prefix. No pixel work in the stage loop: the render answers the palette
    of its image instead of the image (rendering/services.py), under a key of its own (the format
    it negotiates is "palette", rendering/encode.py)."""

    name = "palette"
    pixels = False
    params = (
        Param("palette", choice(set(CONTENT_TYPES)), ""),
        Param("colors", integer(0, MAX_COLORS), 6),
        Param("prefix", _prefix, "image", differs="letters, digits, `-` and `_` (a CSS class name), up to 64; "
                                                   "anything else keeps `image`"),
    )

    def active(self, p):
        return bool(p.palette)

    def effective(self, p, fmt):
        if not p.palette:
            return dict(self.fields)
        return {"palette": p.palette, "colors": p.colors, "prefix": p.prefix if p.palette == "css" else "image"}


STAGE = PaletteStage()
