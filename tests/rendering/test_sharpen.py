"""The sharpen stage (sharp, usm, usmrad) on a real photograph: edges gain energy, a negative usm
softens, the radius sets the width of the halo, transparent pixels' colour never bleeds into
visible ones, and the cost does not grow with the radius."""

import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from rendering.operations.adjust import STRIP_ROWS
from rendering.operations.sharpen import STAGE, USM_MAX_AMOUNT, ReducedBlur, sharp_apply
from rendering.params import params_parse
from rendering.stage import StageContext
from tests.rendering.test_adjust import render, worst_case

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def params(**overrides):
    size = {"w": overrides.pop("w", None), "h": None, "dpr": overrides.pop("dpr", 1.0)}
    return types.SimpleNamespace(**{**STAGE.fields, **overrides}, **size)


def sharpen(image, **overrides) -> Image.Image:
    return STAGE.apply(image, params(**overrides), StageContext())


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int32)


def edge_energy(image) -> float:
    """Mean absolute difference between neighbours: what sharpening raises and blurring lowers."""
    a = pixels(image.convert("L"))
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(FIXTURES / "astronaut.jpg").convert("RGB")


def step(size=(200, 40), left=60, right=180) -> Image.Image:
    image = Image.new("RGB", size, (left,) * 3)
    image.paste((right,) * 3, (size[0] // 2, 0, size[0], size[1]))
    return image


# --- Declaration and parsing ------------------------------------------------------------------------

def test_declares_imgix_defaults_and_clamps():
    assert STAGE.fields == {"sharp": 0, "usm": 0, "usmrad": 2.5}
    assert STAGE.parse({"sharp": "150", "usm": "-300", "usmrad": "-4"}, {}) == {"sharp": 100, "usm": -100, "usmrad": 0}
    assert STAGE.parse({"sharp": "12.5", "usm": "x", "usmrad": "9000"}, {}) == {"sharp": 12.5, "usmrad": 500}


def test_usmrad_acts_only_with_usm(photo):
    assert sharpen(photo) is photo
    assert sharpen(photo, usmrad=10) is photo
    assert sharpen(photo, usm=50, usmrad=0) is photo
    assert STAGE.effective(params(usmrad=10), "jpg") == STAGE.effective(params(), "jpg")
    assert STAGE.effective(params(usm=40, usmrad=10), "jpg") != STAGE.effective(params(usm=40), "jpg")


@pytest.mark.parametrize("overrides", [{"sharp": 50}, {"usm": 60}, {"usm": -60, "usmrad": 40}])
def test_size_is_unchanged_and_matches_apply(photo, overrides):
    p = params(**overrides)
    assert STAGE.size(photo.size, p, StageContext()) == STAGE.apply(photo, p, StageContext()).size == photo.size


# --- Sharpening ---------------------------------------------------------------------------------------

def test_sharp_raises_edge_energy_with_its_value(photo):
    energy = edge_energy(photo)
    half, full = edge_energy(sharpen(photo, sharp=50)), edge_energy(sharpen(photo, sharp=100))
    assert energy * 1.2 < half < full
    assert abs(pixels(sharpen(photo, sharp=100)).mean() - pixels(photo).mean()) < 2  # No change of light.


def test_usm_sharpens_and_a_negative_usm_softens(photo):
    energy = edge_energy(photo)
    assert edge_energy(sharpen(photo, usm=50)) > energy * 1.2
    assert edge_energy(sharpen(photo, usm=100)) > edge_energy(sharpen(photo, usm=50))
    assert edge_energy(sharpen(photo, usm=-60)) < energy * 0.8


def test_usm_overshoots_both_sides_of_an_edge():
    out = pixels(sharpen(step(), usm=100))[20, :, 0]
    assert out[97] < 60 and out[102] > 180  # The dark side darker, the light side lighter.
    assert out[10] == 60 and out[190] == 180  # Far from the edge, nothing.


def test_usmrad_sets_the_width_of_the_halo():
    def halo(radius):
        out = pixels(sharpen(step(), usm=100, usmrad=radius))[20, :, 0]
        return int((out[:100] < 59).sum() + (out[100:] > 181).sum())

    assert halo(1) < halo(2.5) < halo(8) < halo(20)


def test_usmrad_is_in_css_pixels(photo):
    """dpr multiplies it as it multiplies w and h, and only with them (as pad does)."""
    assert (pixels(sharpen(photo, usm=80, usmrad=3, dpr=2, w=512)) == pixels(sharpen(photo, usm=80, usmrad=6))).all()
    assert (pixels(sharpen(photo, usm=80, usmrad=3, dpr=2)) == pixels(sharpen(photo, usm=80, usmrad=3))).all()
    assert (pixels(sharpen(photo, usm=80, usmrad=3, dpr=2, w=512)) != pixels(sharpen(photo, usm=80, usmrad=3))).any()


def test_the_reduced_blur_is_a_gaussian_blur(photo):
    """A wide blur is made on a reduced copy: it stays within a few levels of Pillow's own."""
    for radius in (1.5, 3, 8, 20):
        ours = pixels(ReducedBlur(photo, radius).part(0, photo.size))
        exact = pixels(photo.filter(ImageFilter.GaussianBlur(radius)))
        assert np.abs(ours - exact).mean() < 2.5, radius


def test_strips_meet_without_seams():
    tall = Image.open(FIXTURES / "chelsea.png").convert("RGB").resize((300, STRIP_ROWS * 2 + 37))
    assert (pixels(sharpen(tall, sharp=80)) == pixels(sharp_apply(tall, 80))).all()
    whole = sharp_apply(tall, 30, USM_MAX_AMOUNT * 0.7, 1)
    assert (pixels(sharpen(tall, sharp=30, usm=70, usmrad=1)) == pixels(whole)).all()
    # A wide radius: the strips take their parts of one blur of the whole image.
    wide = pixels(sharpen(tall, usm=100, usmrad=30))
    rows = np.abs(np.diff(wide, axis=0)).mean(axis=(1, 2))
    assert rows[STRIP_ROWS - 1] < rows.mean() * 3 and rows[STRIP_ROWS * 2 - 1] < rows.mean() * 3


# --- Alpha --------------------------------------------------------------------------------------------

CUTOUT_CASES = ({"sharp": 100}, {"usm": 100}, {"usm": -100, "usmrad": 6}, {"usm": 100, "usmrad": 12},
                {"sharp": 100, "usm": 100, "usmrad": 0.8}, {"sharp": 60, "usm": 100, "usmrad": 3})


def flat_cutout() -> Image.Image:
    """Grey and opaque on the right, a half-transparent column at its edge, and transparent on
    the left, where the hidden colour is bright green (a background removal's original)."""
    image = Image.new("RGBA", (120, 40), (0, 255, 0, 0))
    image.paste((128, 128, 128, 255), (60, 0, 120, 40))
    image.paste((128, 128, 128, 128), (59, 0, 60, 40))
    return image


@pytest.mark.parametrize("overrides", CUTOUT_CASES)
def test_alpha_is_untouched_and_hidden_colour_does_not_bleed(overrides):
    image = flat_cutout()
    out = pixels(sharpen(image, **overrides))
    assert (out[..., 3] == pixels(image)[..., 3]).all()
    visible = out[:, 59:]
    assert np.abs(visible[..., 1] - visible[..., 0]).max() <= 1  # Grey, not green nor magenta.


@pytest.mark.parametrize("overrides", CUTOUT_CASES)
def test_the_silhouette_is_not_sharpened(overrides):
    """A flat colour stays flat up to the cutout's edge: sharpening premultiplied colour alone
    would sharpen the edge against black, a bright ring (128 → 190 and more) inside it."""
    out = pixels(sharpen(flat_cutout(), **overrides))
    assert np.abs(out[:, 59:, :3] - 128).max() <= 6  # Rounding, at the half-transparent column.


def test_grey_images_sharpen_too(photo):
    grey = photo.convert("L")
    out = sharpen(grey, sharp=80)
    assert out.mode == "L" and edge_energy(out) > edge_energy(grey) * 1.2
    with_alpha = grey.convert("LA")
    with_alpha.putalpha(200)
    out = sharpen(with_alpha, usm=80)
    assert out.mode == "LA" and (pixels(out)[..., 1] == 200).all()


# --- Cost ---------------------------------------------------------------------------------------------

def cpu(image, **overrides) -> float:
    started = time.process_time()
    sharpen(image, **overrides)
    return time.process_time() - started


def test_cost_does_not_grow_with_the_radius(photo):
    image = photo.resize((2000, 1500)).convert("RGBA")
    small = min(cpu(image, usm=100, usmrad=2.5) for _ in range(2))
    wide = min(cpu(image, usm=100, usmrad=500) for _ in range(2))
    assert wide < small * 1.5 + 0.05
    assert ReducedBlur(image, 500).blurred.size == (8, 6)  # Blurred at 1/256.


def test_worst_case_stays_cheap_at_the_default_output_ceiling(photo):
    """12 MP (RENDER_MAX_OUTPUT_PIXELS' default), with alpha, sharp and usm at once: well within
    the 3 CPU-s of a 50 MP worst case (about 2.8 CPU-s measured; bench/hostile.py has it)."""
    image = photo.resize((4000, 3000)).convert("RGBA")
    assert cpu(image, sharp=100, usm=100, usmrad=1.5) < 1.5


# --- Through the render view, and the worst case at 50 MP -------------------------------------------

def test_sharpening_over_http(client, source):
    def energy(query):
        return edge_energy(Image.fromarray(render(client, source, query).astype(np.uint8)))

    assert energy("usm=-100&usmrad=4") < energy("") < energy("sharp=100")
    assert params_parse("usmrad=10").canonical() == params_parse("").canonical()


@pytest.mark.parametrize("query", ["sharp=100&usm=100&usmrad=1", "sharp=100&usm=100&usmrad=1.5",
                                   "sharp=100&usm=100&usmrad=500"])
def test_the_worst_case_at_50_megapixels_is_bounded(query):
    """RGB. With alpha (normalised convolution: a fourth channel filtered, converted in and out)
    it is about a third dearer: see test_the_worst_case_with_alpha."""
    cpu, grown = worst_case("sharpen", query, "RGB")
    assert cpu < 3.0 and grown < 600, (cpu, grown)


@pytest.mark.load
@pytest.mark.parametrize("query", ["sharp=100&usm=100&usmrad=1", "sharp=100&usm=100&usmrad=1.5"])
def test_the_worst_case_with_alpha(query):
    """50 MP RGBA, every pixel partly transparent: about 2.2 CPU-s with usmrad ≤ 1 and 2.8 with
    a wider one on an idle core (more on a loaded one), within 600 MB."""
    cpu, grown = worst_case("sharpen", query, "RGBA")
    assert cpu < 3.0 and grown < 600, (cpu, grown)
