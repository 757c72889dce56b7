import io

import numpy as np
import pytest
from PIL import Image

from rendering.encode import image_encode
from rendering.operations.bg import bg_apply
from rendering.operations.mark import mark_apply, mark_prepare
from rendering.operations.resize import rect_apply, resize_apply, target_box
from rendering.params import ParamError, params_parse

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def bands(size, colors, *, vertical=True, mode="RGB"):
    """Equal bands of colour: side by side (vertical=True) or stacked."""
    image = Image.new(mode, size)
    count = len(colors)
    for i, color in enumerate(colors):
        if vertical:
            box = (size[0] * i // count, 0, size[0] * (i + 1) // count, size[1])
        else:
            box = (0, size[1] * i // count, size[0], size[1] * (i + 1) // count)
        image.paste(color, box)
    return image


def resize(image, query):
    return resize_apply(image, params_parse(query))


def near(pixel, color, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color))


@pytest.fixture
def rgb_bands():
    return bands((300, 200), [RED, GREEN, BLUE])


# --- fit=clip, max, min, scale, clamp ---------------------------------------------------------------

def test_clip_fits_inside_and_matches_one_dimension(rgb_bands):
    assert resize(rgb_bands, "w=100&h=100").size == (100, 67)
    assert resize(rgb_bands, "w=150").size == (150, 100)
    assert resize(rgb_bands, "h=50").size == (75, 50)
    upscaled = resize(rgb_bands, "w=600")  # clip may upscale.
    assert upscaled.size == (600, 400)
    assert near(upscaled.getpixel((50, 200)), RED) and near(upscaled.getpixel((550, 200)), BLUE)


def test_no_size_means_no_resize(rgb_bands):
    assert resize(rgb_bands, "") is rgb_bands
    assert resize(rgb_bands, "fit=crop&dpr=2") is rgb_bands


def test_width_as_a_ratio_of_the_source(rgb_bands):
    assert resize(rgb_bands, "w=0.5").size == (150, 100)
    assert resize(rgb_bands, "w=0.5&h=0.25&fit=scale").size == (150, 50)


def test_max_never_upscales(rgb_bands):
    assert resize(rgb_bands, "w=1000&h=1000&fit=max").size == (300, 200)
    assert resize(rgb_bands, "w=150&fit=max").size == (150, 100)


def test_min_keeps_the_aspect_ratio_but_never_exceeds_the_original(rgb_bands):
    small = resize(rgb_bands, "w=100&h=100&fit=min")
    assert small.size == (100, 100)
    big = resize(rgb_bands, "w=1000&h=1000&fit=min")
    assert big.size == (200, 200)  # A centred 1:1 crop at native size.
    assert near(big.getpixel((10, 100)), RED) and near(big.getpixel((100, 100)), GREEN)
    assert near(big.getpixel((190, 100)), BLUE)


def test_scale_distorts_to_the_exact_box(rgb_bands):
    out = resize(rgb_bands, "w=50&h=100&fit=scale")
    assert out.size == (50, 100)
    # All three bands survive: nothing was cropped.
    assert near(out.getpixel((3, 50)), RED) and near(out.getpixel((25, 50)), GREEN)
    assert near(out.getpixel((47, 50)), BLUE)


def test_clamp_extends_edge_pixels(rgb_bands):
    out = resize(rgb_bands, "w=100&h=100&fit=clamp")
    assert out.size == (100, 100) and out.mode == "RGB"
    pixels = np.asarray(out)
    # The fitted 100×67 image sits at rows 16–82; rows above and below repeat its edge rows.
    assert (pixels[:16] == pixels[16]).all() and (pixels[83:] == pixels[82]).all()
    assert near(out.getpixel((5, 0)), RED) and near(out.getpixel((95, 99)), BLUE)


# --- fit=crop and its anchors -----------------------------------------------------------------------

@pytest.mark.parametrize("crop, left, right", [
    ("", RED, BLUE),  # Centre: source columns 50–250.
    ("left", RED, GREEN),  # Columns 0–200.
    ("right", GREEN, BLUE),  # Columns 100–300.
    ("faces", RED, BLUE),  # No face in colour bands: centre.
    ("faces,right", GREEN, BLUE),  # …and the next value applies.
    ("top,left", RED, GREEN),
])
def test_crop_horizontal_anchors(rgb_bands, crop, left, right):
    out = resize(rgb_bands, f"w=100&h=100&fit=crop&crop={crop}")
    assert out.size == (100, 100)
    assert near(out.getpixel((5, 50)), left) and near(out.getpixel((94, 50)), right)


@pytest.mark.parametrize("crop, top, bottom", [
    ("", RED, BLUE), ("top", RED, GREEN), ("bottom", GREEN, BLUE), ("bottom,right", GREEN, BLUE),
])
def test_crop_vertical_anchors(crop, top, bottom):
    image = bands((200, 300), [RED, GREEN, BLUE], vertical=False)
    out = resize(image, f"w=100&h=100&fit=crop&crop={crop}")
    assert out.size == (100, 100)
    assert near(out.getpixel((50, 5)), top) and near(out.getpixel((50, 94)), bottom)


def test_crop_focal_point_with_zoom_is_clamped_inside(rgb_bands):
    out = resize(rgb_bands, "w=100&h=100&fit=crop&crop=focalpoint&fp-x=0.9&fp-y=0.5")
    assert near(out.getpixel((5, 50)), GREEN) and near(out.getpixel((94, 50)), BLUE)
    # fp-z=2 halves the window to 100×100 source pixels; centred on x=270 it is clamped to 200–300.
    zoomed = resize(rgb_bands, "w=100&h=100&fit=crop&crop=focalpoint&fp-x=0.9&fp-z=2")
    assert zoomed.size == (100, 100)
    assert all(near(zoomed.getpixel((x, 50)), BLUE) for x in (0, 50, 99))


def noisy_patch(image, box, seed=1):
    rng = np.random.default_rng(seed)
    width, height = box[2] - box[0], box[3] - box[1]
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image.paste(Image.fromarray(noise), box[:2])
    return image


def test_crop_entropy_picks_the_busiest_region():
    image = noisy_patch(Image.new("RGB", (300, 200), (128, 128, 128)), (260, 0, 300, 200))
    out = np.asarray(resize(image, "w=100&h=100&fit=crop&crop=entropy"), dtype=float)
    centre = np.asarray(resize(image, "w=100&h=100&fit=crop"), dtype=float)
    # The window slides right (source columns 100–300) so the noise is in it; a centred one misses it.
    assert out[:, 85:].std() > 30
    assert centre[:, 85:].std() < 2


def test_crop_edges_picks_the_region_with_edges():
    image = Image.new("RGB", (200, 300), "white")
    for y in range(0, 40, 8):  # Black and white stripes at the top.
        image.paste((0, 0, 0), (0, y, 200, y + 4))
    out = np.asarray(resize(image, "w=100&h=100&fit=crop&crop=edges"), dtype=float)
    assert out[:15].std() > 50  # The stripes are in the crop (source rows 0–200).
    centre = np.asarray(resize(image, "w=100&h=100&fit=crop"), dtype=float)
    assert centre.std() < 2


def test_crop_one_dimension_and_ar(rgb_bands):
    assert resize(rgb_bands, "w=150&fit=crop").size == (150, 100)
    assert resize(rgb_bands, "w=100&ar=2:1&fit=crop").size == (100, 50)
    assert resize(rgb_bands, "h=100&ar=1:1&fit=crop").size == (100, 100)


def test_ar_alone_reframes_at_native_size():
    image = Image.new("RGB", (900, 270), "red")
    assert resize(image, "ar=9:1&fit=crop").size == (900, 100)  # imgix's own example.
    padded = resize(image, "ar=1:1&fit=fill")
    assert padded.size == (900, 900)
    assert padded.getpixel((450, 10))[3] == 0 and padded.getpixel((450, 450)) == (255, 0, 0, 255)


def test_min_max_bounds_with_crop(rgb_bands):
    assert target_box((300, 200), params_parse("w=400&ar=1:3&fit=crop&max-h=800")) == (400, 800)
    assert resize(rgb_bands, "w=100&h=100&fit=crop&min-w=200").size == (200, 100)
    assert resize(rgb_bands, "w=100&h=100&fit=crop&max-w=50").size == (50, 100)
    # Only with fit=crop (imgix's crop documentation).
    assert resize(rgb_bands, "w=100&h=100&max-w=50").size == (100, 67)


# --- dpr and the 8192 ceiling -----------------------------------------------------------------------

def test_dpr_multiplies_the_box(rgb_bands):
    assert resize(rgb_bands, "w=100&h=100&dpr=2").size == (200, 133)
    assert resize(rgb_bands, "w=100&h=100&fit=crop&dpr=2").size == (200, 200)
    assert resize(rgb_bands, "w=0.5&dpr=2").size == (300, 200)


def test_output_never_exceeds_8192(settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 8192 * 8192  # The side cap alone; the pixel ceiling: test_budget.py.
    thin = Image.new("RGB", (200, 2), "red")
    assert resize(thin, "w=8000&dpr=2").size == (8192, 82)  # Scaled down, aspect kept.
    assert target_box((300, 200), params_parse("w=8192&h=4000&fit=crop&dpr=2")) == (8192, 4000)
    assert target_box((300, 200), params_parse("w=5000&h=100&fit=scale&dpr=5")) == (8192, 164)
    wide = Image.new("RGB", (9000, 10), "red")
    assert resize(wide, "").size == (8192, 9)  # Even with nothing asked for.


# --- fit=fill and fillmax ---------------------------------------------------------------------------

def test_fill_pads_with_transparency_by_default(rgb_bands):
    out = resize(rgb_bands, "w=100&h=100&fit=fill")
    assert out.size == (100, 100) and out.mode == "RGBA"
    # The 100×67 image is centred: rows 16–82; bars above and below are transparent.
    assert out.getpixel((50, 5))[3] == 0 and out.getpixel((50, 95))[3] == 0
    assert near(out.getpixel((50, 50)), (*GREEN, 255)) and near(out.getpixel((5, 50)), (*RED, 255))


def test_fill_solid_colour(rgb_bands):
    out = resize(rgb_bands, "w=100&h=100&fit=fill&fill=solid&fill-color=00f")
    assert out.mode == "RGB" and out.size == (100, 100)
    assert out.getpixel((50, 5)) == BLUE and out.getpixel((50, 95)) == BLUE
    assert near(out.getpixel((5, 50)), RED)
    # Translucent fill colour (alpha first): the bars keep it.
    translucent = resize(rgb_bands, "w=100&h=100&fit=fill&fill=solid&fill-color=8000ff00")
    assert translucent.getpixel((50, 5)) == (0, 255, 0, 0x80)


def test_fill_blur_uses_a_blurred_copy(rgb_bands):
    out = resize(rgb_bands, "w=100&h=100&fit=fill&fill=blur")
    assert out.size == (100, 100) and out.mode == "RGB"
    left_bar, right_bar = out.getpixel((3, 5)), out.getpixel((96, 5))
    assert left_bar[0] > 150 and left_bar[0] > left_bar[2]  # Red side of the image.
    assert right_bar[2] > 150 and right_bar[2] > right_bar[0]  # Blue side.


def test_fillmax_never_upscales_but_fills_the_box():
    small = Image.new("RGB", (30, 20), "red")
    out = resize(small, "w=100&h=100&fit=fillmax")
    assert out.size == (100, 100)
    assert out.getpixel((50, 50)) == (255, 0, 0, 255)
    assert out.getpixel((50, 35))[3] == 0 and out.getpixel((30, 50))[3] == 0  # 30×20 at (35, 40).
    filled = resize(small, "w=100&h=100&fit=fill")  # fill upscales to 100×67 instead.
    assert filled.getpixel((50, 35))[3] == 255 and filled.getpixel((50, 10))[3] == 0


def test_resize_does_not_bleed_colour_from_transparent_pixels():
    image = Image.new("RGBA", (64, 64), (0, 255, 0, 0))  # Transparent but green underneath.
    image.paste((255, 0, 0, 255), (32, 0, 64, 64))
    pixels = np.asarray(resize(image, "w=13&fit=scale&h=13"))
    visible = pixels[pixels[..., 3] > 0]
    assert len(visible) and visible[:, 1].max() <= 2


# --- rect -------------------------------------------------------------------------------------------

def quadrants():
    image = Image.new("RGB", (300, 200), RED)
    image.paste(GREEN, (150, 0, 300, 100))
    image.paste(BLUE, (0, 100, 150, 200))
    image.paste(WHITE, (150, 100, 300, 200))
    return image


def test_rect_in_pixels_and_ratios():
    top_right = rect_apply(quadrants(), params_parse("rect=150,0,150,100").rect)
    assert top_right.size == (150, 100) and set(c for _, c in top_right.getcolors()) == {GREEN}
    bottom_left = rect_apply(quadrants(), params_parse("rect=0.0,0.5,0.5,0.5").rect)
    assert bottom_left.size == (150, 100) and set(c for _, c in bottom_left.getcolors()) == {BLUE}


def test_rect_places_its_window_by_name_as_imgix_spec_allows():
    top_right = rect_apply(quadrants(), params_parse("rect=right,top,150,100").rect)
    assert top_right.size == (150, 100) and set(c for _, c in top_right.getcolors()) == {GREEN}
    bottom_left = rect_apply(quadrants(), params_parse("rect=left,bottom,150,100").rect)
    assert set(c for _, c in bottom_left.getcolors()) == {BLUE}
    centre = rect_apply(quadrants(), params_parse("rect=center,middle,2,2").rect)
    assert sorted(c for _, c in centre.getcolors()) == sorted([RED, GREEN, BLUE, WHITE])
    assert params_parse("rect=left,top,10,10").canonical() == params_parse("rect=0,0,10,10").canonical()
    with pytest.raises(ParamError):
        params_parse("rect=top,left,10,10")  # x is left/center/right, y top/middle/bottom.


def test_rect_is_clamped_to_the_image():
    image = quadrants()
    assert rect_apply(image, params_parse("rect=250,150,500,500").rect).size == (50, 50)
    outside = rect_apply(image, params_parse("rect=1000,1000,50,50").rect)
    assert outside.size == (1, 1) and outside.getpixel((0, 0)) == WHITE


# --- bg ---------------------------------------------------------------------------------------------

def half_transparent():
    image = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (10, 0, 20, 10))
    return image


def test_bg_fills_transparency_and_leaves_opaque_pixels():
    out = bg_apply(half_transparent(), params_parse("bg=f00").bg)
    assert out.mode == "RGB"
    assert out.getpixel((2, 5)) == RED and out.getpixel((15, 5)) == BLUE


def test_bg_blends_partial_alpha():
    image = Image.new("RGBA", (4, 4), (0, 0, 255, 128))
    r, g, b = bg_apply(image, (255, 0, 0, 255)).getpixel((0, 0))
    assert abs(r - 127) <= 2 and g == 0 and abs(b - 128) <= 2


def test_bg_with_alpha_first_keeps_partial_transparency_in_png():
    params = params_parse("bg=80FF0000")
    assert params.bg == (255, 0, 0, 0x80)
    data, content_type = image_encode(bg_apply(half_transparent(), params.bg), "png", params)
    decoded = Image.open(io.BytesIO(data)).convert("RGBA")
    assert content_type == "image/png"
    assert decoded.getpixel((2, 5)) == (255, 0, 0, 0x80)
    assert decoded.getpixel((15, 5)) == (0, 0, 255, 255)


def test_bg_on_an_opaque_image_changes_nothing():
    image = Image.new("RGB", (4, 4), "blue")
    assert bg_apply(image, (255, 0, 0, 255)) is image
    assert bg_apply(half_transparent(), None).mode == "RGBA"


# --- mark -------------------------------------------------------------------------------------------

@pytest.fixture
def base():
    return Image.new("RGB", (200, 100), WHITE)


@pytest.fixture
def mark():
    return Image.new("RGBA", (20, 10), (*RED, 255))


def marked(base, mark, query):
    return mark_apply(base, mark, params_parse(f"mark=m.png&{query}"))


def test_mark_default_bottom_right_with_pad(base, mark):
    out = marked(base, mark, "")
    assert out.mode == "RGB" and out.size == base.size
    # Mark rectangle: x 175–194, y 85–94 (5 px from the right and bottom edges).
    assert out.getpixel((175, 85)) == RED and out.getpixel((194, 94)) == RED
    assert out.getpixel((174, 90)) == WHITE and out.getpixel((195, 90)) == WHITE
    assert out.getpixel((185, 84)) == WHITE and out.getpixel((185, 95)) == WHITE


@pytest.mark.parametrize("query, inside, outside", [
    ("mark-align=top,left", (5, 5), (4, 5)),
    ("mark-align=top,left&mark-pad=0", (0, 0), (20, 0)),
    ("mark-align=middle,center", (90, 45), (89, 45)),  # x 90–109, y 45–54.
    ("mark-align=top", (194, 5), (194, 4)),  # The unnamed axis keeps its default: right.
])
def test_mark_align(base, mark, query, inside, outside):
    out = marked(base, mark, query)
    assert out.getpixel(inside) == RED and out.getpixel(outside) == WHITE


def test_mark_alpha_blends(base, mark):
    r, g, b = marked(base, mark, "mark-alpha=50").getpixel((185, 90))
    assert r == 255 and abs(g - 127) <= 2 and abs(b - 127) <= 2


def test_mark_width_is_a_ratio_of_the_mark_itself(base, mark):
    out = marked(base, mark, "mark-w=0.5")  # 10×5, not half the base image.
    assert out.getpixel((185, 90)) == RED and out.getpixel((184, 90)) == WHITE
    assert out.getpixel((190, 89)) == WHITE
    assert mark_prepare(mark, base.size, params_parse("mark-w=40")).size == (40, 20)
    assert mark_prepare(mark, base.size, params_parse("mark-w=10&mark-h=10&mark-fit=crop")).size == (10, 10)
    assert mark_prepare(mark, base.size, params_parse("mark-w=10&mark-h=10&mark-fit=scale")).size == (10, 10)
    assert mark_prepare(mark, base.size, params_parse("mark-w=10&mark-h=10")).size == (10, 5)


def test_mark_scale_is_a_percentage_of_the_base_width(base, mark):
    assert mark_prepare(mark, base.size, params_parse("mark-scale=50")).size == (100, 50)


def test_mark_x_and_y_override_alignment(base, mark):
    out = marked(base, mark, "mark-x=10&mark-y=-5")  # x 10–29, y -5–4.
    assert out.getpixel((10, 0)) == RED and out.getpixel((29, 4)) == RED
    assert out.getpixel((9, 2)) == WHITE and out.getpixel((20, 5)) == WHITE
    assert out.getpixel((185, 90)) == WHITE


def test_mark_tile_covers_the_image(base, mark):
    out = marked(base, mark, "mark-tile=grid")
    # A grid through the placed mark (175, 85), stepping by the mark size plus the 5 px pad.
    for x, y in [(175, 85), (150, 70), (0, 10), (100, 40), (125, 0)]:
        assert out.getpixel((x, y)) == RED, (x, y)
    assert out.getpixel((172, 85)) == WHITE and out.getpixel((175, 82)) == WHITE


def test_mark_rotation_expands_the_canvas(base, mark):
    turned = marked(base, mark, "mark-rot=90")  # Now 10×20: x 185–194, y 75–94.
    assert turned.getpixel((190, 77)) == RED and turned.getpixel((180, 90)) == WHITE
    tilted = mark_prepare(mark, base.size, params_parse("mark-rot=45"))
    assert tilted.width > 20 and tilted.height > 10
    assert tilted.getpixel((0, 0))[3] == 0  # Corners are transparent, not zoomed.
    assert tilted.getpixel((tilted.width // 2, tilted.height // 2)) == (*RED, 255)


def test_mark_on_a_transparent_base_keeps_rgba(mark):
    base = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    out = marked(base, mark, "")
    assert out.mode == "RGBA"
    assert out.getpixel((30, 40)) == (*RED, 255) and out.getpixel((5, 5)) == (0, 0, 0, 0)
