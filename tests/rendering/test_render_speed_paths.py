"""The fast paths of decode and resize give the pixels of the general path they skip."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from imaging.decode import image_decode
from rendering.operations.resize import resize_apply
from rendering.params import params_parse


def encode(image, fmt, **kw):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def gradient(size, mode="RGB"):
    """Distinct pixels everywhere, so any flip, turn or resampling difference shows."""
    width, height = size
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    channels = [x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x * 7 + y * 13) % 256]
    if mode == "RGBA":
        channels.append(np.full_like(x, 255))
    return Image.fromarray(np.dstack(channels).astype(np.uint8), mode)


def premultiplied_resize(image, size):
    """The general path: resampled in premultiplied alpha, as for any transparent image."""
    resized = image.convert("RGBa").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return resized.convert("RGBA")


# --- Orientation without exif_transpose ----------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_as_exif_transpose_does(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(gradient((24, 16)), "PNG", exif=exif.tobytes())
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    decoded = image_decode(data)
    assert decoded.size == expected.size
    assert np.array_equal(np.asarray(decoded), np.asarray(expected.convert("RGB")))


def test_upright_jpeg_decodes_to_a_plain_image_without_the_origin_exif():
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make: metadata that must not reach any output.
    exif[0x0112] = 1
    decoded = image_decode(encode(gradient((40, 30)), "JPEG", exif=exif.tobytes(), quality=95))
    assert type(decoded) is Image.Image  # Not the JpegImageFile: no buffer or cached EXIF kept.
    assert decoded.info == {} and dict(decoded.getexif()) == {}
    assert decoded.size == (40, 30) and decoded.mode == "RGB"


def test_upright_decode_has_the_pixels_pillow_decodes():
    data = encode(gradient((64, 48)), "JPEG", quality=90)
    assert np.array_equal(np.asarray(image_decode(data)), np.asarray(Image.open(io.BytesIO(data))))


# --- Transparency still resizes premultiplied --------------------------------------------------------

def test_one_transparent_pixel_is_enough_for_the_premultiplied_path():
    image = gradient((97, 61), "RGBA")
    image.putpixel((0, 0), (0, 255, 0, 0))  # Transparent green: must not bleed into its neighbours.
    out = resize_apply(image, params_parse("w=40"))
    assert np.array_equal(np.asarray(out), np.asarray(premultiplied_resize(image, out.size)))
    assert out.getpixel((0, 0))[1] <= 5  # The neighbour's own green (3), none of the hidden 255.
