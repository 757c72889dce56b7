import io
import struct

import numpy as np
from PIL import Image, ImageCms

from imaging.decode import image_decode

# sRGB's primaries adapted to D50, as an ICC matrix/TRC profile states them.
SRGB_RED = (0.4361, 0.2225, 0.0139)
SRGB_GREEN = (0.3851, 0.7169, 0.0971)
SRGB_BLUE = (0.1431, 0.0606, 0.7141)
D50 = (0.9642, 1.0, 0.8249)


def encode(image, fmt, **kw):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _s15(value):
    return struct.pack(">i", round(value * 65536))


def _xyz(xyz):
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _curve(gamma):
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _desc(text):
    ascii_ = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(4 + 4 + 3 + 67)


def rgb_profile(red, green, blue, name, gamma=2.2):
    """A minimal ICC v2 RGB matrix/TRC display profile: Pillow ships no non-sRGB profile."""
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(D50)), (b"rXYZ", _xyz(red)), (b"gXYZ", _xyz(green)),
            (b"bXYZ", _xyz(blue)), (b"rTRC", _curve(gamma)), (b"gTRC", _curve(gamma)),
            (b"bTRC", _curve(gamma)), (b"cprt", b"text" + bytes(4) + b"none\0\0\0\0")]
    start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (struct.pack(">I", start + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(24) + bytes(4) + b"".join(_s15(v) for v in D50)
              + bytes(4 + 16 + 28))
    return header + struct.pack(">I", len(tags)) + table + body


def test_exif_orientation_keeps_a_phone_portrait_upright():
    stored = Image.new("RGB", (40, 20), "red")
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # Stored sideways: left red, right blue.
    exif = Image.Exif()
    exif[0x0112] = 6  # Rotate 90° clockwise to display.
    decoded = image_decode(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.size == (20, 40)
    top, bottom = decoded.getpixel((10, 5)), decoded.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50
    assert "exif" not in decoded.info


def test_embedded_non_srgb_profile_is_converted_to_srgb():
    # A profile whose red and green primaries are swapped, so the test cannot pass by accident:
    # its pure red is sRGB's pure green.
    icc = rgb_profile(SRGB_GREEN, SRGB_RED, SRGB_BLUE, "Swapped primaries")
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    decoded = image_decode(encode(image, "PNG", icc_profile=icc))
    assert decoded.mode == "RGB"
    r, g, b = decoded.getpixel((4, 4))
    assert r < 10 and g > 245 and b < 10
    assert "icc_profile" not in decoded.info


def test_rotated_jpeg_with_a_profile_gets_both():
    icc = rgb_profile(SRGB_GREEN, SRGB_RED, SRGB_BLUE, "Swapped primaries")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    decoded = image_decode(encode(stored, "JPEG", exif=exif.tobytes(), icc_profile=icc, quality=95))
    assert decoded.size == (20, 40)
    r, g, b = decoded.getpixel((10, 20))
    assert g > 240 and r < 15 and b < 15
    assert decoded.info == {}


def test_profile_conversion_keeps_alpha():
    icc = rgb_profile(SRGB_GREEN, SRGB_RED, SRGB_BLUE, "Swapped primaries")
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    image.paste((255, 0, 0, 0), (0, 0, 4, 8))
    decoded = image_decode(encode(image, "PNG", icc_profile=icc))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((1, 1))[3] == 0
    r, g, b, a = decoded.getpixel((6, 6))
    assert g > 245 and r < 10 and a == 255


def test_embedded_srgb_profile_round_trips():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.new("RGB", (8, 8), (200, 100, 50))
    decoded = image_decode(encode(image, "PNG", icc_profile=srgb))
    assert decoded.getpixel((4, 4)) == (200, 100, 50)


def test_broken_profile_is_ignored():
    image = Image.new("RGB", (8, 8), (200, 100, 50))
    decoded = image_decode(encode(image, "PNG", icc_profile=b"not a profile at all"))
    assert decoded.getpixel((4, 4)) == (200, 100, 50)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # Full magenta and yellow: red.
    decoded = image_decode(encode(cmyk, "JPEG", quality=95))
    assert decoded.mode == "RGB"
    r, g, b = decoded.getpixel((8, 8))
    assert r > 240 and g < 15 and b < 15


def test_palette_png_with_transparency_becomes_rgba():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 255, 255, 255, 0, 0])
    image.putpixel((3, 3), 1)
    decoded = image_decode(encode(image, "PNG", transparency=0))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0))[3] == 0 and decoded.getpixel((3, 3)) == (255, 0, 0, 255)
    opaque = image_decode(encode(image, "PNG"))
    assert opaque.mode == "RGB" and opaque.getpixel((3, 3)) == (255, 0, 0)


def test_grey_with_alpha_becomes_rgba():
    decoded = image_decode(encode(Image.new("LA", (4, 4), (200, 100)), "PNG"))
    assert decoded.mode == "RGBA" and decoded.getpixel((1, 1)) == (200, 200, 200, 100)


def test_sixteen_bit_grey_png_keeps_white_white():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    decoded = image_decode(data)
    assert decoded.mode == "RGB"
    assert [decoded.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_greyscale_becomes_rgb():
    # Our decision: one rule (RGB or RGBA) for every later stage.
    decoded = image_decode(encode(Image.new("L", (4, 4), 77), "PNG"))
    assert decoded.mode == "RGB" and decoded.getpixel((0, 0)) == (77, 77, 77)


def test_jpeg_draft_decodes_smaller_but_never_below_the_request():
    import io

    from PIL import Image

    from imaging.decode import image_decode

    buf = io.BytesIO()
    Image.new("RGB", (2000, 1000), (10, 200, 30)).save(buf, "JPEG")
    small = image_decode(buf.getvalue(), at_least=(300, 100))
    assert small.size == (500, 250)  # 1/4 scale: the smallest DCT scale still ≥ 300×100.
    assert image_decode(buf.getvalue()).size == (2000, 1000)
    assert image_decode(buf.getvalue(), at_least=(1500, 10)).size == (2000, 1000)


def float_formula_16(values):
    """How 16-bit grey became 8-bit before the banded integer conversion: the fidelity it must keep."""
    return np.clip(np.rint(values.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def test_every_sixteen_bit_value_maps_as_before():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    decoded = image_decode(encode(Image.fromarray(values), "PNG"))
    assert np.array_equal(np.asarray(decoded)[..., 0], float_formula_16(values))


def test_sixteen_bit_bands_join_without_a_seam():
    # 1500 columns: a band is 699 rows, so 2000 rows cross two band boundaries.
    values = np.random.default_rng(7).integers(0, 65536, (2000, 1500), dtype=np.uint16)
    decoded = np.asarray(image_decode(encode(Image.fromarray(values), "PNG")))
    assert np.array_equal(decoded[..., 0], float_formula_16(values))
    assert np.array_equal(decoded[..., 0], decoded[..., 2])


def test_thirty_two_bit_integer_tiff_clips_as_before():
    values = np.array([[-70000, -1, 0, 128, 129, 65407, 65535, 65536, 2**31 - 1]], dtype=np.int32)
    image = Image.fromarray(values, "I")
    decoded = image_decode(encode(image, "TIFF"))
    assert np.asarray(decoded)[0, :, 0].tolist() == float_formula_16(values)[0].tolist()


def test_float_tiff_clips_and_truncates_as_before():
    values = np.array([[-5.5, -0.4, 0.0, 0.6, 127.9, 254.99, 255.0, 300.0, 1e30]], dtype=np.float32)
    decoded = image_decode(encode(Image.fromarray(values, "F"), "TIFF"))
    expected = np.clip(values, 0, 255).astype(np.uint8)
    assert np.asarray(decoded)[0, :, 0].tolist() == expected[0].tolist() == [0, 0, 0, 0, 127, 254, 255, 255, 255]


def test_sixteen_bit_conversion_makes_no_wide_copy_of_the_image():
    import tracemalloc

    from imaging.decode import image_mode_normalise

    image = Image.fromarray(np.full((3000, 4000), 40000, dtype=np.uint16))  # 12 megapixels.
    tracemalloc.start()
    try:
        out = image_mode_normalise(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.getpixel((0, 0)) == (156, 156, 156)
    # The 8-bit result (12 MB) and one band of temporaries; a float64 copy alone would be 96 MB.
    assert peak < 30 * 2**20, peak
