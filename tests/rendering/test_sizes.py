"""Exact sizes: the side a URL names is exactly that many pixels (after dpr; with pad, the padded
canvas), the other follows the aspect ratio rounded once, at every width a srcset may ask for;
and every width of js-core's default srcset is served, on a cutout and with auto=format."""

import io
import math
import time
from fractions import Fraction

import pytest
from PIL import Image

from imaging.decode import image_decode, image_geometry
from rendering.models import Render
from rendering.operations.pad import pad_apply, pad_size
from rendering.operations.resize import asked_size, output_size, resize_apply
from rendering.params import MAX_DIMENSION, params_parse
from rendering.services import _decode_size


def js_core_widths(min_width=100, max_width=8192, tolerance=0.08) -> list[int]:
    """ImgixClient.targetWidths of @imgix/js-core, its defaults: the running width is kept
    unrounded, each one pushed as Math.round of it, then the maximum."""
    widths, current = [], float(min_width)
    while current < max_width:
        widths.append(math.floor(current + 0.5))
        current *= 1 + tolerance * 2
    if widths[-1] < max_width:
        widths.append(max_width)
    return widths


SRCSET = js_core_widths()
# Landscape, portrait, square, the demo landscape, a panorama, the test cat, a tall strip.
SIZES = [(640, 427), (427, 640), (512, 512), (1200, 799), (3000, 1000), (451, 300), (300, 1333)]


def test_js_core_widths_are_its_own():
    assert SRCSET[:12] == [100, 116, 135, 156, 181, 210, 244, 283, 328, 380, 441, 512]
    assert SRCSET[-4:] == [5500, 6380, 7401, 8192] and len(SRCSET) == 31


def expected(size, w: int, dpr: int, pad: int) -> tuple[int, int]:
    """imgix's arithmetic, exactly: w (w=1: the whole width, a ratio) × dpr is the canvas's
    width; the image inside the margins is that less the margins wide, its height that width at
    the image's aspect ratio, rounded once (half to even, as Python rounds)."""
    width, height = size
    canvas_w = (width if w == 1 else w) * dpr
    margin = pad * dpr
    inner_w = max(1, canvas_w - 2 * margin)
    inner_h = max(1, round(Fraction(inner_w * height, width)))
    return canvas_w, inner_h + 2 * margin


def query(w: int, dpr: int, pad: int) -> str:
    return f"w={w}" + (f"&dpr={dpr}" if dpr != 1 else "") + (f"&pad={pad}" if pad else "")


def within_ceilings(canvas, settings) -> bool:
    return max(canvas) <= MAX_DIMENSION and canvas[0] * canvas[1] <= settings.RENDER_MAX_OUTPUT_PIXELS


def served(size, params, max_pixels=None) -> tuple[int, int]:
    return pad_size(output_size(size, params, max_pixels=max_pixels), params, max_pixels=max_pixels)


@pytest.mark.parametrize("pad", [0, 20])
@pytest.mark.parametrize("dpr", [1, 2, 3])
def test_every_width_is_exact(settings, dpr, pad):
    """Every width 1–2000 and every js-core srcset width, on seven aspect ratios: exactly the
    size asked where it is within the output ceilings; over them, scaled down, its aspect kept,
    and the size asked still known (for the X-Render-Capped header)."""
    capped = 0
    for size in SIZES:
        for w in sorted({*range(1, 2001), *SRCSET}):
            params = params_parse(query(w, dpr, pad))
            want = expected(size, w, dpr, pad)
            out = served(size, params)
            if pad and want[0] <= 4 * pad * dpr:
                continue  # The margins leave the image less than its own margins: below.
            assert asked_size(size, params) == want, (size, w, dpr, pad)
            if within_ceilings(want, settings):
                assert out == want, (size, w, dpr, pad)
            else:
                capped += 1
                assert within_ceilings(out, settings) and out[0] < want[0], (size, w, dpr, pad, out)
                inner = (out[0] - 2 * pad * dpr, out[1] - 2 * pad * dpr)
                assert abs(inner[0] / inner[1] - size[0] / size[1]) <= 1.5 * size[0] / size[1] / min(inner), (
                    size, w, dpr, pad, out)
    assert capped > 0 if dpr == 3 or pad == 0 else True


def test_widths_below_two_follow_the_parameter_rules():
    # imgix's w is an integer 2–8192 or a ratio 0–1 (its parameters.json, strict_range): w=1 is
    # the whole width, w=1.4 rounds to the lowest width, 2; w=0.5 half of it.
    for raw, width in [("1", 640), ("1.4", 2), ("0.5", 320), ("2", 2), ("8193", 8192)]:
        assert served((640, 427), params_parse(f"w={raw}&fit=crop&h=100"))[0] == width, raw
    assert served((640, 427), params_parse("w=2")) == (2, 1)


def test_a_pad_wider_than_the_size_still_leaves_a_pixel():
    # pad=20 on w=30: the image is 1 px wide inside 40 px of margins; the canvas grows past w
    # rather than dropping the image.
    out = served((640, 427), params_parse("w=30&pad=20"))
    assert out == (41, 41)


def test_the_named_side_is_exact_in_every_fit_mode(settings):
    for fit in ["clip", "crop", "scale", "fill", "fillmax", "clamp", "max", "min"]:
        for size in SIZES:
            for w in SRCSET[:16]:
                params = params_parse(f"w={w}&fit={fit}")
                out = served(size, params)
                if fit in ("max", "min") and w > size[0]:
                    assert out == size, (fit, size, w)  # Never upscaled.
                else:
                    assert out == expected(size, w, 1, 0), (fit, size, w, out)
                params = params_parse(f"h={w}&fit={fit}")
                if not (fit in ("max", "min") and w > size[1]):
                    assert served(size, params)[1] == w, (fit, size, w)


# --- The pixels: what resize and pad make is what the budget computed ---------------------------------

def jpeg(size) -> bytes:
    out = io.BytesIO()
    # A gradient, so the decoder has something to decode; the size is what matters.
    Image.linear_gradient("L").resize(size).convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos():
    # A 3:2 landscape, a portrait, the demo landscape's size, and a 16:1 panorama whose outputs
    # stay small at every width to 2000.
    return {size: jpeg(size) for size in [(2000, 1333), (1333, 2000), (1200, 799), (8000, 500)]}


class Decodes:
    """The decodes a render would make of one JPEG (services._decode_size → image_decode), each
    reduced scale decoded once: which one a request gets is read from the header (Image.draft)."""

    def __init__(self, data: bytes):
        self.data, self.kept = data, {}

    def at(self, params) -> Image.Image:
        at_least = _decode_size(params, "jpg")
        probe = Image.open(io.BytesIO(self.data))
        probe.draft("RGB", at_least)
        if probe.size not in self.kept:
            self.kept[probe.size] = image_decode(self.data, at_least=at_least)
        return self.kept[probe.size]


def made(image, params, max_pixels=None) -> tuple[int, int]:
    return pad_apply(resize_apply(image, params, max_pixels=max_pixels), params, max_pixels=max_pixels).size


def test_pixels_at_every_width_to_2000(settings, photos):
    """Every width 1–2000 made from JPEG decodes at reduced scale, as a render decodes (the 16:1
    panorama decodes at 1/2, 1/4 or 1/8 for all of them), every 10th from the full decode, and
    a synthetic image every 7th; dpr and pad every 37th: the size made is exactly the size asked."""
    size, data = (8000, 500), photos[(8000, 500)]
    decodes, full = Decodes(data), image_decode(data)
    synthetic = Image.new("RGB", (640, 427), "red")
    for w in range(1, 2001):
        params = params_parse(query(w, 1, 0))
        draft = decodes.at(params)
        # w=1 is the whole width (a ratio): decoded whole.
        assert image_geometry(draft).size == size and (draft.size != size or w == 1)
        assert made(draft, params) == expected(size, w, 1, 0), w
        if w % 10 == 0:
            assert made(full, params) == expected(size, w, 1, 0), w
        if w % 7 == 1:
            assert made(synthetic, params) == expected(synthetic.size, w, 1, 0), w
        if w % 37 == 0:
            for dpr, pad in [(2, 0), (3, 0), (1, 20), (2, 20), (3, 20)]:
                params = params_parse(query(w, dpr, pad))
                want = expected(size, w, dpr, pad)
                out = made(decodes.at(params), params)
                assert out == served(size, params), (w, dpr, pad)
                if within_ceilings(want, settings) and want[0] > 2 * pad * dpr:
                    assert out == want, (w, dpr, pad)


def test_pixels_at_every_srcset_width_on_draft_and_full_decodes(settings, photos):
    """Every js-core width, with dpr 1–3 and pad, made from JPEG decodes at reduced scale and at
    full size, and from a synthetic image: the size made is the size computed, exact within the
    ceilings. The output ceiling is lowered to 0.4 megapixels so that the wide ones, capped, cost
    little: the arithmetic is the same at any ceiling."""
    settings.RENDER_MAX_OUTPUT_PIXELS = 400_000
    exact, capped = 0, 0
    for size in [(2000, 1333), (1333, 2000), (1200, 799)]:
        data = photos[size]
        decodes, full = Decodes(data), image_decode(data)
        synthetic = Image.new("RGB", size, "red")
        combos = [(1, 0), (2, 0), (3, 0), (1, 20), (2, 20), (3, 20)] if size == (2000, 1333) else [(1, 0), (2, 20)]
        for w in SRCSET:
            for dpr, pad in combos:
                params = params_parse(query(w, dpr, pad))
                want = expected(size, w, dpr, pad)
                out = served(size, params)
                images = [decodes.at(params)] + ([full, synthetic] if (dpr, pad) == (1, 0) else [])
                for image in images:
                    assert made(image, params) == out, (size, w, dpr, pad, image.size)
                if within_ceilings(want, settings):
                    exact += 1
                    assert out == want, (size, w, dpr, pad)
                else:
                    capped += 1
    assert len(decodes.kept) > 1 and exact > 50 and capped > 50, (exact, capped)


def test_capped_pixels_are_the_budgets_size(settings):
    """Under an encoder's ceiling (max_pixels): the size made is the size computed, the padded
    canvas within the ceiling, in every fit mode."""
    image = Image.new("RGBA", (451, 300), (200, 30, 30, 255))
    for fit in ["clip", "crop", "scale", "fill", "fillmax", "clamp", "max", "min"]:
        for extra in ["", "&pad=20", "&dpr=3", "&h=900", "&pad=30&dpr=2&h=500"]:
            for w in (1000, 2619, 8192):
                params = params_parse(f"w={w}&fit={fit}{extra}")
                out = served(image.size, params, max_pixels=250_000)
                assert made(image, params, max_pixels=250_000) == out, (fit, extra, w)
                assert out[0] * out[1] <= 250_000, (fit, extra, w, out)


# --- Every width of js-core's default srcset is served, through the endpoint -------------------------

def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def check_srcset(client, url, accept, content_types, size):
    """Each width: 200, the width asked (or, capped, the header saying what was served), the
    aspect ratio kept. Returns the CPU-seconds of the widest."""
    widest = 0.0
    for w in SRCSET:
        started = time.process_time()
        response = client.get(f"{url}&w={w}", HTTP_ACCEPT=accept)
        body = body_of(response)
        cpu = time.process_time() - started
        assert response.status_code == 200, (w, body[:300])
        assert response["Content-Type"] in content_types, (w, response["Content-Type"])
        image = Image.open(io.BytesIO(body))
        want = expected(size, w, 1, 0)
        capped = response.get("X-Render-Capped")
        if capped is None:
            assert image.size == want, (w, image.size)
        else:
            asked, rest = capped.split(" -> ")
            assert asked == f"{want[0]}x{want[1]}" and rest.startswith(f"{image.width}x{image.height} ("), capped
            assert image.width < want[0]
            assert abs(image.width / image.height - size[0] / size[1]) < 2 / image.height, (w, image.size)
        if w == SRCSET[-1]:
            widest = cpu
    return widest


@pytest.mark.django_db
def test_every_srcset_width_of_a_cutout_is_served(client, source, settings):
    from cutouts.services import bg_remove_job_process

    url = "/render/acme-photos/astronaut.jpg?bg-remove=true"
    first = client.get(url)
    assert first.status_code == 202
    bg_remove_job_process(job_id=first.json()["job"])
    cpu = check_srcset(client, url, "*/*", {"image/png"}, (512, 512))
    capped = Render.objects.exclude(capped="").values_list("capped", flat=True)
    # 2449² is the largest square within RENDER_MAX_PNG_PIXELS: widths from 2619 are capped to it.
    assert sorted(capped) == sorted(f"{w}x{w} -> 2449x2449 (RENDER_MAX_PNG_PIXELS)" for w in SRCSET if w > 2449)
    # Again: hits, each still saying it was capped.
    response = client.get(f"{url}&w=8192")
    assert response["X-Render-Capped"] == "8192x8192 -> 2449x2449 (RENDER_MAX_PNG_PIXELS)"
    print(f"\nw=8192 on a cutout, capped to 2449×2449 PNG: {cpu:.2f} CPU-s")


@pytest.mark.django_db
def test_every_srcset_width_of_a_photo_with_auto_format_is_served(client, source, origin_root):
    Image.open("demo/origin/aitzgorri.jpg").save(origin_root / "photos" / "aitzgorri.jpg", quality=90)
    url = "/render/acme-photos/aitzgorri.jpg?auto=format"
    check_srcset(client, url, "image/avif,image/webp,*/*", {"image/avif", "image/webp"}, (1200, 799))
    # AVIF while AVIF's ceiling allows; WebP above it, capped to WebP's.
    response = client.get(f"{url}&w=8192", HTTP_ACCEPT="image/avif,image/webp,*/*")
    assert response["Content-Type"] == "image/webp"
    assert response["X-Render-Capped"].startswith("8192x5455 -> ")
    assert response["X-Render-Capped"].endswith("(RENDER_MAX_WEBP_PIXELS)")
    assert client.get(f"{url}&w=1446", HTTP_ACCEPT="image/avif,image/webp")["Content-Type"] == "image/avif"


@pytest.mark.django_db(transaction=True)
def test_hits_replayed_before_django_say_they_were_capped(source, settings):
    """rendering/hot.py replays the response Django gave: the header is in it, and a hit of a
    capped render found from the database (a new process, the lookup cache cleared) has it too."""
    from django.core.signals import request_started

    from rendering.store import render_lookup_cache_clear
    from tests.rendering.test_hot import call

    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 8 * 1024 * 1024
    settings.RENDER_MAX_OUTPUT_PIXELS = 10_000
    render_lookup_cache_clear()
    calls = []

    def counted(**kwargs):
        calls.append(1)

    request_started.connect(counted)
    try:
        first = call(query="w=200")
        again = call(query="w=200")
        render_lookup_cache_clear()
        from_database = call(query="w=200")
    finally:
        request_started.disconnect(counted)
        render_lookup_cache_clear()
    header = "200x200 -> 100x100 (RENDER_MAX_OUTPUT_PIXELS)"
    assert first[0] == 200 and dict(first[1])["X-Render-Capped"] == header
    assert again == first and len(calls) == 2  # The second was replayed without Django.
    assert dict(from_database[1])["X-Render-Capped"] == header and from_database[2] == first[2]
