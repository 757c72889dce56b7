"""fill=gradient's canvas and transparency=grid's checkerboard (imgix's fill-gradient-*, grid-* and transparency)."""

import colorsys
import math

import numpy as np
from PIL import Image

from rendering.operations.mask import row_bands
from rendering.stage import Param, Stage
from rendering.values import MAX_DIMENSION, Dim, choice, color, dimension, integer, items

Box = tuple[int, int]
RGBA = tuple[int, int, int, int]

GRADIENT_TYPES = ("linear", "radial")
COLOR_SPACES = ("linear", "srgb", "oklab", "hsl", "lch")
DIRECTIONS = {"top": (0, -1), "bottom": (0, 1), "left": (-1, 0), "right": (1, 0)}
DEFAULT_RADII = (Dim(0.25, ratio=True), Dim(0.5, ratio=True))  # Of the canvas's smaller side.
CENTRE = Dim(0.5, ratio=True)
GRID_COLORS = ((208, 215, 221, 255), (255, 255, 255, 255))  # imgix: D0D7DD and white.
WHITE = (255, 255, 255, 255)
# A gradient is smooth: its position field is computed at most this long a side and scaled up.
GRADIENT_SIZE = 1024
PALETTE_SIZE = 64  # The long side of the thumbnail the image's vibrant colours are read from.
# Android's Palette targets, as imgix names its colours: (lightness target, range), saturation ≥ 0.35.
VIBRANT_DARK, VIBRANT_LIGHT = (0.26, (0.0, 0.45)), (0.74, (0.55, 1.0))
MIN_SATURATION = 0.35


# --- Values --------------------------------------------------------------------------------------

def color_pair(value: str) -> tuple | None:
    """Two colours, `color1,color2`."""
    parts = value.split(",")
    colors = tuple(color(part) for part in parts)
    return colors if len(colors) == 2 and None not in colors else None


def grid_colors(value: str) -> tuple | None:
    """One or two colours; one alone alternates with white (imgix)."""
    colors = tuple(color(part) for part in value.split(","))
    if None in colors or len(colors) not in (1, 2):
        return None
    return colors if len(colors) == 2 else (colors[0], WHITE)


def direction(value: str) -> tuple | None:
    """Where a linear gradient flows to: one side, or two for a diagonal (`top,right`). Opposite
    sides cancel; nothing left keeps the default. Spelled top/bottom first, so each direction
    has one form."""
    words = items(DIRECTIONS)(value)
    if not words:
        return None
    dx = sum(DIRECTIONS[w][0] for w in words)
    dy = sum(DIRECTIONS[w][1] for w in words)
    vertical = {-1: ("top",), 0: (), 1: ("bottom",)}[dy]
    horizontal = {-1: ("left",), 0: (), 1: ("right",)}[dx]
    return (vertical + horizontal) or None


def radius_pair(value: str) -> tuple | None:
    """Two radii, pixels or shares (≤ 1) of the canvas's smaller side."""
    parse = dimension(2, MAX_DIMENSION)
    radii = tuple(parse(part) for part in value.split(","))
    return radii if len(radii) == 2 and None not in radii else None


# --- Gradient ------------------------------------------------------------------------------------

def gradient_canvas(box: Box, p, image: Image.Image | None = None) -> Image.Image:
    """The fill=gradient canvas of `box`: fill-gradient-type linear (fill-gradient-linear's
    colours, towards fill-gradient-linear-direction) or radial (fill-gradient-radial's colours
    from the centre fill-gradient-radial-x/y: color1 inside radius1, blending to color2 at
    radius2 and beyond; radius1 > radius2 reverses them), interpolated in fill-gradient-cs.
    Without colours, the image's vibrant dark and vibrant light (imgix). RGB when both colours
    are opaque. Pixel lengths are times dpr with a w or h, as the box is."""
    width, height = box
    colors = p.fill_gradient_radial if p.fill_gradient_type == "radial" else p.fill_gradient_linear
    if colors is None:
        colors = vibrant_colors(image) if image is not None else ((0, 0, 0, 255), WHITE)
    opaque = colors[0][3] == 255 and colors[1][3] == 255
    shrink = min(1.0, GRADIENT_SIZE / max(box))
    small = (max(1, round(width * shrink)), max(1, round(height * shrink)))
    # Pixel centres of the small field, in the box's own coordinates.
    xs = (np.arange(small[0], dtype=np.float32) + 0.5) * (width / small[0])
    ys = (np.arange(small[1], dtype=np.float32) + 0.5) * (height / small[1])
    if p.fill_gradient_type == "radial":
        position = _radial(xs, ys, box, p)
    else:
        position = _linear(xs / width, ys / height, p.fill_gradient_linear_direction)
    field = Image.fromarray(np.round(position * 255).astype(np.uint8), "L")
    if field.size != box:
        field = field.resize(box, Image.Resampling.BILINEAR)
    lut = gradient_lut(colors[0], colors[1], p.fill_gradient_cs)
    if opaque:
        field.putpalette([c for rgba in lut for c in rgba[:3]], "RGB")
        return field.convert("RGB")
    field.putpalette([c for rgba in lut for c in rgba], "RGBA")
    return field.convert("RGBA")


def _linear(u: np.ndarray, v: np.ndarray, words: tuple) -> np.ndarray:
    """0 at the side the gradient starts from, 1 at the one it flows to; a diagonal runs corner
    to corner with its midline through the two other corners (as CSS's `to top right`)."""
    dx = sum(DIRECTIONS[w][0] for w in words)
    dy = sum(DIRECTIONS[w][1] for w in words)
    position = (dx * (u[None, :] - 0.5) + dy * (v[:, None] - 0.5)) / (abs(dx) + abs(dy)) + 0.5
    return np.clip(position, 0, 1)


def _radial(xs: np.ndarray, ys: np.ndarray, box: Box, p) -> np.ndarray:
    width, height = box
    scale = p.dpr if p.w or p.h else 1.0
    cx = _length(p.fill_gradient_radial_x, width, scale)
    cy = _length(p.fill_gradient_radial_y, height, scale)
    r1, r2 = (_length(r, min(box), scale) for r in p.fill_gradient_radial_radius)
    distance = np.sqrt((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2)
    if r1 == r2:
        return (distance > r1).astype(np.float32)
    return np.clip((distance - r1) / (r2 - r1), 0, 1)


def _length(value: Dim, reference: int, scale: float) -> float:
    return value.value * reference if value.ratio else value.value * scale


def gradient_lut(start: RGBA, end: RGBA, space: str) -> list[RGBA]:
    """256 colours from `start` to `end`, interpolated in `space` (alpha linearly). A fully
    transparent end takes the other's colour, so fading out does not pass through its RGB."""
    if start[3] == 0:
        start = end[:3] + (0,)
    if end[3] == 0:
        end = start[:3] + (0,)
    to_space, from_space, hue = SPACES[space]
    a, b = to_space(start[:3]), to_space(end[:3])
    if hue is not None:
        a, b = _hues(a, b, hue)
    lut = []
    for i in range(256):
        t = i / 255
        mixed = tuple(x + (y - x) * t for x, y in zip(a, b))
        if hue is not None:
            mixed = tuple(v % 360 if k == hue else v for k, v in enumerate(mixed))
        rgb = tuple(min(255, max(0, round(c * 255))) for c in from_space(mixed))
        lut.append(rgb + (round(start[3] + (end[3] - start[3]) * t),))
    return lut


def _hues(a: tuple, b: tuple, hue: int) -> tuple[tuple, tuple]:
    """The shorter way round the hue circle; a colour without chroma takes the other's hue."""
    chroma = 1  # HSL's saturation and LCh's chroma both follow the hue.
    a, b = list(a), list(b)
    if a[chroma] < 1e-4:
        a[hue] = b[hue]
    if b[chroma] < 1e-4:
        b[hue] = a[hue]
    delta = (b[hue] - a[hue] + 180) % 360 - 180
    b[hue] = a[hue] + delta
    return tuple(a), tuple(b)


def _to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _from_linear(c: float) -> float:
    c = min(max(c, 0.0), 1.0)
    return c * 12.92 if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def _srgb(rgb) -> tuple:
    return tuple(c / 255 for c in rgb)


def _linear_rgb(rgb) -> tuple:
    return tuple(_to_linear(c / 255) for c in rgb)


def _linear_back(values) -> tuple:
    return tuple(_from_linear(c) for c in values)


def _oklab(rgb) -> tuple:
    r, g, b = _linear_rgb(rgb)
    lms = (0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b,
           0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b,
           0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b)
    l_, m_, s_ = (math.copysign(abs(v) ** (1 / 3), v) for v in lms)
    return (0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
            1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
            0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_)


def _oklab_back(lab) -> tuple:
    lightness, a, b = lab
    l_ = lightness + 0.3963377774 * a + 0.2158037573 * b
    m_ = lightness - 0.1055613458 * a - 0.0638541728 * b
    s_ = lightness - 0.0894841775 * a - 1.2914855480 * b
    l, m, s = l_ ** 3, m_ ** 3, s_ ** 3
    return _linear_back((4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
                         -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
                         -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s))


def _hsl(rgb) -> tuple:
    h, lightness, s = colorsys.rgb_to_hls(*_srgb(rgb))
    return (h * 360, s, lightness)


def _hsl_back(hsl) -> tuple:
    h, s, lightness = hsl
    return colorsys.hls_to_rgb(h / 360, lightness, s)


_D65 = (0.95047, 1.0, 1.08883)
_EPSILON = 6 / 29


def _lab_f(t: float) -> float:
    return t ** (1 / 3) if t > _EPSILON ** 3 else t / (3 * _EPSILON ** 2) + 4 / 29


def _lab_f_back(t: float) -> float:
    return t ** 3 if t > _EPSILON else 3 * _EPSILON ** 2 * (t - 4 / 29)


def _lch(rgb) -> tuple:
    """CIE LCh(ab), D65: hue first, chroma second, as _hues expects."""
    r, g, b = _linear_rgb(rgb)
    xyz = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b,
           0.2126729 * r + 0.7151522 * g + 0.0721750 * b,
           0.0193339 * r + 0.1191920 * g + 0.9503041 * b)
    fx, fy, fz = (_lab_f(v / n) for v, n in zip(xyz, _D65))
    lightness, a, bb = 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)
    return (math.degrees(math.atan2(bb, a)) % 360, math.hypot(a, bb), lightness)


def _lch_back(lch) -> tuple:
    h, c, lightness = lch
    a, b = c * math.cos(math.radians(h)), c * math.sin(math.radians(h))
    fy = (lightness + 16) / 116
    x, y, z = (_lab_f_back(f) * n for f, n in zip((fy + a / 500, fy, fy - b / 200), _D65))
    return _linear_back((3.2404542 * x - 1.5371385 * y - 0.4985314 * z,
                         -0.9692660 * x + 1.8760108 * y + 0.0415560 * z,
                         0.0556434 * x - 0.2040259 * y + 1.0572252 * z))


# Space → (from sRGB 0–255, back to sRGB 0–1, index of the hue or None).
SPACES = {
    "srgb": (_srgb, lambda v: v, None),
    "linear": (_linear_rgb, _linear_back, None),
    "oklab": (_oklab, _oklab_back, None),
    "hsl": (_hsl, _hsl_back, 0),
    "lch": (_lch, _lch_back, 0),
}


def vibrant_colors(image: Image.Image) -> tuple[RGBA, RGBA]:
    """The image's vibrant dark and vibrant light, read from a thumbnail: for each, the mean of
    the few pixels nearest its lightness target among the saturated ones (Android's Palette
    targets, which imgix's names follow); a grey image gives its own dark and light greys."""
    shrink = min(1.0, PALETTE_SIZE / max(image.size))
    small = image.resize((max(1, round(image.width * shrink)), max(1, round(image.height * shrink))),
                         Image.Resampling.BOX)
    pixels = np.asarray(small.convert("RGBA"), dtype=np.float32).reshape(-1, 4)
    pixels = pixels[pixels[:, 3] >= 128] if (pixels[:, 3] >= 128).any() else pixels
    rgb = pixels[:, :3] / 255
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    lightness = (high + low) / 2
    saturation = np.where(high > low, (high - low) / np.maximum(1 - np.abs(2 * lightness - 1), 1e-6), 0)
    return tuple(_vibrant(pixels[:, :3], lightness, saturation, *target) for target in (VIBRANT_DARK, VIBRANT_LIGHT))


def _vibrant(rgb: np.ndarray, lightness: np.ndarray, saturation: np.ndarray, target: float,
             span: tuple[float, float]) -> RGBA:
    score = 6 * (1 - np.abs(lightness - target)) + 3 * np.minimum(saturation, 1)
    eligible = (saturation >= MIN_SATURATION) & (lightness >= span[0]) & (lightness <= span[1])
    if not eligible.any():
        score = -np.abs(lightness - target)  # No vibrant colour: the nearest lightness, grey or not.
        eligible = np.ones_like(eligible)
    best = np.argsort(np.where(eligible, score, -np.inf))[::-1][:max(1, min(8, int(eligible.sum())))]
    r, g, b = (round(float(c)) for c in rgb[best].mean(axis=0))
    return (r, g, b, 255)


# --- Transparency grid ---------------------------------------------------------------------------

def grid_apply(image: Image.Image, cell: int, colors: tuple[RGBA, RGBA]) -> Image.Image:
    """`image` over a checkerboard of `cell`-pixel squares (colors[0] at the top left): an
    opaque RGB image that shows where the image was transparent. Band by band, so the board
    and the image's RGB are never held at full size."""
    if image.mode not in ("RGBA", "LA"):
        return image
    alpha = image.getchannel("A")
    if alpha.getextrema()[0] == 255:
        return image
    palette = [c for rgba in colors for c in _over_white(rgba)]
    columns = (np.arange(image.width) // cell) % 2
    out = Image.new("RGB", image.size)
    for box in row_bands(image.size):
        rows = (np.arange(box[1], box[3]) // cell) % 2
        board = Image.fromarray((rows[:, None] ^ columns[None, :]).astype(np.uint8), "L")
        board.putpalette(palette, "RGB")
        board = board.convert("RGB")
        board.paste(image.crop(box).convert("RGB"), (0, 0), alpha.crop(box))
        out.paste(board, box)
    return out


def _over_white(rgba: RGBA) -> tuple[int, int, int]:
    # The grid is drawn opaque: a colour with alpha is seen over white.
    a = rgba[3] / 255
    return tuple(round(c * a + 255 * (1 - a)) for c in rgba[:3])


# --- Stage ---------------------------------------------------------------------------------------

class FillGradientStage(Stage):
    """Declares fill=gradient's parameters, which the resize stage's fill draws through
    `gradient_canvas`, and applies transparency=grid: last, the image composited over a
    checkerboard of grid-size pixels (default 4, times dpr with a w or h) in grid-colors
    (default D0D7DD and white), so its transparency shows in an opaque image (imgix)."""

    name = "fill-gradient"
    params = (
        Param("fill-gradient-type", choice(GRADIENT_TYPES), "linear"),
        Param("fill-gradient-linear", color_pair, None),
        Param("fill-gradient-linear-direction", direction, ("bottom",)),
        Param("fill-gradient-radial", color_pair, None),
        Param("fill-gradient-radial-radius", radius_pair, DEFAULT_RADII),
        Param("fill-gradient-radial-x", dimension(2, MAX_DIMENSION), CENTRE),
        Param("fill-gradient-radial-y", dimension(2, MAX_DIMENSION), CENTRE),
        Param("fill-gradient-cs", choice(COLOR_SPACES), "srgb"),
        Param("transparency", choice(("grid",)), ""),
        Param("grid-colors", grid_colors, GRID_COLORS),
        Param("grid-size", integer(1, MAX_DIMENSION), 4),
    )
    LINEAR = ("fill_gradient_linear", "fill_gradient_linear_direction")
    RADIAL = ("fill_gradient_radial", "fill_gradient_radial_radius", "fill_gradient_radial_x",
              "fill_gradient_radial_y")
    GRID = ("transparency", "grid_colors", "grid_size")

    def active(self, p) -> bool:
        return p.transparency == "grid"

    def effective(self, p, fmt: str) -> dict:
        """Gradient values only with fit=fill/fillmax, fill=gradient and a box to fill, and only
        those of its type; grid values only with transparency=grid."""
        out = self.fields
        if self._gradient(p):
            kept = ("fill_gradient_type", "fill_gradient_cs")
            kept += self.RADIAL if p.fill_gradient_type == "radial" else self.LINEAR
            out.update({f: getattr(p, f) for f in kept})
        if self.active(p):
            out.update({f: getattr(p, f) for f in self.GRID})
        return out

    @staticmethod
    def _gradient(p) -> bool:
        return p.fill == "gradient" and p.fit in ("fill", "fillmax") and bool(p.w or p.h or p.ar)

    def apply(self, image: Image.Image, p, context) -> Image.Image:
        if not self.active(p):
            return image
        scale = p.dpr if p.w or p.h else 1.0
        return grid_apply(image, max(1, round(p.grid_size * scale)), p.grid_colors)


STAGE = FillGradientStage()
