"""palette, colors and prefix (imgix's color-palette parameters): the rendered image's colours as a
CSS stylesheet or a JSON document, in place of the image."""

import io
import json
import resource
import time

import numpy as np
import pytest
from PIL import Image

from rendering.operations.palette import STAGE, palette_document
from rendering.params import params_parse

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 160, 0)


def stripes(*parts) -> Image.Image:
    """An image of vertical stripes: (colour, width) each, 100 high."""
    image = Image.new("RGB", (sum(width for _, width in parts), 100))
    x = 0
    for rgb, width in parts:
        image.paste(rgb, (x, 0, x + width, 100))
        x += width
    return image


def document(image, query):
    body, content_type = palette_document(image, params_parse(query))
    return (json.loads(body) if content_type == "application/json" else body.decode()), content_type


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_default_set_is_the_most_frequent_colours_first():
    image = stripes((BLUE, 30), (RED, 60), (GREEN, 10))
    palette, content_type = document(image, "palette=json&colors=3")
    assert content_type == "application/json"
    assert [c["hex"] for c in palette["colors"]] == ["#ff0000", "#0000ff", "#00a000"]
    assert palette["colors"][0] == {"red": 1.0, "green": 0.0, "blue": 0.0, "hex": "#ff0000"}
    assert palette["colors"][2]["green"] == 0.627451  # 160/255, six significant digits as imgix writes.
    # colors sets the size of the default set.
    assert [c["hex"] for c in document(image, "palette=json&colors=1")[0]["colors"]] == ["#ff0000"]
    assert document(image, "palette=json&colors=0")[0]["colors"] == []
    assert len(document(stripes(*[((i * 10, 255 - i * 10, i), 5) for i in range(20)]), "palette=json")[0][
        "colors"]) == 6  # The default is six.


def test_average_luminance_is_the_images_mean_luma():
    assert document(Image.new("RGB", (50, 50), "white"), "palette=json")[0]["average_luminance"] == 1.0
    assert document(Image.new("RGB", (50, 50), "black"), "palette=json")[0]["average_luminance"] == 0.0
    half = stripes(((255, 255, 255), 50), ((0, 0, 0), 50))
    assert document(half, "palette=json")[0]["average_luminance"] == pytest.approx(0.5, abs=0.01)


def test_the_dominance_set_names_vivid_and_muted_colours():
    image = stripes((RED, 40), ((60, 60, 75), 40), ((250, 200, 200), 20))
    dominant = document(image, "palette=json")[0]["dominant_colors"]
    assert dominant["vibrant"]["hex"] == "#ff0000"  # Saturated, mid lightness.
    assert dominant["muted_dark"]["hex"] == "#3c3c4b"  # Greyish and dark.
    assert "vibrant" not in document(Image.new("RGB", (40, 40), (128, 128, 128)), "palette=json")[0]["dominant_colors"]


def test_transparent_pixels_are_not_colours_of_the_image():
    image = Image.new("RGBA", (100, 100), (255, 255, 0, 0))  # Yellow, but invisible.
    image.paste((0, 0, 255, 255), (0, 0, 50, 100))
    palette = document(image, "palette=json&colors=4")[0]
    assert [c["hex"] for c in palette["colors"]] == ["#0000ff"]
    assert document(Image.new("LA", (20, 20), (0, 0)), "palette=json")[0] == {
        "colors": [], "average_luminance": 0.0, "dominant_colors": {}}


def test_css_has_a_foreground_and_a_background_class_per_colour_then_white_black_and_the_named():
    css, content_type = document(stripes((RED, 60), (BLUE, 40)), "palette=css&colors=2&prefix=frog")
    assert content_type == "text/css"
    lines = css.splitlines()
    assert lines[:8] == [
        ".frog-fg-1 { color:#ff0000 !important; }", ".frog-bg-1 { background-color:#ff0000 !important; }",
        ".frog-fg-2 { color:#0000ff !important; }", ".frog-bg-2 { background-color:#0000ff !important; }",
        ".frog-fg-ex-1 { color:#ffffff !important; }", ".frog-bg-ex-1 { background-color:#ffffff !important; }",
        ".frog-fg-ex-2 { color:#000000 !important; }", ".frog-bg-ex-2 { background-color:#000000 !important; }",
    ]
    assert ".frog-fg-vibrant { color:#ff0000 !important; }" in lines
    assert document(Image.new("RGB", (4, 4), RED), "palette=css")[0].startswith(".image-fg-1 ")


@pytest.mark.parametrize("value", ["x{}body{background:url(//evil)}", "a b", "1abc", "--x", "a" * 65, "é"])
def test_a_prefix_that_is_not_a_class_name_keeps_the_default(value):
    assert params_parse(f"palette=css&prefix={value}").prefix == "image"


def test_parsing_clamps_and_ignores_as_imgix_does():
    assert params_parse("palette=json&colors=99").colors == 16
    assert params_parse("palette=json&colors=-2").colors == 0
    assert params_parse("palette=json&colors=abc").colors == 6
    assert params_parse("palette=JSON").palette == "json"
    assert params_parse("palette=xml").palette == ""
    assert STAGE.fields == {"palette": "", "colors": 6, "prefix": "image"}


def test_the_cache_key_follows_what_the_document_says():
    key = lambda q: params_parse(q).canonical()
    assert key("palette=css") != key("palette=json") != key("")
    assert key("palette=css&colors=3") != key("palette=css")
    assert key("palette=css&prefix=frog") != key("palette=css")
    # prefix only names CSS classes; colors, prefix and the image's format and quality change no
    # document when there is no palette, or in a JSON one.
    assert key("palette=json&prefix=frog") == key("palette=json")
    assert key("colors=3&prefix=frog") == key("")
    assert key("palette=json&fm=webp&q=20") == key("palette=json")
    # The palette wins over fm=json (the source's metadata), whose key is its own.
    assert key("palette=json&fm=json") == key("palette=json") != key("fm=json")


def test_the_palette_over_http_is_of_the_rendered_image(client, source):
    rendered = client.get(f"/render/{source.slug}/chelsea.png?w=120&sepia=80&fm=png")
    image = Image.open(io.BytesIO(body_of(rendered)))
    response = client.get(f"/render/{source.slug}/chelsea.png?w=120&sepia=80&palette=json&colors=5")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    served = json.loads(body_of(response))
    assert served == json.loads(palette_document(image, params_parse("palette=json&colors=5"))[0])
    # Not the palette of the source: the stages ran first.
    plain = json.loads(body_of(client.get(f"/render/{source.slug}/chelsea.png?w=120&palette=json&colors=5")))
    assert plain["colors"] != served["colors"]
    css = client.get(f"/render/{source.slug}/chelsea.png?w=120&palette=css&prefix=cat")
    assert css.status_code == 200 and css["Content-Type"] == "text/css"
    assert body_of(css).decode().startswith(".cat-fg-1 { color:#")
    again = client.get(f"/render/{source.slug}/chelsea.png?w=120&palette=css&prefix=cat")
    assert again["ETag"] == css["ETag"] and body_of(again) == body_of(css)


def test_a_palette_of_a_watermarked_render_includes_the_mark(client, source):
    query = "w=200&h=200&fit=crop&mark=astronaut.jpg%3Fw%3D150%26h%3D150%26fit%3Dcrop&palette=json&colors=16"
    marked = json.loads(body_of(client.get(f"/render/{source.slug}/chelsea.png?{query}")))
    plain = json.loads(body_of(client.get(f"/render/{source.slug}/chelsea.png?w=200&h=200&fit=crop&palette=json"
                                          "&colors=16")))
    assert marked["colors"] != plain["colors"]


def test_the_worst_case_is_bounded():
    """A 50-megapixel RGBA render (the output ceiling's order): the palette is measured on a copy of
    at most SAMPLE_SIZE on its long side."""
    noise = np.random.default_rng(1).integers(0, 256, (7072, 7072, 4), dtype=np.uint8)
    image = Image.fromarray(noise, "RGBA")
    del noise
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    body, _ = palette_document(image, params_parse("palette=css&colors=16"))
    elapsed = time.process_time() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert body.count(b"-fg-") >= 16 + 2
    assert elapsed < 3.0 and grown < 600, (elapsed, grown)
