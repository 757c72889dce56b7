"""Size: rect, then w/h/dpr/ar/min/max with every imgix fit mode and crop anchor (research §4)."""

import math

import numpy as np
from django.conf import settings
from PIL import Image, ImageFilter

from imaging.decode import image_geometry
from rendering.operations.pad import pad_inner, pad_sides
from rendering.params import MAX_DIMENSION, SMART_CROPS, TRANSPARENT_WHITE, Dim, RenderParams

Box = tuple[int, int]
Window = tuple[float, float, float, float]

DEFAULTS = RenderParams()
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


def _rect_edges(size: Box, rect: tuple[Dim, Dim, Dim, Dim]) -> tuple[int, int, int, int]:
    width, height = size
    x, y, w, h = rect
    left = min(_offset(x, width), width - 1)
    top = min(_offset(y, height), height - 1)
    right = left + min(max(w.pixels(width), 1), width - left)
    bottom = top + min(max(h.pixels(height), 1), height - top)
    return left, top, right, bottom


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
    ar = params.ar if params.fit in ("crop", "fill", "fillmax") else None
    if w is None and h is None:
        # ar alone reframes at native resolution: cropped for crop, padded for fill (imgix ar doc).
        if not ar:
            return None
        return _fit_cap(_ar_frame(size, ar, inside=params.fit == "crop"), params.fit, max_pixels)
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


def fit_apply(image: Image.Image, box: Box, fit: str, params: RenderParams = DEFAULTS, *,
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
    width, height = _size(image)
    scale = max(box[0] / width, box[1] / height)
    window = (min(box[0] / scale, width), min(box[1] / scale, height))
    return _resample(image, box, _anchor(image, window, params))


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
    "clip": _clip, "max": _max, "scale": _scale, "crop": _crop, "min": _min,
    "fill": _fill, "fillmax": _fillmax, "clamp": _clamp,
}


# --- Fill -------------------------------------------------------------------------------------------

def _fill_canvas(image: Image.Image, box: Box, params: RenderParams) -> Image.Image:
    """What shows around a fitted image: a blurred cover of it, fill-color, or transparency."""
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
    """Where the crop window sits in the image: the first of focalpoint/entropy/edges asked for,
    else the directional values (centre by default)."""
    width, height = _size(image)
    cw, ch = window
    strategy = next((c for c in params.crop if c in SMART_CROPS), "")
    if strategy == "focalpoint":
        cw, ch = cw / params.fp_z, ch / params.fp_z
        x = params.fp_x * width - cw / 2
        y = params.fp_y * height - ch / 2
    elif strategy:
        x, y = _busiest(image, (cw, ch), strategy)
    else:
        x = (width - cw) * _side(params.crop, "left", "right")
        y = (height - ch) * _side(params.crop, "top", "bottom")
    x = min(max(x, 0.0), width - cw)
    y = min(max(y, 0.0), height - ch)
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
