"""remove.bg's options: fixed vectors through the parsers, and the geometry they make."""

import pytest

from removebg_api.errors import RemoveBgError
from removebg_api.options import Length, Options, options_parse
from removebg_api.results import _params
from rendering.operations.pad import pad_size
from rendering.operations.resize import output_size, rect_size


@pytest.mark.parametrize("fields, expected", [
    ({}, Options()),
    ({"size": "regular"}, Options(size="preview")),
    ({"size": "4k"}, Options(size="full")),
    ({"size": "AUTO"}, Options(size="50mp", auto=True)),  # The highest there is (or the account can pay).
    ({"size": "50MP"}, Options(size="50mp")),
    ({"type": "Animal"}, Options(type="animal")),
    ({"type": "graphic"}, Options(type="graphic")),
    ({"type": "graphics"}, Options(type="graphic")),
    ({"type": "transportation", "format": "WEBP"}, Options(type="transportation", format="webp")),
    ({"size": "hd", "format": "jpeg"}, Options(size="hd", format="jpg")),
    ({"crop": True, "add_shadow": "1", "semitransparency": False},
     Options(crop=True, add_shadow=True, semitransparency=False)),
    ({"type_level": 2}, Options(type_level="2")),
    ({"scale": "original", "position": "original"}, Options()),
    ({"scale": "50%"}, Options(scale=0.5)),
    ({"position": "center"}, Options(position=(0.5, 0.5))),
    ({"position": "10% 90%"}, Options(position=(0.1, 0.9))),
    ({"position": "25%"}, Options(position=(0.25, 0.25))),
    ({"bg_color": "81d4fa"}, Options(bg_color=(0x81, 0xD4, 0xFA, 255))),
    ({"bg_color": "81d4fa77"}, Options(bg_color=(0x81, 0xD4, 0xFA, 0x77))),  # Alpha last, as remove.bg's.
    ({"bg_color": "fff"}, Options(bg_color=(255, 255, 255, 255))),
    ({"bg_color": "green"}, Options(bg_color=(0, 128, 0, 255))),
    ({"crop_margin": "30px"}, Options(crop_margin=(Length(30),) * 4)),
    ({"crop_margin": "10% 20px"}, Options(crop_margin=(Length(10, True), Length(20), Length(10, True), Length(20)))),
    ({"roi": "0% 0% 100% 100%"}, Options(roi=(Length(0, True), Length(0, True), Length(100, True), Length(100, True)))),
])
def test_options(fields, expected):
    assert options_parse(fields) == expected


@pytest.mark.parametrize("fields, code", [
    ({"size": "huge"}, "invalid_size"),
    ({"type": "tree"}, "invalid_type"),
    ({"type_level": "3"}, "invalid_type_level"),
    ({"format": "tiff"}, "invalid_format"),
    ({"channels": "rgb"}, "invalid_channels"),
    ({"scale": "101%"}, "invalid_scale"),
    ({"scale": "50"}, "invalid_scale"),
    ({"position": "10% 20% 30%"}, "invalid_position"),
    ({"crop_margin": "1px 2px 3px"}, "invalid_crop_margin"),
    ({"crop_margin": "51%"}, "invalid_crop_margin"),
    ({"roi": "0 0 101% 10"}, "roi_exceeds_bounds"),
    ({"roi": "a b c d"}, "invalid_roi"),
    ({"bg_color": "#12345"}, "invalid_bg_color"),
    ({"add_shadow": "perhaps"}, "invalid_add_shadow"),
    ({"size": ["preview"]}, "invalid_parameters"),
])
def test_bad_options(fields, code):
    with pytest.raises(RemoveBgError) as caught:
        options_parse(fields)
    assert caught.value.code == code and caught.value.status_code == 400


def _out(size, box, options, ceiling):
    params = _params(size, box, options, ceiling)
    return pad_size(output_size(rect_size(size, params.rect), params), params)


@pytest.mark.parametrize("size", [(1200, 799), (512, 512), (4000, 3000), (333, 7777), (640, 400)])
def test_a_size_is_a_pixel_ceiling_never_passed(size):
    box = (10, 10, size[0] - 10, size[1] - 10)
    for name, ceiling in (("preview", 250_000), ("medium", 1_500_000), ("hd", 4_000_000)):
        out = _out(size, box, Options(size=name), ceiling)
        assert out[0] * out[1] <= ceiling
        # Never larger than the image, and as large as the ceiling lets it be (aspect kept).
        assert out[0] <= size[0] and out[1] <= size[1]
        assert out[0] * out[1] >= min(ceiling, size[0] * size[1]) * 0.98
        assert abs(out[0] / out[1] - size[0] / size[1]) < 0.02


def test_crop_with_margins_and_the_canvas_of_scale_and_position():
    size, box = (1000, 800), (100, 200, 500, 600)  # A 400×400 subject.
    assert _out(size, box, Options(crop=True), 25_000_000) == (400, 400)
    margins = options_parse({"crop": "true", "crop_margin": "10% 600px"}).crop_margin
    # Each side at most half the subject (200 px) and at most 500 px.
    assert _out(size, box, Options(crop=True, crop_margin=margins), 25_000_000) == (400 + 400, 400 + 80)
    params = _params(size, box, Options(scale=0.5), 25_000_000)
    assert _out(size, box, Options(scale=0.5), 25_000_000) == (1000, 800)
    assert params.pad == (300, 200, 300, 200)  # A 400×400 subject fits 500×400: centred.
    params = _params(size, box, Options(position=(0.0, 1.0)), 25_000_000)
    assert params.pad == (0, 400, 600, 0)  # Its own size, in the bottom left corner.


@pytest.mark.parametrize("margin", ["10%", "500px", "50%", "30px 10%", "1px 2px 3px 4px"])
def test_crop_margins_stay_under_the_ceiling_too(margin):
    """A subject filling a big image, with margins: the whole output (subject and margins) is
    scaled under the ceiling, not refused by the budget."""
    size, box = (3162, 3162), (5, 5, 3157, 3157)
    margins = options_parse({"crop": "true", "crop_margin": margin}).crop_margin
    for ceiling in (250_000, 6_000_000, 25_000_000):
        out = _out(size, box, Options(crop=True, crop_margin=margins), ceiling)
        assert out[0] * out[1] <= ceiling, (margin, ceiling, out)
        assert out[0] * out[1] >= min(ceiling, 3152 ** 2) * 0.5  # Scaled down no more than needed.
