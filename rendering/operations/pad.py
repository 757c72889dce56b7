"""pad: a margin around the sized image, transparent until `bg` colours it (imgix's pad, pad-left…)."""

from __future__ import annotations

import math

from django.conf import settings
from PIL import Image

from rendering.stage import Param, RenderParams, Stage
from rendering.values import MAX_DIMENSION, integer

Box = tuple[int, int]
PAD_SIDES = ("left", "top", "right", "bottom")
TRANSPARENT_WHITE = (255, 255, 255, 0)  # imgix's default fill, `0FFF`: white once flattened.


def pad_sides(params: RenderParams) -> tuple[int, int, int, int]:
    """Left, top, right, bottom in output pixels: dpr multiplies them as it multiplies w and h
    (and, like it, only when there is a w or h)."""
    scale = params.dpr if params.w or params.h else 1.0
    return tuple(round(side * scale) for side in params.pad)


def pad_inner(box: Box, params: RenderParams) -> Box:
    """The part of a w/h box the image is sized into: imgix counts the padding inside the
    requested dimensions. At least 1×1, so a pad wider than the box still leaves the image."""
    left, top, right, bottom = pad_sides(params)
    return (max(1, box[0] - left - right), max(1, box[1] - top - bottom))


def pad_layout(size: Box, params: RenderParams, *,
               max_pixels: int | None = None) -> tuple[Box, Box, tuple[int, int]]:
    """The padded canvas for an image of `size`: (canvas size, image size on it, image offset).
    The canvas keeps to the output ceilings (8192×8192, RENDER_MAX_OUTPUT_PIXELS or the lower
    `max_pixels`): when padding takes it over, image and padding shrink together."""
    left, top, right, bottom = pad_sides(params)
    canvas = (size[0] + left + right, size[1] + top + bottom)
    limit = min(settings.RENDER_MAX_OUTPUT_PIXELS, max_pixels or settings.RENDER_MAX_OUTPUT_PIXELS)
    shrink = min(1.0, MAX_DIMENSION / canvas[0], MAX_DIMENSION / canvas[1],
                 math.sqrt(limit / (canvas[0] * canvas[1])))
    if shrink < 1.0:
        left, top, right, bottom = (math.floor(side * shrink) for side in (left, top, right, bottom))
        size = (max(1, math.floor(size[0] * shrink)), max(1, math.floor(size[1] * shrink)))
        canvas = (size[0] + left + right, size[1] + top + bottom)
    return canvas, size, (left, top)


def pad_size(size: Box, params: RenderParams, *, max_pixels: int | None = None) -> Box:
    """The size `pad_apply` gives an image of `size`, without any pixels (for the budget)."""
    return pad_layout(size, params, max_pixels=max_pixels)[0] if any(params.pad) else size


def pad_apply(image: Image.Image, params: RenderParams, *, max_pixels: int | None = None) -> Image.Image:
    """The image on a larger canvas. The padding is transparent, so the `bg` stage after it fills
    it as it fills every transparent pixel, and a JPEG without `bg` flattens it on white; with an
    opaque `bg` on an opaque image it is drawn in that colour at once (no alpha channel needed),
    unless a `shadow` is to fall on it first."""
    if not any(params.pad):
        return image
    canvas_size, size, offset = pad_layout(image.size, params, max_pixels=max_pixels)
    if size != image.size:
        # Premultiplied, so transparent pixels' colour cannot bleed into visible edges.
        premultiply = image.mode == "RGBA"
        source = image.convert("RGBa") if premultiply else image
        image = source.resize(size, Image.Resampling.LANCZOS)
        image = image.convert("RGBA") if premultiply else image
    bg = params.bg
    if image.mode == "RGB" and bg is not None and bg[3] == 255 and not params.shadow:
        canvas = Image.new("RGB", canvas_size, bg[:3])
    else:
        canvas = Image.new("RGBA", canvas_size, TRANSPARENT_WHITE)
    # A plain paste, not a composite: the image's own alpha is kept exactly, for `bg` to apply.
    canvas.paste(image if canvas.mode == image.mode else image.convert(canvas.mode), offset)
    return canvas


class PadStage(Stage):
    """pad for every side, pad-left|top|right|bottom for one (they win over pad)."""

    name = "pad"
    params = (Param("pad", None, (0, 0, 0, 0)),) + tuple(
        Param(f"pad-{side}", None, field="pad") for side in PAD_SIDES)

    def parse(self, values, parsed):
        if not any(name in values for name in ("pad", *(f"pad-{side}" for side in PAD_SIDES))):
            return {}
        side_parse = integer(0, MAX_DIMENSION)
        every = side_parse(values.get("pad", "")) or 0
        sides = (side_parse(values[f"pad-{side}"]) if f"pad-{side}" in values else None for side in PAD_SIDES)
        return {"pad": tuple(every if side is None else side for side in sides)}

    def active(self, p):
        return any(p.pad)

    def size(self, size, p, context):
        return pad_size(size, p, max_pixels=context.max_pixels)

    def apply(self, image, p, context):
        return pad_apply(image, p, max_pixels=context.max_pixels)


STAGE = PadStage()
