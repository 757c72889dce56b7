"""border: the frame over the image's edges, its sides, radii and stroke, on a real photograph."""

import resource
import time
import types

import numpy as np
import pytest
from PIL import Image

from rendering.operations.border import STAGE
from rendering.operations.mask import TRANSPARENT_WHITE
from tests.conftest import FIXTURES

RED, BLUE = (255, 0, 0), (0, 0, 255)


def params(query=None, **overrides):
    values = dict(STAGE.fields, w=None, h=None, dpr=1.0)
    values.update(STAGE.parse(query or {}, {}))
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture
def photo():
    """The astronaut at 100×50: no pixel of it is pure red or blue."""
    return Image.open(FIXTURES / "astronaut.jpg").convert("RGB").resize((100, 50))


def pixels(image):
    return np.asarray(image).astype(int)


def is_color(region, color, tolerance=2):
    return bool((np.abs(region[..., :3] - np.array(color)) <= tolerance).all())


def test_border_paints_the_outer_pixels_over_the_image(photo):
    out = STAGE.apply(photo, params({"border": "10,FF0000"}), None)
    assert out.size == photo.size == (100, 50)  # Overlaid: the image keeps its size.
    got, before = pixels(out), pixels(photo)
    for frame in (got[:10], got[-10:], got[:, :10], got[:, -10:]):
        assert is_color(frame, RED)
    assert (got[10:-10, 10:-10] == before[10:-10, 10:-10]).all()
    assert not is_color(before[:10], RED)


def test_a_side_replaces_the_width_of_that_side(photo):
    out = pixels(STAGE.apply(photo, params({"border": "10,red", "border-top": "0", "border-left": "30"}), None))
    before = pixels(photo)
    assert (out[:40, 30:90] == before[:40, 30:90]).all()  # No top border.
    assert is_color(out[:, :30], RED) and not is_color(out[:, 30:31], RED)
    assert is_color(out[-10:], RED) and is_color(out[:, -10:], RED)


def test_border_radius_makes_the_outer_corners_transparent(photo):
    out = STAGE.apply(photo, params({"border": "10,red", "border-radius": "20"}), None)
    alpha = np.asarray(out.getchannel("A"))
    assert out.mode == "RGBA" and out.size == photo.size
    assert alpha[0, 0] == alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0
    assert alpha[0, 50] == 255 and alpha[25, 0] == 255 and alpha[25, 50] == 255
    assert is_color(pixels(out)[0:1, 40:60], RED)


def test_four_radii_go_clockwise_from_the_top_left(photo):
    alpha = np.asarray(STAGE.apply(photo, params({"border": "5,red", "border-radius": "20,0,0,0"}), None)
                       .getchannel("A"))
    assert alpha[0, 0] == 0 and alpha[0, -1] == alpha[-1, -1] == alpha[-1, 0] == 255


def test_border_radius_inner_rounds_the_inner_edge(photo):
    square = pixels(STAGE.apply(photo, params({"border": "10,red"}), None))
    rounded = pixels(STAGE.apply(photo, params({"border": "10,red", "border-radius-inner": "15"}), None))
    # Just inside the inner corner: the image when square, the border's colour when rounded.
    assert not is_color(square[10:12, 10:12], RED) and is_color(rounded[10:12, 10:12], RED)
    assert (rounded[15:35, 30:70] == square[15:35, 30:70]).all()


def test_the_stroke_outlines_the_outer_edge_over_the_border(photo):
    query = {"border": "10,red", "border-stroke-size": "3", "border-stroke-color": "00f"}
    out = pixels(STAGE.apply(photo, params(query), None))
    assert is_color(out[:3], BLUE) and is_color(out[:, -3:], BLUE)
    assert is_color(out[3:10, 3:-3], RED) and is_color(out[20:30, 3:10], RED)
    alone = pixels(STAGE.apply(photo, params({"border-stroke-size": "3", "border-stroke-color": "blue"}), None))
    assert is_color(alone[:3], BLUE) and (alone[3:-3, 3:-3] == pixels(photo)[3:-3, 3:-3]).all()


def test_a_translucent_colour_blends_over_the_image(photo):
    out = pixels(STAGE.apply(photo, params({"border": "10,80FF0000"}), None))
    before = pixels(photo)
    expected = before[:10] * (1 - 0x80 / 255) + np.array(RED) * (0x80 / 255)
    assert np.abs(out[:10] - expected).max() <= 2


def test_alpha_is_kept_and_the_border_covers_transparent_pixels():
    image = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    image.paste((0, 200, 0, 255), (20, 10, 40, 30))
    out = np.asarray(STAGE.apply(image, params({"border": "5,red"}), None))
    assert (out[:5, :, 3] == 255).all() and is_color(out[:5], RED)
    assert (out[5:-5, 5:-5] == np.asarray(image)[5:-5, 5:-5]).all()


def test_dpr_multiplies_the_widths_with_a_size(photo):
    out = pixels(STAGE.apply(photo, params({"border": "5,red"}, w=object(), dpr=2.0), None))
    assert is_color(out[:10], RED) and not is_color(out[10:11, 20:80], RED)
    same = pixels(STAGE.apply(photo, params({"border": "5,red"}, dpr=2.0), None))  # No w or h: dpr is idle.
    assert not is_color(same[5:6, 20:80], RED)


def test_nothing_to_draw_returns_the_same_image(photo):
    for query in ({}, {"border-radius": "20"}, {"border-top": "10"}, {"border": "10,transparent"},
                  {"border-stroke-size": "4"}, {"border": "xx,red"}):
        assert STAGE.apply(photo, params(query), None) is photo, query


@pytest.mark.parametrize("query", [
    {"border": "10,red"},
    {"border": "500,red", "border-radius": "9000"},
    {"border": "10,red", "border-radius": "20", "border-stroke-size": "100", "border-stroke-color": "blue"},
])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_size_is_what_apply_gives(photo, query, mode):
    image = photo.convert(mode)
    p = params(query)
    assert STAGE.apply(image, p, None).size == STAGE.size(image.size, p, None) == image.size


def test_parse_reads_imgix_values():
    parsed = STAGE.parse({"border": "10,FF0000", "border-radius": "1,2,3,4", "border-top": "-5",
                          "border-stroke-size": "99999", "border-stroke-color": "8000ff00"}, {})
    assert parsed == {"border": (10, (255, 0, 0, 255)), "border_radius": (1, 2, 3, 4), "border_top": 0,
                      "border_stroke_size": 8192, "border_stroke_color": (0, 255, 0, 0x80)}
    assert STAGE.parse({"border": "7"}, {}) == {"border": (7, TRANSPARENT_WHITE)}  # imgix's default colour.
    assert STAGE.parse({"border": "x,red", "border-radius": "1,2", "border-radius-inner": "a"}, {}) == {}
    assert STAGE.parse({"border": "10,notacolour"}, {}) == {}


def test_effective_keys_the_same_frame_once():
    ten = STAGE.effective(params({"border": "10,red"}), "png")
    spelled = STAGE.effective(params({"border": "0,red", "border-top": "10", "border-right": "10",
                                      "border-bottom": "10", "border-left": "10"}), "png")
    assert ten == spelled
    assert ten != STAGE.effective(params({"border": "10,red", "border-top": "0"}), "png")
    # Values that draw nothing are the defaults: no border, no new stored render.
    for query in ({"border": "10,transparent"}, {"border-radius": "20"}, {"border-stroke-size": "4"}):
        assert STAGE.effective(params(query), "png") == STAGE.fields, query
    assert not STAGE.active(params({"border": "10,0fff"}))


def test_worst_case_stays_within_its_budget():
    """border=4000,80FF0000&border-radius=8192&border-radius-inner=3000&border-stroke-size=2000&
    border-stroke-color=800000ff on an 8192×6144 RGBA image (about 1.4 CPU-s and +360 MB measured)."""
    image = Image.new("RGBA", (8192, 6144), (10, 20, 30, 128))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    p = params({"border": "4000,80FF0000", "border-radius": "8192", "border-radius-inner": "3000",
                "border-stroke-size": "2000", "border-stroke-color": "800000ff"})
    out = STAGE.apply(image, p, None)
    assert time.process_time() - start < 3
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 600
    assert out.size == image.size
