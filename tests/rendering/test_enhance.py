"""auto=enhance: a flat photo gains contrast and saturation; hues and alpha are kept; the cache
key tells it apart."""

import io

import numpy as np
from PIL import Image

from rendering.operations.enhance import STAGE
from rendering.params import params_parse
from rendering.stage import StageContext


def flat_photo():
    """The astronaut squeezed into 100–160: a dull, low-contrast picture."""
    image = Image.open("demo/origin/astronaut.jpg").convert("RGB").resize((96, 96))
    return image.point(lambda v: 100 + v * 60 // 255)


def test_a_flat_photo_is_stretched_to_the_range():
    image = flat_photo()
    out = np.asarray(STAGE.apply(image, params_parse("auto=enhance"), StageContext()).convert("L"))
    before = np.asarray(image.convert("L"))
    assert np.percentile(out, 99) - np.percentile(out, 1) > 1.5 * (np.percentile(before, 99) - np.percentile(before, 1))


def test_saturation_rises_and_hue_is_kept():
    image = Image.new("RGB", (8, 8), (150, 110, 100))
    image.paste((90, 130, 140), (0, 0, 4, 8))
    out = STAGE.apply(image, params_parse("auto=enhance"), StageContext())
    for x in (1, 6):
        r, g, b = image.getpixel((x, 1))
        r2, g2, b2 = out.getpixel((x, 1))
        assert (max(r2, g2, b2) - min(r2, g2, b2)) > (max(r, g, b) - min(r, g, b))  # More saturated.
        assert np.argmax((r, g, b)) == np.argmax((r2, g2, b2))  # The same dominant channel.


def test_a_full_range_photo_changes_little():
    image = Image.open("demo/origin/astronaut.jpg").convert("RGB").resize((96, 96))
    out = STAGE.apply(image, params_parse("auto=enhance"), StageContext())
    assert np.abs(np.asarray(out, dtype=int) - np.asarray(image, dtype=int)).mean() < 12


def test_alpha_is_kept_and_the_transparent_part_not_measured():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image.paste((120, 130, 140, 255), (0, 0, 5, 10))
    image.paste((140, 150, 160, 255), (5, 0, 10, 5))
    out = STAGE.apply(image, params_parse("auto=enhance"), StageContext())
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(image)[..., 3])
    # Stretched apart, as the two opaque tones alone are measured (gain 2 at most).
    assert out.getpixel((6, 1))[0] - out.getpixel((1, 1))[0] >= 2 * (140 - 120) - 2


def test_nothing_to_do_without_it_and_the_key_tells_it_apart():
    image = flat_photo()
    assert STAGE.apply(image, params_parse("auto=format"), StageContext()) is image
    assert params_parse("auto=enhance").canonical("webp") != params_parse("").canonical("webp")
    assert params_parse("auto=enhance,format").canonical("webp") == params_parse("auto=enhance").canonical("webp")


def test_auto_enhance_over_http(client, source):
    plain = client.get(f"/render/{source.slug}/astronaut.jpg?w=64&fm=png")
    enhanced = client.get(f"/render/{source.slug}/astronaut.jpg?w=64&fm=png&auto=enhance")
    assert enhanced.status_code == 200 and enhanced.getvalue() != plain.getvalue()
    assert Image.open(io.BytesIO(enhanced.getvalue())).size == (64, 64)
