"""Stylize: imgix's blur, px (pixellate), htn (halftone), monochrome, sepia and duotone, one stage each.

They run after sizing, in the order of STAGES: blur, px and htn work on the sized image's pixels,
then the colour maps (monochrome, sepia, duotone), so a halftone's dots take the duotone's colours.
Lengths (blur's radius, htn's dots) are relative to the image, so an effect looks the same at any
output size or dpr; px's blocks are output pixels. Alpha is kept exactly: the
colour maps work on the colour bands alone, and the filters on premultiplied colour so that
transparent pixels cannot bleed into visible ones."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from rendering.colors import color_parse
from rendering.stage import Box, Param, Stage, StageContext
from rendering.values import color, integer

# imgix gives blur's range (0–2000), not its unit: here blur=2000 is a gaussian of sigma half
# the image's longer side (a wash of its mean colours), blur=20 a soft focus.
BLUR_MAX = 2000
BLUR_SIGMA_PER_UNIT = 1 / (2 * BLUR_MAX)
# Above this sigma the blur runs on a copy scaled down to it, then scaled back up: what a larger
# blur removes, the smaller copy never had, and the cost no longer grows with the radius.
BLUR_WORK_SIGMA = 3.0
# Rows per strip when a stage works band by band: about 4 MP at 8192 wide.
STRIP_ROWS = 512
# htn=100: dots on a screen of 1/25 of the longer side (25 dot rows across); never under 3 pixels.
HALFTONE_CELLS_AT_100 = 25
HALFTONE_MIN_CELL = 3
# ITU-R 601 luma, the weights PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)
# The usual sepia tone matrix (rows: red, green, blue out of red, green, blue in).
SEPIA_MATRIX = (0.393, 0.769, 0.189, 0,
                0.349, 0.686, 0.168, 0,
                0.272, 0.534, 0.131, 0)

PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}


def two_colors(value: str) -> tuple | None:
    """`duotone`: two colours, dark then light, as RGB; None unless both read."""
    parts = value.split(",")
    if len(parts) != 2:
        return None
    colors = [color_parse(part) for part in parts]
    if None in colors:
        return None
    return tuple(tuple(c[:3]) for c in colors)


def _premultiplied(image: Image.Image) -> Image.Image:
    mode = PREMULTIPLIED.get(image.mode)
    return image.convert(mode) if mode else image


def _straight(image: Image.Image, mode: str) -> Image.Image:
    return image.convert(mode) if image.mode != mode else image


def _by_strips(image: Image.Image, mode: str, work, *, multiple: int = 1, margin: int = 0) -> Image.Image:
    """`work(part, top)` on bands of rows, pasted into one new image of `mode`: the working copies
    (premultiplied colour, luminance, tables' output) stay a strip's size, not the image's.
    `multiple`: strips start on multiples of it (a block or tile size); `margin`: rows read
    around each strip for a filter's reach, and cut off again."""
    width, height = image.size
    rows = max(1, STRIP_ROWS // multiple) * multiple
    out = Image.new(mode, image.size)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        upper, lower = max(0, top - margin), min(height, bottom + margin)
        part = work(image.crop((0, upper, width, lower)), top)
        if (upper, lower) != (top, bottom):
            part = part.crop((0, top - upper, width, bottom - upper))
        out.paste(part, (0, top))
    return out


def _colour_mode(image: Image.Image) -> str:
    """What a colour map makes of this mode: RGB, with the alpha band kept when there is one."""
    return "RGBA" if image.mode in ("RGBA", "LA") else "RGB"


def _tone_map(image: Image.Image, luts, strength: float) -> Image.Image:
    """The image's luminance through one 256-entry table per output band (R, G, B), mixed with
    the original by `strength` (0–1). Alpha is kept as it was; an L image becomes RGB."""
    mode = _colour_mode(image)

    def work(part, top):
        part = part.convert(mode)
        bands = [part.convert("L").point(lut) for lut in luts]
        if mode == "RGBA":
            bands.append(part.getchannel("A"))
        mapped = Image.merge(mode, bands)
        # Both alpha bands are the same, so blending leaves alpha exact.
        return Image.blend(part, mapped, strength) if strength < 1 else mapped

    return _by_strips(image, mode, work)


# --- blur ---------------------------------------------------------------------------------------

def blur_sigma(size: Box, blur: int) -> float:
    """Gaussian sigma in pixels: relative to the image's longer side."""
    return blur * max(size) * BLUR_SIGMA_PER_UNIT


class BlurStage(Stage):
    """blur: a gaussian blur, 0–2000, relative to the output's size."""

    name = "blur"
    params = (Param("blur", integer(0, BLUR_MAX), 0),)

    def apply(self, image, p, context: StageContext):
        if not p.blur:
            return image
        mode, (width, height) = image.mode, image.size
        sigma = blur_sigma(image.size, p.blur)
        factor = max(1, int(sigma // BLUR_WORK_SIGMA))
        if factor == 1:
            def blurred(part, top):
                return _straight(_premultiplied(part).filter(ImageFilter.GaussianBlur(sigma)), mode)
            # A gaussian reaches about 3 sigma: each strip reads that much around it.
            return _by_strips(image, mode, blurred, margin=math.ceil(3 * sigma) + 2)
        # A copy `factor` times smaller, blurred by sigma / factor, then scaled back up.
        small = Image.new(PREMULTIPLIED.get(mode, mode), (-(-width // factor), -(-height // factor)))
        rows = max(1, STRIP_ROWS // factor) * factor
        for top in range(0, height, rows):
            part = image.crop((0, top, width, min(height, top + rows)))
            small.paste(_premultiplied(part).reduce(factor), (0, top // factor))
        small = small.filter(ImageFilter.GaussianBlur(sigma / factor))

        def enlarged(part, top):
            box = (0, top / factor, width / factor, (top + part.height) / factor)
            return _straight(small.resize(part.size, Image.Resampling.BICUBIC, box=box), mode)

        return _by_strips(image, mode, enlarged)


# --- px -----------------------------------------------------------------------------------------

class PixellateStage(Stage):
    """px: blocks of px × px output pixels, each the mean of what it covers (from the top left)."""

    name = "px"
    params = (Param("px", integer(0, 100), 0),)

    def active(self, p) -> bool:
        return p.px >= 2  # Blocks of one pixel are the image itself.

    def apply(self, image, p, context: StageContext):
        if not self.active(p):
            return image
        block, mode = p.px, image.mode

        def pixellated(part, top):
            # reduce() averages whole blocks (and the partial ones of the last row and column).
            small = _premultiplied(part).reduce(block)
            box = (0, 0, part.width / block, part.height / block)
            return _straight(small.resize(part.size, Image.Resampling.NEAREST, box=box), mode)

        return _by_strips(image, mode, pixellated, multiple=block)


# --- htn ----------------------------------------------------------------------------------------

def halftone_cell(size: Box, htn: int) -> int:
    """The screen's tile side in pixels: a tile holds one dot at its corners and one at its centre,
    a screen at 45°, as print uses, so the pattern is least visible."""
    return max(HALFTONE_MIN_CELL, round(htn / 100 * max(size) / HALFTONE_CELLS_AT_100))


def halftone_screen(cell: int) -> np.ndarray:
    """Threshold levels for one tile (a clustered-dot dither matrix): each pixel is ranked by
    its distance to the nearest dot centre, so a dot grows from its centre as the tone darkens,
    and a flat tone of darkness d inks exactly a fraction d of the tile."""
    centre = (np.arange(cell) + 0.5) / cell
    x, y = np.meshgrid(centre, centre)
    distance = np.minimum.reduce([
        np.hypot(x - cx, y - cy) for cx, cy in ((0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0.5))
    ])
    rank = np.empty(cell * cell)
    rank[np.argsort(distance, axis=None, kind="stable")] = np.arange(cell * cell)
    # Ink where luminance < level: darkness 1 - L/255 above the pixel's rank (r + 0.5) / n.
    level = 255 * (1 - (rank + 0.5) / (cell * cell))
    return np.ceil(level).astype(np.uint8).reshape(cell, cell)


class HalftoneStage(Stage):
    """htn: black dots on white whose size follows the image's tone; 0–100 sets their size."""

    name = "htn"
    params = (Param("htn", integer(0, 100), 0),)

    def apply(self, image, p, context: StageContext):
        if not p.htn:
            return image
        mode, width = image.mode, image.width
        cell = halftone_cell(image.size, p.htn)
        screen = halftone_screen(cell)
        columns = np.arange(width) % cell

        def dotted(part, top):
            luminance = np.asarray(part.convert("L"))
            rows = np.arange(top, top + part.height) % cell
            levels = screen[rows[:, None], columns[None, :]]
            dots = Image.fromarray(np.where(luminance >= levels, 255, 0).astype(np.uint8), "L")
            bands = [dots] * (len(mode) - ("A" in mode)) + ([part.getchannel("A")] if "A" in mode else [])
            return Image.merge(mode, bands)

        return _by_strips(image, mode, dotted, multiple=cell)


# --- monochrome, sepia, duotone -----------------------------------------------------------------

def monochrome_luts(rgb) -> list[list[int]]:
    """Black → the colour → white, the colour at its own luminance: every tone keeps its
    lightness and takes the colour's hue (a mix of one colour with black or white has its hue)."""
    lc = sum(w * c for w, c in zip(LUMA, rgb))
    luts = []
    for c in rgb:
        lut = []
        for v in range(256):
            if v <= lc:
                lut.append(round(c * v / lc) if lc else 0)
            else:
                lut.append(round(c + (255 - c) * (v - lc) / (255 - lc)))
        luts.append(lut)
    return luts


class MonochromeStage(Stage):
    """monochrome (mono): one hue; the colour's alpha (ARGB hex) is the effect's strength."""

    name = "monochrome"
    params = (Param("monochrome", color, None, aliases=("mono",)),)

    def active(self, p) -> bool:
        return p.monochrome is not None and p.monochrome[3] > 0

    def apply(self, image, p, context: StageContext):
        if not self.active(p):
            return image
        return _tone_map(image, monochrome_luts(p.monochrome[:3]), p.monochrome[3] / 255)


class SepiaStage(Stage):
    """sepia: 0–100, the strength of a sepia tone."""

    name = "sepia"
    params = (Param("sepia", integer(0, 100), 0),)

    def apply(self, image, p, context: StageContext):
        if not p.sepia:
            return image
        mode, strength = _colour_mode(image), p.sepia / 100

        def toned(part, top):
            colour = part.convert("RGB")
            sepia = colour.convert("RGB", SEPIA_MATRIX)
            if strength < 1:
                sepia = Image.blend(colour, sepia, strength)
            if mode == "RGBA":
                sepia.putalpha(part.getchannel("A"))
            return sepia

        return _by_strips(image, mode, toned)


def duotone_luts(dark, light) -> list[list[int]]:
    return [[round(d + (l - d) * v / 255) for v in range(256)] for d, l in zip(dark, light)]


class DuotoneStage(Stage):
    """duotone: luminance mapped from the first colour (shadows) to the second (highlights);
    duotone-alpha (0–100) mixes it with the original."""

    name = "duotone"
    params = (
        Param("duotone", two_colors, None),
        Param("duotone-alpha", integer(0, 100), 100),
    )

    def active(self, p) -> bool:
        return p.duotone is not None and p.duotone_alpha > 0

    def apply(self, image, p, context: StageContext):
        if not self.active(p):
            return image
        return _tone_map(image, duotone_luts(*p.duotone), p.duotone_alpha / 100)


BLUR = BlurStage()
PX = PixellateStage()
HTN = HalftoneStage()
MONOCHROME = MonochromeStage()
SEPIA = SepiaStage()
DUOTONE = DuotoneStage()
STAGES = (BLUR, PX, HTN, MONOCHROME, SEPIA, DUOTONE)
