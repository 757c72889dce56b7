"""border: a coloured frame drawn over the image's edges, rounded and stroked (imgix's border-* parameters)."""

from dataclasses import dataclass

from PIL import Image, ImageChops

from rendering.operations.mask import TRANSPARENT_WHITE, Radii, color_canonical, corner_radii, rounded_mask, row_bands
from rendering.stage import Param, Stage
from rendering.values import MAX_DIMENSION, integer, number_parse

Box = tuple[int, int]
SIDES = ("top", "right", "bottom", "left")
NO_RADII = (0, 0, 0, 0)


def border_value(value: str) -> tuple | None:
    """`size,color`: a width in pixels and a colour (imgix's default colour, transparent white,
    when only the width is given). None when the width is unreadable."""
    size, _, rest = value.partition(",")
    width = number_parse(size)
    if width is None:
        return None
    rgba = color_canonical(rest) if rest.strip() else TRANSPARENT_WHITE
    if rgba is None:
        return None
    return (min(max(round(width), 0), MAX_DIMENSION), rgba)


def radii_value(value: str) -> tuple | None:
    """One radius or four (top-left first, clockwise); here a single 0 is simply square."""
    if number_parse(value) == 0:
        return NO_RADII
    return corner_radii(value)


@dataclass(frozen=True)
class Frame:
    """The border of one image, in output pixels: side widths (top, right, bottom, left), the
    radii of its outer and inner edges, and the stroke's width."""

    sides: tuple[int, int, int, int]
    outer: Radii
    inner: Radii
    stroke: int

    def inner_rect(self, size: Box) -> tuple[int, int, int, int]:
        top, right, bottom, left = self.sides
        return (left, top, max(left, size[0] - right), max(top, size[1] - bottom))


class BorderStage(Stage):
    """`border=size,color` draws a frame of that colour over the image's outer `size` pixels:
    the border overlays the image and does not resize it (imgix), so the output keeps the size
    of its input, and with w/h the border lies inside the requested box. border-top, -right,
    -bottom and -left replace the width of one side; border-radius rounds the frame's (and so
    the image's) outer corners, which become transparent (a later `bg` fills them, a JPEG shows
    them white); border-radius-inner rounds its inner edge. All of them act only with `border`.

    border-stroke-size and border-stroke-color draw an outline of that width along the outer
    edge, over the border (we decide where, after imgix's "a stroke around an image border"):
    on its own it outlines the image. Lengths are pixels, times dpr when there is a w or h,
    as for pad. The colours blend over the image by their alpha."""

    name = "border"
    params = (
        Param("border", border_value, None),
        *(Param(f"border-{side}", integer(0, MAX_DIMENSION), None) for side in SIDES),
        Param("border-radius", radii_value, NO_RADII),
        Param("border-radius-inner", radii_value, NO_RADII),
        Param("border-stroke-size", integer(0, MAX_DIMENSION), 0),
        Param("border-stroke-color", color_canonical, TRANSPARENT_WHITE),
    )

    def active(self, p) -> bool:
        return self._draws_border(p) or self._draws_stroke(p)

    def effective(self, p, fmt: str) -> dict:
        """A border that draws nothing is no border; per-side widths are spelled out, so the
        same frame asked for two ways (border=10,red or border=0,red with four sides of 10)
        shares one stored render."""
        out = self.fields
        if self._draws_stroke(p):
            out.update(border_stroke_size=p.border_stroke_size, border_stroke_color=p.border_stroke_color)
        if self._draws_border(p):
            band = self._band_visible(p)
            out.update(
                border=(0, p.border[1] if band else TRANSPARENT_WHITE),
                border_radius=p.border_radius,
                border_radius_inner=p.border_radius_inner if band else NO_RADII,
                **{f"border_{side}": (width if band else 0) for side, width in zip(SIDES, self._sides(p))},
            )
        return out

    def apply(self, image: Image.Image, p, context) -> Image.Image:
        if not self.active(p):
            return image
        frame = self.frame(image.size, p)
        size = image.size
        rounded = any(r > 0 for r in frame.outer)
        mode = "RGBA" if rounded or image.mode in ("RGBA", "LA") else "RGB"
        out = image.convert(mode)  # A copy: the input is left as it is.
        if self._band_visible(p):
            inner = rounded_mask(size, frame.inner_rect(size), frame.inner)
            _paint(out, p.border[1], ImageChops.invert(inner))
        if self._draws_stroke(p) and frame.stroke > 0:
            s = frame.stroke
            inset = (s, s, max(s, size[0] - s), max(s, size[1] - s))
            inner = rounded_mask(size, inset, tuple(max(0.0, r - s) for r in frame.outer))
            _paint(out, p.border_stroke_color, ImageChops.invert(inner))
        if rounded:
            outer = rounded_mask(size, (0, 0, *size), frame.outer)
            out.putalpha(ImageChops.multiply(out.getchannel("A"), outer))
        return out

    def frame(self, size: Box, p) -> Frame:
        """The frame in output pixels: dpr applied, widths no wider than the image."""
        scale = p.dpr if p.w or p.h else 1.0
        width, height = size
        top, right, bottom, left = (round(w * scale) for w in self._sides(p)) if p.border else (0, 0, 0, 0)
        sides = (min(top, height), min(right, width), min(bottom, height), min(left, width))
        outer = tuple(r * scale for r in p.border_radius) if p.border else (0.0,) * 4
        inner = tuple(r * scale for r in p.border_radius_inner) if p.border else (0.0,) * 4
        stroke = min(round(p.border_stroke_size * scale), (min(size) + 1) // 2)
        return Frame(sides, outer, inner, stroke)

    @staticmethod
    def _sides(p) -> tuple[int, int, int, int]:
        width = p.border[0]
        return tuple(width if getattr(p, f"border_{side}") is None else getattr(p, f"border_{side}")
                     for side in SIDES)

    def _band_visible(self, p) -> bool:
        return p.border is not None and p.border[1][3] > 0 and (
            any(self._sides(p)) or any(p.border_radius_inner))

    def _draws_border(self, p) -> bool:
        return p.border is not None and (self._band_visible(p) or any(p.border_radius))

    @staticmethod
    def _draws_stroke(p) -> bool:
        return p.border_stroke_size > 0 and p.border_stroke_color[3] > 0


def _paint(image: Image.Image, color: tuple, coverage: Image.Image) -> None:
    """`color` (RGBA) blended over `image` in place where `coverage` is. An RGB image takes a
    plain masked paste (exact over opaque pixels); an RGBA one is composited band by band, so
    its alpha stays right and no second full-size layer is held."""
    if color[3] < 255:
        coverage = coverage.point(lambda v: v * color[3] // 255)
    if image.mode == "RGB":
        image.paste(color[:3], None, coverage)
        return
    for box in row_bands(image.size):
        alpha = coverage.crop(box)
        area = alpha.getbbox()
        if area is None:
            continue
        box = (area[0], box[1] + area[1], area[2], box[1] + area[3])
        layer = Image.new("RGBA", (box[2] - box[0], box[3] - box[1]), color[:3] + (0,))
        layer.putalpha(alpha.crop(area))
        band = image.crop(box)
        band.alpha_composite(layer)
        image.paste(band, box)


STAGE = BorderStage()
