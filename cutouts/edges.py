"""A cutout's edges: the faint alpha far from the subject taken out, and the old background's
colour taken out of the soft edge (foreground estimation in the band where alpha is neither 0
nor 1 only)."""

import cv2
import numpy as np

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
    if step > 1:
        pooled = cv2.dilate(alpha, np.ones((step, step), np.uint8), anchor=(0, 0))[::step, ::step]
    present = cv2.threshold(pooled, FAINT - 1, 1, cv2.THRESH_BINARY)[1]
    count, labels = cv2.connectedComponents(present, connectivity=8)
    solid = np.zeros(count, dtype=np.uint8)  # 1 for regions with a solid pixel; label 0 (none) never.
    solid[np.unique(labels[pooled >= SOLID])] = 1
    solid[0] = 0
    keep = solid[labels]
    if step > 1:
        keep = cv2.resize(keep, (keep.shape[1] * step, keep.shape[0] * step), interpolation=cv2.INTER_NEAREST)
        keep = cv2.copyMakeBorder(keep[:height, :width], 0, max(0, height - keep.shape[0]), 0,
                                  max(0, width - keep.shape[1]), cv2.BORDER_REPLICATE)
    out = cv2.threshold(alpha, FAINT - 1, 255, cv2.THRESH_TOZERO)[1]
    out *= keep
    out[out > 255 - FAINT] = 255
    return out


def foreground_estimate(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject's own colours (uint8 RGB, same size) where `alpha` is soft; the photo's
    elsewhere. Blur-fusion foreground estimation (Forte and Pitié, "Approximate Fast Foreground
    Colour Estimation", ICIP 2021): a wide pass estimates smooth foreground and background colour
    fields, a narrow one refines them near the edge, and at each edge pixel the composite
    equation I = αF + (1−α)B is solved for F. Both passes make smooth fields, so each runs on a
    reduced image (the narrow one on the box around the soft band only), and what needs the
    first pass's estimate is worked out at the band's pixels only: the cost follows the edge,
    not the photo. One departure: the narrow pass takes the background where α = 0 as the photo
    shows it, not as the wide pass blurred it."""
    band = cv2.inRange(alpha, 1, 254)  # 255 where soft (after mask_clean, a thin band).
    points = cv2.findNonZero(band)
    if points is None:
        return image
    height, width = alpha.shape
    # Radii in proportion to the photo (the method's 90 and 6 px are for 1–2 megapixel mattes).
    scale = max(height, width) / 2048
    wide, narrow = max(8, round(90 * scale)), max(4, round(6 * scale))

    # The wide pass, at a size where its radius is about 16 px (an integer reduction, which
    # OpenCV averages fast).
    shrink = max(1, min(wide // 16, height, width))
    covered = (width // shrink * shrink, height // shrink * shrink)
    small_image, small_alpha = _reduced(image, alpha, (0, 0, *covered), shrink)
    fg_wide, bg_wide = _fields(small_image * small_alpha, small_image * (1 - small_alpha), small_alpha,
                               max(2, round(wide / shrink)))
    to_wide = (fg_wide.shape[1] / covered[0], fg_wide.shape[0] / covered[1])

    # The narrow pass, at half size or less (its radius about 2 px there), on the box around the band.
    shrink = max(2, narrow // 2)
    x, y, w, h = cv2.boundingRect(points)
    margin = narrow + shrink
    left, top = max(0, x - margin), max(0, y - margin)
    right = min(width, left + max(shrink, (min(width, x + w + margin) - left) // shrink * shrink))
    bottom = min(height, top + max(shrink, (min(height, y + h + margin) - top) // shrink * shrink))
    box_image, a = _reduced(image, alpha, (left, top, right, bottom), shrink)
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
    fg_narrow, bg_narrow = _fields(fg_weighted, bg_weighted, a, 2)

    # The equation, solved at each band pixel with the narrow fields there.
    out = image.copy()
    for chunk in _chunks(points):
        bx, by = chunk[:, 0, 0], chunk[:, 0, 1]
        nx = (bx - left + 0.5).astype(np.float32) * np.float32(1 / shrink) - np.float32(0.5)
        ny = (by - top + 0.5).astype(np.float32) * np.float32(1 / shrink) - np.float32(0.5)
        f, b = _sample_points(fg_narrow, nx, ny), _sample_points(bg_narrow, nx, ny)
        i = _unit(image[by, bx])
        k = _unit(alpha[by, bx])[:, None]
        estimate = f + k * (i - k * f - (1 - k) * b)
        out[by, bx] = np.clip(estimate * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


# Points are worked on this many at a time: a mask soft everywhere (a hostile photo can make one)
# holds its temporaries to tens of megabytes, not gigabytes.
_CHUNK = 1 << 20


def _chunks(points):
    if points is None:
        return
    for start in range(0, len(points), _CHUNK):
        yield points[start:start + _CHUNK]


def _unit(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) * np.float32(1 / 255)


def _reduced(image: np.ndarray, alpha: np.ndarray, box: tuple, shrink: int):
    """The box of the photo and of the alpha (H × W × 1), each side divided by `shrink` (box
    averages), in [0, 1]."""
    left, top, right, bottom = box
    size = (max(1, (right - left) // shrink), max(1, (bottom - top) // shrink))
    crop_image, crop_alpha = image[top:bottom, left:right], alpha[top:bottom, left:right]
    if shrink > 1:
        crop_image = cv2.resize(crop_image, size, interpolation=cv2.INTER_AREA)
        crop_alpha = cv2.resize(crop_alpha, size, interpolation=cv2.INTER_AREA)
    return _unit(crop_image), _unit(crop_alpha)[..., None]


def _fields(fg_weighted: np.ndarray, bg_weighted: np.ndarray, alpha: np.ndarray, radius: int):
    """The local mean foreground and background colours: each colour's box blur over its own
    weights (α for the foreground, 1 − α for the background)."""
    kernel = (2 * radius + 1, 2 * radius + 1)
    blurred_alpha = cv2.blur(alpha, kernel)
    if blurred_alpha.ndim == 2:
        blurred_alpha = blurred_alpha[..., None]
    fg = cv2.blur(fg_weighted, kernel) / (blurred_alpha + 1e-5)
    bg = cv2.blur(bg_weighted, kernel) / (1 - blurred_alpha + 1e-5)
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
