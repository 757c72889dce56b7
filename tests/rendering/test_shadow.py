"""shadow: drop and contact shadows under a cutout (rendering/operations/shadow.py), on pixels,
through the rendering endpoint with trim, pad and bg, and the shop recipe on the real model."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from cutouts.services import bg_remove_job_process
from rendering.operations.shadow import STAGE, shadow_apply, shadow_cast
from rendering.params import ParamError, params_parse
from tests.conftest import ROOT

CLEAR = (0, 0, 0, 0)
WHITE = (255, 255, 255)


def disc(size=(200, 200), centre=(100, 100), radius=40, color=(30, 160, 60, 255)) -> Image.Image:
    """A cutout-like image: an opaque disc on transparency."""
    image = Image.new("RGBA", size, CLEAR)
    x, y = centre
    ImageDraw.Draw(image).ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
    return image


def bottle(size=(200, 300), box=(80, 60, 120, 200)) -> Image.Image:
    """A tall opaque subject standing in the canvas, with room below its base."""
    image = Image.new("RGBA", size, CLEAR)
    image.paste((200, 40, 40, 255), box)
    return image


def shadowed(image, query):
    return STAGE.apply(image, params_parse(query), None)


def alpha(image) -> np.ndarray:
    return np.asarray(image.getchannel("A")).astype(int)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- drop ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sign", [1, -1])
def test_drop_falls_on_the_side_the_offset_points_to(sign):
    image = disc()
    out = shadowed(image, f"shadow=drop&shadow-x={20 * sign}&shadow-y={20 * sign}&shadow-blur=0&shadow-opacity=100")
    toward = (100 + 33 * sign, 100 + 33 * sign)  # Outside the disc, inside the shifted one.
    away = (100 - 33 * sign, 100 - 33 * sign)
    assert image.getpixel(toward) == CLEAR and image.getpixel(away) == CLEAR
    assert out.getpixel(toward) == (0, 0, 0, 255)
    assert out.getpixel(away) == CLEAR
    # Only x: the shadow shows to that side alone.
    side = shadowed(image, f"shadow=drop&shadow-x={20 * sign}&shadow-y=0&shadow-blur=0&shadow-opacity=100")
    assert side.getpixel((100 + 50 * sign, 100))[3] == 255 and side.getpixel((100 - 50 * sign, 100)) == CLEAR
    assert side.getpixel((100, 100 + 50))[3] == 0 and side.getpixel((100, 100 - 50))[3] == 0


def test_the_subject_is_drawn_over_its_shadow_unchanged():
    image = disc()
    out = shadowed(image, "shadow=drop&shadow-x=10&shadow-y=10&shadow-opacity=100")
    inside = alpha(image) == 255
    assert np.array_equal(np.asarray(out)[inside], np.asarray(image)[inside])
    assert image.getpixel((145, 145)) == CLEAR  # The input is left as it was.


def test_opacity_and_colour_are_respected():
    image = disc()
    point = (100 + 33, 100 + 33)
    query = "shadow=drop&shadow-x=20&shadow-y=20&shadow-blur=0"
    assert shadowed(image, query + "&shadow-color=ff0000&shadow-opacity=40").getpixel(point) == (255, 0, 0, 102)
    assert shadowed(image, query + "&shadow-color=navy&shadow-opacity=100").getpixel(point) == (0, 0, 128, 255)
    # The colour's own alpha (first in imgix's 8-digit hex) multiplies the opacity.
    assert shadowed(image, query + "&shadow-color=800000ff&shadow-opacity=100").getpixel(point) == (0, 0, 255, 128)
    # The default opacity is drop's 50 %, in black.
    assert shadowed(image, query).getpixel(point) == (0, 0, 0, 128)


def test_blur_softens_the_edge_and_a_wide_blur_matches_a_full_size_gaussian():
    image = disc(size=(400, 400), centre=(200, 200), radius=80)
    hard = alpha(shadowed(image, "shadow=drop&shadow-x=30&shadow-y=30&shadow-blur=0&shadow-opacity=100"))
    soft = alpha(shadowed(image, "shadow=drop&shadow-x=30&shadow-y=30&shadow-blur=20&shadow-opacity=100"))
    row = slice(230, 231)
    assert set(np.unique(hard[row, 290:330])) <= {0, 255}  # A hard edge, …
    assert len(np.unique(soft[row, 290:330])) > 10  # … and a ramp.
    # blur=120 (sigma 60) runs on a copy reduced 20 times: within a few levels of the real thing.
    out = shadowed(image, "shadow=drop&shadow-x=30&shadow-y=-20&shadow-blur=120&shadow-opacity=100")
    reference = Image.new("L", (1000, 1000), 0)
    reference.paste(image.getchannel("A"), (300 + 30, 300 - 20))
    reference = reference.filter(ImageFilter.GaussianBlur(60)).crop((300, 300, 700, 700))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    layer.putalpha(reference)
    layer.alpha_composite(image)
    assert np.abs(alpha(out) - alpha(layer)).max() <= 3


def test_default_lengths_follow_the_subject_and_given_ones_take_dpr():
    small, large = disc(radius=40), disc(size=(400, 400), centre=(200, 200), radius=80)
    for mode in ("drop", "contact"):
        p = params_parse(f"shadow={mode}")
        one, two = shadow_cast(small.getchannel("A"), p), shadow_cast(large.getchannel("A"), p)
        assert two.sigma == pytest.approx(2 * one.sigma, abs=0.5) and one.sigma > 0
        assert np.allclose(two.offset, 2 * np.array(one.offset), atol=1)
    given = "shadow=drop&shadow-x=10&shadow-y=-4&shadow-blur=6"
    at_two = shadow_cast(small.getchannel("A"), params_parse(f"w=200&dpr=2&{given}"))
    assert at_two.offset == (20, -8) and at_two.sigma == 6
    # dpr acts with a w or h only, as for pad and border.
    assert shadow_cast(small.getchannel("A"), params_parse(f"dpr=2&{given}")).offset == (10, -4)


# --- contact ---------------------------------------------------------------------------------------

def test_contact_lies_under_the_base_and_not_above_the_subject():
    image = bottle()
    out = alpha(shadowed(image, "shadow=contact"))
    before = alpha(image)
    added = np.where(before == 0, out, 0)
    rows, cols = np.nonzero(added)
    assert rows.size
    assert rows.min() >= 190  # Around the base line (y=200) only, …
    assert added[200:].sum() > 0.8 * added.sum()  # … most of it below it.
    assert not added[:190].any()  # Nothing beside or above the subject.
    assert abs(cols.mean() - 100) < 1  # Centred under the base.
    assert out[203, 100] > out[203, 118] > 0  # Darkest at the middle of the base.


def test_contact_takes_the_width_of_the_base_and_moves_with_the_offset():
    # A wide top on a narrow foot: the shadow is the foot's.
    image = Image.new("RGBA", (300, 300), CLEAR)
    image.paste((0, 0, 255, 255), (50, 40, 250, 120))
    image.paste((0, 0, 255, 255), (130, 120, 170, 220))
    cols = np.nonzero(alpha(shadowed(image, "shadow=contact&shadow-blur=0&shadow-opacity=100"))[222])[0]
    assert cols.min() >= 125 and cols.max() <= 175
    moved = alpha(shadowed(image, "shadow=contact&shadow-x=30&shadow-y=5&shadow-blur=0&shadow-opacity=100"))
    cols = np.nonzero(moved[227])[0]
    assert abs((cols.min() + cols.max()) / 2 - 180) <= 1


def test_a_border_frames_the_shadow_and_casts_none():
    """shadow runs before border: the frame is drawn over the canvas, shadow included, and does not
    become the subject (after it, the frame's bottom band would be the base the shadow sits under)."""
    from rendering.stage import StageContext
    from rendering.stages import stages_apply

    image = bottle()
    framed = np.asarray(stages_apply(image, params_parse("shadow=contact&border=4,00ff00"), StageContext()))
    alone = np.asarray(shadowed(image, "shadow=contact"))
    assert np.array_equal(framed[4:-4, 4:-4], alone[4:-4, 4:-4])
    assert (framed[:4, :, :3] == (0, 255, 0)).all() and (framed[-4:, :, :3] == (0, 255, 0)).all()


# --- What casts nothing ----------------------------------------------------------------------------

def test_an_image_without_transparency_hides_its_shadow_behind_it():
    opaque = Image.new("RGB", (50, 40), (10, 20, 30))
    assert shadow_apply(opaque, params_parse("shadow=drop")) is opaque
    solid = Image.new("RGBA", (50, 40), (10, 20, 30, 255))
    assert shadow_apply(solid, params_parse("shadow=drop")) is solid
    empty = Image.new("RGBA", (50, 40), CLEAR)
    assert shadow_apply(empty, params_parse("shadow=contact")) is empty


# --- Parameters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, name", [
    ("shadow=soft", "shadow"), ("shadow=1", "shadow"),
    ("shadow=drop&shadow-color=nocolour", "shadow-color"), ("shadow=drop&shadow-color=12345", "shadow-color"),
    ("shadow=drop&shadow-opacity=101", "shadow-opacity"), ("shadow=drop&shadow-opacity=-1", "shadow-opacity"),
    ("shadow=drop&shadow-opacity=half", "shadow-opacity"),
    ("shadow=drop&shadow-blur=1001", "shadow-blur"), ("shadow=drop&shadow-blur=-2", "shadow-blur"),
    ("shadow=drop&shadow-x=1001", "shadow-x"), ("shadow=drop&shadow-y=-1001", "shadow-y"),
    ("shadow=drop&shadow-y=nan", "shadow-y"), ("shadow-x=ten", "shadow-x"),  # Refused with or without shadow.
])
def test_a_value_we_cannot_use_is_a_400_naming_the_parameter(query, name):
    with pytest.raises(ParamError, match=f"^{name} must be") as refused:
        params_parse(query)
    assert refused.value.status_code == 400


def test_the_cache_key_holds_the_shadow_only_when_it_draws():
    key = {q: params_parse(q).canonical("png") for q in (
        "", "shadow=", "shadow-x=10&shadow-blur=4", "shadow=drop&shadow-opacity=0",
        "shadow=contact&shadow-color=0fff", "shadow=drop", "shadow=drop&shadow-opacity=50",
        "shadow=drop&shadow-opacity=50.0", "shadow=contact", "shadow=contact&shadow-x=0&shadow-y=0",
        "shadow=drop&shadow-x=3", "shadow=drop&shadow-color=red")}
    # Nothing drawn: the key of no shadow at all.
    assert key[""] == key["shadow="] == key["shadow-x=10&shadow-blur=4"] == key["shadow=drop&shadow-opacity=0"]
    assert key[""] == key["shadow=contact&shadow-color=0fff"]
    # Defaults spelled out share the key; every value that changes the shadow has its own.
    assert key["shadow=drop"] == key["shadow=drop&shadow-opacity=50"] == key["shadow=drop&shadow-opacity=50.0"]
    assert key["shadow=contact"] == key["shadow=contact&shadow-x=0&shadow-y=0"]
    distinct = [key[q] for q in ("", "shadow=drop", "shadow=contact", "shadow=drop&shadow-x=3",
                                 "shadow=drop&shadow-color=red")]
    assert len(set(distinct)) == len(distinct)
    assert not params_parse("shadow-x=10").has_operations and params_parse("shadow=drop").has_operations


# --- Through the rendering endpoint ----------------------------------------------------------------

@pytest.fixture
def cutout_origin(origin_root):
    """A PNG cutout: a disc on transparency, off-centre on a larger canvas (trim=alpha finds it)."""
    disc(size=(300, 240), centre=(120, 110), radius=60).save(origin_root / "photos" / "disc.png")
    return "/render/acme-photos/disc.png"


def rendered(client, url) -> Image.Image:
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return Image.open(io.BytesIO(body_of(response)))


@pytest.mark.django_db
def test_trim_pad_and_bg_compose_with_the_shadow(client, source, cutout_origin):
    base = f"{cutout_origin}?trim=alpha&pad=40&bg=fff&fm=png"
    plain = rendered(client, base)
    out = rendered(client, base + "&shadow=drop&shadow-x=15&shadow-y=15&shadow-blur=8")
    # The disc (121 px across as drawn) trimmed, with 40 px on every side.
    assert out.size == plain.size == (201, 201) and out.mode == plain.mode == "RGB"
    got, before = np.asarray(out).astype(int), np.asarray(plain).astype(int)
    assert (got[0, 0] == WHITE).all() and (got[-1, -1] == WHITE).all()  # bg behind everything.
    darker = (before - got).sum(axis=-1) > 30
    rows, cols = np.nonzero(darker)
    # The shadow lies down and to the right of the disc (centred at 100, 100), into pad's margin,
    # grey over white: bg filled behind it.
    assert rows.mean() > 110 and cols.mean() > 110 and rows.max() > 161 and cols.max() > 161
    assert (got[darker][:, 0] == got[darker][:, 1]).all() and (got[darker] < 255).all()
    assert not darker[:40, :].any() and not darker[:, :40].any()


@pytest.mark.django_db
def test_an_absent_or_empty_shadow_is_the_same_render(client, source, cutout_origin):
    base = f"{cutout_origin}?trim=alpha&pad=40&bg=fff&fm=png"
    plain = body_of(client.get(base))
    for extra in ("&shadow=", "&shadow-x=10&shadow-blur=30", "&shadow=drop&shadow-opacity=0"):
        assert body_of(client.get(base + extra)) == plain, extra
    assert body_of(client.get(base + "&shadow=drop")) != plain


@pytest.mark.django_db
def test_a_photo_casts_its_rectangle_into_the_padding(client, source):
    """An opaque image casts its whole rectangle, as CSS's box-shadow does: shown where pad gives
    room (with an opaque bg too, which pad otherwise paints at once)."""
    base = "/render/acme-photos/astronaut.jpg?w=200&pad=30&bg=fff&fm=png"
    got = np.asarray(rendered(client, base + "&shadow=drop&shadow-x=12&shadow-y=12&shadow-blur=4")).astype(int)
    plain = np.asarray(rendered(client, base)).astype(int)
    assert got.shape == plain.shape == (200, 200, 3)  # The photo 140×140 inside the margins.
    assert np.array_equal(got[30:170, 30:170], plain[30:170, 30:170])  # The photo itself.
    assert (got[100, 175] < 200).all() and (got[175, 100] < 200).all()  # Right and below: shadow.
    assert (got[100, 20] == WHITE).all() and (got[20, 100] == WHITE).all()  # Left and above: white.


@pytest.mark.django_db
@pytest.mark.parametrize("query, name", [("shadow=soft", "shadow"), ("shadow=drop&shadow-blur=5000", "shadow-blur")])
def test_a_bad_value_is_a_400_over_http(client, source, cutout_origin, query, name):
    response = client.get(f"{cutout_origin}?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_parameter"
    assert response.json()["error"]["message"].startswith(f"{name} must be")


SHOP_RECIPE = "bg-remove=true&trim=alpha&pad=60&shadow=contact&bg=fff&w=1000&h=1000&fit=fill"


@pytest.mark.django_db
def test_the_shop_recipe_of_the_docs(client, source):
    """docs/rendering.md's recipe on astronaut.jpg, the cutout made by the real model: a 1000×1000
    white canvas, the subject inside the 60 px margin, a soft shadow under its base and nowhere else."""
    assert f"?{SHOP_RECIPE}" in (ROOT / "docs" / "rendering.md").read_text()
    url = f"/render/acme-photos/astronaut.jpg?{SHOP_RECIPE}"
    first = client.get(url)
    assert first.status_code == 202
    bg_remove_job_process(job_id=first.json()["job"])
    out = rendered(client, url)
    plain = rendered(client, url.replace("&shadow=contact", ""))
    assert out.size == (1000, 1000) and out.mode == "RGB"
    got, before = np.asarray(out).astype(int), np.asarray(plain).astype(int)
    subject = np.argwhere((before != WHITE).any(axis=-1))
    (top, left), (bottom, right) = subject.min(axis=0), subject.max(axis=0) + 1
    assert min(top, left) >= 58 and max(bottom, right) <= 942
    changed = np.argwhere((got != before).any(axis=-1))
    assert len(changed)
    assert changed[:, 0].min() > top + (bottom - top) * 0.8  # Only about the base, …
    below = changed[changed[:, 0] >= bottom]
    assert len(below) > 0.5 * len(changed)  # … mostly under it, in the margin, …
    assert (got[bottom + 2, (left + right) // 2] < 235).all()  # … dark enough to see, …
    assert ((got <= before).all(axis=-1)[tuple(changed.T)]).all()  # … and only ever darker.
    assert (got[:top] == WHITE).all()  # Above the subject: white.


# --- The worst case --------------------------------------------------------------------------------

WORST = """
import json, resource, sys, time
import django
django.setup()
import numpy as np
from PIL import Image
from rendering.operations.shadow import STAGE
from rendering.params import params_parse
noise = np.random.default_rng(1).integers(0, 256, (512, 512, 4), dtype=np.uint8)
image = Image.fromarray(noise, "RGBA").resize((8192, 6104), Image.Resampling.NEAREST)
p = params_parse(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.process_time()
out = STAGE.apply(image, p, None)
cpu = time.process_time() - started
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"cpu": cpu, "mb": grown, "size": out.size, "changed": out is not image}))
"""


@pytest.mark.parametrize("query", [
    "shadow=drop&shadow-blur=11",  # The widest blur still done at full size, the whole canvas casting.
    "shadow=drop&shadow-blur=1000&shadow-x=1000&shadow-y=-1000",  # The widest, on a reduced copy.
    "shadow=contact&shadow-blur=0",  # A hard ellipse as wide as the canvas.
])
def test_worst_case_at_50_megapixels(query):
    """On a 50 MP translucent canvas in a fresh process (the input's own 200 MB not counted)."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", WORST, query], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["size"] == [8192, 6104] and measured["changed"]
    assert measured["cpu"] < 3, measured
    assert measured["mb"] < 600, measured
