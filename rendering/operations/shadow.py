"""shadow: a soft drop or contact shadow under a cutout, on the padded canvas (ours, not imgix's).

`shadow=drop` casts the image's own alpha, offset and blurred, as CSS's drop-shadow() does;
`shadow=contact` lays a flattened, blurred ellipse under the subject's base, where a product
stands on the floor. The shadow is drawn under the image (the image composited over it), so
`bg`, which runs later, fills behind both. Lengths are pixels, times dpr when there is a w or h
(as pad's); unset, they follow the subject's size, so a shadow looks the same at every width.
The blur runs on a copy reduced until its gaussian is a few pixels wide, then scaled back up:
the cost does not grow with the blur, and the full-size work is one alpha band and one
composite over the shadow's own box, band by band."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageFilter

from rendering.colors import color_parse
from rendering.operations.mask import BAND_ROWS, ellipse_mask
from rendering.operations.stylize import BLUR_WORK_SIGMA
from rendering.stage import Param, Stage
from rendering.values import ParamError, number_parse

SHADOW_MODES = ("drop", "contact")
BLACK = (0, 0, 0, 255)
# The longest blur and offset a URL may ask for, in CSS pixels (times dpr up to 5).
MAX_LENGTH = 1000
# Per mode, when shadow-opacity is not given (%).
DEFAULT_OPACITY = {"drop": 50, "contact": 60}
# What counts as the subject: its pixels at least half opaque (a cutout's faint halo is not).
SUBJECT_ALPHA = 128
# drop's defaults, as shares of the subject's longer side: light from the upper left.
DROP_X, DROP_Y, DROP_BLUR = 0.02, 0.03, 0.06
# contact's: the base is the bottom twentieth of the subject; the ellipse is a little wider than
# the base and 1/8 as tall as wide, blurred by a tenth of the base's width.
BASE_SHARE = 0.05
CONTACT_WIDTH, CONTACT_FLATNESS, CONTACT_BLUR = 1.1, 0.125, 0.1


def length_parse(name: str, low: int, high: int):
    """A number of pixels (decimals allowed) within low–high, else a 400 naming `name`; an empty
    value is no value (the default)."""
    def parse(value: str):
        if not value.strip():
            return None
        number = number_parse(value)
        if number is None or not low <= number <= high:
            raise ParamError(f"{name} must be a number from {low} to {high}; got {value.strip()!r}.")
        return int(number) if float(number).is_integer() else number
    return parse


def mode_parse(value: str) -> str | None:
    value = value.strip().lower()
    if value and value not in SHADOW_MODES:
        raise ParamError(f"shadow must be drop or contact (or empty for none); got {value!r}.")
    return value or None


def color_value(value: str) -> tuple | None:
    if not value.strip():
        return None
    rgba = color_parse(value)
    if rgba is None:
        raise ParamError(f"shadow-color must be a colour (hex of 3, 4, 6 or 8 digits, alpha first, or a CSS "
                         f"keyword); got {value.strip()!r}.")
    return rgba


@dataclass(frozen=True)
class Cast:
    """One shadow in output pixels: drop's offset, or contact's ellipse (its centre and radii),
    the gaussian's sigma and the shadow's strength (0–1)."""

    offset: tuple[float, float]
    sigma: float
    strength: float
    ellipse: tuple[float, float, float, float] | None = None  # contact: centre x, centre y, rx, ry.


def subject_box(alpha: Image.Image) -> tuple[int, int, int, int] | None:
    """The box of the subject's pixels (at least half opaque; any visible one when none is)."""
    return alpha.point(lambda v: 255 if v >= SUBJECT_ALPHA else 0).getbbox() or alpha.getbbox()


def shadow_cast(alpha: Image.Image, p) -> Cast | None:
    """The shadow these parameters ask for, for an image of this alpha; None when nothing in it
    is visible to cast one."""
    box = subject_box(alpha)
    if box is None:
        return None
    scale = p.dpr if p.w or p.h else 1.0
    strength = _opacity(p) / 100 * p.shadow_color[3] / 255

    def length(value, default):
        return default if value is None else value * scale

    if p.shadow == "drop":
        longer = max(box[2] - box[0], box[3] - box[1])
        offset = (length(p.shadow_x, round(longer * DROP_X)), length(p.shadow_y, round(longer * DROP_Y)))
        return Cast(offset, length(p.shadow_blur, round(longer * DROP_BLUR)) / 2, strength)
    # contact: the width of the base (the subject's bottom rows), the ellipse centred on its line.
    rows = max(1, round((box[3] - box[1]) * BASE_SHARE))
    base = subject_box(alpha.crop((box[0], box[3] - rows, box[2], box[3])))
    left, right = box[0] + base[0], box[0] + base[2]
    width = right - left
    centre = ((left + right) / 2 + length(p.shadow_x, 0), box[3] + length(p.shadow_y, 0))
    rx = width * CONTACT_WIDTH / 2
    ry = max(0.5, rx * CONTACT_FLATNESS)
    return Cast((0.0, 0.0), length(p.shadow_blur, round(width * CONTACT_BLUR)) / 2, strength,
                ellipse=(*centre, rx, ry))


def shadow_alpha(alpha: Image.Image, cast: Cast) -> tuple[Image.Image, int, int]:
    """What casts the shadow, blurred and at its strength, on a reduced canvas, before its offset:
    (the canvas, its reduction, the margin in output pixels on each side). Canvas pixel (i, j)
    is what falls on output pixel (i × factor − margin + offset x, j × factor − margin + offset y)."""
    width, height = alpha.size
    factor = max(1, int(cast.sigma // BLUR_WORK_SIGMA))
    # A gaussian reaches about 3 sigma: a margin that wide around the image, a multiple of the factor.
    margin = factor * math.ceil((3 * cast.sigma + 2) / factor)
    size = (-(-(width + 2 * margin) // factor), -(-(height + 2 * margin) // factor))
    canvas = Image.new("L", size, 0)
    if cast.ellipse is None:
        canvas.paste(alpha.reduce(factor) if factor > 1 else alpha, (margin // factor, margin // factor))
    else:
        # Whole reduced pixels here; the ellipse's fraction of one is in the offset.
        cx, cy, rx, ry = cast.ellipse
        shape = (max(1, round(2 * rx / factor)), max(1, round(2 * ry / factor)))
        left, top = math.floor((cx - rx + margin) / factor), math.floor((cy - ry + margin) / factor)
        if left < size[0] and top < size[1] and left + shape[0] > 0 and top + shape[1] > 0:
            canvas.paste(ellipse_mask(shape), (left, top))
    if cast.sigma > 0:
        canvas = canvas.filter(ImageFilter.GaussianBlur(cast.sigma / factor))
    if cast.strength < 1:
        canvas = canvas.point(lambda v: round(v * cast.strength))
    return canvas, factor, margin


def shadow_offset(cast: Cast, factor: int) -> tuple[float, float]:
    """Where the canvas of `shadow_alpha` lands: the drop's offset, or the part of the contact
    ellipse's position that whole reduced pixels did not place. Whole output pixels at full size."""
    if cast.ellipse is None:
        dx, dy = cast.offset
    else:
        cx, cy, rx, ry = cast.ellipse
        dx, dy = (v - rx if i == 0 else v - ry for i, v in enumerate((cx, cy)))
        dx, dy = dx - math.floor(dx / factor) * factor, dy - math.floor(dy / factor) * factor
    return (round(dx), round(dy)) if factor == 1 else (dx, dy)


def shadow_apply(image: Image.Image, p) -> Image.Image:
    """The image over its shadow. An image without transparency casts its whole rectangle, as
    CSS's box-shadow does, which lies behind it: it is returned as it is (pad gives a shadow room)."""
    if not image.has_transparency_data:
        return image
    image = image if image.mode == "RGBA" else image.convert("RGBA")
    alpha = image.getchannel("A")
    if alpha.getextrema()[0] == 255:
        return image
    cast = shadow_cast(alpha, p)
    if cast is None:
        return image
    small, factor, margin = shadow_alpha(alpha, cast)
    del alpha
    found = small.getbbox()
    if found is None:
        return image
    dx, dy = shadow_offset(cast, factor)
    width, height = image.size

    def output(v, shift):  # A canvas coordinate in output pixels.
        return v * factor - margin + shift

    # The shadow's box in output pixels, one reduced pixel wider for the upscale's reach, within
    # the canvas and the image.
    left = math.ceil(max(0, output(max(0, found[0] - 1), dx)))
    top = math.ceil(max(0, output(max(0, found[1] - 1), dy)))
    right = math.floor(min(width, output(min(small.width, found[2] + 1), dx)))
    bottom = math.floor(min(height, output(min(small.height, found[3] + 1), dy)))
    if left >= right or top >= bottom:
        return image
    out = image.copy()
    color = p.shadow_color[:3] + (0,)
    for upper in range(top, bottom, BAND_ROWS):
        lower = min(bottom, upper + BAND_ROWS)
        box = (left, upper, right, lower)
        area = ((left - dx + margin) / factor, (upper - dy + margin) / factor,
                (right - dx + margin) / factor, (lower - dy + margin) / factor)
        if factor == 1:
            band_alpha = small.crop(tuple(int(v) for v in area))
        else:
            band_alpha = small.resize((right - left, lower - upper), Image.Resampling.BICUBIC, box=area)
        layer = Image.new("RGBA", band_alpha.size, color)
        layer.putalpha(band_alpha)
        layer.alpha_composite(image.crop(box))
        out.paste(layer, box)
    return out


def _opacity(p) -> float:
    return DEFAULT_OPACITY[p.shadow] if p.shadow_opacity is None else p.shadow_opacity


class ShadowStage(Stage):
    """`shadow=drop|contact` with shadow-color, shadow-opacity (0–100), shadow-blur (CSS's blur
    radius: a gaussian of sigma half of it) and shadow-x/shadow-y (the offset; contact's from the
    base's centre). The parameters are ours, so a value we cannot read, or out of its range, is a
    400 naming it rather than ignored. Without `shadow`, the others do nothing."""

    name = "shadow"
    params = (
        Param("shadow", mode_parse, None),
        Param("shadow-color", color_value, BLACK),
        Param("shadow-opacity", length_parse("shadow-opacity", 0, 100), None),
        Param("shadow-blur", length_parse("shadow-blur", 0, MAX_LENGTH), None),
        Param("shadow-x", length_parse("shadow-x", -MAX_LENGTH, MAX_LENGTH), None),
        Param("shadow-y", length_parse("shadow-y", -MAX_LENGTH, MAX_LENGTH), None),
    )

    def active(self, p) -> bool:
        return p.shadow is not None and _opacity(p) > 0 and p.shadow_color[3] > 0

    def effective(self, p, fmt: str) -> dict:
        """Defaults spelled out share the render of the same shadow unspelled (the mode's opacity,
        contact's offset of 0); a shadow of no strength is no shadow."""
        out = self.fields
        if self.active(p):
            out.update((f, getattr(p, f)) for f in self.keyed_fields)
            out["shadow_opacity"] = _opacity(p)
            if p.shadow == "contact":
                out.update(shadow_x=p.shadow_x or 0, shadow_y=p.shadow_y or 0)
        return out

    def apply(self, image, p, context):
        return shadow_apply(image, p) if self.active(p) else image


STAGE = ShadowStage()
