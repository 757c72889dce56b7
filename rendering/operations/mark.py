"""Watermark: size, opacity, rotation and placement of an already-decoded mark (docs/rendering.md)."""

from __future__ import annotations

import math
from urllib.parse import urljoin

from PIL import Image

from rendering.operations.resize import fit_apply, fit_size
from rendering.stage import Param, RenderParams, Stage
from rendering.values import MAX_DIMENSION, choice, decimal, dimension, integer, items, text

HORIZONTAL_ALIGNS = {"left", "center", "right"}
VERTICAL_ALIGNS = {"top", "middle", "bottom"}
ALIGNS = HORIZONTAL_ALIGNS | VERTICAL_ALIGNS
MARK_FITS = {"clip", "crop", "fill", "max", "scale"}

Point = tuple[int, int]


def mark_apply(image: Image.Image, mark: Image.Image | None, params: RenderParams) -> Image.Image:
    """Composites `mark` over `image`; the base keeps its mode (RGB stays RGB, RGBA stays RGBA)."""
    if mark is None:
        return image
    mark = mark_prepare(mark, image.size, params)
    positions = mark_positions(image.size, mark.size, params)
    return _composite(image, mark, positions)


def mark_prepare(mark: Image.Image, base: Point, params: RenderParams) -> Image.Image:
    """The mark as it will be drawn: sized, made translucent, rotated."""
    mark = _mark_size(mark.convert("RGBA"), base, params)
    if params.mark_alpha < 100:
        alpha = mark.getchannel("A").point(lambda value: round(value * params.mark_alpha / 100))
        mark.putalpha(alpha)
    if params.mark_rot:
        # Counter-clockwise, canvas expanded (not zoomed), corners transparent; premultiplied so
        # the transparent corners do not darken the mark's edges.
        mark = mark.convert("RGBa").rotate(
            params.mark_rot, resample=Image.Resampling.BICUBIC, expand=True
        ).convert("RGBA")
    return mark


def mark_drawn_size(mark: Point, base: Point, params: RenderParams) -> Point:
    """The size of the mark as drawn (sized, then rotated), without any pixels: the output
    budget is checked on it before the work starts."""
    sizing = _mark_box(mark, base, params)
    width, height = fit_size(mark, *sizing) if sizing else mark
    if not params.mark_rot:
        return (width, height)
    # The canvas Image.rotate(expand=True) makes, computed as it does (about the centre, same rounding).
    angle = -math.radians(params.mark_rot % 360)
    cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
    cx, cy = width / 2, height / 2
    dx, dy = cos * -cx + sin * -cy + cx, -sin * -cx + cos * -cy + cy
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    xs = [cos * x + sin * y + dx for x, y in corners]
    ys = [-sin * x + cos * y + dy for x, y in corners]
    return (math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys)))


def mark_tile_count(base: Point, size: Point, params: RenderParams) -> int:
    """How many times the mark is drawn (counted, not listed)."""
    if params.mark_tile != "grid":
        return 1
    xs, ys = _grid(base, size, params)
    return len(xs) * len(ys)


def _mark_size(mark: Image.Image, base: Point, params: RenderParams) -> Image.Image:
    sizing = _mark_box(mark.size, base, params)
    return fit_apply(mark, *sizing) if sizing else mark


def _mark_box(mark: Point, base: Point, params: RenderParams) -> tuple[Point, str] | None:
    """The box and fit mode the mark is sized with, or None to keep its own size.

    mark-w/mark-h (pixels, or ratios of the MARK's own size) with mark-fit win over mark-scale.
    mark-scale is our decision where imgix's text is silent: a percentage of the base image's
    width, the mark's height following its aspect ratio.
    """
    width, height = mark
    if params.mark_w or params.mark_h:
        w = params.mark_w.pixels(width) if params.mark_w else None
        h = params.mark_h.pixels(height) if params.mark_h else None
        w = w or max(1, round(h * width / height))
        h = h or max(1, round(w * height / width))
        return (min(w, MAX_DIMENSION), min(h, MAX_DIMENSION)), params.mark_fit
    if params.mark_scale is not None:
        w = max(1, round(base[0] * params.mark_scale / 100))
        h = max(1, round(w * height / width))
        return (min(w, MAX_DIMENSION), min(h, MAX_DIMENSION)), "scale"
    return None


def mark_positions(base: Point, size: Point, params: RenderParams) -> list[Point]:
    """Top-left corners to draw the mark at: one, or a grid through it with mark-tile=grid."""
    x, y = _placed(base, size, params)
    if params.mark_tile != "grid":
        return [(x, y)]
    xs, ys = _grid(base, size, params)
    return [(tx, ty) for ty in ys for tx in xs]


def _grid(base: Point, size: Point, params: RenderParams) -> tuple[range, range]:
    x, y = _placed(base, size, params)
    # We decide the grid's gap: mark-pad, so tiles never overlap and the gap follows the pad.
    step_x, step_y = size[0] + params.mark_pad, size[1] + params.mark_pad
    return range(x % step_x - step_x, base[0], step_x), range(y % step_y - step_y, base[1], step_y)


def _placed(base: Point, size: Point, params: RenderParams) -> Point:
    """The single mark's corner: mark-x/mark-y, else the alignment."""
    x, y = _aligned(base, size, params)
    if params.mark_x is not None:
        x = params.mark_x
    if params.mark_y is not None:
        y = params.mark_y
    return (x, y)


def _aligned(base: Point, size: Point, params: RenderParams) -> Point:
    """mark-align and mark-pad; an axis the align list does not name keeps its default
    (right, bottom), so `mark-align=top` means top right."""
    pad = params.mark_pad
    horizontal = next((a for a in params.mark_align if a in HORIZONTAL_ALIGNS), "right")
    vertical = next((a for a in params.mark_align if a in VERTICAL_ALIGNS), "bottom")
    x = {"left": pad, "center": (base[0] - size[0]) // 2, "right": base[0] - size[0] - pad}
    y = {"top": pad, "middle": (base[1] - size[1]) // 2, "bottom": base[1] - size[1] - pad}
    return (x[horizontal], y[vertical])


def mark_layer(mark: Image.Image, base: Point, params: RenderParams) -> Image.Image:
    """The mark as drawn over a base of `base` size, on a transparent canvas: every frame of an
    animation takes the same layer (tiles never overlap, so drawing them on the layer and the
    layer over the frame is drawing them over the frame)."""
    return mark_apply(Image.new("RGBA", base, (0, 0, 0, 0)), mark, params)


def _composite(image: Image.Image, mark: Image.Image, positions: list[Point]) -> Image.Image:
    result = image.convert("RGBA") if image.mode != "RGBA" else image.copy()
    for x, y in positions:
        if x >= image.width or y >= image.height or x + mark.width <= 0 or y + mark.height <= 0:
            continue
        # alpha_composite refuses a negative destination: clip the mark's source corner instead.
        result.alpha_composite(mark, dest=(max(x, 0), max(y, 0)), source=(max(-x, 0), max(-y, 0)))
    return result if image.mode == "RGBA" else result.convert(image.mode)


class MarkStage(Stage):
    """mark and mark-*: the watermark, fetched and decoded before the render (services.py) and
    handed to `apply` in the stage context."""

    name = "mark"
    full_decode = True
    params = (
        Param("mark", text, "", aliases=("m",)),
        Param("mark-align", items(ALIGNS), ("bottom", "right"), aliases=("ma", "markalign")),
        Param("mark-alpha", integer(0, 100), 100, aliases=("malph", "markalpha")),
        Param("mark-pad", integer(0, MAX_DIMENSION), 5, aliases=("mp", "markpad")),
        Param("mark-scale", integer(0, 100), aliases=("ms", "markscale")),
        Param("mark-w", dimension(), aliases=("mw",)),
        Param("mark-h", dimension(), aliases=("mh",)),
        Param("mark-x", integer(-MAX_DIMENSION, MAX_DIMENSION), aliases=("mx",)),
        Param("mark-y", integer(-MAX_DIMENSION, MAX_DIMENSION), aliases=("my",)),
        Param("mark-fit", choice(MARK_FITS), "clip", aliases=("mf", "markfit")),
        Param("mark-tile", choice({"grid"}), "", aliases=("mtile",)),
        Param("mark-rot", decimal(0.0, 359.0), 0.0),
        # Resolved into `mark` when the query is parsed, so it keys the cache through it.
        Param("mark-base", text, "", aliases=("mb", "markbase"), keyed=False),
        # Beyond any output's side: never drawn.
        Param("mark-if-min-width", integer(0, MAX_DIMENSION + 1)),
        Param("mark-if-min-height", integer(0, MAX_DIMENSION + 1)),
    )

    def parse(self, values, parsed):
        """mark-base is the URL (or path) a relative `mark` is resolved against (RFC 3986, as a
        browser resolves a link). The result is the mark, as if the URL had said it: it passes the
        same checks (rendering/marks.py, the gate, the origin network rules when fetched), so
        mark-base reaches nothing a `mark` could not."""
        out = super().parse(values, parsed)
        if out.get("mark") and out.get("mark_base"):
            out["mark"] = urljoin(out["mark_base"], out["mark"])
        return out

    def active(self, p):
        return bool(p.mark)

    def effective(self, p, fmt):
        if not p.mark:
            return {f: d for f, d in self.fields.items()}
        sized = bool(p.mark_w or p.mark_h)
        horizontal = next((a for a in p.mark_align if a in HORIZONTAL_ALIGNS), "right")
        vertical = next((a for a in p.mark_align if a in VERTICAL_ALIGNS), "bottom")
        if p.mark_x is not None:
            horizontal = "right"  # An explicit position wins over the alignment.
        if p.mark_y is not None:
            vertical = "bottom"
        padded = p.mark_tile == "grid" or (p.mark_x is None and horizontal != "center") or (
            p.mark_y is None and vertical != "middle")
        return dict(
            mark=self.image_ref_canonical(p.mark), mark_align=(vertical, horizontal), mark_alpha=p.mark_alpha,
            mark_pad=p.mark_pad if padded else 5,
            mark_scale=None if sized else p.mark_scale,
            mark_w=p.mark_w, mark_h=p.mark_h, mark_x=p.mark_x, mark_y=p.mark_y,
            mark_fit=p.mark_fit if sized else "clip", mark_tile=p.mark_tile, mark_rot=p.mark_rot,
            mark_if_min_width=p.mark_if_min_width or None, mark_if_min_height=p.mark_if_min_height or None,
        )

    def apply(self, image, p, context):
        if context.mark is None or not mark_drawn_on(image.size, p):
            return image
        if context.memo is None:
            return mark_apply(image, context.mark, p)
        # An animation's frame: the mark sized and tiled once for them all (a 2800×2800 mark
        # resized for each of 300 frames is 20 CPU-seconds).
        key = ("mark", image.size)
        if key not in context.memo:
            context.memo[key] = mark_layer(context.mark, image.size, p)
        return _composite(image, context.memo[key], [(0, 0)])


def mark_drawn_on(base: Point, params: RenderParams) -> bool:
    """mark-if-min-width/-height: the mark is drawn only on an output at least that wide/tall."""
    return base[0] >= (params.mark_if_min_width or 0) and base[1] >= (params.mark_if_min_height or 0)


STAGE = MarkStage()
