"""Rotation: imgix's orient and flip (before sizing), and rot with rot-type (after sizing).

ORIENT turns the frame with the image, in quarter turns and mirrors: orient is read as an EXIF
orientation (1–8; 90, 180 and 270 stand for 6, 3 and 8), flip mirrors what orient gives. Both
compose into one lossless transpose. ROT turns the image by any angle counter-clockwise, as
imgix's rot page says, inside the sized frame: rot-type=straighten (the default) zooms so the
turned image covers the frame; pivot grows the canvas to hold the whole turned image, with
transparent corners that the bg stage or the encoder's flattening colours later (as pad's are)."""

from __future__ import annotations

import math

from django.conf import settings
from PIL import Image

from rendering.stage import Box, Param, Stage, StageContext
from rendering.values import MAX_DIMENSION, choice, number_parse

T = Image.Transpose
# How each EXIF orientation turns stored pixels upright (imaging/decode.py's ORIENTATIONS).
EXIF_TRANSPOSES = {
    1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE, 6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90,
}
# orient=0: turn nothing, whatever the source's EXIF says.
ORIENT_DEGREES = {0: 1, 90: 6, 180: 3, 270: 8}
ORIENT_VALUES = set(EXIF_TRANSPOSES) | set(ORIENT_DEGREES)
FLIPS = {"h": T.FLIP_LEFT_RIGHT, "v": T.FLIP_TOP_BOTTOM, "hv": T.ROTATE_180}
SIDEWAYS = {T.ROTATE_90, T.ROTATE_270, T.TRANSPOSE, T.TRANSVERSE}
ROT_TYPES = {"pivot", "straighten"}
PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
# Canvas tiles drawn one at a time (1 MP).
TILE = 1024


def _transposes_table():
    """Every composition of two of the eight transposes, as one: found on a probe image whose
    pixels are all different, so no geometry is worked out by hand."""
    probe = Image.frombytes("L", (3, 2), bytes(range(6)))
    elements = list(EXIF_TRANSPOSES.values())

    def turned(image, method):
        return image if method is None else image.transpose(method)

    results = {(turned(probe, m).size, turned(probe, m).tobytes()): m for m in elements}
    return {
        (first, then): results[(turned(turned(probe, first), then).size,
                                turned(turned(probe, first), then).tobytes())]
        for first in elements for then in elements
    }


COMPOSE = _transposes_table()
INVERSE = {m: next(n for n in EXIF_TRANSPOSES.values() if COMPOSE[(m, n)] is None)
           for m in EXIF_TRANSPOSES.values()}


def orient_value(value: str) -> int | None:
    number = number_parse(value)
    if number is None or number != round(number) or round(number) not in ORIENT_VALUES:
        return None
    return round(number)


def degrees(value: str) -> float | None:
    """An angle, any number of turns, as 0 ≤ a < 360."""
    number = number_parse(value)
    return None if number is None else round(number % 360, 6) % 360


def orient_transpose(orient: int | None, flip: str | None, source_orientation: int = 1):
    """The one transpose from the decoded (EXIF-upright) pixels to what orient and flip ask.
    orient replaces the source's EXIF orientation, so that one is undone first."""
    method = None
    if orient is not None:
        method = INVERSE[EXIF_TRANSPOSES.get(source_orientation)]
        method = COMPOSE[(method, EXIF_TRANSPOSES[ORIENT_DEGREES.get(orient, orient)])]
    if flip:
        method = COMPOSE[(method, FLIPS[flip])]
    return method


class OrientStage(Stage):
    """orient (or) and flip, before sizing: w and h apply to the turned image."""

    name = "orient"
    params = (
        Param("orient", orient_value, None, aliases=("or",)),
        Param("flip", choice(set(FLIPS), {"vh": "hv"}), None),
    )
    # The reduced-scale decode is asked for in the upright source's frame, which a sideways
    # orient turns: decode it whole rather than too small on one side.
    full_decode = True

    def _method(self, p, context: StageContext | None):
        # The source's EXIF orientation, which decoding has already applied (1: none); a
        # context that does not carry it is an upright source.
        source = getattr(context, "orientation", 1) or 1
        return orient_transpose(p.orient, p.flip, source)

    def size(self, size: Box, p, context: StageContext) -> Box:
        return (size[1], size[0]) if self._method(p, context) in SIDEWAYS else size

    def apply(self, image, p, context: StageContext):
        method = self._method(p, context)
        return image if method is None else image.transpose(method)


# --- rot ------------------------------------------------------------------------------------------

def rot_limit(context: StageContext | None) -> int:
    """The canvas's pixel ceiling: RENDER_MAX_OUTPUT_PIXELS, or the encoder's lower one."""
    limit = settings.RENDER_MAX_OUTPUT_PIXELS
    max_pixels = getattr(context, "max_pixels", None)
    return min(limit, max_pixels) if max_pixels else limit


def rot_layout(size: Box, rot: float, rot_type: str, limit: int) -> tuple[Box, float]:
    """(canvas size, zoom): the image is turned about its centre, scaled by zoom, and drawn on
    the canvas's centre. straighten: the canvas is the image's own size, and the zoom the least
    that covers it (with a pixel to spare for the filter at the edges). pivot: the canvas holds
    the whole turned image, scaled down (zoom < 1) when it would pass 8192 on a side or `limit`
    pixels, as pad_layout (rendering/operations/pad.py) does."""
    width, height = size
    cos, sin = abs(math.cos(math.radians(rot))), abs(math.sin(math.radians(rot)))
    if rot_type == "straighten":
        zoom = max((width * cos + height * sin) / max(1, width - 2),
                   (width * sin + height * cos) / max(1, height - 2))
        return size, max(1.0, zoom)
    outer = (width * cos + height * sin, width * sin + height * cos)
    zoom = min(1.0, MAX_DIMENSION / outer[0], MAX_DIMENSION / outer[1],
               math.sqrt(limit / (outer[0] * outer[1])))
    while True:
        # Less a rounding error, so that sin(90°) = 1.0000000000000002 adds no pixel.
        canvas = (max(1, math.ceil(outer[0] * zoom - 1e-6)), max(1, math.ceil(outer[1] * zoom - 1e-6)))
        if max(canvas) <= MAX_DIMENSION and canvas[0] * canvas[1] <= limit:
            return canvas, zoom
        zoom *= 0.999


def _quarter(rot: float):
    return {90.0: T.ROTATE_90, 180.0: T.ROTATE_180, 270.0: T.ROTATE_270}.get(rot)


class RotStage(Stage):
    """rot (degrees, counter-clockwise) and rot-type (straighten | pivot), after sizing."""

    name = "rot"
    params = (
        Param("rot", degrees, 0.0),
        Param("rot-type", choice(ROT_TYPES), "straighten", aliases=("rottype", "rott")),
    )

    def active(self, p) -> bool:
        return bool(p.rot)

    def effective(self, p, fmt):
        if not self.active(p):
            return {"rot": 0.0, "rot_type": "straighten"}
        # Half a turn fills the frame exactly either way.
        return {"rot": p.rot, "rot_type": "straighten" if p.rot == 180 else p.rot_type}

    def _layout(self, size: Box, p, context) -> tuple[Box, float]:
        if p.rot_type == "pivot" and _quarter(p.rot) is not None:
            return ((size[1], size[0]) if p.rot != 180 else size), 1.0
        return rot_layout(size, p.rot, p.rot_type, rot_limit(context))

    def size(self, size: Box, p, context: StageContext) -> Box:
        if not self.active(p):
            return size
        return self._layout(size, p, context)[0]

    def apply(self, image, p, context: StageContext):
        if not self.active(p):
            return image
        quarter = _quarter(p.rot)
        if quarter is not None and (p.rot_type == "pivot" or p.rot == 180):
            return image.transpose(quarter)
        canvas, zoom = self._layout(image.size, p, context)
        mode = image.mode
        if p.rot_type == "pivot":
            # The corners are new pixels: transparent, so the image needs an alpha band.
            mode = {"RGB": "RGBA", "L": "LA"}.get(mode, mode)
        if zoom < 0.5:
            # Bilinear sampling skips pixels when it shrinks by over half: shrink first.
            factor = int(1 / zoom)
            image, zoom = _reduced(image, factor), zoom * factor
        angle = math.radians(p.rot)
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        # Output → source, about the centres: the inverse of a counter-clockwise turn (y down).
        a, b, d, e = cos, -sin, sin, cos
        c = image.width / 2 - (a * canvas[0] / 2 + b * canvas[1] / 2)
        f = image.height / 2 - (d * canvas[0] / 2 + e * canvas[1] / 2)
        return _turned(image, canvas, (a, b, c, d, e, f), mode)


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """`factor` times smaller, averaged in premultiplied colour, a band of rows at a time."""
    mode = image.mode
    small = Image.new(mode, (-(-image.width // factor), -(-image.height // factor)))
    rows = max(1, TILE // factor) * factor
    for top in range(0, image.height, rows):
        part = image.crop((0, top, image.width, min(image.height, top + rows)))
        if mode in PREMULTIPLIED:
            part = part.convert(PREMULTIPLIED[mode])
        small.paste(part.reduce(factor).convert(mode), (0, top // factor))
    return small


def _turned(image: Image.Image, canvas: Box, matrix, mode: str) -> Image.Image:
    """The affine `matrix` (output pixel → source pixel) drawn tile by tile onto a new canvas of
    `mode`: each tile reads, premultiplied, only the part of the source it shows, so the working
    copies stay a tile's size. What no source pixel covers is 0: transparent with alpha."""
    a, b, c, d, e, f = matrix
    work = PREMULTIPLIED.get(mode, mode)
    out = Image.new(mode, canvas, 0)
    for top in range(0, canvas[1], TILE):
        for left in range(0, canvas[0], TILE):
            right, bottom = min(canvas[0], left + TILE), min(canvas[1], top + TILE)
            corners = [(x, y) for x in (left, right) for y in (top, bottom)]
            xs = [a * x + b * y + c for x, y in corners]
            ys = [d * x + e * y + f for x, y in corners]
            # Two pixels more around, for the filter's reach.
            x0, x1 = max(0, math.floor(min(xs)) - 2), min(image.width, math.ceil(max(xs)) + 2)
            y0, y1 = max(0, math.floor(min(ys)) - 2), min(image.height, math.ceil(max(ys)) + 2)
            if x0 >= x1 or y0 >= y1:
                continue  # A corner of the canvas that no source pixel reaches.
            part = image.crop((x0, y0, x1, y1))
            for step in (mode, work):  # Pillow has no L → La: through LA.
                part = part.convert(step) if part.mode != step else part
            shift = (a, b, c + a * left + b * top - x0, d, e, f + d * left + e * top - y0)
            tile = part.transform((right - left, bottom - top), Image.Transform.AFFINE, shift,
                                  Image.Resampling.BILINEAR, fillcolor=0)
            out.paste(tile.convert(mode) if tile.mode != mode else tile, (left, top))
    return out


ORIENT = OrientStage()
ROT = RotStage()
STAGES = (ORIENT, ROT)
