"""mask: the image cut to an ellipse or to rounded corners, mask-bg behind the cut (imgix's mask category)."""

import math
import re

import numpy as np
from PIL import Image, ImageChops

from rendering.stage import Param, Stage
from rendering.values import MAX_DIMENSION, color, number_parse

Box = tuple[int, int]
Radii = tuple[float, float, float, float]  # top-left, top-right, bottom-right, bottom-left

MASKS = ("ellipse", "corners")
TRANSPARENT_WHITE = (255, 255, 255, 0)  # imgix's default colour, `0FFF`: white once flattened.
CORNER_SHARE = 0.2  # imgix: without corner-radius, 20% of the smaller side.
BAND_ROWS = 512  # Rows per band when a full-size layer would otherwise be held twice.
PATCH_ROWS = 512  # Rows of a corner's coverage computed at a time (float32 temporaries).


# --- Coverage: how much of each pixel a shape covers, as an "L" image ------------------------------

def ellipse_mask(size: Box) -> Image.Image:
    """The ellipse that fits `size`, antialiased: each pixel's coverage from its distance to the
    edge (the implicit function over its gradient). Computed on one quarter and mirrored."""
    width, height = size
    half_w, half_h = (width + 1) // 2, (height + 1) // 2
    a, b = width / 2, height / 2
    xs = np.abs(np.arange(half_w, dtype=np.float32) + 0.5 - a)
    ys = np.abs(np.arange(half_h, dtype=np.float32) + 0.5 - b)
    quarter = np.empty((half_h, half_w), dtype=np.uint8)
    for top in range(0, half_h, PATCH_ROWS):
        y = ys[top:top + PATCH_ROWS, None]
        g = (xs / a) ** 2 + (y / b) ** 2 - 1
        slope = 2 * np.sqrt(xs ** 2 / a ** 4 + y ** 2 / b ** 4)
        distance = -g / np.maximum(slope, 1e-6)
        quarter[top:top + PATCH_ROWS] = np.round(np.clip(distance + 0.5, 0, 1) * 255)
    full = np.empty((height, width), dtype=np.uint8)
    full[:half_h, :half_w] = quarter
    full[:half_h, width - half_w:] = quarter[:, ::-1]
    full[height - half_h:, :half_w] = quarter[::-1]
    full[height - half_h:, width - half_w:] = quarter[::-1, ::-1]
    return Image.fromarray(full, "L")


def radii_fit(radii: Radii, width: float, height: float) -> Radii:
    """Radii scaled down together until adjacent ones fit along each side (as CSS does)."""
    shrink = 1.0
    for pair, side in (((0, 1), width), ((3, 2), width), ((0, 3), height), ((1, 2), height)):
        total = radii[pair[0]] + radii[pair[1]]
        if total > side:
            shrink = min(shrink, side / total)
    return tuple(max(0.0, r * shrink) for r in radii)


def rounded_mask(size: Box, rect: tuple[int, int, int, int], radii: Radii) -> Image.Image:
    """Coverage of the rectangle `rect` (left, top, right, bottom, whole pixels) with rounded
    corners, on a canvas of `size`. Only the corners are computed; the rest is filled."""
    width, height = size
    left, top, right, bottom = rect
    coverage = np.zeros((height, width), dtype=np.uint8)
    if right <= left or bottom <= top:
        return Image.fromarray(coverage, "L")
    coverage[top:bottom, left:right] = 255
    radii = radii_fit(radii, right - left, bottom - top)
    patches: dict[float, np.ndarray] = {}
    for corner, radius in enumerate(radii):
        if radius <= 0:
            continue
        if radius not in patches:
            patches[radius] = _corner_patch(radius)
        patch = patches[radius]
        n = patch.shape[0]
        rows = slice(top, top + n) if corner in (0, 1) else slice(bottom - n, bottom)
        cols = slice(left, left + n) if corner in (0, 3) else slice(right - n, right)
        oriented = patch[:, ::-1] if corner in (1, 2) else patch
        oriented = oriented[::-1] if corner in (2, 3) else oriented
        # min: two corners that meet on a short side share a pixel; neither may widen it.
        np.minimum(coverage[rows, cols], oriented, out=coverage[rows, cols])
    return Image.fromarray(coverage, "L")


def _corner_patch(radius: float) -> np.ndarray:
    """A top-left corner of `radius` in its ceil(radius)² box: coverage by the pixel centre's
    distance to the arc, whose centre is `radius` in from the box's top and left."""
    n = math.ceil(radius)
    offsets = np.minimum(np.arange(n, dtype=np.float32) + 0.5 - radius, 0)
    patch = np.empty((n, n), dtype=np.uint8)
    for top in range(0, n, PATCH_ROWS):
        distance = np.sqrt(offsets[top:top + PATCH_ROWS, None] ** 2 + offsets[None, :] ** 2)
        patch[top:top + PATCH_ROWS] = np.round(np.clip(radius + 0.5 - distance, 0, 1) * 255)
    return patch


def cut(image: Image.Image, coverage: Image.Image, background: tuple) -> Image.Image:
    """`image` kept where `coverage` is, `background` (RGBA) behind. An opaque background gives
    an opaque image (straight alpha blends exactly over it); otherwise the image's alpha is
    multiplied by the coverage and the background, if any, is composited under it."""
    has_alpha = image.mode in ("RGBA", "LA")
    keep = ImageChops.multiply(image.getchannel("A"), coverage) if has_alpha else coverage
    if background[3] == 255:
        out = Image.new("RGB", image.size, background[:3])
        for box in row_bands(image.size):
            out.paste(image.crop(box).convert("RGB"), box, keep.crop(box))
        return out
    grey = image.mode in ("L", "LA") and background[3] == 0
    out = image.convert("LA" if grey else "RGBA")  # A copy: the input is left as it is.
    out.putalpha(keep)
    if background[3] > 0:
        for box in row_bands(image.size):
            band = Image.new("RGBA", (box[2] - box[0], box[3] - box[1]), background)
            band.alpha_composite(out.crop(box))
            out.paste(band, box)
    return out


def row_bands(size: Box):
    """Boxes of BAND_ROWS rows across the image: work in them holds no second full-size copy."""
    for top in range(0, size[1], BAND_ROWS):
        yield (0, top, size[0], min(size[1], top + BAND_ROWS))


# --- Values --------------------------------------------------------------------------------------

def mask_type(value: str) -> str | None:
    """ellipse, corners, or the image it names (a path on the source, an http(s) URL or a
    rendering URL: read at the gate as a mark is, rendering/marks.py). A word that names neither
    a shape nor an image is only ignored."""
    word = value.strip()
    if word.lower() in MASKS:
        return word.lower()
    if any(mark in word for mark in "/.:"):
        return word
    return None


def corner_radii(value: str) -> tuple | None:
    """One radius for all four corners, or four from the top left, clockwise (pixels). A single
    value of 0 or less keeps the default (imgix); in the four-value form 0 is a square corner."""
    numbers = [number_parse(part) for part in re.split(r"[,;|]", value)]
    if None in numbers or len(numbers) not in (1, 4):
        return None
    if len(numbers) == 1:
        return None if numbers[0] <= 0 else (min(round(numbers[0]), MAX_DIMENSION),) * 4
    return tuple(min(max(round(n), 0), MAX_DIMENSION) for n in numbers)


def color_canonical(value: str) -> tuple | None:
    """A colour, every fully transparent one as imgix's transparent white: they draw the same."""
    rgba = color(value)
    return TRANSPARENT_WHITE if rgba is not None and rgba[3] == 0 else rgba


# --- Stage ---------------------------------------------------------------------------------------

class MaskStage(Stage):
    """mask=ellipse fits an ellipse to the image; mask=corners rounds its corners by
    corner-radius (pixels, times dpr with a w or h; default 20% of the smaller side, at most
    half of it); mask=<image> (a path, an http(s) URL or a rendering URL, through the gate as a
    mark) keeps the image where the mask's luminance times its alpha is white, stretched to fit. The cut-away area is mask-bg: transparent by default, so a later `bg` fills it
    and a JPEG shows it white (imgix). The output keeps the image's size."""

    name = "mask"
    params = (
        Param("mask", mask_type, ""),
        Param("corner-radius", corner_radii, None),
        Param("mask-bg", color_canonical, TRANSPARENT_WHITE, aliases=("maskbg",)),
    )

    def active(self, p) -> bool:
        return bool(p.mask)

    @staticmethod
    def image(p) -> str:
        """The mask image the URL names, "" for a shape."""
        return p.mask if p.mask and p.mask not in MASKS else ""

    def effective(self, p, fmt: str) -> dict:
        fields = self.fields
        if not self.active(p):
            return fields
        mask = self.image_ref_canonical(p.mask) if self.image(p) else p.mask
        return {"mask": mask, "corner_radius": p.corner_radius if p.mask == "corners" else None,
                "mask_bg": p.mask_bg}

    def apply(self, image: Image.Image, p, context) -> Image.Image:
        if not self.active(p):
            return image
        if self.image(p):
            if context.mask is None:
                return image
            # Its luminance and its transparency, stretched to the image: white shows, black hides.
            shape = context.mask
            coverage = shape.convert("L")
            if "A" in shape.getbands():
                coverage = ImageChops.multiply(coverage, shape.getchannel("A"))
            coverage = coverage.resize(image.size, Image.Resampling.BILINEAR)
        elif p.mask == "ellipse":
            coverage = ellipse_mask(image.size)
        else:
            coverage = rounded_mask(image.size, (0, 0, *image.size), self._radii(image.size, p))
        return cut(image, coverage, p.mask_bg)

    @staticmethod
    def _radii(size: Box, p) -> Radii:
        if p.corner_radius is None:
            return (CORNER_SHARE * min(size),) * 4
        scale = p.dpr if p.w or p.h else 1.0
        return tuple(min(r * scale, min(size) / 2) for r in p.corner_radius)


STAGE = MaskStage()
