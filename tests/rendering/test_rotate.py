"""The rotation stages: orient and flip (before sizing), rot and rot-type (rendering/operations/rotate.py)."""

import math
import types

import numpy as np
import pytest
from PIL import Image, ImageOps

from rendering.operations.rotate import ORIENT, ROT, STAGES, rot_layout
from rendering.stage import StageContext
from tests.rendering.test_stylize import EXISTING_FIELDS, assert_no_bleed, cutout, photo, pixels, worst_case

CONTEXT = StageContext()
T = Image.Transpose


def params(**overrides):
    fields = {}
    for stage in STAGES:
        fields.update(stage.fields)
    return types.SimpleNamespace(**{**fields, "w": None, "h": None, "dpr": 1.0, **overrides})


def run(stage, image, context=CONTEXT, **overrides):
    return stage.apply(image, params(**overrides), context)


def same(a, b) -> bool:
    return a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes()


def marked(size=(90, 60), at=(80, 5)) -> Image.Image:
    """White, with a red square around `at`: where it lands tells which way the image turned."""
    image = Image.new("RGB", size, (255, 255, 255))
    image.paste((255, 0, 0), (at[0] - 4, at[1] - 4, at[0] + 5, at[1] + 5))
    return image


def red_centre(image) -> tuple[float, float]:
    rgb = pixels(image.convert("RGB"))
    ys, xs = np.nonzero((rgb[..., 0] > 200) & (rgb[..., 1] < 80))
    return xs.mean(), ys.mean()


# --- Declarations ---------------------------------------------------------------------------------

def test_stages_declare_imgix_names_and_aliases():
    assert [s.name for s in STAGES] == ["orient", "rot"]
    names = {p.name: p for s in STAGES for p in s.params}
    assert set(names) == {"orient", "flip", "rot", "rot-type"}
    assert names["orient"].aliases == ("or",)
    assert set(names["rot-type"].aliases) == {"rottype", "rott"}
    assert not (params().__dict__.keys() - {"w", "h", "dpr"}) & EXISTING_FIELDS
    assert params().rot == 0 and params().rot_type == "straighten"


@pytest.mark.parametrize(("stage", "values", "parsed"), [
    (ORIENT, {"orient": "6"}, {"orient": 6}),
    (ORIENT, {"orient": "270"}, {"orient": 270}),
    (ORIENT, {"orient": "0"}, {"orient": 0}),
    (ORIENT, {"orient": "45"}, {}),
    (ORIENT, {"orient": "9"}, {}),
    (ORIENT, {"orient": "up"}, {}),
    (ORIENT, {"flip": "H"}, {"flip": "h"}),
    (ORIENT, {"flip": "vh"}, {"flip": "hv"}),
    (ORIENT, {"flip": "x"}, {}),
    (ROT, {"rot": "45"}, {"rot": 45.0}),
    (ROT, {"rot": "-90"}, {"rot": 270.0}),
    (ROT, {"rot": "725.5"}, {"rot": 5.5}),
    (ROT, {"rot": "360"}, {"rot": 0.0}),
    (ROT, {"rot": "spin"}, {}),
    (ROT, {"rot-type": "PIVOT"}, {"rot_type": "pivot"}),
    (ROT, {"rot-type": "spin"}, {}),
])
def test_parse(stage, values, parsed):
    assert stage.parse(values, {}) == parsed


def test_nothing_to_do_is_the_same_image():
    image = photo()
    assert run(ORIENT, image) is image
    assert run(ROT, image) is image
    assert run(ROT, image, rot_type="pivot") is image
    assert not ROT.active(params(rot_type="pivot"))


def test_effective_forgets_the_rot_type_when_it_cannot_matter():
    assert ROT.effective(params(rot_type="pivot"), "png") == {"rot": 0.0, "rot_type": "straighten"}
    assert ROT.effective(params(rot=180.0, rot_type="pivot"), "png") == {"rot": 180.0, "rot_type": "straighten"}
    assert ROT.effective(params(rot=30.0, rot_type="pivot"), "png") == {"rot": 30.0, "rot_type": "pivot"}


# --- flip and orient ------------------------------------------------------------------------------

@pytest.mark.parametrize(("flip", "method"), [("h", T.FLIP_LEFT_RIGHT), ("v", T.FLIP_TOP_BOTTOM),
                                              ("hv", T.ROTATE_180)])
def test_flip_mirrors(flip, method):
    image = photo("chelsea.png")
    assert same(run(ORIENT, image, flip=flip), image.transpose(method))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_reads_the_pixels_as_that_exif_orientation(orientation):
    """orient=n draws the stored pixels as a viewer draws a photo whose EXIF says n."""
    stored = photo("chelsea.png")
    exif = stored.getexif()
    exif[0x0112] = orientation
    tagged = stored.copy()
    tagged.info["exif"] = exif.tobytes()
    upright = ImageOps.exif_transpose(tagged)
    assert same(run(ORIENT, stored, orient=orientation), upright.convert("RGB"))
    assert ORIENT.size(stored.size, params(orient=orientation), CONTEXT) == upright.size


def test_orient_degrees_turn_clockwise_as_exif_6_3_and_8():
    image = marked()  # The mark at the top right.
    for degrees, exif in ((90, 6), (180, 3), (270, 8)):
        assert same(run(ORIENT, image, orient=degrees), run(ORIENT, image, orient=exif))
    x, y = red_centre(run(ORIENT, image, orient=90))  # A quarter turn clockwise: now bottom right.
    assert x > 45 and y > 60


def test_orient_replaces_the_sources_own_exif_orientation():
    """Decoding turned the source upright by its EXIF (6 here): orient=1 or 0 draws the stored
    pixels as they are, orient=3 as if the EXIF had said 3."""
    stored = photo("chelsea.png")
    upright = stored.transpose(T.ROTATE_270)  # What decoding made of EXIF 6.
    tagged = types.SimpleNamespace(orientation=6, max_pixels=None)
    assert same(run(ORIENT, upright, tagged, orient=1), stored)
    assert same(run(ORIENT, upright, tagged, orient=0), stored)
    assert same(run(ORIENT, upright, tagged, orient=3), stored.transpose(T.ROTATE_180))
    assert ORIENT.size(upright.size, params(orient=1), tagged) == stored.size
    assert run(ORIENT, upright, tagged) is upright  # No orient: the EXIF stands.


def test_flip_applies_to_what_orient_gives():
    image = photo("chelsea.png")
    turned = run(ORIENT, image, orient=6)
    assert same(run(ORIENT, image, orient=6, flip="h"), turned.transpose(T.FLIP_LEFT_RIGHT))
    assert ORIENT.size(image.size, params(orient=6, flip="v"), CONTEXT) == (300, 451)


# --- rot ------------------------------------------------------------------------------------------

def test_rot_turns_counter_clockwise():
    image = marked((90, 90), at=(85, 45))  # The mark at the right, halfway down.
    for rot_type in ("pivot", "straighten"):
        out = run(ROT, image, rot=60.0, rot_type=rot_type)
        x, y = red_centre(out)
        cx, cy = out.width / 2, out.height / 2
        assert y < cy - 15 and x > cx, (rot_type, x, y)  # Gone up: counter-clockwise.
    assert same(run(ROT, photo(), rot=90.0, rot_type="pivot"), photo().transpose(T.ROTATE_90))
    assert same(run(ROT, photo(), rot=180.0), photo().transpose(T.ROTATE_180))


def test_rot_matches_pillows_own_counter_clockwise_rotate():
    image = photo()
    ours = run(ROT, image, rot=30.0, rot_type="pivot")
    pillows = image.convert("RGBa").rotate(30, Image.Resampling.BILINEAR, expand=True).convert("RGBA")
    assert abs(ours.width - pillows.width) <= 1 and abs(ours.height - pillows.height) <= 1
    both = (slice(200, 500), slice(200, 500))
    assert np.abs(pixels(ours)[both] - pixels(pillows)[both]).mean() < 4


def test_pivot_holds_the_whole_image_with_transparent_corners():
    image = photo("chelsea.png")  # 451 × 300
    out = run(ROT, image, rot=30.0, rot_type="pivot")
    radians = math.radians(30)
    assert out.size == (math.ceil(451 * math.cos(radians) + 300 * math.sin(radians)),
                        math.ceil(451 * math.sin(radians) + 300 * math.cos(radians)))
    assert out.mode == "RGBA"
    alpha = pixels(out.getchannel("A"))
    assert alpha[0, 0] == alpha[-1, -1] == alpha[0, -1] == alpha[-1, 0] == 0
    assert abs(alpha.sum() / 255 - 451 * 300) < 0.01 * 451 * 300  # All of it, and no more.
    middle = out.getpixel((out.width // 2, out.height // 2))
    assert middle[3] == 255
    assert max(abs(a - b) for a, b in zip(middle, image.getpixel((225, 150)))) < 25
    assert run(ROT, image.convert("L"), rot=30.0, rot_type="pivot").mode == "LA"


def test_straighten_zooms_so_no_corner_is_empty():
    image = Image.new("RGBA", (160, 90), (0, 160, 0, 255))
    out = run(ROT, image, rot=20.0)
    assert out.size == image.size and out.mode == "RGBA"
    assert (pixels(out) == (0, 160, 0, 255)).all()  # Every pixel from the image: none left empty.
    # Zoomed in: a detail grows.
    marked_image = marked((160, 90), at=(80, 45))
    before = (pixels(marked_image)[..., 1] < 80).sum()
    after = (pixels(run(ROT, marked_image, rot=20.0))[..., 1] < 80).sum()
    _, zoom = rot_layout((160, 90), 20.0, "straighten", 10**9)
    assert after > before * zoom * zoom * 0.8 and zoom > 1.3


def test_rot_does_not_bleed_colour_from_transparent_pixels():
    for rot_type in ("pivot", "straighten"):
        assert_no_bleed(run(ROT, cutout(), rot=33.0, rot_type=rot_type))


@pytest.mark.parametrize("rot", [1.0, 30.0, 45.0, 89.5, 90.0, 135.0, 180.0, 270.0, 359.0])
@pytest.mark.parametrize("rot_type", ["pivot", "straighten"])
@pytest.mark.parametrize("size", [(101, 37), (64, 64), (1, 9)])
def test_size_is_apply_size(rot, rot_type, size):
    image = Image.new("RGB", size, (10, 20, 30))
    p = params(rot=rot, rot_type=rot_type)
    assert ROT.size(size, p, CONTEXT) == run(ROT, image, rot=rot, rot_type=rot_type).size


def test_pivot_keeps_within_the_output_ceilings(settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 60_000
    image = Image.new("RGB", (300, 200), (200, 0, 0))
    out = run(ROT, image, rot=45.0, rot_type="pivot")
    assert out.width * out.height <= 60_000 and out.width * out.height > 0.95 * 60_000
    assert ROT.size(image.size, params(rot=45.0, rot_type="pivot"), CONTEXT) == out.size
    # The encoder's own lower ceiling, too.
    tighter = StageContext(max_pixels=20_000)
    out = run(ROT, image, tighter, rot=45.0, rot_type="pivot")
    assert out.width * out.height <= 20_000
    assert ROT.size(image.size, params(rot=45.0, rot_type="pivot"), tighter) == out.size
    # Far smaller than the image: shrunk first, and still all of it.
    alpha = pixels(run(ROT, image, StageContext(max_pixels=3_000), rot=45.0, rot_type="pivot").getchannel("A"))
    assert abs(alpha.sum() / 255 - 3_000 / 2) < 0.1 * 3_000


def test_pivot_never_passes_8192_on_a_side(settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 10**9
    canvas, zoom = rot_layout((8192, 8192), 45.0, "pivot", 10**9)
    assert max(canvas) <= 8192 and canvas[0] > 8150 and zoom < 0.71
    canvas, _ = rot_layout((8192, 40), 30.0, "pivot", 10**9)
    assert max(canvas) <= 8192


# --- The worst case -------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "size"), [
    ({"rot": 45.0, "rot_type": "pivot"}, [7064, 7064]),  # The largest canvas at 50 MP.
    ({"rot": 45.0, "rot_type": "straighten"}, [8192, 6104]),
])
def test_worst_case_at_50_megapixels(values, size):
    measured = worst_case("rotate", "rot", values, RENDER_MAX_OUTPUT_PIXELS="50000000")
    assert measured["size"] == size
    assert measured["cpu"] < 3, measured
    assert measured["mb"] < 600, measured
