"""trim: the image cropped to its subject, found by alpha, by a colour or by a uniform border."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rendering.encode import image_has_alpha
from rendering.stage import Param, RenderParams, Stage
from rendering.values import MAX_DIMENSION, choice, color, decimal, integer

Box = tuple[int, int, int, int]
TRIMS = {"alpha", "color", "auto", "colorunlessalpha"}
TRIM_MD, TRIM_SD = 11.0, 10.0  # imgix's defaults for trim=auto.

# Pixels looked at per step: the scans go band by band (rows, or columns for trim=auto), so a
# 50-megapixel image never has a second full-size copy.
BAND_PIXELS = 1 << 20


def trim_apply(image: Image.Image, params: RenderParams) -> Image.Image:
    """The image cropped to `trim_box`; unchanged when there is nothing to trim, and also when
    everything would be trimmed (an empty or uniform image keeps its size)."""
    box = trim_box(image, params)
    if box is None or box == (0, 0, image.width, image.height):
        return image
    return image.crop(box)


def trim_box(image: Image.Image, params: RenderParams) -> Box | None:
    """The box (left, top, right, bottom) trim keeps, trim-pad included, or None."""
    mode = params.trim
    if mode == "colorunlessalpha":
        mode = "alpha" if image_has_alpha(image) else "color"
    if mode == "alpha":
        box = _alpha_box(image, params.trim_alpha)
    elif mode == "color":
        box = _color_box(image, params.trim_color, params.trim_tol)
    elif mode == "auto":
        box = _border_box(image, params.trim_md, params.trim_sd)
    else:
        return None
    return None if box is None else _padded(box, image.size, params.trim_pad)


# --- One finder per mode ------------------------------------------------------------------------------

def _alpha_box(image: Image.Image, threshold: int) -> Box | None:
    """The bounding box of the pixels whose alpha is over `threshold` (trim-alpha)."""
    if "A" not in image.getbands():
        return None  # Opaque: nothing to trim.
    if threshold == 0:
        return image.getbbox(alpha_only=True)  # Pillow's own scan for alpha > 0, no copy.
    alpha = image.getchannel("A").point([255 if v > threshold else 0 for v in range(256)])
    return alpha.getbbox()


def _color_box(image: Image.Image, color: tuple | None, tolerance: float) -> Box | None:
    """The bounding box of the pixels further than `tolerance` from `color` (None: the top-left
    pixel's, as imgix does). Distance: the largest difference in one channel, 0–255, of R, G, B
    and A, both colours premultiplied by their alpha, so every fully transparent pixel is the
    same colour whatever RGB it carries."""
    has_alpha = "A" in image.getbands()
    target = _premultiplied(color if color is not None else _rgba(image.getpixel((0, 0))))
    if not has_alpha and 255 - target[3] > tolerance:
        return None  # An opaque image is all further than that from a transparent colour.
    bands = 4 if has_alpha else 3
    # One table per band: 255 where the value is further than `tolerance` from the target's.
    table = [255 if abs(v - target[band]) > tolerance else 0 for band in range(bands) for v in range(256)]
    width, height = image.size
    step = max(1, BAND_PIXELS // width)
    box = None
    for top in range(0, height, step):
        band = image.crop((0, top, width, min(height, top + step)))
        if has_alpha:
            band = band.convert("RGBa")
        found = band.point(table).getbbox(alpha_only=False)
        if found is not None:
            found = (found[0], found[1] + top, found[2], found[3] + top)
            box = found if box is None else _union(box, found)
    return box


def _border_box(image: Image.Image, mean_difference: float, deviation: float) -> Box | None:
    """trim=auto: a border of one colour, walked in from each edge. The border's colour is the
    mean of the four corners, and there is a border only when each corner is within trim-md of
    it. A row (then a column, within the rows kept) is border while its mean colour is within
    trim-md of the border's and its standard deviation within trim-sd, in every channel
    (premultiplied RGB, and alpha when the image has it), on the 0–255 scale."""
    width, height = image.size
    corners = np.concatenate([_pixels(image.crop((x, y, x + 1, y + 1))).reshape(1, -1)
                              for x, y in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1))])
    corners = corners.astype(np.float64)
    color = corners.mean(axis=0)
    if np.abs(corners - color).max() > mean_difference:
        return None  # The corners disagree: no uniform border.

    def border(strip: np.ndarray, axis: int) -> np.ndarray:
        # Per row (axis=1) or column (axis=0) of the strip: is it the border's colour, evenly?
        # Sums in integers (255² fits 16 bits): no float copy of the strip.
        count = strip.shape[axis]
        mean = strip.sum(axis=axis, dtype=np.uint64) / count
        wide = strip.astype(np.uint16)
        variance = (wide * wide).sum(axis=axis, dtype=np.uint64) / count - mean * mean
        spread = np.sqrt(np.maximum(variance, 0.0))
        return (np.abs(mean - color).max(axis=-1) <= mean_difference) & (spread.max(axis=-1) <= deviation)

    def rows(a: int, b: int) -> np.ndarray:
        return border(_pixels(image.crop((0, a, width, b))), axis=1)

    step = max(1, BAND_PIXELS // width)
    top = _walk(height, step, rows)
    if top is None:
        return None  # Border all the way through: a uniform image.
    bottom = _walk(height, step, rows, reverse=True)

    def columns(a: int, b: int) -> np.ndarray:
        return border(_pixels(image.crop((a, top, b, bottom))), axis=0)

    step = max(1, BAND_PIXELS // (bottom - top))
    left = _walk(width, step, columns)
    if left is None:
        return (0, top, width, bottom)  # Every column is even where the rows were not: keep the width.
    return (left, top, _walk(width, step, columns, reverse=True), bottom)


# --- Helpers ----------------------------------------------------------------------------------------

def _walk(length: int, step: int, is_border, *, reverse: bool = False) -> int | None:
    """The first index (from the start) or the end index (from the end, exclusive) of a line that
    is not border, reading `step` lines at a time so a thin border costs a thin read; None when
    every line is border."""
    starts = range(0, length, step)
    for start in (reversed(starts) if reverse else starts):
        end = min(length, start + step)
        flags = is_border(start, end)
        inside = np.flatnonzero(~flags)
        if inside.size:
            return start + int(inside[-1]) + 1 if reverse else start + int(inside[0])
    return None


def _padded(box: Box, size: tuple[int, int], pad: int) -> Box:
    """`box` grown by trim-pad pixels of the image on every side (shrunk, for a negative one),
    within the image and at least 1×1."""
    left, top, right, bottom = box
    edges = [max(0, left - pad), max(0, top - pad), min(size[0], right + pad), min(size[1], bottom + pad)]
    for low, high in ((0, 2), (1, 3)):
        if edges[high] <= edges[low]:
            centre = (box[low] + box[high]) // 2
            edges[low], edges[high] = centre, centre + 1
    return tuple(edges)


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _rgba(pixel) -> tuple[int, int, int, int]:
    return tuple(pixel) if len(pixel) == 4 else (*pixel[:3], 255)


def _premultiplied(rgba: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    # Pillow's own conversion, so the colour rounds exactly as the pixels compared with it do.
    return Image.new("RGBA", (1, 1), tuple(rgba)).convert("RGBa").getpixel((0, 0))


def _pixels(image: Image.Image) -> np.ndarray:
    """H×W×bands bytes: RGB, or premultiplied RGB and alpha (as Pillow's RGBa)."""
    if "A" in image.getbands():
        image = image.convert("RGBa")
    return np.asarray(image)


class TrimStage(Stage):
    """trim, first: the output's size follows the trimmed image's, so it runs before the budget."""

    name = "trim"
    params = (
        Param("trim", choice(TRIMS), ""),
        Param("trim-alpha", integer(0, 255), 0),
        Param("trim-color", color, aliases=("trimcolor",)),  # None: the top-left pixel's (imgix).
        Param("trim-tol", decimal(0.0, 255.0), 0.0, aliases=("trimtol",)),
        Param("trim-md", decimal(0.0, 255.0), TRIM_MD, aliases=("trimmd",)),
        Param("trim-sd", decimal(0.0, 255.0), TRIM_SD, aliases=("trimsd",)),
        Param("trim-pad", integer(-MAX_DIMENSION, MAX_DIMENSION), 0, aliases=("trimpad",)),
    )
    full_decode = True  # The box is found on every pixel.
    before_budget = True

    def active(self, p):
        return bool(p.trim)

    def effective(self, p, fmt):
        by_alpha = p.trim in ("alpha", "colorunlessalpha")
        by_color = p.trim in ("color", "colorunlessalpha")
        auto = p.trim == "auto"
        return dict(
            trim=p.trim,
            trim_alpha=p.trim_alpha if by_alpha else 0,
            trim_color=p.trim_color if by_color else None,
            trim_tol=p.trim_tol if by_color else 0.0,
            trim_md=p.trim_md if auto else TRIM_MD,
            trim_sd=p.trim_sd if auto else TRIM_SD,
            trim_pad=p.trim_pad if p.trim else 0,
        )

    def size(self, size, p, context):
        raise NotImplementedError("trim's size depends on the pixels: it runs before the budget.")

    def apply(self, image, p, context):
        return trim_apply(image, p)


STAGE = TrimStage()
