"""The watermark's mark-base (the URL a relative mark is resolved against) and mark-if-min-width /
mark-if-min-height (the mark only on an output at least that large)."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from rendering.operations.mark import STAGE
from rendering.params import params_parse
from rendering.stage import StageContext
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db

RED = (255, 0, 0)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def pixels(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body_of(response))).convert("RGB"), dtype=np.int16)


def red_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), RED).save(out, "PNG")
    return out.getvalue()


# --- mark-if-min-width / mark-if-min-height ---------------------------------------------------------

@pytest.mark.parametrize("query, drawn", [
    ("mark-if-min-width=200", True),  # Equal to the width: drawn.
    ("mark-if-min-width=201", False),
    ("mark-if-min-height=100", True),
    ("mark-if-min-height=101", False),
    ("mark-if-min-width=150&mark-if-min-height=150", False),  # Both must hold.
    ("mark-if-min-width=0", True),
])
def test_the_mark_is_drawn_only_on_an_output_at_least_that_large(query, drawn):
    base = Image.new("RGB", (200, 100), (255, 255, 255))
    p = params_parse(f"mark=m.png&mark-pad=0&{query}")
    out = STAGE.apply(base, p, StageContext(mark=Image.new("RGBA", (20, 10), (*RED, 255))))
    assert (out.getpixel((195, 95)) == RED) is drawn
    if not drawn:
        assert out is base
    assert STAGE.size(base.size, p, StageContext()) == out.size


def test_mark_if_min_parses_and_keys_the_cache():
    assert params_parse("mark=m.png&mark-if-min-width=-5").mark_if_min_width == 0
    assert params_parse("mark=m.png&mark-if-min-width=99999").mark_if_min_width == 8193  # Never.
    assert params_parse("mark=m.png&mark-if-min-height=abc").mark_if_min_height is None
    key = lambda q: params_parse(q).canonical()
    assert key("mark=m.png&mark-if-min-width=300") != key("mark=m.png")
    assert key("mark=m.png&mark-if-min-width=0") == key("mark=m.png")  # 0: always drawn.
    assert key("mark-if-min-width=300") == key("")  # Nothing to draw.


def test_mark_if_min_over_http_follows_the_rendered_size(client, source):
    mark = "mark=astronaut.jpg%3Fw%3D40&mark-pad=0&fm=png"
    plain = pixels(client.get(f"/render/{source.slug}/chelsea.png?w=300&fm=png"))
    small = pixels(client.get(f"/render/{source.slug}/chelsea.png?w=300&{mark}&mark-if-min-width=301"))
    large = pixels(client.get(f"/render/{source.slug}/chelsea.png?w=301&{mark}&mark-if-min-width=301"))
    assert np.array_equal(small, plain)  # 300 wide: below the minimum, no mark.
    assert large.shape[1] == 301
    unmarked = pixels(client.get(f"/render/{source.slug}/chelsea.png?w=301&fm=png"))
    assert np.abs(large[-40:, -40:] - unmarked[-40:, -40:]).mean() > 20  # The astronaut, bottom right.
    # The height is the rendered one (w=300 of the 451×300 photo is 200 high).
    tall = pixels(client.get(f"/render/{source.slug}/chelsea.png?w=300&{mark}&mark-if-min-height=200"))
    assert not np.array_equal(tall, plain)


# --- mark-base --------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, mark", [
    ("mark-base=https://assets.example/watermarks/&mark=logo.png", "https://assets.example/watermarks/logo.png"),
    ("mb=https://assets.example/watermarks/&mark=logo.png?w=10", "https://assets.example/watermarks/logo.png?w=10"),
    ("markbase=https://assets.example/watermarks&mark=logo.png", "https://assets.example/logo.png"),  # RFC 3986.
    ("mark-base=https://assets.example/&mark=https://other.example/x.png", "https://other.example/x.png"),
    ("mark-base=marks/&mark=logo.png", "marks/logo.png"),
    ("mark-base=https://assets.example/", ""),  # No mark: nothing to resolve.
])
def test_a_relative_mark_is_resolved_against_mark_base(query, mark):
    assert params_parse(query).mark == mark


def test_mark_base_keys_the_cache_through_the_mark_it_resolves():
    key = lambda q: params_parse(q).canonical()
    assert key("mark-base=marks/&mark=logo.png") == key("mark=marks/logo.png")
    assert key("mark-base=marks/&mark=logo.png") != key("mark=logo.png")
    assert key("mark-base=https://a.example/&mark=logo.png") != key("mark-base=https://b.example/&mark=logo.png")


def test_mark_base_on_the_source_draws_the_same_as_the_whole_path(client, source, origin_root):
    (origin_root / "photos" / "marks").mkdir()
    shutil.copy(FIXTURES / "astronaut.jpg", origin_root / "photos" / "marks" / "logo.jpg")
    based = client.get(f"/render/{source.slug}/chelsea.png?w=200&mark-base=marks/&mark=logo.jpg%3Fw%3D30&fm=png")
    whole = client.get(f"/render/{source.slug}/chelsea.png?w=200&mark=marks/logo.jpg%3Fw%3D30&fm=png")
    plain = client.get(f"/render/{source.slug}/chelsea.png?w=200&fm=png")
    assert based.status_code == 200 and based["ETag"] == whole["ETag"]
    assert not np.array_equal(pixels(based), pixels(plain))


def test_mark_base_on_the_web_is_fetched_as_the_whole_url_is(client, source, httpserver, settings):
    settings.ORIGIN_ALLOW_LOOPBACK = True  # The test's server listens on loopback.
    httpserver.expect_request("/watermarks/red.png").respond_with_data(red_png(), content_type="image/png")
    base = httpserver.url_for("/watermarks/")
    based = client.get(f"/render/{source.slug}/chelsea.png?w=200&mark-base={base}&mark=red.png&mark-pad=0&fm=png")
    assert based.status_code == 200
    assert tuple(pixels(based)[-1, -1]) == RED


@pytest.mark.parametrize("base, mark", [
    ("file:///etc/", "passwd"),  # Another scheme.
    ("../", "chelsea.png"),  # Out of the source: resolves to the source's own file, as mark=chelsea.png.
    ("a/", "../../../etc/passwd"),
])
def test_mark_base_reaches_nothing_mark_could_not(client, source, base, mark):
    from urllib.parse import quote, urljoin

    based = client.get(f"/render/{source.slug}/astronaut.jpg?w=100&mark-base={quote(base)}&mark={quote(mark)}")
    whole = client.get(f"/render/{source.slug}/astronaut.jpg?w=100&mark={quote(urljoin(base, mark), safe='')}")
    assert based.status_code == whole.status_code
    if whole.status_code == 200:
        assert based["ETag"] == whole["ETag"]


def test_a_private_address_through_mark_base_is_refused_as_it_is_through_mark(client, source, httpserver,
                                                                              settings):
    settings.ORIGIN_ALLOW_LOOPBACK = False  # Production: loopback is a private network.
    httpserver.expect_request("/red.png").respond_with_data(red_png(), content_type="image/png")
    based = client.get(f"/render/{source.slug}/astronaut.jpg?w=100&mark-base={httpserver.url_for('/')}"
                       "&mark=red.png")
    whole = client.get(f"/render/{source.slug}/astronaut.jpg?w=100&mark={httpserver.url_for('/red.png')}")
    assert based.status_code == whole.status_code and based.status_code >= 400
    assert based.json()["error"]["code"] == whole.json()["error"]["code"]
    assert not httpserver.log  # Never fetched.


@pytest.mark.parametrize("inner", ["palette%3Djson", "palette%3Dcss%26w%3D10", "fm%3Djson"])
def test_a_mark_that_answers_no_image_is_a_400(client, source, inner):
    response = client.get(f"/render/{source.slug}/chelsea.png?w=100&mark=astronaut.jpg%3F{inner}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_mark"
