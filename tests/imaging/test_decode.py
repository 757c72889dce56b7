import io
import struct
import time

import pytest
from PIL import Image

from imaging import decode as images
from imaging.decode import (
    DECODERS,
    NotAnImageError,
    TooManyPixelsError,
    TooManyScansError,
    UnsupportedImageTypeError,
    image_check_bg_removable,
    image_decode,
    image_sniff,
)
from tests import hostile


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


# --- Formats chosen explicitly -----------------------------------------------------------------

def test_served_formats_are_named_in_one_place():
    assert set(DECODERS) == {"jpeg", "png", "gif", "webp", "tiff", "bmp"}


@pytest.mark.parametrize("fmt, kw", [("JPEG", {"quality": 95}), ("PNG", {}), ("GIF", {}),
                                     ("WEBP", {"lossless": True}), ("TIFF", {}),
                                     ("TIFF", {"compression": "tiff_lzw"}), ("BMP", {})])
def test_each_served_format_decodes(fmt, kw):
    data = encode(Image.new("RGB", (48, 32), (200, 30, 60)), fmt, **kw)
    assert image_sniff(data) in DECODERS
    decoded = image_decode(data)
    assert decoded.size == (48, 32) and decoded.mode == "RGB"
    r, g, b = decoded.getpixel((24, 16))
    assert abs(r - 200) <= 6 and abs(g - 30) <= 6 and abs(b - 60) <= 6


@pytest.mark.parametrize("name, kind", [("ico_huge_png", "ico"), ("icns_huge_png", "icns"), ("psd_huge", "psd"),
                                        ("dds_huge", "dds"), ("jpeg2000", "jpeg 2000"), ("svg", "svg"),
                                        ("heic", "heif"), ("avif_frame_bigger_than_header", "avif")])
def test_images_we_do_not_serve_are_415_before_any_decoder_sees_them(name, kind):
    data = hostile.HOSTILE[name]()
    assert image_sniff(data) == kind
    with pytest.raises(UnsupportedImageTypeError) as err:
        image_decode(data)
    assert err.value.status_code == 415 and kind.upper() in err.value.message and "PNG" in err.value.message


def test_bg_remove_names_an_icon_as_unsupported_not_as_not_an_image():
    with pytest.raises(UnsupportedImageTypeError) as err:
        image_check_bg_removable(hostile.ico_huge_png())
    assert "ICO" in err.value.message


# --- Pixel ceiling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["png_huge_header", "jpeg_huge_header", "gif_frame_outside_screen",
                                  "tiff_huge_header", "bmp_huge_header", "webp_huge_canvas"])
def test_the_ceiling_is_read_from_the_bytes_with_the_size_in_the_message(name):
    with pytest.raises(TooManyPixelsError) as err:
        image_decode(hostile.HOSTILE[name]())
    assert "×" in err.value.message and "megapixels" in err.value.message


def test_ceiling_follows_the_setting_for_every_format(settings):
    settings.ORIGIN_MAX_PIXELS = 1000
    for fmt in ["JPEG", "PNG", "GIF", "TIFF", "BMP"]:
        with pytest.raises(TooManyPixelsError):
            image_decode(encode(Image.new("RGB", (40, 26)), fmt))  # 1 040 pixels.
        assert image_decode(encode(Image.new("RGB", (40, 25)), fmt)).size == (40, 25)


def test_a_webp_counts_twice(settings):
    settings.ORIGIN_MAX_PIXELS = 2000
    assert image_decode(encode(Image.new("RGB", (40, 25)), "WEBP")).size == (40, 25)
    with pytest.raises(TooManyPixelsError) as err:
        image_decode(encode(Image.new("RGB", (40, 26)), "WEBP"))
    assert "for this format" in err.value.message


def test_pillow_bomb_guard_stays_on_behind_ours(settings, monkeypatch):
    settings.ORIGIN_MAX_PIXELS = 1_000_000
    # Our own checks switched off, to show the second line alone.
    monkeypatch.setattr(images, "image_check_structure", lambda data, kind: None)
    monkeypatch.setattr(images, "image_check_pixels", lambda image: None)
    for size in [(1500, 1000), (3000, 1000)]:  # Pillow's warning (over 1×), then its error (over 2×).
        with pytest.raises(TooManyPixelsError) as err:
            image_decode(encode(Image.new("L", size), "PNG"))
        assert err.value.status_code == 422
    assert Image.MAX_IMAGE_PIXELS == 1_000_000


def test_tiff_tiles_within_the_ceiling_decode():
    for tile in (64, 256):  # A tile bigger than the image is legal.
        decoded = image_decode(hostile.tiff_tiled(tile))
        assert decoded.size == (64, 64) and decoded.getpixel((5, 0)) == (5, 5, 5)
    with pytest.raises(TooManyPixelsError) as err:
        image_decode(hostile.tiff_huge_tiles())
    assert "tile" in err.value.message


# --- Decode work that pixel counts do not bound ------------------------------------------------

def test_jpeg_scan_limit_follows_the_setting(settings):
    data = encode(Image.new("RGB", (64, 64), "teal"), "JPEG", progressive=True)
    scans = data.count(b"\xff\xda")
    assert 5 < scans <= 12  # libjpeg's progressive script.
    settings.ORIGIN_MAX_JPEG_SCANS = scans
    assert image_decode(data).size == (64, 64)
    settings.ORIGIN_MAX_JPEG_SCANS = scans - 1
    with pytest.raises(TooManyScansError) as err:
        image_decode(data)
    assert err.value.status_code == 422 and f"over {scans - 1} progressive scans" in err.value.message


def test_jpeg_scan_limit_default_is_exact():
    assert image_decode(hostile.jpeg_many_scans(scans=32, size=64)).size == (64, 64)
    with pytest.raises(TooManyScansError):
        image_decode(hostile.jpeg_many_scans(scans=33, size=64))


def test_jpeg_scan_limit_holds_inside_tiff_strips_too(settings):
    settings.ORIGIN_MAX_JPEG_SCANS = 12
    decoded = image_decode(hostile.tiff_jpeg_many_scans(scans=12, size=64))
    assert decoded.size == (64, 64) and decoded.getpixel((3, 3))[0] in range(85, 96)
    with pytest.raises(NotAnImageError):
        image_decode(hostile.tiff_jpeg_many_scans(scans=13, size=64))


def test_scans_of_an_embedded_thumbnail_do_not_count(settings):
    settings.ORIGIN_MAX_JPEG_SCANS = 1
    thumbnail = encode(Image.new("RGB", (16, 16)), "JPEG", progressive=True)
    app1 = b"\xff\xe1" + (2 + 6 + len(thumbnail)).to_bytes(2, "big") + b"Exif\x00\x00" + thumbnail
    main = encode(Image.new("RGB", (32, 32), "red"), "JPEG")
    assert image_decode(main[:2] + app1 + main[2:]).size == (32, 32)


def test_png_split_into_many_small_idat_chunks_still_decodes():
    image = Image.effect_noise((64, 64), 40).convert("RGB")
    data = encode(image, "PNG")
    at = data.index(b"IDAT") - 4
    length = int.from_bytes(data[at:at + 4], "big")
    body = data[at + 8:at + 8 + length]
    chunks = b"".join(hostile._png_chunk(b"IDAT", body[i:i + 8]) for i in range(0, len(body), 8))
    split = data[:at] + chunks + data[at + 12 + length:]
    assert split.count(b"IDAT") > 1000
    assert image_decode(split).tobytes() == image.tobytes()


def test_rle_bmp_is_refused_and_plain_bmp_decodes(monkeypatch):
    image = Image.new("P", (32, 16), 1)
    image.putpalette([0, 0, 0, 250, 20, 20])
    assert image_decode(encode(image, "BMP")).getpixel((3, 3)) == (250, 20, 20)
    with pytest.raises(UnsupportedImageTypeError) as err:
        image_decode(hostile.bmp_rle_runs())
    assert "Run-length-encoded BMP" in err.value.message
    # Pillow's parser sees the same: the second line refuses it too.
    monkeypatch.setattr(images, "image_check_structure", lambda data, kind: None)
    with pytest.raises(UnsupportedImageTypeError):
        image_decode(hostile.bmp_rle_runs())


def test_stray_bytes_before_the_first_frame_count_as_blocks():
    head = b"GIF89a" + struct.pack("<HH", 1, 1) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02\x02\x4c\x01\x00"
    started = time.process_time()
    with pytest.raises(images.TooManySegmentsError):
        image_decode(head + b"\x01" * 12_000_000 + frame + b";")  # Pillow: 0.9 CPU-s stepping over them.
    assert time.process_time() - started < 0.1
    assert image_decode(head + b"\x01" * 100 + frame + b";").size == (1, 1)  # A few are harmless.
