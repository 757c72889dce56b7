"""The stored cutout's colours: the photo's own with the mask as alpha (no dark fringes), and
with clean-edges (the default) or clean-edges-ml the foreground's estimated colours; its mask:
bare rembg's, within IoU 0.98. On the real model and the committed photos."""

import numpy as np
import pytest
from PIL import Image, ImageChops

from cutouts.quantization import CALIBRATION_PHOTOS
from cutouts.remover import cutout, session_get
from imaging.decode import image_decode
from tests.conftest import FIXTURES, ROOT


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
    from cutouts.remover import providers_missing

    session = session_get("u2netp").inner_session
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_session_options().enable_mem_pattern is False  # 200 MB more per worker otherwise.
    assert providers_missing(["CPUExecutionProvider", "NoSuchExecutionProvider"]) == ["NoSuchExecutionProvider"]


# The photos the masks are compared on: the committed ones, and one scaled up so that the model's
# input is box-reduced before its LANCZOS step (a photo under 640 pixels a side is not).
PHOTOS = [FIXTURES / "astronaut.jpg", FIXTURES / "chelsea.png",
          *(ROOT / "cutouts" / "calibration" / name for name in CALIBRATION_PHOTOS), "astronaut.jpg@1600"]


def load(photo) -> Image.Image:
    if isinstance(photo, str):
        name, side = photo.split("@")
        return image_decode((FIXTURES / name).read_bytes()).resize((int(side),) * 2, Image.Resampling.LANCZOS)
    return image_decode(photo.read_bytes())


def rembg_mask(image: Image.Image, *, post_process: bool = False) -> np.ndarray:
    """Bare rembg's mask: LANCZOS from the full image to the model's input, and back up."""
    from rembg import remove

    mask = remove(image, session=session_get("u2netp"), only_mask=True, post_process_mask=post_process)
    return np.asarray(mask, dtype=np.int16)


def iou(ours: np.ndarray, theirs: np.ndarray) -> float:
    ours, theirs = ours >= 128, theirs >= 128
    return (ours & theirs).sum() / (ours | theirs).sum()


@pytest.mark.parametrize("refinement", ["none", "post-process"])
@pytest.mark.parametrize("photo", PHOTOS, ids=lambda photo: getattr(photo, "name", photo))
def test_the_mask_is_bare_rembgs_within_iou_0_98(photo, refinement):
    """cutout() gives the model its input reduced from the photo and scales the mask up once,
    bilinear (rembg: LANCZOS from the full photo, and back): the same mask within IoU 0.98
    (measured 0.994-1.0) and a mean |delta alpha| under 1/255 (measured 0.1-0.5)."""
    image = load(photo)
    ours, note = cutout(image, model="u2netp", refinement=refinement)
    assert note == "" and ours.size == image.size
    alpha = np.asarray(ours.getchannel("A"), dtype=np.int16)
    theirs = rembg_mask(image, post_process=refinement == "post-process")
    assert 0.02 < (theirs >= 128).mean() < 0.98  # Not vacuous: a subject and a background.
    assert iou(alpha, theirs) >= 0.98
    assert np.abs(alpha - theirs).mean() < 1.0


def test_transparent_pixels_are_stored_black_and_the_photos_own_alpha_is_kept(photo):
    """Straight alpha: the photo's colours wherever anything shows, zeros where nothing does, and
    a photo with its own alpha keeps it (times the mask); its colours, not its alpha, are what
    the model sees, as in rembg."""
    plain, _ = cutout(photo, model="u2netp")
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size).rotate(90))  # 0 on one side, 255 on the other.
    ours, _ = cutout(rgba, model="u2netp")
    expected = ImageChops.multiply(rgba.getchannel("A"), plain.getchannel("A"))
    assert np.array_equal(np.asarray(ours.getchannel("A")), np.asarray(expected))
    for result in (plain, ours):
        pixels = np.asarray(result)
        shown = pixels[..., 3] > 0
        assert 0.05 < shown.mean() < 0.95
        assert not pixels[~shown].any()
        assert np.array_equal(pixels[shown][:, :3], np.asarray(photo)[shown])


def test_the_model_input_size_is_the_models_own():
    from cutouts.removers import remover_get

    assert remover_get("u2netp").input_size == (320, 320)
