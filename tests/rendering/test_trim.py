"""Trim (alpha, color, auto, colorunlessalpha, trim-pad) and pad, on pixels; the product-shot
recipe end to end on the real model; trim and pad in the output budget."""

import io

import numpy as np
import pytest
from PIL import Image

from cutouts.services import bg_remove_job_process
from rendering.budget import Budget, render_budget_check
from rendering.operations.bg import bg_apply
from rendering.operations.pad import pad_apply, pad_size
from rendering.operations.resize import output_size, resize_apply
from rendering.operations.trim import trim_apply, trim_box
from rendering.params import params_parse

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
CLEAR = (0, 0, 0, 0)


def trim(image, query):
    return trim_apply(image, params_parse(query))


def subject(size=(200, 100), box=(50, 20, 90, 70), color=(*RED, 255), background=CLEAR, mode="RGBA"):
    """`background` everywhere but `box`."""
    image = Image.new(mode, size, background if mode == "RGBA" else background[:3])
    image.paste(color if mode == "RGBA" else color[:3], box)
    return image


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- trim=alpha ---------------------------------------------------------------------------------------

def test_alpha_trims_to_the_opaque_pixels():
    image = subject()
    trimmed = trim(image, "trim=alpha")
    assert trimmed.size == (40, 50)
    assert np.all(np.asarray(trimmed) == (*RED, 255))


def test_alpha_threshold_ignores_faint_pixels():
    image = subject()
    image.paste((0, 255, 0, 10), (0, 0, 200, 5))  # A faint halo along the top.
    assert trim(image, "trim=alpha").size == (200, 70)  # alpha 10 > 0: kept by default.
    assert trim(image, "trim=alpha&trim-alpha=10").size == (40, 50)  # Only alpha over 10 counts.
    assert trim(image, "trim=alpha&trim-alpha=9").size == (200, 70)


def test_alpha_on_an_opaque_image_or_a_transparent_one_keeps_its_size():
    opaque = Image.new("RGB", (30, 20), RED)
    assert trim(opaque, "trim=alpha") is opaque
    empty = Image.new("RGBA", (30, 20), CLEAR)
    assert trim(empty, "trim=alpha") is empty  # Would trim to nothing: rendered as it is.
    assert trim(subject(), "trim=alpha&trim-alpha=255").size == (200, 100)  # Nothing is over 255.


# --- trim=color ---------------------------------------------------------------------------------------

def test_color_trims_the_colour_given_or_the_top_left_pixels():
    image = subject(background=(*WHITE, 255), mode="RGB")
    assert trim_box(image, params_parse("trim=color&trim-color=fff")) == (50, 20, 90, 70)
    assert trim_box(image, params_parse("trim=color&trim-color=white")) == (50, 20, 90, 70)
    assert trim_box(image, params_parse("trim=color")) == (50, 20, 90, 70)  # Top-left is white.
    trimmed = trim(image, "trim=color")
    assert trimmed.size == (40, 50) and np.all(np.asarray(trimmed) == RED)
    # Another colour: nothing matches it at the edges, nothing is trimmed.
    assert trim(image, "trim=color&trim-color=000") is image


def test_color_tolerance_is_the_largest_channel_difference():
    image = subject(background=(*WHITE, 255), mode="RGB")
    image.paste((245, 250, 255), (0, 0, 200, 10))  # 10 off white in red, 5 in green.
    image.paste((255, 255, 244), (0, 90, 200, 100))  # 11 off in blue.
    assert trim_box(image, params_parse("trim=color&trim-color=fff")) == (0, 0, 200, 100)
    assert trim_box(image, params_parse("trim=color&trim-color=fff&trim-tol=10")) == (0, 20, 200, 100)
    assert trim_box(image, params_parse("trim=color&trim-color=fff&trim-tol=11")) == (50, 20, 90, 70)


def test_color_counts_every_fully_transparent_pixel_as_one_colour():
    image = subject()
    image.paste((12, 200, 7, 0), (0, 0, 50, 100))  # Transparent, with other RGB underneath.
    assert trim_box(image, params_parse("trim=color&trim-color=transparent")) == (50, 20, 90, 70)
    # Half-transparent white is compared premultiplied: 128,128,128,128 against itself.
    half = subject(background=(255, 255, 255, 128))
    assert trim_box(half, params_parse("trim=color&trim-color=80ffffff")) == (50, 20, 90, 70)
    assert trim_box(half, params_parse("trim=color&trim-color=fff")) == (0, 0, 200, 100)
    assert trim_box(half, params_parse("trim=color&trim-color=fff&trim-tol=127")) == (50, 20, 90, 70)


def test_color_on_a_uniform_image_keeps_its_size():
    image = Image.new("RGB", (30, 20), BLUE)
    assert trim(image, "trim=color") is image


# --- trim=auto ------------------------------------------------------------------------------------------

def noisy_border(seed=1):
    """A product on an off-white border with JPEG-like noise (±4)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(250, 2, (120, 160, 3)), 0, 255).astype(np.uint8)
    pixels[30:100, 40:110] = (20, 60, 160)
    return Image.fromarray(pixels, "RGB")


def test_auto_trims_a_noisy_uniform_border():
    image = noisy_border()
    assert trim_box(image, params_parse("trim=auto")) == (40, 30, 110, 100)
    # trim=color with no tolerance finds the noise, not a border.
    assert trim(image, "trim=color").size != (70, 70)


def test_auto_thresholds_are_trim_md_and_trim_sd():
    image = noisy_border()
    assert trim(image, "trim=auto&trim-sd=0.5") is image  # The noise is over that deviation.
    # A band 15 off the border's colour, evenly: border only when trim-md allows it.
    pixels = np.full((60, 60, 3), 200, np.uint8)
    pixels[5:10] = 215
    pixels[20:40, 20:40] = 0
    banded = Image.fromarray(pixels, "RGB")
    assert trim_box(banded, params_parse("trim=auto")) == (20, 5, 40, 40)
    assert trim_box(banded, params_parse("trim=auto&trim-md=15")) == (20, 20, 40, 40)


def test_auto_needs_four_corners_that_agree():
    image = noisy_border()
    image.paste(RED, (150, 110, 160, 120))  # One corner is the subject's.
    assert trim(image, "trim=auto") is image


def test_auto_on_a_cutout_trims_the_transparent_border():
    assert trim_box(subject(), params_parse("trim=auto")) == (50, 20, 90, 70)


def test_colorunlessalpha_picks_by_transparency():
    cutout = subject()
    cutout.paste((*WHITE, 255), (0, 0, 200, 3))  # An opaque white top edge.
    # Transparent pixels: trimmed by alpha, so the white edge (opaque) stays.
    assert trim_box(cutout, params_parse("trim=colorunlessalpha")) == (0, 0, 200, 70)
    photo = subject(background=(*WHITE, 255), mode="RGB")
    assert trim_box(photo, params_parse("trim=colorunlessalpha")) == (50, 20, 90, 70)


# --- trim-pad -------------------------------------------------------------------------------------------

def test_trim_pad_keeps_pixels_around_the_box_within_the_image():
    image = subject()
    assert trim_box(image, params_parse("trim=alpha&trim-pad=5")) == (45, 15, 95, 75)
    assert trim_box(image, params_parse("trim=alpha&trim-pad=30")) == (20, 0, 120, 100)  # Clamped at the top/bottom.
    assert trim_box(image, params_parse("trim=alpha&trim-pad=-10")) == (60, 30, 80, 60)
    assert trim_box(image, params_parse("trim=alpha&trim-pad=-100")) == (70, 45, 71, 46)  # At least 1×1.
    kept = trim(image, "trim=alpha&trim-pad=5")
    assert kept.getpixel((0, 0)) == CLEAR and kept.getpixel((5, 5)) == (*RED, 255)


# --- pad ------------------------------------------------------------------------------------------------

def render_stages(image, query):
    """resize → pad → bg, as the stages run them."""
    params = params_parse(query)
    return bg_apply(pad_apply(resize_apply(image, params), params), params.bg)


def test_pad_without_a_size_adds_to_the_image():
    image = Image.new("RGB", (30, 20), RED)
    padded = render_stages(image, "pad=5&pad-left=10")
    assert padded.size == (30 + 10 + 5, 20 + 5 + 5)
    assert padded.mode == "RGBA" and padded.getpixel((0, 0)) == (255, 255, 255, 0)  # No bg: transparent.
    assert padded.getpixel((10, 5))[:3] == RED and padded.getpixel((9, 5))[3] == 0
    assert padded.getpixel((39, 24))[:3] == RED and padded.getpixel((40, 24))[3] == 0


def test_pad_is_coloured_by_bg_and_keeps_the_image_exact():
    image = Image.new("RGB", (30, 20), RED)
    padded = render_stages(image, "pad=4&bg=00f")
    assert padded.mode == "RGB" and padded.size == (38, 28)
    assert padded.getpixel((0, 0)) == BLUE and padded.getpixel((3, 27)) == BLUE
    assert np.all(np.asarray(padded)[4:24, 4:34] == RED)
    # A cutout: bg fills its own transparency and the margins alike.
    cutout = render_stages(subject(), "pad=4&bg=00f")
    assert cutout.getpixel((0, 0)) == BLUE and cutout.getpixel((10, 10)) == BLUE
    assert cutout.getpixel((4 + 60, 4 + 40)) == RED
    # A translucent bg keeps partial alpha in the margins.
    assert render_stages(image, "pad=4&bg=800000ff").getpixel((0, 0)) == (0, 0, 255, 128)


def test_pad_with_w_and_h_is_inside_the_box():
    image = Image.new("RGB", (300, 150), RED)  # 2:1.
    filled = render_stages(image, "w=800&h=800&fit=fill&pad=40&bg=fff")
    assert filled.size == (800, 800) and filled.mode == "RGB"
    pixels = np.asarray(filled)
    red = np.argwhere(np.all(pixels == RED, axis=-1))
    (top, left), (bottom, right) = red.min(axis=0), red.max(axis=0)
    assert (left, right) == (40, 759)  # 720 wide, touching the margin.
    assert top - 40 == 759 - bottom and bottom - top + 1 == 360  # Centred in 720×720.
    assert render_stages(image, "w=800&h=800&pad=40").size == (800, 440)  # clip: 720×360 plus margins.
    assert render_stages(image, "w=800&h=800&fit=crop&pad=40").size == (800, 800)
    assert render_stages(Image.new("RGB", (300, 200)), "w=300&pad=10").size == (300, 207)  # 280×187 inside.
    assert render_stages(image, "w=400&h=400&fit=fill&pad=20&dpr=2").size == (800, 800)


def test_pad_in_a_jpeg_without_bg_is_white():
    from rendering.encode import image_encode

    padded = render_stages(Image.new("RGB", (30, 20), RED), "pad=6")
    data, _ = image_encode(padded, "jpg", params_parse("pad=6&q=95"))
    flat = Image.open(io.BytesIO(data)).convert("RGB")
    assert flat.size == (42, 32) and all(c > 245 for c in flat.getpixel((1, 1)))


def test_padded_canvas_keeps_to_the_output_ceiling(settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 10_000
    image = Image.new("RGB", (100, 100), RED)
    padded = render_stages(image, "pad=50")
    assert padded.width * padded.height <= 10_000 and padded.width == padded.height
    tiny = render_stages(Image.new("RGB", (10, 10), RED), "pad=8192")  # Margins and image shrink together.
    assert max(tiny.size) <= 100 and tiny.getpixel((tiny.width // 2, tiny.height // 2))[:3] == RED


def test_output_size_counts_the_padding(settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 50_000
    queries = ["pad=10", "pad=10&pad-right=0", "w=100&pad=10", "w=100&h=60&pad=5", "w=100&h=60&fit=fill&pad=30",
               "w=90&h=90&fit=crop&pad=7&dpr=2", "h=50&fit=scale&pad-top=20", "w=60&h=60&pad=100",
               "ar=2:1&fit=fill&pad=3", "pad=400", "w=1&pad=12"]
    for size in [(120, 80), (30, 200), (2, 2)]:
        image = Image.new("RGB", size, "red")
        for query in queries:
            params = params_parse(query)
            made = pad_apply(resize_apply(image, params), params).size
            assert pad_size(output_size(size, params), params) == made, (size, query)


def test_budget_sees_the_trimmed_size_and_the_padding(settings):
    settings.RENDER_MAX_PNG_PIXELS = 40_000
    # A 300×100 cutout whose subject is 100×100: h=200 is 600×200 untrimmed (over), 200×200 trimmed.
    cutout = subject((300, 100), (100, 0, 200, 100))
    params = params_parse("trim=alpha&h=200&fm=png")
    check = {"params": params, "requested": "png", "default": "png", "accept": "", "has_alpha": True}
    trimmed = trim_apply(cutout, params)
    assert render_budget_check(size=trimmed.size, **check) == Budget("png")
    capped = render_budget_check(size=cutout.size, **check)
    assert capped.max_pixels == 40_000 and capped.capped == "600x200 -> 346x115 (RENDER_MAX_PNG_PIXELS)"
    # At its own size, the padded canvas is what is scaled to the encoder's ceiling.
    params = params_parse("pad=100&fm=png")
    budget = render_budget_check(size=(100, 100), params=params, requested="png", default="png", accept="",
                                 has_alpha=True)
    padded = pad_apply(resize_apply(Image.new("RGB", (100, 100)), params, max_pixels=budget.max_pixels), params,
                       max_pixels=budget.max_pixels)
    assert budget.max_pixels == 40_000 and padded.width * padded.height <= 40_000


# --- Through the rendering endpoint, with the real model ---------------------------------------------

RECIPE = "bg-remove=true&trim=alpha&fit=fill&w=800&h=800&pad=40"


def render(client, path, query):
    url = f"/render/acme-photos/{path}?{query}"
    first = client.get(url)
    if first.status_code == 202:
        bg_remove_job_process(job_id=first.json()["job"])
        first = client.get(url)
    assert first.status_code == 200, first.content[:300]
    return Image.open(io.BytesIO(body_of(first)))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["astronaut.jpg", "chelsea.png"])
def test_product_recipe_centres_the_subject_on_an_800_canvas(client, source, path):
    cutout = render(client, path, "bg-remove=true")
    subject_w, subject_h = (r - l for l, r in zip(cutout.getbbox()[:2], cutout.getbbox()[2:]))

    # Without bg the canvas stays transparent: the subject's box is the opaque part.
    clear = render(client, path, RECIPE)
    assert clear.size == (800, 800) and clear.mode == "RGBA"
    left, top, right, bottom = clear.getbbox()  # Alpha over 0.
    long_axis = 0 if subject_w >= subject_h else 1
    edges = [(left, right), (top, bottom)]
    low, high = edges[long_axis]
    assert abs(low - 40) <= 2 and abs(high - 760) <= 2, edges  # Touches the 40 px margin.
    low, high = edges[1 - long_axis]
    assert abs((low - 40) - (760 - high)) <= 2, edges  # Centred on the other axis.
    assert low >= 40 and high <= 760

    # With bg=fff: the same picture on white, every pixel outside the subject's box pure white.
    white = render(client, path, RECIPE + "&bg=fff")
    assert white.size == (800, 800) and white.mode == "RGB"
    pixels = np.asarray(white)
    outside = np.ones((800, 800), bool)
    outside[top:bottom, left:right] = False
    assert np.all(pixels[outside] == WHITE)
    assert np.all(pixels[:40] == WHITE) and np.all(pixels[760:] == WHITE)
    assert np.all(pixels[:, :40] == WHITE) and np.all(pixels[:, 760:] == WHITE)
    assert (pixels[top:bottom, left:right] != WHITE).any(axis=-1).mean() > 0.3  # The subject is drawn.


@pytest.mark.django_db
def test_the_endpoint_budgets_the_trimmed_image(client, source, origin_root, settings):
    settings.RENDER_MAX_PNG_PIXELS = 40_000
    subject((300, 100), (100, 0, 200, 100)).save(origin_root / "photos" / "wide-cutout.png")
    url = "/render/acme-photos/wide-cutout.png?h=200&fm=png"
    untrimmed = client.get(url)  # 600×200 untrimmed: served at the PNG ceiling, and says so.
    assert untrimmed.status_code == 200 and untrimmed["X-Render-Capped"].startswith("600x200 -> 346x115")
    trimmed = client.get(url + "&trim=alpha")
    assert trimmed.status_code == 200
    image = Image.open(io.BytesIO(body_of(trimmed)))
    assert image.size == (200, 200) and image.getpixel((100, 100)) == (*RED, 255)
    # The margins count: at its own size the padded canvas is scaled to the PNG ceiling.
    padded = Image.open(io.BytesIO(body_of(client.get(url.replace("h=200", "pad=100") + "&trim=alpha"))))
    assert padded.width * padded.height <= 40_000 and padded.getpixel((0, 0))[3] == 0


def test_trim_decodes_at_full_resolution():
    from rendering.services import _decode_size

    assert _decode_size(params_parse("w=100"), "") is not None  # A JPEG may decode at 1/2, 1/4, 1/8…
    assert _decode_size(params_parse("w=100&trim=color"), "") is None  # … but not to find a trim box.


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_recipe_and_the_matte_through_a_real_worker(client, source, worker_env, tmp_path):
    """The product-shot recipe and bg-remove-output=mask on astronaut.jpg, the cutout made by a
    real Celery worker with the real model."""
    from tests.conftest import start_worker, stop_process
    from tests.cutouts.test_tasks import wait_until

    recipe = f"/render/acme-photos/astronaut.jpg?{RECIPE}&bg=fff"
    matte = "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-output=mask&trim=alpha"
    assert client.get(recipe).status_code == 202
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        done = wait_until(lambda: (r := client.get(recipe)).status_code == 200 and r)
    finally:
        stop_process(worker.proc)
    canvas = np.asarray(Image.open(io.BytesIO(body_of(done))).convert("RGB"))
    assert canvas.shape == (800, 800, 3)
    subject = np.argwhere((canvas != WHITE).any(axis=-1))
    (top, left), (bottom, right) = subject.min(axis=0), subject.max(axis=0) + 1
    assert min(top, left) >= 38 and max(bottom, right) <= 762  # Inside the 40 px margin…
    assert min(top, left) <= 42 or max(bottom, right) >= 758  # …and touching it on one axis.

    mask = client.get(matte)
    assert mask.status_code == 200
    image = Image.open(io.BytesIO(body_of(mask)))
    assert image.mode == "L" and image.getextrema() == (0, 255)
    # Trimmed to the subject: the matte's own edges touch it.
    values = np.asarray(image)
    assert values[0].max() > 0 and values[-1].max() > 0 and values[:, 0].max() > 0 and values[:, -1].max() > 0


