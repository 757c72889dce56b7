"""adjust: imgix's colour adjustments (bri, con, exp, gam, high, shad, hue, sat, vib, invert)."""

from __future__ import annotations

import math
from collections.abc import Callable

from PIL import Image, ImageChops

from rendering.stage import Param, Stage, StageContext
from rendering.values import boolean, decimal, integer, number_parse

# Rec. 709 luma weights, as the CSS filter matrices (hue-rotate, saturate) use them: a
# rotation or a saturation change about the grey axis keeps R=G=B pixels where they are.
LUMA = (0.2126, 0.7152, 0.0722)
# Premultiplied colour and alpha at half scale (see colour_strips).
HALF = [v // 2 for v in range(256)]
# Rows a strip holds: 512 × 8192 pixels, 16 MB as RGB.
STRIP_ROWS = 512
# Exposure in stops at ±100: imgix's exp=100 is a strong brightening, not a blow-out.
EXPOSURE_STOPS = 2.0
# Gamma exponent at gam=±100: 4 (darker mid-tones) and 1/4 (lighter).
GAMMA_BASE = 4.0
# How far shadows lift and highlights fall at ±100: the curve's exponent goes to 1/(1+k) or 1+k.
TONE_STRENGTH = 1.5


def hue_parse(value: str) -> int | None:
    """Degrees, any whole number, as 0–359: 360 and 0 draw the same image (one cache key)."""
    number = number_parse(value)
    return None if number is None else round(number) % 360


def _srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _linear_to_srgb(v: float) -> float:
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def _clip(value: float) -> int:
    return min(255, max(0, round(value)))


def colour_split(piece: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """The colour (RGB or L) of an image and its alpha (None without one)."""
    if piece.mode not in ("RGBA", "LA"):
        return piece, None
    return piece.convert(piece.mode[:-1]), piece.getchannel("A")


def colour_join(colour: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """The inverse of colour_split."""
    if alpha is not None:
        colour.putalpha(alpha)
    return colour


def premultiplied_strips(image: Image.Image) -> list[Image.Image]:
    """An RGBA or LA image as RGBa or La strips of STRIP_ROWS rows: premultiplied once, for
    steps that read the image twice (a wide blur made first, then the strips)."""
    width, height = image.size
    return [image.crop((0, y0, width, min(height, y0 + STRIP_ROWS))).convert(image.mode[:-1] + "a")
            for y0 in range(0, height, STRIP_ROWS)]


def _rows(strips: list[Image.Image], top: int, bottom: int) -> Image.Image:
    """Rows top–bottom of the image `strips` cut."""
    first, last = top // STRIP_ROWS, (bottom - 1) // STRIP_ROWS
    width = strips[0].width
    if first == last:
        return strips[first].crop((0, top - first * STRIP_ROWS, width, bottom - first * STRIP_ROWS))
    piece = Image.new(strips[0].mode, (width, bottom - top))
    for k in range(first, last + 1):
        piece.paste(strips[k], (0, k * STRIP_ROWS - top))
    return piece


def colour_strips(image: Image.Image, work: Callable[[Image.Image, int], Image.Image],
                  margin: int = 0, premultiply: bool = False,
                  premultiplied: list[Image.Image] | None = None, halve: bool = True) -> Image.Image:
    """`work(colour, top)` over the image's colour in strips of rows, written into one output
    image: at 50 MP a step's temporaries are a strip's, not a whole image's (Pillow keeps RGB as
    4 bytes a pixel, 200 MB). `margin` rows of context above and below each strip, for filters
    that read neighbours; `top` is the first row `colour` holds. Alpha comes back unchanged.

    `colour` is RGB or L; with `premultiply`, an image with alpha is given as RGBa or La instead
    (from `premultiplied`, premultiplied_strips' strips, when given), for filters that read
    neighbours: premultiplied, so the hidden colour of transparent pixels cannot bleed into
    visible ones, and alpha filtered with the colour, so that dividing the colour by it afterwards
    (normalised convolution) keeps a flat colour flat up to the silhouette instead of sharpening
    the cutout's edge against black. All four channels are halved first, so a filter's overshoot
    of alpha (sharpening next to the silhouette) does not clip at 255; dividing cancels it. With
    `halve` False, `work` halves them itself (a 3×3 filter can, in the same pass)."""
    width, height = image.size
    normalise = premultiply and image.mode in ("RGBA", "LA")
    out = Image.new(image.mode, image.size, None)  # Every row is pasted over.
    for y0 in range(0, height, STRIP_ROWS):
        y1 = min(height, y0 + STRIP_ROWS)
        top, bottom = max(0, y0 - margin), min(height, y1 + margin)
        if normalise:
            piece = (_rows(premultiplied, top, bottom) if premultiplied
                     else image.crop((0, top, width, bottom)).convert(image.mode[:-1] + "a"))
            piece = work(piece.point(HALF * len(image.mode)) if halve else piece, top).convert(image.mode)
        else:
            colour, alpha = colour_split(image.crop((0, top, width, bottom)))
            piece = colour_join(work(colour, top), alpha)
        out.paste(piece.crop((0, y0 - top, width, y1 - top)) if margin else piece, (0, y0))
    if normalise:
        out.putalpha(image.getchannel("A"))
    return out


def curve_table(p) -> list[int] | None:
    """exp, bri, con, gam (and invert when nothing follows it) as one 256-entry table, or None."""
    if not (p.exp or p.bri or p.con or p.gam):
        return None
    gain = 2.0 ** (EXPOSURE_STOPS * p.exp / 100)
    offset = 255 * p.bri / 100
    factor = 1 + p.con / 100
    power = GAMMA_BASE ** (p.gam / 100)
    table = []
    for x in range(256):
        v = x / 255
        if p.exp:
            # In linear light, as a camera's exposure: black stays black, white clips.
            v = _linear_to_srgb(min(1.0, _srgb_to_linear(v) * gain))
        v = v * 255 + offset
        v = (v - 127.5) * factor + 127.5
        v = min(255.0, max(0.0, v))
        if p.gam:
            v = 255 * (v / 255) ** power
        table.append(_clip(v))
    return table


def _tone(image: Image.Image, luminance: Image.Image, curve, weight) -> Image.Image:
    """The image through `curve` where `weight` of its luminance is 1, unchanged where it is 0
    (in place: the strips colour_strips gives are its own copies)."""
    shifted = image.point([_clip(curve(x)) for x in range(256)] * len(image.getbands()))
    mask = luminance.point([_clip(255 * weight(v / 255)) for v in range(256)])
    image.paste(shifted, None, mask)
    return image


def tone_apply(image: Image.Image, high: int, shad: float) -> Image.Image:
    """Shadows lift (shad > 0) and highlights fall (high < 0) by a curve on each channel, blended
    in by the pixel's luminance: dark pixels take the shadow curve, bright ones the highlight one,
    so the other end of the range keeps its values. Black and white themselves stay put."""
    luminance = image.convert("L") if image.mode == "RGB" else image
    if shad:
        lift = 1 / (1 + TONE_STRENGTH * shad / 100)
        image = _tone(image, luminance, lambda x: 255 * (x / 255) ** lift, lambda v: (1 - v) ** 2)
    if high:
        fall = 1 / (1 + TONE_STRENGTH * -high / 100)
        image = _tone(image, luminance, lambda x: 255 - 255 * ((255 - x) / 255) ** fall, lambda v: v * v)
    return image


def _matrix_multiply(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def saturation_matrix(s: float) -> list[list[float]]:
    """Scales chroma by `s` about the pixel's luma (0: grey, R=G=B)."""
    return [[LUMA[j] + (1 - LUMA[j]) * s if i == j else LUMA[j] * (1 - s) for j in range(3)] for i in range(3)]


def hue_matrix(degrees: float) -> list[list[float]]:
    """A rotation of the colour about the grey axis (the CSS hue-rotate matrix): red goes towards
    yellow and green as the angle grows, to cyan at 180."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    lr, lg, lb = LUMA
    return [
        [lr + c * (1 - lr) - s * lr, lg - c * lg - s * lg, lb - c * lb + s * (1 - lb)],
        [lr - c * lr + s * 0.143, lg + c * (1 - lg) + s * 0.140, lb - c * lb - s * 0.283],
        [lr - c * lr - s * (1 - lr), lg - c * lg + s * lg, lb + c * (1 - lb) + s * lb],
    ]


def _convert(image: Image.Image, matrix) -> Image.Image:
    return image.convert("RGB", tuple(v for row in matrix for v in (*row, 0.0)))


def colour_apply(image: Image.Image, hue: int, sat: int, vib: int) -> Image.Image:
    """Hue rotation and saturation as one colour matrix; vibrance as a saturation change weighted
    by how grey each pixel is (1 − chroma), so muted colours move and vivid ones stay."""
    if hue or sat:
        matrix = hue_matrix(hue) if hue else [[float(i == j) for j in range(3)] for i in range(3)]
        if sat:
            matrix = _matrix_multiply(saturation_matrix(1 + sat / 100), matrix)
        image = _convert(image, matrix)
    if vib:
        r, g, b = image.split()
        chroma = ImageChops.subtract(ImageChops.lighter(ImageChops.lighter(r, g), b),
                                     ImageChops.darker(ImageChops.darker(r, g), b))
        del r, g, b
        weight = chroma.point([255 - c for c in range(256)])
        del chroma
        changed = _convert(image, saturation_matrix(1 + vib / 100))
        image.paste(changed, None, weight)  # In place, as _tone.
    return image


class AdjustStage(Stage):
    """Every step is one C pass of Pillow over a strip (a lookup table, a colour matrix, a blend
    of two images through a mask), never a float copy of the pixels: a 50 MP image is 200 MB in
    Pillow and 200 MB per float32 plane. Only the colour changes; alpha is set aside and put
    back as it was. The order: the per-channel curves (exposure, brightness, contrast, gamma) as
    one table, then highlights and shadows, then hue, saturation and vibrance, then invert."""

    name = "adjust"
    params = (
        Param("bri", integer(-100, 100), 0),
        Param("con", integer(-100, 100), 0),
        Param("exp", integer(-100, 100), 0),
        Param("gam", integer(-100, 100), 0),
        Param("high", integer(-100, 0), 0),
        Param("shad", decimal(0, 100), 0),
        Param("hue", hue_parse, 0),
        Param("sat", integer(-100, 100), 0),
        Param("vib", integer(-100, 100), 0),
        Param("invert", boolean, False, aliases=("inv",)),
    )

    def apply(self, image: Image.Image, p, context: StageContext) -> Image.Image:
        grey = image.mode in ("L", "LA")
        colour = not grey and bool(p.hue or p.sat or p.vib)
        table = curve_table(p)
        if not (table or p.invert or p.high or p.shad or colour):
            return image  # Nothing, or only colour steps on a grey image.
        # Invert folds into the curve table when it is the last step anyway.
        tail_invert = p.invert and (p.high or p.shad or colour)
        if p.invert and not tail_invert:
            table = [255 - v for v in (table or range(256))]

        def work(out: Image.Image, top: int) -> Image.Image:
            if table:
                out = out.point(table * len(out.getbands()))
            if p.high or p.shad:
                out = tone_apply(out, p.high, p.shad)
            if colour:
                out = colour_apply(out, p.hue, p.sat, p.vib)
            if tail_invert:
                out = out.point([255 - v for v in range(256)] * len(out.getbands()))
            return out

        return colour_strips(image, work)

STAGE = AdjustStage()
