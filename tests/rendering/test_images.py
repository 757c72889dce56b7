import io

import pytest
from PIL import Image

from rendering.images import (
    NotAnImageError,
    TooManyPixelsError,
    UnsupportedImageTypeError,
    image_check_bg_removable,
    image_decode,
    image_sniff,
)


def encode(image, fmt, **kw):
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_sniff_by_content_not_name(photo_jpg, photo_png):
    assert image_sniff(photo_jpg) == "jpeg"
    assert image_sniff(photo_png) == "png"
    assert image_sniff(encode(Image.new("RGB", (4, 4)), "WEBP")) == "webp"
    assert image_sniff(b"<html>not an image</html>") is None


def test_bg_remove_accepts_jpg_and_png_only(photo_jpg, photo_png):
    assert image_check_bg_removable(photo_jpg) == "jpeg"
    assert image_check_bg_removable(photo_png) == "png"
    with pytest.raises(UnsupportedImageTypeError) as err:
        image_check_bg_removable(encode(Image.new("RGB", (4, 4)), "GIF"))
    assert err.value.status_code == 415 and "GIF" in err.value.message
    with pytest.raises(NotAnImageError) as err:
        image_check_bg_removable(b"%PDF-1.7 ...")
    assert err.value.status_code == 422


def test_pixel_ceiling_checked_from_header_before_decode(settings):
    settings.ORIGIN_MAX_PIXELS = 1_000_000
    # 2000×1000 of one colour compresses to a few kB, but decodes to 2 megapixels.
    data = encode(Image.new("L", (2000, 1000)), "PNG")
    assert len(data) < 20_000
    with pytest.raises(TooManyPixelsError) as err:
        image_decode(data)
    assert err.value.status_code == 422 and "2000×1000" in err.value.message


def test_truncated_image_is_422(photo_jpg):
    with pytest.raises(NotAnImageError):
        image_decode(photo_jpg[: len(photo_jpg) // 2])


def test_exif_orientation_applied():
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # Rotate 90° clockwise to display.
    decoded = image_decode(encode(image, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (20, 40)
