"""Focal point debug (fp-debug): a crosshair and a circle on the focal point, over a rule-of-thirds
grid, drawn on the output of a focal-point crop (fit=crop&crop=focalpoint)."""

from __future__ import annotations

from PIL import Image, ImageDraw

from rendering.operations.resize import SMART_CROPS
from rendering.stage import Param, Stage
from rendering.values import boolean

CROSSHAIR = (255, 0, 64, 220)
GRID = (255, 255, 255, 128)
# Line width and circle radius as fractions of the output's shorter side: visible on a thumbnail
# and on a poster alike.
LINE = 1 / 400
RADIUS = 1 / 20


def fp_debug_apply(image: Image.Image, place: tuple[float, float]) -> Image.Image:
    """`image` with the grid and the crosshair at `place` (output pixels). Each mark is composited on
    its own small patch, so the cost is a copy of the image and a few strips of it."""
    mode = "RGBA" if "A" in image.getbands() else "RGB"
    result = image.convert(mode) if image.mode != mode else image.copy()
    width, height = result.size
    line = max(1, round(min(width, height) * LINE))
    radius = max(4, round(min(width, height) * RADIUS))
    # The pixel the point falls in: a point on the right or bottom edge is in the last one.
    x, y = min(max(int(place[0]), 0), width - 1), min(max(int(place[1]), 0), height - 1)
    for third in (1, 2):
        gx, gy = round(width * third / 3), round(height * third / 3)
        _rectangle(result, (gx - line // 2, 0, gx - line // 2 + line, height), GRID)
        _rectangle(result, (0, gy - line // 2, width, gy - line // 2 + line), GRID)
    _rectangle(result, (x - line // 2, 0, x - line // 2 + line, height), CROSSHAIR)
    _rectangle(result, (0, y - line // 2, width, y - line // 2 + line), CROSSHAIR)
    _patch(result, (x - radius - line, y - radius - line, x + radius + line + 1, y + radius + line + 1),
           lambda draw, left, top: draw.ellipse((x - radius - left, y - radius - top, x + radius - left,
                                                 y + radius - top), outline=CROSSHAIR, width=line))
    return result


def _rectangle(image: Image.Image, box: tuple[int, int, int, int], color: tuple) -> None:
    _patch(image, box, lambda draw, left, top: draw.rectangle((0, 0, box[2] - left, box[3] - top), fill=color))


def _patch(image: Image.Image, box: tuple[int, int, int, int], paint) -> None:
    """Composites what `paint(draw, left, top)` draws (in the patch's coordinates) over `box` of
    `image`, in place; the part outside the image is left out."""
    left, top = max(box[0], 0), max(box[1], 0)
    right, bottom = min(box[2], image.width), min(box[3], image.height)
    if right <= left or bottom <= top:
        return
    patch = image.crop((left, top, right, bottom)).convert("RGBA")
    overlay = Image.new("RGBA", patch.size, (0, 0, 0, 0))
    paint(ImageDraw.Draw(overlay), left, top)
    patch.alpha_composite(overlay)
    image.paste(patch.convert(image.mode), (left, top))


def _acts(p) -> bool:
    """Only a focal-point crop has a focal point to show (imgix: fp-debug depends on fit=crop and
    crop=focalpoint)."""
    smart = next((c for c in p.crop if c in SMART_CROPS), "")
    return p.fp_debug and p.fit == "crop" and smart == "focalpoint" and bool(p.w or p.h or p.ar)


class FpDebugStage(Stage):
    """fp-debug: drawn on the output of the resize stage, which says where the focal point landed."""

    name = "fp-debug"
    params = (Param("fp-debug", boolean, False),)

    def active(self, p):
        return _acts(p)

    def effective(self, p, fmt):
        return {"fp_debug": _acts(p)}

    def apply(self, image, p, context):
        place = getattr(image, "focal_point", None)
        if not _acts(p) or place is None:
            return image
        return fp_debug_apply(image, place)


STAGE = FpDebugStage()
