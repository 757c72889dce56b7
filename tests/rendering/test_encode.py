import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from rendering.encode import format_negotiate, format_resolve, image_encode, image_has_alpha, quality_for
from rendering.params import params_parse

WEBP_AVIF = "image/avif,image/webp,*/*"


def noise(size=(48, 32), mode="RGB", seed=3):
    channels = len(mode)
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8), mode)


def with_hole(image):
    """`image` as RGBA with a fully transparent left quarter."""
    image = image.convert("RGBA")
    alpha = Image.new("L", image.size, 255)
    alpha.paste(0, (0, 0, image.width // 4, image.height))
    image.putalpha(alpha)
    return image


def encode(image, fmt, query=""):
    data, content_type = image_encode(image, fmt, params_parse(query))
    return Image.open(io.BytesIO(data)), data, content_type


def test_png8_is_palettised_and_keeps_transparency():
    decoded, _, content_type = encode(with_hole(noise()), "png8")
    assert content_type == "image/png"
    assert decoded.mode == "P" and len(decoded.getcolors(256)) <= 256
    rgba = decoded.convert("RGBA")
    assert rgba.getpixel((2, 5))[3] == 0 and rgba.getpixel((40, 5))[3] == 255
    opaque, _, _ = encode(noise(), "png8")
    assert opaque.mode == "P" and "transparency" not in opaque.info


def test_png32_is_always_rgba():
    decoded, _, content_type = encode(noise(), "png32")
    assert decoded.mode == "RGBA" and content_type == "image/png"
    assert np.array_equal(np.asarray(decoded)[..., :3], np.asarray(noise()))


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_webp_lossless_round_trips_exact_pixels(mode):
    image = noise(mode=mode)
    decoded, _, content_type = encode(image, "webp", "lossless=1")
    assert content_type == "image/webp"
    assert decoded.mode == mode and np.array_equal(np.asarray(decoded), np.asarray(image))
    lossy, _, _ = encode(image, "webp")
    assert not np.array_equal(np.asarray(lossy.convert(mode)), np.asarray(image))


def test_avif_ignores_lossless():
    decoded, _, content_type = encode(noise(), "avif", "lossless=1")
    assert content_type == "image/avif" and decoded.size == (48, 32)


def test_jpeg_of_rgba_is_flattened_on_white():
    image = Image.new("RGBA", (32, 16), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (16, 0, 32, 16))
    decoded, _, content_type = encode(image, "jpg")
    assert content_type == "image/jpeg" and decoded.mode == "RGB"
    assert all(v >= 250 for v in decoded.getpixel((4, 8)))
    r, g, b = decoded.getpixel((28, 8))
    assert r > 240 and g < 15 and b < 15


def test_pjpg_is_progressive():
    decoded, _, content_type = encode(noise(), "pjpg")
    assert content_type == "image/jpeg" and decoded.info.get("progressive")


def test_gif_keeps_transparency():
    image = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (10, 0, 20, 10))
    decoded, _, content_type = encode(image, "gif")
    assert content_type == "image/gif" and "transparency" in decoded.info
    rgba = decoded.convert("RGBA")
    assert rgba.getpixel((2, 5))[3] == 0 and rgba.getpixel((15, 5)) == (255, 0, 0, 255)


def quantisation_for(quality):
    buffer = io.BytesIO()
    noise().save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).quantization


def test_quality_defaults_75_or_45_with_auto_compress_and_explicit_q_wins():
    assert quality_for(params_parse("")) == 75
    assert quality_for(params_parse("auto=compress")) == 45
    assert quality_for(params_parse("auto=compress&q=90")) == 90
    # The encoder really writes those qualities: its JPEG quantisation tables are Pillow's for them.
    assert encode(noise(), "jpg", "auto=compress")[0].quantization == quantisation_for(45)
    assert encode(noise(), "jpg")[0].quantization == quantisation_for(75)
    assert encode(noise(), "jpg", "auto=compress&q=90")[0].quantization == quantisation_for(90)
    assert len(encode(noise(), "jpg", "auto=compress")[1]) < len(encode(noise(), "jpg")[1])


def resolve(requested, image, params, default="png"):
    return format_resolve(requested, params=params, has_alpha=image_has_alpha(image), default=default)


def test_image_has_alpha_means_a_pixel_that_is_not_opaque():
    assert image_has_alpha(with_hole(noise()))
    assert not image_has_alpha(noise())
    assert not image_has_alpha(noise().convert("RGBA"))  # An all-opaque alpha channel is not.
    palette = Image.new("P", (4, 4), 0)
    palette.info["transparency"] = 0
    assert image_has_alpha(palette)


def test_auto_compress_picks_png_for_transparency_and_jpeg_otherwise():
    params = params_parse("auto=compress&fm=webp")
    requested = format_negotiate(params, "")
    assert requested == ""  # It overrides fm; the image decides.
    assert resolve(requested, with_hole(noise()), params) == "png"
    assert resolve(requested, noise(), params) == "jpg"
    assert resolve(requested, noise().convert("RGBA"), params) == "jpg"


def test_auto_format_and_compress():
    params = params_parse("auto=format,compress")
    assert format_negotiate(params, WEBP_AVIF) == "avif"
    assert format_negotiate(params, "image/webp,*/*") == "webp"
    requested = format_negotiate(params, "image/png,*/*")
    assert resolve(requested, with_hole(noise()), params) == "png8"
    assert resolve(requested, noise(), params) == "jpg"


def test_format_without_auto_compress():
    assert format_negotiate(params_parse("fm=png"), WEBP_AVIF) == "png"
    assert format_negotiate(params_parse("auto=format&fm=png"), WEBP_AVIF) == "avif"
    requested = format_negotiate(params_parse(""), WEBP_AVIF)
    assert requested == "" and resolve(requested, noise(), params_parse(""), "gif") == "gif"
    assert resolve("webp", with_hole(noise()), params_parse("")) == "webp"
    assert format_negotiate(params_parse("fm=json&auto=compress"), "") == "json"


@pytest.mark.parametrize("fmt", ["jpg", "png", "png8", "png32", "webp", "avif", "gif"])
def test_metadata_is_stripped(fmt):
    image = noise()
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    image.info.update({
        "exif": exif.tobytes(),
        "icc_profile": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
        "comment": b"secret",
        "xmp": b"<x:xmpmeta/>",
    })
    decoded, data, _ = encode(image, fmt)
    assert not {"exif", "icc_profile", "comment", "xmp"} & set(decoded.info)
    assert b"Camera maker" not in data and b"secret" not in data


@pytest.mark.parametrize("accept, expected", [
    ("image/avif;q=0, image/webp", "webp"),
    ("image/avif; Q=0.000 ,image/webp", "webp"),
    ("image/webp;q=0", ""),
    ("image/webp;q=0, image/avif;q=0", ""),
    ("image/webp;q=0.8, image/avif;q=0.4", "webp"),
    ("image/webp;q=0.8, image/avif", "avif"),
    ("image/avif;q=banana, image/webp", "avif"),  # A weight that is no number counts as 1.
    ("image/avif-sequence, image/webpx", ""),  # Types, not substrings.
])
def test_auto_format_takes_accepts_weights(accept, expected):
    assert format_negotiate(params_parse("auto=format"), accept) == expected
    # Neither accepted: auto=compress decides by transparency.
    assert format_negotiate(params_parse("auto=format,compress"), accept) == expected
