"""blend: a colour over the image in each of imgix's blend modes, against the modes' definitions."""

import colorsys
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rendering.operations.blend import STAGE
from rendering.params import params_parse
from rendering.stage import StageContext


def photo():
    return Image.open("demo/origin/astronaut.jpg").convert("RGB").resize((64, 64))


def blended(image, query):
    return STAGE.apply(image, params_parse(query), StageContext())


def test_multiply_with_white_changes_nothing_and_with_black_gives_black():
    image = photo()
    assert np.array_equal(np.asarray(blended(image, "blend=fff&blend-mode=multiply")), np.asarray(image))
    assert np.asarray(blended(image, "blend=000&blend-mode=multiply")).max() == 0


def test_multiply_by_red_keeps_red_and_clears_green_and_blue():
    out = np.asarray(blended(photo(), "blend=ff0000&bm=multiply"))
    assert np.array_equal(out[..., 0], np.asarray(photo())[..., 0]) and out[..., 1:].max() == 0


def test_screen_lighten_darken_difference_per_channel():
    base = np.asarray(photo()).astype(int)
    grey = 128 / 255
    screen = np.asarray(blended(photo(), "blend=808080&bm=screen")).astype(int)
    expect = np.rint((base / 255 + grey - base / 255 * grey) * 255)
    assert np.abs(screen - expect).max() <= 1
    assert np.array_equal(np.asarray(blended(photo(), "blend=808080&bm=lighten")), np.maximum(base, 128))
    assert np.array_equal(np.asarray(blended(photo(), "blend=808080&bm=darken")), np.minimum(base, 128))
    assert np.array_equal(np.asarray(blended(photo(), "blend=808080&bm=difference")), np.abs(base - 128))


def test_overlay_is_the_default_and_keeps_black_and_white():
    image = Image.new("RGB", (4, 1))
    image.putdata([(0, 0, 0), (255, 255, 255), (64, 64, 64), (192, 192, 192)])
    out = [blended(image, "blend=ff0000").getpixel((x, 0)) for x in range(4)]
    assert out[0] == (0, 0, 0) and out[1] == (255, 255, 255)  # Overlay keeps shadows and highlights.
    assert out[2][0] > 64 and out[2][1] < 64  # A dark grey goes redder.


def test_normal_with_half_alpha_is_halfway():
    image = Image.new("RGB", (2, 2), (0, 0, 255))
    assert blended(image, "blend=ff0000&bm=normal&blend-alpha=50").getpixel((0, 0)) == (128, 0, 128)
    # The colour's own alpha (ARGB) is a strength too.
    assert blended(image, "blend=80ff0000&bm=normal").getpixel((0, 0)) == (128, 0, 127)


def test_color_mode_takes_the_hue_and_keeps_the_luminosity():
    image = Image.new("RGB", (1, 1), (40, 160, 90))
    r, g, b = blended(image, "blend=ff0000&bm=color").getpixel((0, 0))
    assert colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] in (0.0, 1.0) or abs(
        colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] - 1) < 0.02
    lum = lambda c: 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]  # noqa: E731
    assert abs(lum((r, g, b)) - lum((40, 160, 90))) <= 2


def test_luminosity_mode_takes_the_colours_luminosity():
    image = Image.new("RGB", (1, 1), (40, 160, 90))
    out = blended(image, "blend=fff&bm=luminosity").getpixel((0, 0))
    assert out == (255, 255, 255)


def test_a_region_placed_by_align_and_offsets():
    image = Image.new("RGB", (40, 20), (255, 255, 255))
    out = np.asarray(blended(image, "blend=000&bm=normal&blend-w=10&blend-h=5&blend-align=bottom,right&blend-x=-2"))
    dark = np.argwhere(out[..., 0] == 0)
    assert (dark[:, 0].min(), dark[:, 0].max(), dark[:, 1].min(), dark[:, 1].max()) == (15, 19, 28, 37)


def test_alpha_is_kept():
    image = Image.new("RGBA", (4, 4), (0, 0, 255, 77))
    out = blended(image, "blend=ff0000&bm=normal")
    assert out.mode == "RGBA" and out.getpixel((0, 0)) == (255, 0, 0, 77)


def test_a_region_of_a_non_separable_mode_leaves_the_input_untouched_and_alpha_kept():
    image = Image.new("RGBA", (20, 20), (40, 160, 90, 77))
    out = blended(image, "blend=ff0000&bm=hue&blend-w=10")
    assert image.getpixel((0, 0)) == (40, 160, 90, 77)  # The input is not painted on.
    assert out.getpixel((0, 0))[3] == 77 and out.getpixel((0, 0))[:3] != (40, 160, 90)
    assert out.getpixel((15, 0)) == (40, 160, 90, 77)  # Outside the region.
    whole = blended(image, "blend=ff0000&bm=saturation")
    assert whole.mode == "RGBA" and whole.getpixel((5, 5))[3] == 77


def test_nothing_to_do_is_the_same_image():
    image = photo()
    assert blended(image, "blend-mode=multiply") is image
    assert blended(image, "blend=00ff0000") is image  # A transparent colour.
    assert params_parse("blend=00ff0000&bm=multiply").canonical() == params_parse("").canonical()


def test_blend_over_http(client, source):
    plain = Image.open(io.BytesIO(client.get(f"/render/{source.slug}/astronaut.jpg?w=64&fm=png").getvalue()))
    answer = client.get(f"/render/{source.slug}/astronaut.jpg?w=64&fm=png&blend=ff0000&bm=multiply")
    out = np.asarray(Image.open(io.BytesIO(answer.getvalue())).convert("RGB"))
    assert answer.status_code == 200
    assert np.array_equal(out[..., 0], np.asarray(plain.convert("RGB"))[..., 0]) and out[..., 1:].max() == 0


# --- An image as the blend: the same gate as a mark ------------------------------------------------

def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_an_image_of_the_source_blended_in_multiply(client, source):
    url = f"/render/{source.slug}/astronaut.jpg?w=64&h=64&fit=crop&fm=png"
    base = np.asarray(Image.open(io.BytesIO(body(client.get(url)))).convert("RGB"), dtype=np.float32)
    layer = np.asarray(Image.open(io.BytesIO(body(client.get(f"/render/{source.slug}/chelsea.png?w=64&h=64&fit=crop"
                                                             "&fm=png")))).convert("RGB"), dtype=np.float32)
    answer = client.get(f"{url}&blend=chelsea.png&blend-size=inherit&bm=multiply")
    assert answer.status_code == 200, body(answer)
    out = np.asarray(Image.open(io.BytesIO(body(answer))).convert("RGB"), dtype=np.float32)
    assert np.abs(out - base * layer / 255).mean() < 3  # Multiply, pixel by pixel.


def test_an_image_blend_that_is_a_rendering_url_is_rendered_with_its_own_parameters(client, source):
    from urllib.parse import quote

    blend = quote("chelsea.png?w=20&h=20&fit=crop&monochrome=00ff00", safe="")
    answer = client.get(f"/render/{source.slug}/astronaut.jpg?w=64&fm=png&blend={blend}&bm=normal")
    assert answer.status_code == 200, body(answer)
    out = np.asarray(Image.open(io.BytesIO(body(answer))).convert("RGB"), dtype=int)
    corner = out[:20, :20]
    assert (corner[..., 1] >= corner[..., 0]).all() and (corner[..., 1] >= corner[..., 2]).all()  # Green-toned.
    assert not (out[30:, 30:, 1] >= out[30:, 30:, 0]).all()  # The rest is the photo.


def test_an_image_blend_passes_the_marks_gate(client, source):
    from tests.factories import AccountFactory, SourceFactory

    stranger = SourceFactory(account=AccountFactory(slug="stranger"), slug="stranger-photos")
    other = client.get(f"/render/{source.slug}/astronaut.jpg?blend=http://testserver/render/{stranger.slug}/"
                       "astronaut.jpg%3Fw%3D30")
    assert other.status_code == 400 and "blend's rendering URL must name a source of the same account" in (
        other.json()["error"]["message"])
    loop = client.get(f"/render/{source.slug}/astronaut.jpg?w=50&blend=astronaut.jpg%3Fw%3D20")
    assert loop.status_code == 400 and loop.json()["error"]["code"] == "mark_loop"
    scheme = client.get(f"/render/{source.slug}/astronaut.jpg?blend=file:///etc/passwd")
    assert scheme.status_code == 400 and "blend must be an http(s) URL" in scheme.json()["error"]["message"]
    # An image on the web is fetched under the origin rules: loopback is refused.
    private = client.get(f"/render/{source.slug}/astronaut.jpg?w=50&blend=http://127.0.0.1:9/x.png")
    assert private.status_code in (400, 403, 502), body(private)


def test_non_separable_modes_with_a_large_image_are_bounded_before_the_work(client, source):
    answer = client.get(f"/render/{source.slug}/astronaut.jpg?w=2000&blend=chelsea.png&bs=inherit&bm=hue&fm=jpg")
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "blend_too_large"
    small = client.get(f"/render/{source.slug}/astronaut.jpg?w=300&blend=chelsea.png&bs=inherit&bm=hue&fm=jpg")
    assert small.status_code == 200


@pytest.mark.parametrize("mode", ["overlay", "hue"])
def test_the_worst_case_at_50_megapixels_is_bounded(mode):
    """A separable mode is a table per channel; a non-separable one per-pixel maths, in bands."""
    code = f"""
import resource, time, django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings"); django.setup()
from PIL import Image
from rendering.operations.blend import STAGE
from rendering.params import params_parse
from rendering.stage import StageContext
image = Image.effect_noise((8192, 6104), 64).convert("RGB")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.process_time()
STAGE.apply(image, params_parse("blend=ff8000&bm={mode}"), StageContext())
print(time.process_time() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    cpu, grown = float(out[0]), float(out[1])
    assert cpu < 3.0 and grown < 600, (cpu, grown)
