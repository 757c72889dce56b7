"""mask: an ellipse, rounded corners or an image cut from a real photograph, mask-bg behind."""

import io
import resource
import time
import types

import numpy as np
import pytest
from PIL import Image

from rendering.operations.mask import STAGE, TRANSPARENT_WHITE, ellipse_mask, rounded_mask
from tests.conftest import FIXTURES


def params(query=None, **overrides):
    values = dict(STAGE.fields, w=None, h=None, dpr=1.0)
    values.update(STAGE.parse(query or {}, {}))
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture
def photo():
    return Image.open(FIXTURES / "astronaut.jpg").convert("RGB").resize((200, 100))


def alpha(image):
    return np.asarray(image.getchannel("A"))


def test_ellipse_hides_the_corners_and_keeps_the_centre(photo):
    out = STAGE.apply(photo, params({"mask": "ellipse"}), None)
    a = alpha(out)
    assert out.mode == "RGBA" and out.size == photo.size
    assert a[0, 0] == a[0, -1] == a[-1, 0] == a[-1, -1] == 0
    assert a[50, 100] == 255 and a[50, 2] == 255 and a[1, 100] == 255  # The ellipse touches each side.
    assert a[10, 20] == 0  # (20, 10) lies outside x²/100² + y²/50² = 1 about the centre.
    assert (np.asarray(out)[50, 50:150, :3] == np.asarray(photo)[50, 50:150]).all()


def test_ellipse_edge_is_antialiased():
    a = np.asarray(ellipse_mask((200, 200)))
    edge = (a > 0) & (a < 255)
    ys, xs = np.nonzero(edge)
    distance = np.hypot(xs + 0.5 - 100, ys + 0.5 - 100)
    assert edge.sum() > 100 and (np.abs(distance - 100) < 1).all()  # Partial coverage, only on the edge.
    assert (a == a[::-1]).all() and (a == a[:, ::-1]).all() and (a == a.T).all()  # A circle, symmetric.


def test_corners_default_to_a_fifth_of_the_smaller_side(photo):
    a = alpha(STAGE.apply(photo, params({"mask": "corners"}), None))
    assert a[0, 0] == a[-1, -1] == 0
    # Radius 20: at (5, 5) the arc's centre (20, 20) is 21 px away; at (8, 8), 17 px.
    assert a[5, 5] == 0 and a[8, 8] == 255 and a[0, 20] == 255 and a[50, 0] == 255


def test_corner_radius_sets_the_radius(photo):
    a = alpha(STAGE.apply(photo, params({"mask": "corners", "corner-radius": "40"}), None))
    assert a[8, 8] == 0 and a[15, 15] == 255 and a[0, 40] == 255 and a[0, 30] == 0


def test_four_radii_start_at_the_top_left_and_go_clockwise(photo):
    a = alpha(STAGE.apply(photo, params({"mask": "corners", "corner-radius": "30,0,10,0"}), None))
    assert a[0, 0] == 0 and a[0, -1] == 255 and a[-1, -1] == 0 and a[-1, 0] == 255
    assert a[5, 5] == 0 and a[-5, -5] == 255  # The bottom-right radius is the smaller one.


def test_corner_radius_is_at_most_half_the_smaller_side(photo):
    pill = alpha(STAGE.apply(photo, params({"mask": "corners", "corner-radius": "5000"}), None))
    assert (pill == np.asarray(rounded_mask(photo.size, (0, 0, 200, 100), (50,) * 4))).all()
    assert pill[50, 0] > 0 and pill[0, 100] == 255 and pill[0, 20] == 0


def test_mask_bg_colours_the_cut_away_area(photo):
    out = STAGE.apply(photo, params({"mask": "ellipse", "mask-bg": "00ff00"}), None)
    assert out.mode == "RGB"
    got = np.asarray(out)
    assert tuple(got[0, 0]) == (0, 255, 0) and (got[50, 60:140] == np.asarray(photo)[50, 60:140]).all()
    half = np.asarray(STAGE.apply(photo, params({"mask": "ellipse", "mask-bg": "8000ff00"}), None))
    assert tuple(half[0, 0]) == (0, 255, 0, 0x80) and half[50, 100, 3] == 255


def test_alpha_of_a_cutout_is_multiplied_not_replaced():
    image = Image.new("RGBA", (100, 100), (200, 10, 10, 255))
    image.paste((0, 0, 0, 0), (40, 40, 60, 60))
    a = alpha(STAGE.apply(image, params({"mask": "ellipse"}), None))
    assert (a[40:60, 40:60] == 0).all() and a[30, 50] == 255 and a[0, 0] == 0
    grey = STAGE.apply(image.convert("LA"), params({"mask": "corners"}), None)
    assert grey.mode == "LA" and alpha(grey)[0, 0] == 0 and (alpha(grey)[40:60, 40:60] == 0).all()


def test_dpr_multiplies_corner_radius_with_a_size(photo):
    one = alpha(STAGE.apply(photo, params({"mask": "corners", "corner-radius": "20"}, w=object()), None))
    two = alpha(STAGE.apply(photo, params({"mask": "corners", "corner-radius": "20"}, w=object(), dpr=2.0), None))
    assert one[8, 8] == 255 and two[8, 8] == 0


def test_a_mask_image_is_read_as_the_image_it_names():
    for value in ("https://example.com/mask.png", "/masks/circle.png", "mask.png"):
        assert STAGE.parse({"mask": value}, {}) == {"mask": value}


def test_a_mask_image_keeps_the_photo_where_it_is_white(client, source, origin_root):
    """Its luminance times its alpha, stretched to the image: white shows, black hides (imgix)."""
    shape = Image.new("RGBA", (10, 10), (0, 0, 0, 255))
    shape.paste((255, 255, 255, 255), (0, 0, 5, 10))  # The left half white.
    shape.save(origin_root / "photos" / "half.png")
    response = client.get(f"/render/{source.slug}/astronaut.jpg?w=64&fm=png&mask=half.png")
    assert response.status_code == 200, response.content
    out = np.asarray(Image.open(io.BytesIO(response.content)))
    assert out.shape[2] == 4 and out[:, :28, 3].min() == 255 and out[:, 36:, 3].max() == 0
    # Through the same gate as a mark: another account's source, a loop, another scheme.
    assert client.get(f"/render/{source.slug}/astronaut.jpg?mask=file:///etc/passwd").status_code == 400
    loop = client.get(f"/render/{source.slug}/astronaut.jpg?w=50&mask=astronaut.jpg%3Fw%3D20")
    assert loop.status_code == 400 and loop.json()["error"]["code"] == "mark_loop"


def test_parse_reads_imgix_values():
    assert STAGE.parse({"mask": "Ellipse"}, {}) == {"mask": "ellipse"}
    assert STAGE.parse({"mask": "star"}, {}) == {}  # An unknown word is ignored, as any unreadable value.
    assert STAGE.parse({"corner-radius": "12"}, {}) == {"corner_radius": (12, 12, 12, 12)}
    assert STAGE.parse({"corner-radius": "1,2,-3,4"}, {}) == {"corner_radius": (1, 2, 0, 4)}
    assert STAGE.parse({"corner-radius": "0"}, {}) == {}  # A single 0 keeps the 20% default (imgix).
    assert STAGE.parse({"corner-radius": "1,2"}, {}) == {}
    assert STAGE.parse({"mask-bg": "transparent"}, {}) == {"mask_bg": TRANSPARENT_WHITE}
    assert ("maskbg",) in [p.aliases for p in STAGE.params]


def test_effective_drops_what_does_not_act(photo):
    assert STAGE.effective(params({"corner-radius": "10", "mask-bg": "red"}), "png") == STAGE.fields
    ellipse = STAGE.effective(params({"mask": "ellipse", "corner-radius": "10"}), "png")
    assert ellipse == STAGE.effective(params({"mask": "ellipse"}), "png")
    assert STAGE.apply(photo, params({"corner-radius": "10", "mask-bg": "red"}), None) is photo


@pytest.mark.parametrize("query", [{"mask": "ellipse"}, {"mask": "corners", "corner-radius": "9999"},
                                   {"mask": "corners", "mask-bg": "red"}])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_size_is_what_apply_gives(photo, query, mode):
    image = photo.convert(mode)
    assert STAGE.apply(image, params(query), None).size == STAGE.size(image.size, params(query), None) == image.size


def test_tiny_images_are_masked():
    for size in ((1, 1), (2, 1), (1, 3)):
        image = Image.new("RGB", size, (10, 20, 30))
        assert STAGE.apply(image, params({"mask": "ellipse"}), None).size == size
        assert STAGE.apply(image, params({"mask": "corners"}), None).size == size


def test_worst_case_stays_within_its_budget():
    """mask=ellipse&mask-bg=80FF0000 on an 8192×6144 RGBA image (about 1 CPU-s and +340 MB measured)."""
    image = Image.new("RGBA", (8192, 6144), (10, 20, 30, 200))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    out = STAGE.apply(image, params({"mask": "ellipse", "mask-bg": "80FF0000"}), None)
    assert time.process_time() - start < 3
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 600
    assert out.size == image.size
