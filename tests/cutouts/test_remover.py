"""The stored cutout's colours: the photo's own with the mask as alpha (no dark fringes), and
with clean-edges (the default) or clean-edges-ml the foreground's estimated colours. On the real
model and a committed photo."""

import numpy as np
import pytest
from PIL import Image

from cutouts.remover import cutout
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(FIXTURES / "astronaut.jpg") as image:
        return image.convert("RGB")


def soft(result: Image.Image) -> np.ndarray:
    alpha = np.asarray(result.getchannel("A"))
    return (alpha > 0) & (alpha < 255)


def on_white(result: Image.Image) -> np.ndarray:
    white = Image.new("RGBA", result.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, result).convert("RGB"), dtype=np.float64)


def test_soft_edges_keep_the_photos_colour(photo):
    result, note = cutout(photo, model="u2netp")
    assert note == "" and result.mode == "RGBA" and result.size == photo.size
    edges = soft(result)
    assert edges.sum() > 1000  # Not vacuous: u2netp's mask is soft along the subject.
    stored = np.asarray(result.convert("RGB"))[edges]
    assert np.array_equal(stored, np.asarray(photo)[edges])


def test_no_dark_rim_on_white(photo):
    result, _ = cutout(photo, model="u2netp")
    edges = soft(result)
    alpha = np.asarray(result.getchannel("A"), dtype=np.float64)[edges][:, None] / 255
    expected = np.asarray(photo, dtype=np.float64)[edges] * alpha + 255 * (1 - alpha)
    drawn = on_white(result)[edges]
    assert np.abs(drawn - expected).mean() < 1.0
    # rembg's own cutout (colour × alpha, then alpha again) is the dark rim this replaces: in the
    # half-transparent pixels it would draw a visibly darker edge.
    half = ((alpha > 0.25) & (alpha < 0.75))[:, 0]
    premultiplied = np.asarray(photo, dtype=np.float64)[edges] * alpha * alpha + 255 * (1 - alpha)
    assert half.sum() > 100
    assert (expected[half] - premultiplied[half]).mean() > 10


def test_clean_edges_ml_stores_the_whole_image_estimate(photo):
    from pymatting import estimate_foreground_ml

    plain, _ = cutout(photo, model="u2netp")
    cleaned, note = cutout(photo, model="u2netp", refinement="clean-edges-ml")
    assert note == ""
    assert np.array_equal(np.asarray(cleaned.getchannel("A")), np.asarray(plain.getchannel("A")))
    edges = soft(cleaned)
    alpha = np.asarray(cleaned.getchannel("A"), dtype=np.float64) / 255
    estimate = estimate_foreground_ml(np.asarray(photo, dtype=np.float64) / 255, alpha)
    expected = np.clip(estimate * 255 + 0.5, 0, 255).astype(np.uint8)[edges]
    assert np.abs(np.asarray(cleaned.convert("RGB"), dtype=np.int16)[edges] - expected).max() <= 1
    # It changes the edges' colours (the old background's taken out), not the inside.
    assert (np.asarray(cleaned.convert("RGB"))[edges] != np.asarray(plain.convert("RGB"))[edges]).any()


def test_clean_edges_ml_over_its_budget_keeps_the_plain_cutout(photo, settings):
    settings.BG_REMOVE_MATTING_SECONDS = 0.01
    result, note = cutout(photo, model="u2netp", refinement="clean-edges-ml")
    assert "Edge cleaning took longer than its budget" in note
    plain, _ = cutout(photo, model="u2netp")
    assert np.array_equal(np.asarray(result), np.asarray(plain))


def test_clean_edges_the_default_cleans_the_mask_and_recolours_only_the_edge(photo):
    from cutouts.edges import FAINT, foreground_estimate, mask_clean

    plain, _ = cutout(photo, model="u2netp")
    cleaned, note = cutout(photo, model="u2netp", refinement="clean-edges")
    assert note == ""
    raw = np.asarray(plain.getchannel("A"))
    alpha = np.asarray(cleaned.getchannel("A"))
    assert np.array_equal(alpha, mask_clean(raw))
    # No faint noise and no near-opaque speckle left; u2netp's mask had both.
    assert ((raw > 0) & (raw < FAINT)).any() and ((raw > 255 - FAINT) & (raw < 255)).any()
    assert not ((alpha > 0) & (alpha < FAINT)).any() and not ((alpha > 255 - FAINT) & (alpha < 255)).any()
    # So trim=alpha has a box to crop to: the raw mask's faint values reach the frame's corners.
    assert Image.fromarray(raw).getbbox() == (0, 0, 512, 512)
    assert Image.fromarray(alpha).getbbox() != (0, 0, 512, 512)
    # The colours: the estimate where the alpha is soft, the photo's where it is whole.
    rgb = np.asarray(cleaned.convert("RGB"))
    whole = alpha == 255
    assert np.array_equal(rgb[whole], np.asarray(photo)[whole])
    edges = soft(cleaned)
    assert np.array_equal(rgb[edges], foreground_estimate(np.asarray(photo), alpha)[edges])
    assert (rgb[edges] != np.asarray(photo)[edges]).any()


def test_sessions_use_the_configured_providers_and_threads():
    from cutouts.remover import providers_missing, session_get

    session = session_get("u2netp").inner_session
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 1
    assert providers_missing(["CPUExecutionProvider", "NoSuchExecutionProvider"]) == ["NoSuchExecutionProvider"]
