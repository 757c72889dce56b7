"""The cutout's edges (cutouts/edges.py) against a ground truth made here: a subject of known
colour and alpha composited over a known background, so the right answer is known exactly."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from cutouts.edges import FAINT, SOLID, foreground_estimate, mask_clean
from tests.conftest import FIXTURES


def scene(size: int, *, blur: float):
    """(photo, true alpha, true foreground): a warm disc with a soft edge of `blur` px over the
    astronaut photo (a busy background) — a textured foreground, so no constant fits it."""
    alpha = Image.new("L", (size, size), 0)
    ImageDraw.Draw(alpha).ellipse((size * 0.2, size * 0.25, size * 0.8, size * 0.85), fill=255)
    alpha = np.asarray(alpha.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float64) / 255
    y, x = np.mgrid[0:size, 0:size] / size
    foreground = np.stack([200 + 40 * x, 120 + 60 * y, 40 + 30 * np.sin(9 * x)], axis=-1)
    with Image.open(FIXTURES / "astronaut.jpg") as image:
        background = np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float64)
    photo = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    return (np.clip(photo + 0.5, 0, 255).astype(np.uint8), np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8),
            foreground)


def on_white_error(colours: np.ndarray, alpha: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    a = alpha[..., None].astype(np.float64) / 255
    drawn = a * colours + (1 - a) * 255
    return float(np.abs(drawn - (a * truth + (1 - a) * 255))[where].mean())


@pytest.mark.parametrize(("size", "blur"), [(256, 3), (700, 6), (1800, 14)])
def test_the_estimate_halves_the_old_backgrounds_colour_in_the_edge(size, blur):
    photo, alpha, truth = scene(size, blur=blur)
    band = (alpha > 0) & (alpha < 255)
    assert band.sum() > 500
    estimate = foreground_estimate(photo, alpha)
    plain = on_white_error(photo.astype(np.float64), alpha, truth, band)
    cleaned = on_white_error(estimate.astype(np.float64), alpha, truth, band)
    assert cleaned <= 0.5 * plain, (plain, cleaned)
    # Only the band is touched: whole and empty pixels keep the photo's colours.
    assert np.array_equal(estimate[~band], photo[~band])
    assert estimate.dtype == np.uint8 and estimate.shape == photo.shape


def test_nothing_soft_is_nothing_to_do():
    photo = np.zeros((8, 8, 3), np.uint8)
    alpha = np.zeros((8, 8), np.uint8)
    alpha[2:6, 2:6] = 255
    assert np.array_equal(foreground_estimate(photo, alpha), photo)


@pytest.mark.parametrize("size", [300, 2100])  # Found at full size, and on the pooled mask.
def test_mask_clean_keeps_the_subject_and_drops_the_haze(size):
    alpha = np.zeros((size, size), np.uint8)
    s = size // 100
    alpha[:, :] = 3  # Faint noise over everything: zeroed.
    alpha[20 * s:60 * s, 20 * s:60 * s] = 250  # The subject (near-opaque: made whole)...
    alpha[18 * s:20 * s, 20 * s:60 * s] = 90  # ...with a soft edge touching it: kept as it is.
    alpha[70 * s:90 * s, 70 * s:90 * s] = 60  # A haze with nothing solid in it: removed.
    alpha[5 * s:95 * s, 95 * s] = 200  # A thin solid stick, one pixel wide: kept.
    alpha[2 * s:4 * s, 2 * s:4 * s] = SOLID  # A small solid part on its own: kept.
    out = mask_clean(alpha)
    assert out.dtype == np.uint8 and out.shape == alpha.shape
    assert (out[20 * s:60 * s, 20 * s:60 * s] == 255).all()
    assert (out[18 * s:20 * s, 20 * s:60 * s] == 90).all()
    assert (out[70 * s:90 * s, 70 * s:90 * s] == 0).all()
    assert (out[5 * s:95 * s, 95 * s] == 200).all()
    assert (out[2 * s:4 * s, 2 * s:4 * s] == SOLID).all()
    assert not ((out > 0) & (out < FAINT)).any()
    # trim=alpha's box is the subject's, not the frame.
    assert Image.fromarray(out).getbbox() != (0, 0, size, size)
    assert Image.fromarray(alpha).getbbox() == (0, 0, size, size)


def test_mask_clean_of_nothing_is_nothing():
    assert not mask_clean(np.full((50, 70), 5, np.uint8)).any()
    assert not mask_clean(np.zeros((1, 1), np.uint8)).any()
