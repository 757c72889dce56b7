"""The adjust stage (bri, con, exp, gam, high, shad, hue, sat, vib, invert) on a real photograph:
each parameter moves the pixels the way imgix describes it, alpha never moves, and the worst
case stays within its bound."""

import io
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rendering.operations.adjust import STAGE, STRIP_ROWS
from rendering.params import params_parse
from rendering.stage import StageContext

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EXISTING_FIELDS = {"bg_remove", "w", "h", "dpr", "fit", "crop", "fp_x", "fp_y", "fp_z", "max_w", "max_h",
                   "min_w", "min_h", "ar", "rect", "fill", "fill_color", "bg", "trim", "pad", "fm", "q",
                   "lossless", "auto", "mark", "expires"}


def params(**overrides):
    return types.SimpleNamespace(**{**STAGE.fields, **overrides}, w=None, h=None, dpr=1.0)


def parsed(query: dict) -> types.SimpleNamespace:
    return params(**STAGE.parse(query, {}))


def adjust(image, **overrides) -> Image.Image:
    return STAGE.apply(image, params(**overrides), StageContext())


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int32)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(FIXTURES / "astronaut.jpg").convert("RGB")


@pytest.fixture(scope="module")
def cutout(photo) -> Image.Image:
    """The photo with a real alpha: a ramp, fully transparent on the left, opaque on the right."""
    image = photo.convert("RGBA")
    ramp = np.tile(np.linspace(0, 255, image.width).astype(np.uint8), (image.height, 1))
    image.putalpha(Image.fromarray(ramp))
    return image


def gradient(mode="RGB") -> Image.Image:
    """Every grey level 0–255, left to right."""
    row = np.arange(256, dtype=np.uint8)
    return Image.fromarray(np.tile(row, (16, 1))).convert(mode)


def chroma(array: np.ndarray) -> np.ndarray:
    return array[..., :3].max(axis=-1) - array[..., :3].min(axis=-1)


# --- Declaration and parsing ------------------------------------------------------------------------

def test_declares_each_adjustment_with_imgix_defaults():
    assert STAGE.fields == {"bri": 0, "con": 0, "exp": 0, "gam": 0, "high": 0, "shad": 0, "hue": 0,
                            "sat": 0, "vib": 0, "invert": False}
    assert not set(STAGE.fields) & EXISTING_FIELDS
    assert {p.name: p.aliases for p in STAGE.params}["invert"] == ("inv",)


def test_values_are_clamped_to_their_range_and_unreadable_ones_ignored():
    assert STAGE.parse({"bri": "300", "con": "-250", "exp": "12.6", "gam": "abc", "high": "40",
                        "shad": "150.5", "sat": "-101", "vib": "", "invert": "true"}, {}) == {
        "bri": 100, "con": -100, "exp": 13, "high": 0, "shad": 100, "sat": -100, "invert": True}
    assert STAGE.parse({"high": "-250", "shad": "12.5", "invert": "0"}, {}) == {
        "high": -100, "shad": 12.5, "invert": False}


def test_hue_is_an_angle():
    assert STAGE.parse({"hue": "360"}, {}) == {"hue": 0}
    assert STAGE.parse({"hue": "-90"}, {}) == {"hue": 270}
    assert STAGE.parse({"hue": "450"}, {}) == {"hue": 90}
    assert not STAGE.active(parsed({"hue": "720"}))


def test_nothing_to_do_returns_the_same_image(photo):
    assert adjust(photo) is photo
    assert not STAGE.active(params())
    grey = photo.convert("L")
    assert adjust(grey, hue=90, sat=-50, vib=40) is grey  # Colour steps on a grey image.


@pytest.mark.parametrize("overrides", [{"bri": 40}, {"hue": 200, "sat": 30}, {"invert": True}, {"shad": 80}])
def test_size_is_unchanged_and_matches_apply(photo, overrides):
    p = params(**overrides)
    assert STAGE.size(photo.size, p, StageContext()) == STAGE.apply(photo, p, StageContext()).size == photo.size


# --- Brightness, contrast, exposure, gamma ------------------------------------------------------------

def test_brightness_raises_and_lowers_the_mean(photo):
    mean = pixels(photo).mean()
    assert pixels(adjust(photo, bri=50)).mean() > mean + 60
    assert pixels(adjust(photo, bri=-30)).mean() < mean - 40
    assert pixels(adjust(photo, bri=-100)).max() == 0
    assert pixels(adjust(photo, bri=100)).min() == 255


def test_contrast_spreads_or_flattens_the_values(photo):
    spread = pixels(photo).std()
    assert pixels(adjust(photo, con=50)).std() > spread * 1.2  # The photo's blacks already clip.
    assert pixels(adjust(photo, con=-50)).std() < spread * 0.6
    flat = pixels(adjust(photo, con=-100))
    assert flat.min() == flat.max() == 128


def test_exposure_scales_light_and_keeps_black_black():
    ramp = gradient()
    brighter, darker = pixels(adjust(ramp, exp=50))[0, :, 0], pixels(adjust(ramp, exp=-50))[0, :, 0]
    original = np.arange(256)
    assert brighter[0] == darker[0] == 0
    assert (brighter[1:250] > original[1:250]).all() and (darker[5:] < original[5:]).all()
    assert (np.diff(brighter) >= 0).all() and (np.diff(darker) >= 0).all()  # Still in order.


def test_gamma_moves_the_mid_tones_and_keeps_black_and_white():
    """Positive gam darkens the mid-tones, negative lightens them (imgix's gam=1…100 is a gamma
    correction below 1); 0 and 255 stay where they are."""
    ramp = gradient()
    darker, lighter = pixels(adjust(ramp, gam=50))[0, :, 0], pixels(adjust(ramp, gam=-50))[0, :, 0]
    assert darker[0] == lighter[0] == 0 and darker[255] == lighter[255] == 255
    assert darker[128] < 100 and lighter[128] > 160
    assert (np.diff(darker) >= 0).all() and (np.diff(lighter) >= 0).all()


def test_invert_is_the_negative(photo):
    assert (pixels(adjust(photo, invert=True)) == 255 - pixels(photo)).all()
    assert (pixels(adjust(adjust(photo, invert=True), invert=True)) == pixels(photo)).all()


def test_invert_comes_last_after_the_other_steps(photo):
    both = pixels(adjust(photo, sat=-100, invert=True))
    assert (both == 255 - pixels(adjust(photo, sat=-100))).all()


# --- Highlights and shadows ---------------------------------------------------------------------------

def test_shadows_lift_dark_pixels_and_leave_bright_ones(photo):
    original = pixels(photo)
    lum = pixels(photo.convert("L"))
    out = pixels(adjust(photo, shad=100))
    dark, bright = (lum > 15) & (lum < 60), lum > 220
    assert (out - original)[dark].mean() > 25
    assert np.abs(out - original)[bright].mean() < 3
    assert (out >= original - 1).all()  # Only ever lifts.


def test_highlights_lower_bright_pixels_and_leave_dark_ones(photo):
    original = pixels(photo)
    lum = pixels(photo.convert("L"))
    out = pixels(adjust(photo, high=-100))
    dark, bright = lum < 40, (lum > 170) & (lum < 245)
    assert (original - out)[bright].mean() > 20
    assert np.abs(out - original)[dark].mean() < 2
    assert (out <= original + 1).all()  # Only ever lowers.


def test_shadows_and_highlights_keep_pure_black_and_white():
    ramp = gradient()
    out = pixels(adjust(ramp, shad=100, high=-100))[0, :, 0]
    assert out[0] == 0 and out[255] == 255


# --- Hue, saturation, vibrance ------------------------------------------------------------------------

def patch(color, size=(8, 8)):
    return Image.new("RGB", size, color)


def test_hue_180_turns_red_to_cyan_and_120_to_green():
    red = patch((220, 30, 30))
    cyan = pixels(adjust(red, hue=180))[0, 0]
    assert cyan[0] < 40 and cyan[1] > 80 and cyan[2] > 80 and abs(cyan[1] - cyan[2]) < 10
    green = pixels(adjust(red, hue=120))[0, 0]
    assert green[1] > 2 * max(green[0], green[2])
    blue = pixels(adjust(red, hue=240))[0, 0]
    assert blue[2] > 2 * max(blue[0], blue[1])


def test_hue_keeps_greys_and_a_full_turn_changes_nothing(photo):
    grey = patch((120, 120, 120))
    assert (pixels(adjust(grey, hue=137)) == 120).all()
    turned = pixels(adjust(adjust(photo, hue=180), hue=180))
    assert np.abs(turned - pixels(photo)).mean() < 6  # Clipping of out-of-gamut colours aside.


def test_saturation_minus_100_is_grey_and_plus_100_is_more_colourful(photo):
    grey = pixels(adjust(photo, sat=-100))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert abs(grey.mean() - pixels(photo).mean()) < 8  # The light stays.
    assert chroma(pixels(adjust(photo, sat=100))).mean() > chroma(pixels(photo)).mean() * 1.5
    assert chroma(pixels(adjust(photo, sat=-50))).mean() < chroma(pixels(photo)).mean() * 0.6


def test_vibrance_moves_muted_colours_more_than_vivid_ones():
    image = Image.new("RGB", (16, 8), (150, 125, 115))  # Muted.
    image.paste((225, 25, 35), (8, 0, 16, 8))  # Vivid.
    before = chroma(pixels(image))
    after = chroma(pixels(adjust(image, vib=100)))
    muted, vivid = after[0, 0] / before[0, 0], after[0, 15] / before[0, 15]
    assert muted > 1.5 and vivid < 1.2
    saturated = chroma(pixels(adjust(image, sat=100)))
    assert saturated[0, 15] > after[0, 15]  # sat boosts the vivid colour too, vib spares it.
    less = chroma(pixels(adjust(image, vib=-100)))
    assert less[0, 0] < before[0, 0] * 0.5 and less[0, 15] > before[0, 15] * 0.7


# --- Modes and alpha ----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {"bri": 30}, {"con": 60}, {"exp": -40}, {"gam": 70}, {"high": -80}, {"shad": 60},
    {"hue": 90}, {"sat": -100}, {"vib": 80}, {"invert": True},
    {"bri": 10, "con": 10, "exp": 10, "gam": 10, "high": -50, "shad": 50, "hue": 30, "sat": 20, "vib": 40,
     "invert": True},
])
def test_alpha_is_untouched_and_colour_matches_the_opaque_result(cutout, photo, overrides):
    out = adjust(cutout, **overrides)
    assert out.mode == "RGBA"
    assert (pixels(out.getchannel("A")) == pixels(cutout.getchannel("A"))).all()
    assert (pixels(out)[..., :3] == pixels(adjust(photo, **overrides))).all()


def test_grey_images_take_the_tone_steps(photo):
    grey = photo.convert("L")
    out = adjust(grey, bri=30, invert=True)
    assert out.mode == "L"
    assert np.abs(pixels(out) - (255 - np.minimum(255, pixels(grey) + 255 * 0.3))).max() <= 1
    with_alpha = grey.convert("LA")
    with_alpha.putalpha(80)
    out = adjust(with_alpha, shad=50, hue=90)
    assert out.mode == "LA" and (pixels(out)[..., 1] == 80).all()
    assert pixels(out)[..., 0].mean() > pixels(grey).mean()


def test_strips_meet_without_seams():
    """An image taller than a strip gives what each strip alone would give."""
    tall = Image.open(FIXTURES / "chelsea.png").convert("RGB").resize((300, STRIP_ROWS * 2 + 37))
    out = pixels(adjust(tall, shad=70, vib=50, hue=20))
    for top in (0, STRIP_ROWS, STRIP_ROWS * 2):
        piece = tall.crop((0, top, 300, min(tall.height, top + STRIP_ROWS)))
        assert (out[top:top + piece.height] == pixels(adjust(piece, shad=70, vib=50, hue=20))).all()


# --- Cost ---------------------------------------------------------------------------------------------

WORST = {"bri": 10, "con": 10, "exp": 10, "gam": 10, "high": -50, "shad": 50, "hue": 90, "sat": 20,
         "vib": 50, "invert": True}


def test_every_step_at_once_stays_cheap_at_the_default_output_ceiling(photo):
    """12 MP (RENDER_MAX_OUTPUT_PIXELS' default) with every step, with alpha: well within the 3
    CPU-s of a 50 MP worst case (about 2 CPU-s measured; bench/hostile.py has it)."""
    import time

    image = photo.resize((4000, 3000)).convert("RGBA")
    started = time.process_time()
    out = adjust(image, **WORST)
    assert time.process_time() - started < 1.5
    assert out.size == image.size


# --- Through the render view ----------------------------------------------------------------------

def render(client, source, query):
    response = client.get(f"/render/{source.slug}/astronaut.jpg?w=96&fm=png&{query}")
    assert response.status_code == 200, response.content[:300]
    return pixels(Image.open(io.BytesIO(response.getvalue())).convert("RGB"))


def test_adjustments_over_http(client, source):
    plain = render(client, source, "")
    grey = render(client, source, "sat=-100")
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert render(client, source, "bri=-100").max() == 0
    assert (render(client, source, "inv=true") == 255 - plain).all()  # imgix's alias.
    assert render(client, source, "gam=50").mean() < plain.mean() < render(client, source, "gam=-50").mean()


def test_cache_key_reads_the_angle():
    assert params_parse("hue=360").canonical() == params_parse("").canonical()
    assert params_parse("hue=-90").canonical() == params_parse("hue=270").canonical()
    assert params_parse("bri=150").canonical() == params_parse("bri=100").canonical()


# --- The worst case at 50 MP (bench/hostile.py has it) ------------------------------------------------

WORST_QUERY = "bri=10&con=10&exp=10&gam=10&high=-50&shad=50&hue=90&sat=20&vib=50&invert=true"


def worst_case(stage: str, query: str, mode: str) -> tuple[float, float]:
    """CPU-s and MB grown, measured by a fresh process on a 50 MP image of `mode` (RGBA: an
    alpha of noise, every pixel partly transparent)."""
    code = f"""
import os, resource, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings"); django.setup()
from PIL import Image
from rendering.operations.{stage} import STAGE
from rendering.params import params_parse
from rendering.stage import StageContext
image = Image.effect_noise((8192, 6144), 64).convert("RGB")
if "{mode}" == "RGBA":
    image.putalpha(Image.effect_noise((8192, 6144), 64))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.process_time()
STAGE.apply(image, params_parse("{query}"), StageContext())
print(time.process_time() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_the_worst_case_at_50_megapixels_is_bounded(mode):
    cpu, grown = worst_case("adjust", WORST_QUERY, mode)
    assert cpu < 3.0 and grown < 600, (cpu, grown)
