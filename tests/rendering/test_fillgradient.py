"""fill=gradient's canvas (linear, radial, colour spaces, the photo's own colours) and transparency=grid."""

import resource
import time
import types

import numpy as np
import pytest
from PIL import Image

from rendering.operations.fillgradient import STAGE, gradient_canvas, gradient_lut, vibrant_colors
from rendering.values import Dim
from tests.conftest import FIXTURES

RED, BLUE = (255, 0, 0), (0, 0, 255)


def params(query=None, **overrides):
    values = dict(STAGE.fields, w=None, h=None, dpr=1.0, fit="fill", fill="gradient", ar=None)
    values.update(STAGE.parse(query or {}, {}))
    values.update(overrides)
    return types.SimpleNamespace(**values)


def near(pixel, color, tolerance=3):
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, color))


def canvas(query, box=(400, 200), **overrides):
    return np.asarray(gradient_canvas(box, params(query, **overrides)))


def test_linear_runs_from_the_first_colour_to_the_second_left_to_right():
    got = canvas({"fill-gradient-linear": "red,blue", "fill-gradient-linear-direction": "right"})
    assert got.shape == (200, 400, 3)
    assert near(got[100, 0], RED) and near(got[100, -1], BLUE) and near(got[100, 200], (127, 0, 128))
    reds = got[100, :, 0].astype(int)
    assert (np.diff(reds) <= 0).all() and (got[0] == got[-1]).all()  # Across only: every row alike.


def test_linear_flows_to_the_bottom_by_default_and_reverses_to_the_left():
    down = canvas({"fill-gradient-linear": "red,blue"})
    assert near(down[0, 200], RED) and near(down[-1, 200], BLUE) and (down[:, 0] == down[:, -1]).all()
    left = canvas({"fill-gradient-linear": "red,blue", "fill-gradient-linear-direction": "left"})
    assert near(left[100, 0], BLUE) and near(left[100, -1], RED)


def test_two_sides_make_a_diagonal():
    got = canvas({"fill-gradient-linear": "red,blue", "fill-gradient-linear-direction": "top,right"})
    assert near(got[-1, 0], RED) and near(got[0, -1], BLUE)
    assert near(got[0, 0], (127, 0, 128), 4) and near(got[-1, -1], (127, 0, 128), 4)


def test_radial_blends_from_the_centre_outwards():
    query = {"fill-gradient-type": "radial", "fill-gradient-radial": "red,blue",
             "fill-gradient-radial-radius": "20,80"}
    got = canvas(query)
    assert near(got[100, 200], RED) and near(got[100, 215], RED)  # Inside radius1.
    assert near(got[100, 250], (127, 0, 128), 6)  # Halfway between 20 and 80.
    assert near(got[0, 0], BLUE) and near(got[100, 290], BLUE)
    reversed_ = canvas(dict(query, **{"fill-gradient-radial-radius": "80,20"}))
    assert near(reversed_[100, 200], BLUE) and near(reversed_[0, 0], RED)


def test_radial_defaults_and_centre():
    got = canvas({"fill-gradient-type": "radial", "fill-gradient-radial": "red,blue"})
    # Default radii: a quarter and a half of the smaller side (50 and 100 px here).
    assert near(got[100, 240], RED) and near(got[100, 310], BLUE) and near(got[100, 275], (127, 0, 128), 6)
    moved = canvas({"fill-gradient-type": "radial", "fill-gradient-radial": "red,blue",
                    "fill-gradient-radial-x": "0.1", "fill-gradient-radial-y": "20"})
    assert near(moved[20, 40], RED) and near(moved[100, 300], BLUE)


def test_pixel_lengths_follow_dpr_with_a_size():
    query = {"fill-gradient-type": "radial", "fill-gradient-radial": "red,blue",
             "fill-gradient-radial-radius": "20,21"}
    assert near(canvas(query, w=object())[100, 230], BLUE)
    assert near(canvas(query, w=object(), dpr=2.0)[100, 230], RED)


@pytest.mark.parametrize("space, middle", [
    ("srgb", (127, 0, 128)),
    ("linear", (187, 0, 188)),  # Light mixes brighter than gamma-encoded values.
    ("oklab", (140, 83, 163)),
    ("hsl", (255, 0, 255)),  # Red (0°) to blue (240°) the short way, through magenta.
])
def test_colour_spaces_mix_differently(space, middle):
    lut = gradient_lut((255, 0, 0, 255), (0, 0, 255, 255), space)
    assert lut[0] == (255, 0, 0, 255) and lut[-1] == (0, 0, 255, 255)
    assert near(lut[128], middle, 4)


def test_lch_keeps_lightness_between_the_ends():
    lut = gradient_lut((0, 0, 0, 255), (255, 255, 255, 255), "lch")
    greys = [rgb[0] for rgb in lut]
    assert greys == sorted(greys) and all(r == g == b for r, g, b, _ in lut)


def test_a_transparent_end_fades_without_its_own_colour():
    got = np.asarray(gradient_canvas((100, 10), params({"fill-gradient-linear": "red,00ffffff",
                                                         "fill-gradient-linear-direction": "right"})))
    assert got.shape == (10, 100, 4)
    assert near(got[5, 0], RED + (255,)) and got[5, -1, 3] <= 3 and near(got[5, 50, :3], RED)


def test_without_colours_the_photos_vibrant_dark_and_light_are_used():
    photo = Image.open(FIXTURES / "astronaut.jpg")
    dark, light = vibrant_colors(photo)
    assert sum(dark[:3]) < sum(light[:3])
    assert max(dark[:3]) - min(dark[:3]) > 40 and max(light[:3]) - min(light[:3]) > 40  # Not greys.
    got = np.asarray(gradient_canvas((50, 200), params(), photo))
    assert near(got[0, 25], dark) and near(got[-1, 25], light)
    grey = Image.new("RGB", (10, 10), (90, 90, 90))
    assert vibrant_colors(grey) == ((90, 90, 90, 255), (90, 90, 90, 255))


def test_parse_reads_imgix_values():
    assert STAGE.parse({"fill-gradient-linear-direction": "right,top"}, {}) == {
        "fill_gradient_linear_direction": ("top", "right")}
    assert STAGE.parse({"fill-gradient-linear-direction": "top,bottom"}, {}) == {}  # Cancels: the default.
    assert STAGE.parse({"fill-gradient-radial-radius": "0.1,300"}, {}) == {
        "fill_gradient_radial_radius": (Dim(0.1, ratio=True), Dim(300))}
    assert STAGE.parse({"fill-gradient-radial-x": "99999"}, {}) == {"fill_gradient_radial_x": Dim(8192)}
    assert STAGE.parse({"fill-gradient-linear": "red"}, {}) == {}
    assert STAGE.parse({"fill-gradient-cs": "OKLAB", "fill-gradient-type": "conic"}, {}) == {
        "fill_gradient_cs": "oklab"}
    assert STAGE.parse({"grid-colors": "00bffe"}, {}) == {
        "grid_colors": ((0, 191, 254, 255), (255, 255, 255, 255))}
    assert STAGE.parse({"grid-size": "0", "transparency": "GRID"}, {}) == {"grid_size": 1, "transparency": "grid"}


def test_effective_keeps_only_what_acts():
    linear = {"fill-gradient-linear": "red,blue", "fill-gradient-radial": "red,green"}
    assert STAGE.effective(params(linear, fill="solid"), "png") == STAGE.fields
    assert STAGE.effective(params(linear, fit="crop"), "png") == STAGE.fields
    assert STAGE.effective(params(linear), "png") == STAGE.effective(
        params({"fill-gradient-linear": "red,blue"}), "png")  # Radial colours do not draw a linear fill.
    assert STAGE.effective(params({"grid-size": "9"}), "png") == STAGE.fields
    assert STAGE.effective(params({"grid-size": "9", "transparency": "grid"}), "png")["grid_size"] == 9


@pytest.fixture
def cutout():
    """The photo with a transparent window in its middle (a 40×40 hole at 20,20)."""
    image = Image.open(FIXTURES / "astronaut.jpg").convert("RGBA").resize((100, 80))
    image.paste((0, 0, 0, 0), (20, 20, 60, 60))
    return image


def test_transparency_grid_shows_a_checkerboard_where_the_image_is_transparent(cutout):
    out = STAGE.apply(cutout, params({"transparency": "grid"}), None)
    assert out.mode == "RGB" and out.size == cutout.size
    got = np.asarray(out)
    light, white = (208, 215, 221), (255, 255, 255)
    assert near(got[20, 20], light) and near(got[20, 24], white) and near(got[24, 20], white)
    assert near(got[24, 24], light) and near(got[23, 23], light)  # Cells of 4 px from the top left.
    assert (got[0:20] == np.asarray(cutout)[0:20, :, :3]).all()  # Opaque pixels as they were.


def test_grid_size_and_colours(cutout):
    got = np.asarray(STAGE.apply(cutout, params({"transparency": "grid", "grid-size": "10",
                                                 "grid-colors": "red,blue"}), None))
    assert near(got[20, 20], RED) and near(got[29, 29], RED) and near(got[20, 30], BLUE) and near(got[30, 30], RED)
    query = {"transparency": "grid", "grid-colors": "red,blue"}
    single = np.asarray(STAGE.apply(cutout, params(query, w=object()), None))
    doubled = np.asarray(STAGE.apply(cutout, params(query, w=object(), dpr=2.0), None))
    assert near(single[20, 28], RED) and near(doubled[20, 28], BLUE)  # Cells of 4, then of 8 pixels.


def test_grid_leaves_opaque_images_alone(cutout):
    photo = cutout.convert("RGB")
    assert STAGE.apply(photo, params({"transparency": "grid"}), None) is photo
    opaque = photo.convert("RGBA")
    assert STAGE.apply(opaque, params({"transparency": "grid"}), None) is opaque
    assert STAGE.apply(cutout, params({"grid-size": "8"}), None) is cutout


def test_translucent_pixels_blend_over_the_grid():
    image = Image.new("LA", (8, 8), (0, 128))
    got = np.asarray(STAGE.apply(image, params({"transparency": "grid"}), None))
    assert near(got[0, 0], (104, 107, 110), 2) and near(got[0, 4], (127, 127, 127), 2)


@pytest.mark.parametrize("box", [(1, 1), (3, 2000), (8192, 10), (1500, 900)])
def test_canvas_has_the_size_of_its_box(box):
    for query in ({}, {"fill-gradient-type": "radial"}):
        assert gradient_canvas(box, params(query)).size == box


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_size_is_what_apply_gives(cutout, mode):
    image = cutout.convert(mode)
    p = params({"transparency": "grid"})
    assert STAGE.apply(image, p, None).size == STAGE.size(image.size, p, None) == image.size


def test_worst_cases_stay_within_their_budget():
    """transparency=grid&grid-size=1 on an 8192×6144 RGBA image (about 0.8 CPU-s, +300 MB), and
    fill=gradient&fill-gradient-type=radial&fill-gradient-radial=80ff0000,blue&fill-gradient-cs=lch
    on an 8192×6144 canvas (about 0.25 CPU-s, +250 MB)."""
    image = Image.new("RGBA", (8192, 6144), (10, 20, 30, 100))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    out = STAGE.apply(image, params({"transparency": "grid", "grid-size": "1"}), None)
    assert out.size == image.size
    del image, out
    p = params({"fill-gradient-type": "radial", "fill-gradient-radial": "80ff0000,blue", "fill-gradient-cs": "lch"})
    assert gradient_canvas((8192, 6144), p).size == (8192, 6144)
    assert time.process_time() - start < 3
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 600
