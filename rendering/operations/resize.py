"""Size: rect, then w/h/dpr/ar/min/max with every imgix fit mode and crop anchor (docs/rendering.md)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from django.conf import settings
from PIL import Image, ImageFilter

from imaging.decode import image_geometry
from rendering.operations.faces import faces_area, faces_find, faces_shared
from rendering.operations.fillgradient import gradient_canvas
from rendering.operations.pad import TRANSPARENT_WHITE, pad_inner, pad_sides
from rendering.stage import Param, RenderParams, Stage
from rendering.values import (
    MAX_DIMENSION,
    Dim,
    ParamError,
    choice,
    color,
    decimal,
    dimension,
    integer,
    items,
    number_parse,
)

Box = tuple[int, int]
Window = tuple[float, float, float, float]

FIT_NAMES = {"clip", "crop", "fill", "fillmax", "max", "min", "scale", "clamp", "facearea"}
CROPS = {"top", "bottom", "left", "right", "faces", "entropy", "edges", "focalpoint"}
SMART_CROPS = ("focalpoint", "entropy", "edges")  # After "faces", which falls back to them when it finds none.
FILLS = {"solid", "blur", "gradient"}
# The crop anchor and fill of a plain centred crop (a blurred fill's cover).
DEFAULTS = SimpleNamespace(crop=(), fp_x=0.5, fp_y=0.5, fp_z=1.0, faceindex=None, facepad=1.0, fill="", fill_color=None)
# Pillow first shrinks by whole-pixel steps while the image is over 3× the target: fast, same look.
REDUCING_GAP = 3.0
# entropy/edges are measured on a thumbnail: the choice of window does not need full resolution.
MEASURE_SIZE = 128
BLUR_SIZE = 256  # The long side a blurred fill is computed at before it is scaled to the canvas.
ENTROPY_BINS = 32


# --- Public stages ----------------------------------------------------------------------------------

def rect_apply(image: Image.Image, rect: tuple[Dim, Dim, Dim, Dim]) -> Image.Image:
    """Crops to x, y, w, h (pixels, or ratios of the image), clamped so at least 1×1 remains.
    A render with rect never decodes at reduced scale (services._decode_size), so the pixels
    are the image's own."""
    left, top, right, bottom = _rect_edges(image.size, rect)
    if (left, top, right, bottom) == (0, 0, image.width, image.height):
        return image
    return image.crop((left, top, right, bottom))


def rect_size(size: Box, rect: tuple[Dim, Dim, Dim, Dim] | None) -> Box:
    """The size `rect_apply` leaves, without any pixels."""
    if not rect:
        return size
    left, top, right, bottom = _rect_edges(size, rect)
    return (right - left, bottom - top)


def _rect_edges(size: Box, rect: tuple) -> tuple[int, int, int, int]:
    width, height = size
    x, y, w, h = rect
    left = min(_rect_offset(x, width, w.pixels(width)), width - 1)
    top = min(_rect_offset(y, height, h.pixels(height)), height - 1)
    right = left + min(max(w.pixels(width), 1), width - left)
    bottom = top + min(max(h.pixels(height), 1), height - top)
    return left, top, right, bottom


def _rect_offset(value, reference: int, length: int) -> int:
    """x or y: pixels, a ratio, or where the window sits (left/center/right, top/middle/bottom)."""
    if isinstance(value, str):
        return max(0, round((reference - length) * RECT_ALIGNS[value]))
    return _offset(value, reference)


RECT_ALIGNS = {"left": 0.0, "top": 0.0, "center": 0.5, "middle": 0.5, "right": 1.0, "bottom": 1.0}


def resize_apply(image: Image.Image, params: RenderParams, *, max_pixels: int | None = None) -> Image.Image:
    """w, h, dpr, ar, min/max and fit; never larger than 8192×8192 nor RENDER_MAX_OUTPUT_PIXELS
    (scaled down, not refused). `max_pixels` lowers the pixel ceiling: the output encoder's
    budget (rendering/budget.py), which scales a size over it down as the output ceiling does.

    Sizes follow from the image's own size even when it was decoded at reduced scale (a JPEG
    draft): the arithmetic is imgix's on the whole image, whatever the decoder rounded."""
    box = target_box(_size(image), params, max_pixels=max_pixels)
    if box is None:
        return _cap_only(image, max_pixels)
    return fit_apply(image, box, params.fit, params, max_pixels=max_pixels, margins=_margins(params))


def output_size(size: Box, params: RenderParams, *, max_pixels: int | None = None) -> Box:
    """The size `resize_apply` gives an image of `size`, without any pixels: the output budget
    is checked on it before the work starts."""
    box = target_box(size, params, max_pixels=max_pixels)
    if box is None:
        return _pixel_cap(_box_cap(size, max_pixels), max_pixels)
    return fit_size(size, box, params.fit, max_pixels=max_pixels, margins=_margins(params))


def asked_size(size: Box, params: RenderParams) -> Box | None:
    """The size the URL asks of an image of `size` (the padded canvas, with `pad`) before any
    ceiling scales it down, or None when it asks for none (the image at its own size): what a
    render capped to a ceiling says it was asked for (rendering/budget.py)."""
    if target_box(size, params) is None:
        return None
    inner = output_size(size, params, max_pixels=UNCAPPED)
    if not any(params.pad):
        return inner
    left, top, right, bottom = pad_sides(params)
    return (inner[0] + left + right, inner[1] + top + bottom)


def fit_size(size: Box, box: Box, fit: str, *, max_pixels: int | None = None, margins: Box = (0, 0)) -> Box:
    """The size one fit mode makes of an image of `size` in `box` (as `fit_apply` does).
    `margins` (across, down) is the padding the pad stage adds: the pixel ceiling counts it."""
    if fit == "max":
        inside = _inside(size, box)
        return _pixel_cap(size if inside[0] >= size[0] else inside, max_pixels, margins)
    if fit == "min":
        return _pixel_cap(_min_box(size, box), max_pixels, margins)
    if fit in FITS and fit != "clip":
        return box  # crop, scale, fill, fillmax and clamp fill the box exactly.
    return _pixel_cap(_inside(size, box), max_pixels, margins)


def target_box(size: Box, params: RenderParams, *, max_pixels: int | None = None) -> Box | None:
    """The box the fit mode works in, or None when nothing asks for a new size.

    The sides the URL names are exactly that many output pixels: `dpr` multiplies them first,
    and a side not named follows the aspect ratio from there, rounded once (imgix: `w=200` on a
    640×427 photo is 200×133, with `dpr=2` 400×267, not 2 × 133). With `pad`, the requested w×h
    includes the padding (imgix), so the image is sized into what it leaves, and a side not
    named follows the image's aspect ratio inside the padding: the padded canvas is exactly the
    side named."""
    width, height = size
    w = params.w.pixels(width) if params.w else None
    h = params.h.pixels(height) if params.h else None
    ar = params.ar if params.fit in ("crop", "facearea", "fill", "fillmax") else None
    if w is None and h is None:
        # ar alone reframes at native resolution: cropped for crop, padded for fill (imgix ar doc).
        if not ar:
            return None
        return _fit_cap(_ar_frame(size, ar, inside=params.fit in ("crop", "facearea")), params.fit, max_pixels)
    across_ratio, down_ratio = ar if ar else size
    dpr = params.dpr
    left, top, right, bottom = pad_sides(params)
    across, down = left + right, top + bottom
    w, h = _dense(w, dpr), _dense(h, dpr)
    if w is None:
        w = _follow(max(1, h - down), across_ratio, down_ratio) + across
    if h is None:
        h = _follow(max(1, w - across), down_ratio, across_ratio) + down
    if params.fit == "crop":
        # Bounds are CSS pixels too: dpr=2 is the same picture, denser.
        w = _bounded(w, _dense(params.min_w, dpr), _dense(params.max_w, dpr))
        h = _bounded(h, _dense(params.min_h, dpr), _dense(params.max_h, dpr))
    return pad_inner(_fit_cap((w, h), params.fit, max_pixels), params)


def fit_apply(image: Image.Image, box: Box, fit: str, params=DEFAULTS, *,
              max_pixels: int | None = None, margins: Box = (0, 0)) -> Image.Image:
    """One fit mode into `box`; `params` only supplies the crop anchor and the fill style."""
    return FITS.get(fit, _clip)(image, box, params, max_pixels, margins)


# --- Fit modes --------------------------------------------------------------------------------------

# Each: (image, box, params, max_pixels, margins). crop, scale, fill, fillmax and clamp fill a box
# that target_box already kept within the ceilings; clip, max and min are capped on the size they
# make (fit_size).

def _clip(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
          margins: Box = (0, 0)) -> Image.Image:
    return _resample(image, fit_size(_size(image), box, "clip", max_pixels=max_pixels, margins=margins))


def _max(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
         margins: Box = (0, 0)) -> Image.Image:
    return _resample(image, fit_size(_size(image), box, "max", max_pixels=max_pixels, margins=margins))


def _scale(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
           margins: Box = (0, 0)) -> Image.Image:
    return _resample(image, box)


def _crop(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
          margins: Box = (0, 0)) -> Image.Image:
    return _resample(image, box, _anchor(image, _crop_window(_size(image), box), params))


def _crop_window(size: Box, box: Box) -> tuple[float, float]:
    """The largest window of the box's aspect ratio inside an image of `size`: what fit=crop scales."""
    width, height = size
    scale = max(box[0] / width, box[1] / height)
    return (min(box[0] / scale, width), min(box[1] / scale, height))


def focal_point_place(size: Box, params: RenderParams) -> tuple[float, float] | None:
    """Where the focal point (fp-x, fp-y) lands in the output of a focal-point crop of an image of
    `size`, in output pixels (the centre, unless the window met an edge of the image); None for any
    other render."""
    if params.fit != "crop" or _crop_effective(params.crop) != ("focalpoint",):
        return None
    box = target_box(size, params)
    if box is None:
        return None
    left, top, right, bottom = _focal_window(size, _crop_window(size, box), params)
    return ((params.fp_x * size[0] - left) * box[0] / (right - left),
            (params.fp_y * size[1] - top) * box[1] / (bottom - top))


def _facearea(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
              margins: Box = (0, 0)) -> Image.Image:
    """The face (faceindex's, else all of them) padded by facepad (1: the face's own box, 2: twice
    its width and height), widened to the box's aspect ratio and kept inside the image, scaled to
    the box. Without a face, imgix's fallback: fit=crop with the crop values."""
    area = faces_area(faces_find(image), params.faceindex)
    if area is None:
        return _crop(image, box, params)
    width, height = _size(image)
    x, y, w, h = area
    centre = (x + w / 2, y + h / 2)
    w, h = max(w * params.facepad, 1.0), max(h * params.facepad, 1.0)
    aspect = box[0] / box[1]
    w, h = (h * aspect, h) if w / h < aspect else (w, w / aspect)
    shrink = min(1.0, width / w, height / h)  # Within the image: as much of the face as it holds.
    return _resample(image, box, _inside_window((width, height), (w * shrink, h * shrink),
                                                centre[0] - w * shrink / 2, centre[1] - h * shrink / 2))


def _min(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
         margins: Box = (0, 0)) -> Image.Image:
    return _crop(image, fit_size(_size(image), box, "min", max_pixels=max_pixels, margins=margins), params)


def _min_box(size: Box, box: Box) -> Box:
    # The requested aspect ratio, shrunk until it fits the original: never upscaled.
    return box if box[0] <= size[0] and box[1] <= size[1] else _inside(box, size)


def _fill(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
          margins: Box = (0, 0)) -> Image.Image:
    return _pad(_clip(image, box, params), box, _fill_canvas(image, box, params))


def _fillmax(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
             margins: Box = (0, 0)) -> Image.Image:
    return _pad(_max(image, box, params), box, _fill_canvas(image, box, params))


def _clamp(image: Image.Image, box: Box, params: RenderParams, max_pixels: int | None = None,
           margins: Box = (0, 0)) -> Image.Image:
    fitted = _clip(image, box, params)
    left, top = (box[0] - fitted.width) // 2, (box[1] - fitted.height) // 2
    pixels = np.asarray(fitted)
    widths = [(top, box[1] - fitted.height - top), (left, box[0] - fitted.width - left)]
    widths += [(0, 0)] * (pixels.ndim - 2)
    return Image.fromarray(np.pad(pixels, widths, mode="edge"), fitted.mode)


FITS = {
    "clip": _clip, "max": _max, "scale": _scale, "crop": _crop, "facearea": _facearea, "min": _min,
    "fill": _fill, "fillmax": _fillmax, "clamp": _clamp,
}


# --- Fill -------------------------------------------------------------------------------------------

def _fill_canvas(image: Image.Image, box: Box, params: RenderParams) -> Image.Image:
    """What shows around a fitted image: a blurred cover of it, fill-color, or transparency."""
    if params.fill == "gradient":
        return gradient_canvas(box, params, image)
    if params.fill == "blur":
        # Blurred small and scaled up: looks the same as blurring at full size, for a fraction of
        # the work on a large canvas.
        small = _box_cap_to(box, BLUR_SIZE)
        cover = _crop(image, small, DEFAULTS)
        blurred = cover.filter(ImageFilter.GaussianBlur(radius=max(2.0, max(small) / 20)))
        return blurred.resize(box, Image.Resampling.BICUBIC)
    # fill-color is honoured without fill=solid too: solid is the only fill that uses it.
    color = params.fill_color or TRANSPARENT_WHITE
    if color[3] == 255 and image.mode == "RGB":
        return Image.new("RGB", box, color[:3])
    return Image.new("RGBA", box, color)


def _pad(fitted: Image.Image, box: Box, canvas: Image.Image) -> Image.Image:
    offset = ((box[0] - fitted.width) // 2, (box[1] - fitted.height) // 2)
    if canvas.mode == "RGBA" or fitted.mode == "RGBA":
        canvas = canvas.convert("RGBA")
        canvas.alpha_composite(fitted.convert("RGBA"), dest=offset)
        return canvas
    canvas.paste(fitted, offset)
    return canvas


# --- Crop anchor ------------------------------------------------------------------------------------

def _anchor(image: Image.Image, window: tuple[float, float], params: RenderParams) -> Window:
    """Where the crop window sits in the image: centred on the faces (faceindex's, else all of
    them) with crop=faces; without one found, or without crop=faces, the first of
    focalpoint/entropy/edges asked for, else the directional values (centre by default)."""
    width, height = _size(image)
    cw, ch = window
    strategy = next((c for c in params.crop if c in SMART_CROPS), "")
    face = faces_area(faces_find(image), params.faceindex) if "faces" in params.crop else None
    if face is not None:
        return _inside_window((width, height), window, face[0] + face[2] / 2 - cw / 2, face[1] + face[3] / 2 - ch / 2)
    if strategy == "focalpoint":
        return _focal_window((width, height), window, params)
    if strategy:
        x, y = _busiest(image, (cw, ch), strategy)
    else:
        x = (width - cw) * _side(params.crop, "left", "right")
        y = (height - ch) * _side(params.crop, "top", "bottom")
    return _inside_window((width, height), (cw, ch), x, y)


def _focal_window(size: Box, window: tuple[float, float], params: RenderParams) -> Window:
    """The window zoomed by fp-z and centred on the focal point, as far as the image allows."""
    cw, ch = window[0] / params.fp_z, window[1] / params.fp_z
    return _inside_window(size, (cw, ch), params.fp_x * size[0] - cw / 2, params.fp_y * size[1] - ch / 2)


def _inside_window(size: Box, window: tuple[float, float], x: float, y: float) -> Window:
    cw, ch = window
    x = min(max(x, 0.0), size[0] - cw)
    y = min(max(y, 0.0), size[1] - ch)
    return (x, y, x + cw, y + ch)


def _side(crop: tuple, low: str, high: str) -> float:
    if low in crop:
        return 0.0
    return 1.0 if high in crop else 0.5


def _busiest(image: Image.Image, window: tuple[float, float], measure: str) -> tuple[float, float]:
    """The window position with the most entropy or edge energy, on each axis that has slack."""
    geometry = image_geometry(image)
    size = _box_cap_to(image.size, MEASURE_SIZE)
    thumb = image.resize(size, Image.Resampling.BOX, box=(0, 0, *geometry.box)).convert("L")
    factor = thumb.width / geometry.size[0]
    grey = np.asarray(thumb, dtype=np.float64)
    if measure == "edges":
        values = np.zeros_like(grey)
        values[:, 1:] += np.abs(np.diff(grey, axis=1))
        values[1:, :] += np.abs(np.diff(grey, axis=0))
        values = values[..., np.newaxis]
        score = _edge_energy
    else:
        bins = np.minimum((grey * ENTROPY_BINS / 256).astype(int), ENTROPY_BINS - 1)
        values = np.eye(ENTROPY_BINS)[bins]  # One histogram per pixel, summed per window below.
        score = _entropy
    x = _best_offset(values.sum(axis=0), window[0] * factor, score) / factor
    y = _best_offset(values.sum(axis=1), window[1] * factor, score) / factor
    return (x if x >= 0 else (geometry.size[0] - window[0]) / 2,
            y if y >= 0 else (geometry.size[1] - window[1]) / 2)


def _best_offset(profile: np.ndarray, length: float, score) -> float:
    """The start of the best-scoring window of `length` along `profile`; -1 when there is no slack.
    Ties go to the most central window, so a featureless image crops like the default."""
    span = max(1, round(length))
    positions = profile.shape[0] - span + 1
    if positions <= 1:
        return -1.0
    cumulative = np.concatenate([np.zeros((1,) + profile.shape[1:]), np.cumsum(profile, axis=0)])
    scores = score(cumulative[span:] - cumulative[:-span])
    best = np.flatnonzero(scores >= scores.max() - 1e-9 * max(1.0, abs(scores.max())))
    centre = (positions - 1) / 2
    return float(best[np.argmin(np.abs(best - centre))])


def _edge_energy(sums: np.ndarray) -> np.ndarray:
    return sums[..., 0]


def _entropy(histograms: np.ndarray) -> np.ndarray:
    totals = histograms.sum(axis=-1, keepdims=True)
    p = histograms / np.maximum(totals, 1)
    return -(p * np.log2(np.where(p > 0, p, 1))).sum(axis=-1)


# --- Sizes and resampling ---------------------------------------------------------------------------

def _offset(value: Dim, reference: int) -> int:
    # Not Dim.pixels: an offset of 0 is valid, where a size is at least 1.
    return round(value.value * reference) if value.ratio else int(value.value)


def _bounded(value: int, low: int | None, high: int | None) -> int:
    if high is not None:
        value = min(value, high)
    if low is not None:
        value = max(value, low)
    return value


def _ar_frame(size: Box, ar: tuple, *, inside: bool) -> Box:
    """The largest box of ratio `ar` inside the image (crop) or the smallest around it (fill)."""
    width, height = size
    aspect = ar[0] / ar[1]
    if (width / height > aspect) == inside:
        return (max(1, round(height * aspect)), height)
    return (width, max(1, round(width / aspect)))


def _dense(value: int | None, dpr: float) -> int | None:
    """CSS pixels as output pixels: `value` × `dpr`, to the nearest pixel."""
    return None if value is None else max(1, round(value * dpr))


def _margins(params: RenderParams) -> Box:
    """The padding the pad stage adds around a sized image, across and down, in output pixels."""
    left, top, right, bottom = pad_sides(params)
    return (left + right, top + bottom)


# max_pixels that lifts every ceiling: the size a URL asks for, before it is scaled down (asked_size).
UNCAPPED = -1


def _ceilings(max_pixels: int | None) -> tuple[float, float]:
    """The longest side and the pixels an output may have: 8192 and RENDER_MAX_OUTPUT_PIXELS, or
    `max_pixels` when lower."""
    if max_pixels == UNCAPPED:
        return math.inf, math.inf
    limit = settings.RENDER_MAX_OUTPUT_PIXELS
    return MAX_DIMENSION, min(limit, max_pixels or limit)


def _box_cap(box: Box, max_pixels: int | None = None) -> Box:
    return _box_cap_to(box, _ceilings(max_pixels)[0])


def _fit_cap(box: Box, fit: str, max_pixels: int | None = None) -> Box:
    """The box within 8192×8192; for modes that fill it exactly, within the output pixels too.
    clip, max and min fit inside the box, so they are capped on the size they make (`fit_size`):
    a square box around a wide image must not shrink it for pixels it will never have."""
    box = _box_cap(box, max_pixels)
    return box if fit in ("clip", "max", "min") or fit not in FITS else _pixel_cap(box, max_pixels)


def _pixel_cap(size: Box, max_pixels: int | None = None, margins: Box = (0, 0)) -> Box:
    """`size` scaled down proportionally until, with `margins` around it (the padding, which
    keeps its width), it has at most RENDER_MAX_OUTPUT_PIXELS pixels (or `max_pixels`, when
    lower): the pad stage then adds them within the ceiling, and never resizes again."""
    limit = _ceilings(max_pixels)[1]
    (width, height), (across, down) = size, margins
    if (width + across) * (height + down) <= limit:
        return size
    if not across and not down:
        shrink = math.sqrt(limit / (width * height))
    else:
        # The largest shrink s with (width·s + across)(height·s + down) ≤ limit.
        a, b, c = width * height, width * down + height * across, across * down - limit
        shrink = max(0.0, (-b + math.sqrt(max(0.0, b * b - 4 * a * c))) / (2 * a))
    return (max(1, math.floor(width * shrink)), max(1, math.floor(height * shrink)))


def _box_cap_to(box: Box, limit: float) -> Box:
    """`box` scaled down proportionally until neither side exceeds `limit`."""
    shrink = min(1.0, limit / box[0], limit / box[1])
    if shrink == 1.0:
        return box
    return (min(limit, max(1, round(box[0] * shrink))), min(limit, max(1, round(box[1] * shrink))))


def _cap_only(image: Image.Image, max_pixels: int | None = None) -> Image.Image:
    return _resample(image, _pixel_cap(_box_cap(_size(image), max_pixels), max_pixels))


def _inside(size: Box, box: Box) -> Box:
    """The size that fits `box` keeping the aspect ratio, matching one of its dimensions exactly:
    of the two matches whose other side, rounded, fits, the larger. A box whose other side was
    itself rounded from the aspect ratio (w or h alone) is matched on both, so the side the URL
    named is never one pixel short."""
    width, height = size
    by_width = (box[0], _follow(box[0], height, width))
    by_height = (_follow(box[1], width, height), box[1])
    fits = [match for match in (by_width, by_height) if match[0] <= box[0] and match[1] <= box[1]]
    if fits:
        return max(fits, key=lambda match: match[0] * match[1])
    if box[0] / width <= box[1] / height:
        return (box[0], min(box[1], by_width[1]))
    return (min(box[0], by_height[0]), box[1])


def _follow(side: int, other: float, this: float) -> int:
    """The side that goes with `side` at the aspect ratio this:other, rounded once. One
    expression for target_box and _inside, so a box made from it is matched exactly."""
    return max(1, round(side * other / this))


def _size(image: Image.Image) -> Box:
    """The size sizing arithmetic works on: the image's own, also when decoded at reduced scale."""
    return image_geometry(image).size


def _resample(image: Image.Image, size: Box, window: Window | None = None) -> Image.Image:
    """LANCZOS resize of `window` (the whole image by default; in the coordinates of the image's
    own size) to `size`, alpha kept clean."""
    geometry = image_geometry(image)
    full = (0.0, 0.0, float(geometry.size[0]), float(geometry.size[1]))
    window = window or full
    if size == image.size and window == full and geometry.box == image.size:
        return image
    # Into the decoded pixels: a reduced-scale decode's picture is `geometry.box` of them.
    sx, sy = geometry.box[0] / geometry.size[0], geometry.box[1] / geometry.size[1]
    window = (window[0] * sx, window[1] * sy, window[2] * sx, window[3] * sy)
    # Premultiplied, so the colour of fully transparent pixels cannot bleed into visible edges.
    premultiply = image.mode == "RGBA"
    source = image.convert("RGBa") if premultiply else image
    resized = source.resize(size, Image.Resampling.LANCZOS, box=window, reducing_gap=REDUCING_GAP)
    return resized.convert("RGBA") if premultiply else resized


# --- Stages ---------------------------------------------------------------------------------------

def _ar_parse(value: str) -> tuple | None:
    width, sep, height = value.partition(":")
    w, h = number_parse(width), number_parse(height)
    if not sep or not w or not h or w <= 0 or h <= 0:
        return None
    return (w, h)


def _rect_parse(value: str) -> tuple:
    """x,y,w,h: integers are pixels, decimals up to 1 are ratios of the source; x may be left,
    center or right and y top, middle or bottom (where the window sits). Bad syntax is 400."""
    parts = [p.strip().lower() for p in value.split(",")]
    if len(parts) != 4:
        raise ParamError("rect must be four values: x,y,width,height.")
    dims = []
    for index, part in enumerate(parts):
        if part in (("left", "center", "right"), ("top", "middle", "bottom"), (), ())[index]:
            # left and top are 0: one spelling for the cache key.
            dims.append(Dim(0) if part in ("left", "top") else part)
            continue
        number = number_parse(part)
        if number is None or number < 0:
            raise ParamError("rect must be x (a number, left, center or right), y (a number, top, middle or "
                             "bottom), width and height (non-negative numbers).")
        dims.append(Dim(number, ratio=True) if "." in part and number <= 1 else Dim(round(number)))
    if dims[2].value == 0 or dims[3].value == 0:
        raise ParamError("rect width and height must be greater than zero.")
    return tuple(dims)


class RectStage(Stage):
    """rect: a window of the source, in its own pixels, before sizing."""

    name = "rect"
    params = (Param("rect", _rect_parse),)
    full_decode = True  # The window is in the source's pixels.

    def effective(self, p, fmt):
        if not p.rect:
            return {"rect": None}
        zero = tuple(Dim(0) if isinstance(d, Dim) and d.value == 0 else d for d in p.rect[:2])
        return {"rect": zero + p.rect[2:]}

    def size(self, size, p, context):
        return rect_size(size, p.rect)

    def apply(self, image, p, context):
        return rect_apply(image, p.rect) if p.rect else image


class ResizeStage(Stage):
    """w, h, dpr, ar, min/max, fit and crop, and the fill a fit=fill lays around the image."""

    name = "resize"
    params = (
        Param("w", dimension(), aliases=("width",)),
        Param("h", dimension(), aliases=("height",)),
        Param("dpr", decimal(0.01, 5.0), 1.0),
        Param("fit", None, "clip", aliases=("f",),
              differs="`facearea` acts with `w`/`h` or `ar` (a missing side follows the image, not the face); "
                      "without a face it is `crop` with the `crop` values (`facearea,fill` is not read)"),
        Param("crop", None, (), differs="`faces`: OpenCV's Haar cascades (frontal and profile faces at least 3% of "
                                         "the image's longer side)"),
        Param("fp-x", decimal(0.0, 1.0), 0.5),
        Param("fp-y", decimal(0.0, 1.0), 0.5),
        Param("fp-z", decimal(1.0, 100.0), 1.0),
        Param("max-w", None, aliases=("max-width",)),
        Param("max-h", None, aliases=("max-height",)),
        Param("min-w", None, aliases=("min-width",)),
        Param("min-h", None, aliases=("min-height",)),
        Param("ar", None),
        Param("fill", None, ""),
        Param("fill-color", None),
        # Which face crop=faces and fit=facearea centre on (1-based, left to right; all by default),
        # and how much of the face's own size fit=facearea shows around it.
        Param("faceindex", integer(1, 10_000)),
        Param("facepad", decimal(1.0, 10.0), 1.0),
    )

    def parse(self, values, parsed):
        out = super().parse(values, parsed)
        fit = choice(FIT_NAMES)(values.get("fit", "")) or "clip"
        out["fit"] = fit
        crop, fill = fit in ("crop", "facearea"), fit in ("fill", "fillmax")
        if crop:
            out["crop"] = items(CROPS)(values.get("crop", "")) or ()  # facearea's, when it finds no face.
        if fit == "crop":
            for name in ("max-w", "max-h", "min-w", "min-h"):
                value = integer(1, MAX_DIMENSION)(values[name]) if name in values else None
                if value is not None:
                    out[name.replace("-", "_")] = value
        if (crop or fill) and "ar" in values:
            ar = _ar_parse(values["ar"])
            if ar is not None:
                out["ar"] = ar
        if fill:
            out["fill"] = choice(FILLS)(values.get("fill", "")) or ""
            fill_color = color(values["fill-color"]) if "fill-color" in values else None
            if fill_color is not None:
                out["fill_color"] = fill_color
        return out

    def active(self, p):
        return bool(p.w or p.h or p.ar)

    def effective(self, p, fmt):
        sized = self.active(p)  # Otherwise fit and crop have no box to work in.
        crop = _crop_effective(p.crop) if sized and p.fit in ("crop", "facearea") else ()
        if p.fit == "facearea":
            crop = tuple(c for c in crop if c != "faces")  # Its fallback is for when there is no face.
        focal = "focalpoint" in crop
        faces = sized and (p.fit == "facearea" or "faces" in crop)
        bounded = p.fit == "crop" and bool(p.w or p.h)  # min/max only bound a w/h box.
        fill = p.fit in ("fill", "fillmax") and sized
        fill_style = p.fill if fill and p.fill in ("blur", "gradient") else ""  # solid is what "" draws.
        fill_color = p.fill_color if fill and not fill_style else None
        return dict(
            w=p.w, h=p.h,
            dpr=p.dpr if p.w or p.h else 1.0,
            fit=p.fit if sized else "clip",
            crop=crop,
            fp_x=p.fp_x if focal else 0.5, fp_y=p.fp_y if focal else 0.5, fp_z=p.fp_z if focal else 1.0,
            max_w=p.max_w if bounded else None, max_h=p.max_h if bounded else None,
            min_w=p.min_w if bounded and (p.min_w or 0) > 1 else None,
            min_h=p.min_h if bounded and (p.min_h or 0) > 1 else None,
            # With both w and h the box is given; ar only sets the missing side. As a ratio, so 16:9 is 32:18.
            ar=(p.ar[0] / p.ar[1], 1.0) if p.ar and sized and not (p.w and p.h) else None,
            fill=fill_style,
            fill_color=None if fill_color == TRANSPARENT_WHITE else fill_color,
            faceindex=p.faceindex if faces else None,
            facepad=p.facepad if sized and p.fit == "facearea" else 1.0,
        )

    def size(self, size, p, context):
        return output_size(size, p, max_pixels=context.max_pixels)

    def apply(self, image, p, context):
        # fit=fill/fillmax also lays the fill around the image.
        if p.fit == "facearea" or "faces" in p.crop:
            faces_shared(image, context, self.name)  # An animation's frames: the first one's faces.
        resized = resize_apply(image, p, max_pixels=context.max_pixels)
        place = focal_point_place(_size(image), p)
        if place is not None:
            # Where the focal point landed, for fp-debug (rendering/operations/fpdebug.py), which
            # only sees the output.
            resized.focal_point = place
        return resized

    def decode_size(self, p) -> Box | None:
        """The smallest decoded size the render needs, when it is known before decoding (a JPEG
        may then decode at 1/2, 1/4 or 1/8 of its size)."""
        if p.fit == "facearea" and self.active(p):
            return None  # It zooms into the face: the output's size says nothing of the pixels it needs.
        if not (p.w or p.h):
            if p.ar:
                return None  # The output's size follows the decoded one.
            # No size asked: the output is the image clamped to RENDER_MAX_OUTPUT_PIXELS. A decode
            # whose shorter side is at least √ceiling still has more pixels than that, so it clamps
            # to the same size; a 50-megapixel JPEG then decodes at 1/2, for a second less CPU.
            side = math.isqrt(settings.RENDER_MAX_OUTPUT_PIXELS - 1) + 1
            return (side, side)
        if (p.w and p.w.ratio) or (p.h and p.h.ratio):
            return None
        scale = p.dpr if p.dpr > 0 else 1
        return (max(1, round((p.w.value if p.w else 1) * scale)),
                max(1, round((p.h.value if p.h else 1) * scale)))


def _crop_effective(crop: tuple) -> tuple:
    """The crop anchor as `_anchor` reads it: faces first when asked for, then what it falls back
    to: the first smart crop alone, else one horizontal and one vertical side (centre, the
    default, left out)."""
    faces = ("faces",) if "faces" in crop else ()
    smart = next((c for c in crop if c in SMART_CROPS), None)
    if smart:
        return faces + (smart,)
    horizontal = "left" if "left" in crop else ("right" if "right" in crop else None)
    vertical = "top" if "top" in crop else ("bottom" if "bottom" in crop else None)
    return faces + tuple(side for side in (horizontal, vertical) if side)


RECT = RectStage()
RESIZE = ResizeStage()
