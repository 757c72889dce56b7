"""A cutout's edges: the faint alpha far from the subject taken out, and the old background's
colour taken out of the soft edge (foreground estimation in the band where alpha is neither 0
nor 1 only)."""

import cv2
import numpy as np
from PIL import Image

# Alpha below this (of 255) is nothing: the model leaves such values over the whole background,
# which would make `trim=alpha` and remove.bg's `crop` keep the whole frame.
FAINT = 8
# A soft region is kept only if it touches a part of the subject at least this opaque: a halo
# around the subject is kept, a haze with nothing solid in it is not.
SOLID = 128


def mask_clean(alpha: np.ndarray) -> np.ndarray:
    """The mask without its faint noise: values under FAINT zeroed and over 255 − FAINT made
    whole (the model's near-certain answers either way), and every connected soft region that
    holds no pixel of SOLID opacity removed (8-connected, on alpha ≥ FAINT). The regions are
    found on the mask max-pooled to about a quarter megapixel, which joins what is close and
    never loses a thin solid part."""
    height, width = alpha.shape
    step = max(1, int((height * width / 262_144) ** 0.5))
    pooled = alpha
    if step > 1:  # Max-pooled by reshaping: no full-size temporary.
        rows, cols = -(-height // step) * step, -(-width // step) * step
        padded = alpha if (rows, cols) == (height, width) else cv2.copyMakeBorder(
            alpha, 0, rows - height, 0, cols - width, cv2.BORDER_CONSTANT, value=0)
        pooled = padded.reshape(rows // step, step, cols // step, step).max(axis=(1, 3))
        del padded
    present = cv2.threshold(pooled, FAINT - 1, 1, cv2.THRESH_BINARY)[1]
    count, labels = cv2.connectedComponents(present, connectivity=8)
    solid = np.zeros(count, dtype=np.uint8)  # 1 for regions with a solid pixel; label 0 (none) never.
    solid[np.unique(labels[pooled >= SOLID])] = 1
    solid[0] = 0
    keep = solid[labels]
    # Faint to nothing and near-whole to whole in one table; then the regions kept.
    out = cv2.LUT(alpha, _SNAP)
    if step > 1:
        keep = cv2.resize(keep, (keep.shape[1] * step, keep.shape[0] * step), interpolation=cv2.INTER_NEAREST)
        if keep.shape != (height, width):
            keep = np.ascontiguousarray(keep[:height, :width])
    cv2.multiply(out, keep, dst=out)
    return out


_SNAP = np.array([0] * FAINT + list(range(FAINT, 256 - FAINT)) + [255] * FAINT, dtype=np.uint8)


def foreground_estimate(image: np.ndarray, alpha: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """The subject's own colours (uint8 RGB, same size) where `alpha` is soft; the photo's
    elsewhere. Blur-fusion foreground estimation (Forte and Pitié, "Approximate Fast Foreground
    Colour Estimation", ICIP 2021): a wide pass estimates smooth foreground and background colour
    fields, a narrow one refines them near the edge, and at each edge pixel the composite
    equation I = αF + (1−α)B is solved for F. Both passes make smooth fields, so each runs on a
    reduced image (the narrow one on the box around the soft band only), and what needs the
    first pass's estimate is worked out at the band's pixels only: the cost follows the edge,
    not the photo. One departure: the narrow pass takes the background where α = 0 as the photo
    shows it, not as the wide pass blurred it. The result is written into `out` when given (it
    may be `image` itself, writable), else into a copy."""
    out = image.copy() if out is None else _copy_into(out, image)

    def reduced(box, shrink):
        left, top, right, bottom = box
        crop = image[top:bottom, left:right]
        if shrink > 1:
            crop = cv2.resize(crop, ((right - left) // shrink, (bottom - top) // shrink), interpolation=cv2.INTER_AREA)
        return _unit(crop)

    def rows(top, bottom):
        return image[top:bottom]

    def write(top, bottom, stripe_points, colours):
        out[stripe_points[:, 1] + top, stripe_points[:, 0]] = colours

    _estimate(alpha, reduced, rows, write)
    return out


def foreground_apply(photo: Image.Image, alpha: np.ndarray, cutout: Image.Image) -> None:
    """foreground_estimate's colours written into `cutout` (RGBA, the photo's colours over
    `alpha`) where `alpha` is soft, reading the photo (RGB) in reduced copies and stripes of rows:
    no full-size copy of either image is made, so a 10 MP job stays within the worker's memory
    bound (tests/cutouts/test_worker_bounds.py)."""
    def reduced(box, shrink):
        return _unit(np.asarray(photo.reduce(shrink, box=box) if shrink > 1 else photo.crop(box)))

    def rows(top, bottom):
        return np.asarray(photo.crop((0, top, photo.width, bottom)))

    def write(top, bottom, stripe_points, colours):
        stripe = np.array(cutout.crop((0, top, cutout.width, bottom)))
        stripe[stripe_points[:, 1], stripe_points[:, 0], :3] = colours
        cutout.paste(Image.fromarray(stripe, "RGBA"), (0, top))

    _estimate(alpha, reduced, rows, write)


def _estimate(alpha: np.ndarray, reduced, rows, write) -> None:
    """The estimate, reading the photo through `reduced(box, shrink)` (a box of it, each side
    divided by shrink, box averages, float RGB in [0, 1]) and `rows(top, bottom)` (uint8 RGB), and
    handing each stripe's colours to `write(top, bottom, points, colours)` (points x, y within
    the stripe)."""
    band = cv2.inRange(alpha, 1, 254)  # 255 where soft (after mask_clean, a thin band).
    x, y, w, h = cv2.boundingRect(band)
    if w == 0:
        return
    height, width = alpha.shape
    # Radii in proportion to the photo (the method's 90 and 6 px are for 1–2 megapixel mattes).
    scale = max(height, width) / 2048
    wide, narrow = max(8, round(90 * scale)), max(4, round(6 * scale))

    # The wide pass, at a size where its radius is about 16 px (an integer reduction, averaged).
    shrink = max(1, min(wide // 16, height, width))
    covered = (0, 0, width // shrink * shrink, height // shrink * shrink)
    small_image, small_alpha = reduced(covered, shrink), _reduced_alpha(alpha, covered, shrink)
    fg_wide, bg_wide = _fields(small_image * small_alpha, small_image * (1 - small_alpha), small_alpha,
                               max(2, round(wide / shrink)))
    to_wide = (fg_wide.shape[1] / covered[2], fg_wide.shape[0] / covered[3])

    # The narrow pass, at half size or less (its radius about 2 px there), on the box around the band.
    shrink = max(2, narrow // 2)
    margin = narrow + shrink
    left, top = max(0, x - margin), max(0, y - margin)
    right = min(width, left + max(shrink, (min(width, x + w + margin) - left) // shrink * shrink))
    bottom = min(height, top + max(shrink, (min(height, y + h + margin) - top) // shrink * shrink))
    box = (left, top, left + (right - left) // shrink * shrink or shrink, top + (bottom - top) // shrink * shrink or shrink)
    box_image, a = reduced(box, shrink), _reduced_alpha(alpha, box, shrink)
    fg_weighted, bg_weighted = box_image * a, box_image * (1 - a)
    # Where the reduced box is soft, the wide pass's estimate replaces the photo's colours.
    soft = cv2.findNonZero(cv2.inRange(a, 1e-6, 1 - 1e-6))
    for chunk in _chunks(soft):
        sx, sy = chunk[:, 0, 0], chunk[:, 0, 1]
        k = a[sy, sx]
        wx = ((left + (sx + 0.5) * shrink) * to_wide[0] - 0.5).astype(np.float32)
        wy = ((top + (sy + 0.5) * shrink) * to_wide[1] - 0.5).astype(np.float32)
        f, b = _sample_points(fg_wide, wx, wy), _sample_points(bg_wide, wx, wy)
        first = np.clip(f + k * (box_image[sy, sx] - k * f - (1 - k) * b), 0, 1)
        fg_weighted[sy, sx] = first * k
        bg_weighted[sy, sx] = b * (1 - k)
    del box_image, soft
    fg_narrow, bg_narrow = _fields(fg_weighted, bg_weighted, a, 2, in_place=True)

    # The equation, solved at each band pixel with the narrow fields there, a stripe of rows at a
    # time (a band's points are found per stripe, so a mask soft everywhere holds little at once).
    stripe_rows = max(1, _CHUNK // width)
    for start in range(y, y + h, stripe_rows):
        stop = min(height, start + stripe_rows)
        points = cv2.findNonZero(band[start:stop])
        if points is None:
            continue
        points = points[:, 0, :]
        bx, by = points[:, 0], points[:, 1]
        nx = (bx - left + 0.5).astype(np.float32) * np.float32(1 / shrink) - np.float32(0.5)
        ny = (by + start - top + 0.5).astype(np.float32) * np.float32(1 / shrink) - np.float32(0.5)
        f, b = _sample_points(fg_narrow, nx, ny), _sample_points(bg_narrow, nx, ny)
        i = _unit(rows(start, stop)[by, bx])
        k = _unit(alpha[start:stop][by, bx])[:, None]
        estimate = f + k * (i - k * f - (1 - k) * b)
        write(start, stop, points, np.clip(estimate * 255 + 0.5, 0, 255).astype(np.uint8))


def _reduced_alpha(alpha: np.ndarray, box: tuple, shrink: int) -> np.ndarray:
    left, top, right, bottom = box
    crop = alpha[top:bottom, left:right]
    if shrink > 1:
        crop = cv2.resize(crop, ((right - left) // shrink, (bottom - top) // shrink), interpolation=cv2.INTER_AREA)
    return _unit(crop)[..., None]


# Points are worked on this many at a time: a mask soft everywhere (a hostile photo can make one)
# holds its temporaries to megabytes, not gigabytes.
_CHUNK = 1 << 18


def _chunks(points):
    if points is None:
        return
    for start in range(0, len(points), _CHUNK):
        yield points[start:start + _CHUNK]


def _copy_into(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    if out is not image:
        np.copyto(out, image)
    return out


def _unit(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) * np.float32(1 / 255)


def _fields(fg_weighted: np.ndarray, bg_weighted: np.ndarray, alpha: np.ndarray, radius: int, *,
            in_place: bool = False):
    """The local mean foreground and background colours: each colour's box blur over its own
    weights (α for the foreground, 1 − α for the background); in place, the weighted colours'
    arrays become the fields (no more full-size float arrays than the two)."""
    kernel = (2 * radius + 1, 2 * radius + 1)
    blurred_alpha = cv2.blur(alpha, kernel)
    if blurred_alpha.ndim == 2:
        blurred_alpha = blurred_alpha[..., None]
    fg = cv2.blur(fg_weighted, kernel, dst=fg_weighted if in_place else None)
    bg = cv2.blur(bg_weighted, kernel, dst=bg_weighted if in_place else None)
    np.divide(fg, blurred_alpha + 1e-5, out=fg)
    blurred_alpha -= 1 + 1e-5  # −(1 − blurred α + 1e-5), negated below.
    np.divide(bg, blurred_alpha, out=bg)
    np.negative(bg, out=bg)
    return fg, bg


def _sample_points(field: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The field at each of the points (N × channels), bilinear, edges repeated: remap's maps are
    at most 32767 on a side, so the points go in rows of 4096."""
    count = len(xs)
    rows = -(-count // 4096)
    grid_x = np.zeros(rows * 4096, np.float32)
    grid_y = np.zeros(rows * 4096, np.float32)
    grid_x[:count], grid_y[:count] = xs, ys
    values = cv2.remap(field, grid_x.reshape(rows, 4096), grid_y.reshape(rows, 4096),
                       interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return values.reshape(rows * 4096, -1)[:count]
