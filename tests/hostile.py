"""Hostile origin files, built at run time, each with the answer the platform must give it.

bench/hostile.py imports HOSTILE and EXPECTED: one small function per file, nothing big committed.
Sizes assume the default settings (ORIGIN_MAX_PIXELS 50 megapixels, ORIGIN_MAX_BYTES 12 MB).
"""

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

MAX_PIXELS = 50_000_000  # The default ORIGIN_MAX_PIXELS.


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, *, depth: int = 8, colour: int = 2, extra: bytes = b"",
         rows: int = 1) -> bytes:
    """A PNG of that header size; `rows` zero scanlines of data (a valid file only if rows == height)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = bytes(1 + width * channels * depth // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def _jpeg_set_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0/SOF2) claiming another size; the scan data is unchanged."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at > 0:
            return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]
    raise ValueError("no frame header")


def _jpeg_last_scan(data: bytes) -> tuple[bytes, bytes]:
    """(the JPEG up to its last scan, the last scan: SOS segment and entropy data, without EOI)."""
    last = data.rindex(b"\xff\xda")
    return data[:last], data[last:-2]


# --- Pixel ceiling from the header --------------------------------------------------------------

def png_huge_header() -> bytes:
    """100000×100000 in the header (10 gigapixels), a few bytes of data."""
    return _png(100_000, 100_000, colour=2, rows=1)


def png_just_over_ceiling() -> bytes:
    """One row more than the ceiling allows, grey, a real (small) body."""
    width = 8000
    return _png(width, MAX_PIXELS // width + 1, colour=0, rows=2)


def jpeg_huge_header() -> bytes:
    """A tiny JPEG whose frame header says 65500×65500 (4.3 gigapixels)."""
    return _jpeg_set_size(_encode(Image.new("RGB", (16, 16), "grey"), "JPEG"), 65500, 65500)


def gif_frame_outside_screen() -> bytes:
    """A 1×1 logical screen whose first frame descriptor says 65535×65535: Pillow grows the size."""
    data = _encode(Image.new("P", (1, 1)), "GIF")
    at = data.index(b"\x2c")  # Image descriptor: x, y, width, height.
    return data[:at + 5] + struct.pack("<HH", 65535, 65535) + data[at + 9:]


def webp_huge_canvas() -> bytes:
    """An animated WebP whose canvas is 16384×16384 (libwebp allocates the canvas when it opens)."""
    frame = _encode(Image.new("RGB", (16, 16), "red"), "WEBP", lossless=True)
    bitstream = frame[12:]  # The VP8L chunk.
    anim = b"ANIM" + struct.pack("<I", 6) + bytes(4) + struct.pack("<H", 0)
    payload = bytes(6) + (15).to_bytes(3, "little") + (15).to_bytes(3, "little") + bytes(3) + b"\x00"
    anmf_body = payload + bitstream
    anmf = b"ANMF" + struct.pack("<I", len(anmf_body)) + anmf_body + bytes(len(anmf_body) % 2)
    side = 16384 - 1
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x02, 0, 0, 0]) + side.to_bytes(3, "little") * 2
    body = b"WEBP" + vp8x + anim + anmf
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_huge_header() -> bytes:
    """A TIFF whose first page says 100000×100000, one tiny strip."""
    data = _encode(Image.new("L", (16, 16)), "TIFF")
    return _tiff_set(data, {256: 100_000, 257: 100_000, 278: 100_000})


def tiff_huge_tiles() -> bytes:
    """A 64×64 deflate TIFF whose one tile says 65536×65536: libtiff allocates a 4-gigapixel tile."""
    body = zlib.compress(bytes(4096))
    return _tiff({256: 64, 257: 64, 258: 8, 259: 8, 262: 1, 277: 1, 322: 65536, 323: 65536,
                  324: 8, 325: len(body)}, body)


def _tiff(tags: dict[int, int | tuple[int, ...]], body: bytes) -> bytes:
    """A little-endian TIFF: the body at offset 8, then one IFD of LONG tags (arrays after it)."""
    ifd = 8 + len(body) + len(body) % 2
    arrays_at = ifd + 2 + 12 * len(tags) + 4
    entries, arrays = b"", b""
    for tag, value in sorted(tags.items()):
        if isinstance(value, tuple) and len(value) > 1:
            entries += struct.pack("<HHII", tag, 4, len(value), arrays_at + len(arrays))
            arrays += struct.pack(f"<{len(value)}I", *value)
        else:
            entries += struct.pack("<HHII", tag, 4, 1, value[0] if isinstance(value, tuple) else value)
    return (b"II*\x00" + struct.pack("<I", ifd) + body + bytes(len(body) % 2)
            + struct.pack("<H", len(tags)) + entries + bytes(4) + arrays)


def tiff_tiled(tile: int = 64) -> bytes:
    """A valid 64×64 grey deflate TIFF in one tile of `tile`×`tile`."""
    body = zlib.compress(bytes(range(256)) * (tile * tile // 256))
    return _tiff({256: 64, 257: 64, 258: 8, 259: 8, 262: 1, 277: 1, 322: tile, 323: tile,
                  324: 8, 325: len(body)}, body)


def tiff_many_strips() -> bytes:
    """A 16×1000000 TIFF of one-row strips: a million strips, each a decoder call (8 MB of offsets)."""
    rows = 1_000_000
    body = bytes(16)
    return _tiff({256: 16, 257: rows, 258: 8, 259: 1, 262: 1, 277: 1, 278: 1,
                  273: (8,) * rows, 279: (16,) * rows}, body)


def bmp_huge_header() -> bytes:
    """A BMP whose header says 100000×100000 at 24 bits."""
    data = _encode(Image.new("RGB", (4, 4)), "BMP")
    return data[:18] + struct.pack("<ii", 100_000, 100_000) + data[26:]


def bmp_rle_runs() -> bytes:
    """A 4000×4000 RLE8 BMP of 5.5 million one-pixel runs (11 MB): Pillow decodes RLE in Python."""
    runs = b"\x01\x05" * 5_500_000 + b"\x00\x01"
    info = struct.pack("<IiiHHIIiiII", 40, 4000, 4000, 1, 8, 1, len(runs), 2835, 2835, 256, 0)
    start = 14 + 40 + 1024
    return b"BM" + struct.pack("<IHHI", start + len(runs), 0, 0, start) + info + bytes(1024) + runs


def avif_frame_bigger_than_header() -> bytes:
    """An AVIF whose container (ispe) says 16×16 around a 4000×4000 AV1 frame: libavif decodes
    the whole frame, so no header check bounds an AVIF."""
    data = _encode(Image.new("RGB", (4000, 4000), "red"), "AVIF", speed=10, subsampling="4:4:4")
    at = data.index(b"ispe") + 8
    return data[:at] + struct.pack(">II", 16, 16) + data[at + 8:]


def heic() -> bytes:
    """The start of an HEIC file (ftyp heic): an image format we do not decode."""
    return struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic" + bytes(64)


def tiff_many_pages() -> bytes:
    """A TIFF of 100 pages (1000×1000 each); only the first is decoded."""
    pages = [Image.new("L", (1000, 1000), i % 256) for i in range(100)]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")


def _tiff_set(data: bytes, values: dict[int, int]) -> bytes:
    """The TIFF with some SHORT/LONG tags of its first IFD given other values (in place)."""
    out = bytearray(data)
    little = data[:2] == b"II"
    end = "<" if little else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    (count,) = struct.unpack(end + "H", data[ifd:ifd + 2])
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, kind, n = struct.unpack(end + "HHI", data[at:at + 8])
        if tag in values and n == 1:
            if kind == 3:
                if values[tag] > 0xFFFF:
                    out[at + 2:at + 4] = struct.pack(end + "H", 4)
                    out[at + 8:at + 12] = struct.pack(end + "I", values[tag])
                else:
                    out[at + 8:at + 12] = struct.pack(end + "HH", values[tag], 0)
            else:
                out[at + 8:at + 12] = struct.pack(end + "I", values[tag])
    return bytes(out)


# --- Formats we do not serve, including containers that decode on open -------------------------

def ico_huge_png() -> bytes:
    """An ICO whose one entry is a PNG of 100000×100000 (Pillow decodes ICO entries on open)."""
    png = png_huge_header()
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def icns_huge_png() -> bytes:
    """An ICNS with a 1024×1024 slot (ic10) holding a PNG of 100000×100000."""
    png = png_huge_header()
    element = b"ic10" + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(element)) + element


def psd_huge() -> bytes:
    """A Photoshop header saying 30000×30000, 3 channels, no data."""
    header = b"8BPS" + struct.pack(">H", 1) + bytes(6) + struct.pack(">HIIHH", 3, 30000, 30000, 8, 3)
    return header + struct.pack(">I", 0) * 3 + struct.pack(">H", 0)


def dds_huge() -> bytes:
    """A DDS header saying 65536×65536 uncompressed RGBA."""
    header = struct.pack("<IIIIIII", 124, 0x100F, 65536, 65536, 65536 * 4, 0, 1) + bytes(44)
    pixel_format = struct.pack("<IIIIIIII", 32, 0x41, 0, 32, 0xFF0000, 0xFF00, 0xFF, 0xFF000000)
    return b"DDS " + header + pixel_format + bytes(20)


def jpeg2000() -> bytes:
    """A small JPEG 2000 (jp2): an image format, but not one the contract serves."""
    return _encode(Image.new("RGB", (16, 16), "red"), "JPEG2000")


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"></svg>'


def pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


# --- Decode work that pixel counts do not bound ------------------------------------------------

def jpeg_many_scans(scans: int = 5000, size: int = 2048) -> bytes:
    """A progressive JPEG of `size`² whose last refinement scan is repeated to make `scans` scans."""
    data = _encode(Image.new("RGB", (size, size), (90, 140, 200)), "JPEG", progressive=True)
    head, last = _jpeg_last_scan(data)
    return head + last * max(1, scans - data.count(b"\xff\xda") + 1) + b"\xff\xd9"


def jpeg_many_segments() -> bytes:
    """A 16×16 JPEG with 2.7 million empty comment segments before its frame (11 MB)."""
    data = _encode(Image.new("RGB", (16, 16)), "JPEG")
    return data[:2] + b"\xff\xfe\x00\x02" * 2_750_000 + data[2:]


def png_many_chunks() -> bytes:
    """A 16×16 PNG with 900 000 empty private chunks before its data (11 MB)."""
    data = _encode(Image.new("RGB", (16, 16)), "PNG")
    return data[:33] + _png_chunk(b"quUx", b"") * 900_000 + data[33:]


def gif_many_blocks() -> bytes:
    """A 16×16 GIF with 2.2 million one-byte extensions before its first frame (11 MB)."""
    data = b"GIF89a" + _encode(Image.new("P", (16, 16)), "GIF")[6:]
    at = data.rindex(b"\x2c\x00\x00\x00\x00")
    return data[:at] + b"\x21\xf0\x01\x00\x00" * 2_200_000 + data[at:]


def jpeg_progressive_at_limits() -> bytes:
    """The worst JPEG still allowed: 49 megapixels, progressive, ORIGIN_MAX_JPEG_SCANS (32) scans."""
    return jpeg_many_scans(scans=32, size=7000)


def jpeg_cmyk_progressive_at_ceiling() -> bytes:
    """A progressive 4:4:4 CMYK JPEG of 49 megapixels: libjpeg holds all its coefficients."""
    return _encode(Image.new("CMYK", (7000, 7000), (10, 20, 30, 40)), "JPEG", progressive=True, subsampling=0)


def webp_at_ceiling() -> bytes:
    """A still WebP of 25 megapixels: the most a WebP may have (it counts twice)."""
    return _encode(Image.new("RGB", (5000, 5000), "teal"), "WEBP", lossless=True)


def webp_over_ceiling() -> bytes:
    """A still WebP of 36 megapixels: under ORIGIN_MAX_PIXELS, over it once counted twice."""
    return _encode(Image.new("RGB", (6000, 6000), "teal"), "WEBP", lossless=True)


def tiff_jpeg_many_scans(scans: int = 3000, size: int = 2048) -> bytes:
    """A grey TIFF whose one strip is a progressive JPEG of `scans` scans (libtiff decodes it)."""
    data = _encode(Image.new("L", (size, size), 90), "JPEG", progressive=True)
    head, last = _jpeg_last_scan(data)
    jpeg = head + last * max(1, scans - data.count(b"\xff\xda") + 1) + b"\xff\xd9"
    return _tiff({256: size, 257: size, 258: 8, 259: 7, 262: 1, 277: 1, 278: size, 273: 8,
                  279: len(jpeg)}, jpeg)


def jpeg_huge_icc() -> bytes:
    """A JPEG carrying an 8 MB ICC profile (in 128 APP2 chunks) of junk."""
    return _encode(Image.new("RGB", (64, 64), (200, 100, 50)), "JPEG", icc_profile=bytes(8_000_000))


def jpeg_absurd_exif() -> bytes:
    """A JPEG whose EXIF IFD has 5000 entries, each claiming half the EXIF block as its value."""
    count = 5000
    size = 8 + 2 + 12 * count + 4
    entries = b"".join(struct.pack(">HHII", 0x9000 + i, 7, (size - 8) // 2, 8) for i in range(count))
    exif = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", count) + entries + bytes(4)
    return _encode(Image.new("RGB", (64, 64), "white"), "JPEG", exif=b"Exif\x00\x00" + exif)


def png_ztxt_bomb() -> bytes:
    """A PNG with one zTXt chunk that inflates to 200 MB (about 200 kB on the wire)."""
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    text = b"".join(packer.compress(block) for _ in range(200)) + packer.flush()
    chunk = _png_chunk(b"zTXt", b"Comment\x00\x00" + text)
    return _png(16, 16, extra=chunk, rows=16)


def png_many_text_chunks() -> bytes:
    """A PNG with 100 zTXt chunks of just under 1 MB each: 100 MB of text in ~100 kB."""
    text = zlib.compress(bytes(1_000_000), 9)
    chunks = b"".join(_png_chunk(b"zTXt", f"k{i}".encode() + b"\x00\x00" + text) for i in range(100))
    return _png(16, 16, extra=chunks, rows=16)


def png_icc_bomb() -> bytes:
    """A PNG whose iCCP chunk inflates to 200 MB."""
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    profile = b"".join(packer.compress(block) for _ in range(200)) + packer.flush()
    return _png(16, 16, extra=_png_chunk(b"iCCP", b"icc\x00\x00" + profile), rows=16)


def png16_at_ceiling() -> bytes:
    """A 16-bit grey PNG of just under 50 megapixels: valid, and must render within the budget."""
    width = 7000
    return _png(width, MAX_PIXELS // width, depth=16, colour=0, rows=MAX_PIXELS // width)


def gif_many_frames() -> bytes:
    """An animated GIF of 300 full-size frames (2000×2000): image_decode decodes the first only;
    the endpoint, which keeps it animated, refuses the 1.2 gigapixels its frames would decode."""
    frames = [Image.new("P", (2000, 2000), i) for i in range(2)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 255, 255])
    two = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)
    # The second frame (its graphic control extension and image data), repeated.
    second = two.rindex(b"\x21\xf9\x04")
    return two[:second] + two[second:-1] * 299 + b"\x3b"


def webp_many_frames() -> bytes:
    """An animated WebP of 300 full-size frames (2000×2000): as gif_many_frames."""
    frames = [Image.new("RGB", (2000, 2000), colour) for colour in ("red", "blue")]
    two = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=10)
    second = two.rindex(b"ANMF")
    body = two[12:second] + two[second:] * 299
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def _gif_1x1(frame_data: bytes) -> bytes:
    head = b"GIF89a" + struct.pack("<HH", 1, 1) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    return head + b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00" + frame_data + b"\x3b"


_GIF_1X1_FRAME = (b"\x21\xf9\x04\x04\x02\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1)
                  + b"\x00\x02\x02\x4c\x01\x00")


def gif_many_tiny_frames() -> bytes:
    """An animated GIF of 100 000 one-pixel frames (2.3 MB): Pillow's n_frames walks them all in
    Python; the endpoint counts them to one past RENDER_MAX_FRAMES and refuses."""
    return _gif_1x1(_GIF_1X1_FRAME * 100_000)


def gif_frames_many_sub_blocks() -> bytes:
    """Two one-pixel frames, the first's image data split into 5.5 million one-byte sub-blocks
    (11 MB): Pillow reads each in Python to reach the second frame (a CPU-second)."""
    first = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02" + b"\x01\x4c" + b"\x01\x00" * 5_500_000 + b"\x00"
    return _gif_1x1(first + _GIF_1X1_FRAME)


# --- Truncated files (LOAD_TRUNCATED_IMAGES stays off) -------------------------------------------

def _photo(fmt: str, **kw) -> bytes:
    return _encode(Image.effect_noise((256, 256), 64).convert("RGB"), fmt, **kw)


def jpeg_truncated() -> bytes:
    data = _photo("JPEG")
    return data[:len(data) // 2]


def png_truncated() -> bytes:
    data = _photo("PNG")
    return data[:len(data) // 2]


def gif_truncated() -> bytes:
    data = _photo("GIF")
    return data[:len(data) // 2]


def webp_truncated() -> bytes:
    data = _photo("WEBP")
    return data[:len(data) // 2]


def tiff_truncated() -> bytes:
    data = _photo("TIFF")
    return data[:len(data) // 2]


HOSTILE: dict[str, Callable[[], bytes]] = {
    "png_huge_header": png_huge_header,
    "png_just_over_ceiling": png_just_over_ceiling,
    "jpeg_huge_header": jpeg_huge_header,
    "gif_frame_outside_screen": gif_frame_outside_screen,
    "webp_huge_canvas": webp_huge_canvas,
    "tiff_huge_header": tiff_huge_header,
    "tiff_huge_tiles": tiff_huge_tiles,
    "tiff_many_pages": tiff_many_pages,
    "tiff_many_strips": tiff_many_strips,
    "bmp_huge_header": bmp_huge_header,
    "bmp_rle_runs": bmp_rle_runs,
    "avif_frame_bigger_than_header": avif_frame_bigger_than_header,
    "heic": heic,
    "ico_huge_png": ico_huge_png,
    "icns_huge_png": icns_huge_png,
    "psd_huge": psd_huge,
    "dds_huge": dds_huge,
    "jpeg2000": jpeg2000,
    "svg": svg,
    "pdf": pdf,
    "jpeg_many_scans": jpeg_many_scans,
    "tiff_jpeg_many_scans": tiff_jpeg_many_scans,
    "jpeg_many_segments": jpeg_many_segments,
    "png_many_chunks": png_many_chunks,
    "gif_many_blocks": gif_many_blocks,
    "jpeg_progressive_at_limits": jpeg_progressive_at_limits,
    "jpeg_cmyk_progressive_at_ceiling": jpeg_cmyk_progressive_at_ceiling,
    "webp_at_ceiling": webp_at_ceiling,
    "webp_over_ceiling": webp_over_ceiling,
    "jpeg_huge_icc": jpeg_huge_icc,
    "jpeg_absurd_exif": jpeg_absurd_exif,
    "png_ztxt_bomb": png_ztxt_bomb,
    "png_many_text_chunks": png_many_text_chunks,
    "png_icc_bomb": png_icc_bomb,
    "png16_at_ceiling": png16_at_ceiling,
    "gif_many_frames": gif_many_frames,
    "webp_many_frames": webp_many_frames,
    "gif_many_tiny_frames": gif_many_tiny_frames,
    "gif_frames_many_sub_blocks": gif_frames_many_sub_blocks,
    "jpeg_truncated": jpeg_truncated,
    "png_truncated": png_truncated,
    "gif_truncated": gif_truncated,
    "webp_truncated": webp_truncated,
    "tiff_truncated": tiff_truncated,
}

# (HTTP status, error code) each file must answer with default settings; 200 files must render.
EXPECTED: dict[str, tuple[int, str | None]] = {
    "png_huge_header": (422, "too_many_pixels"),
    "png_just_over_ceiling": (422, "too_many_pixels"),
    "jpeg_huge_header": (422, "too_many_pixels"),
    "gif_frame_outside_screen": (422, "too_many_pixels"),
    "webp_huge_canvas": (422, "too_many_pixels"),
    "tiff_huge_header": (422, "too_many_pixels"),
    "tiff_huge_tiles": (422, "too_many_pixels"),
    "tiff_many_pages": (200, None),
    "tiff_many_strips": (422, "too_many_segments"),
    "bmp_huge_header": (422, "too_many_pixels"),
    "bmp_rle_runs": (415, "unsupported_image_type"),
    "avif_frame_bigger_than_header": (415, "unsupported_image_type"),
    "heic": (415, "unsupported_image_type"),
    "ico_huge_png": (415, "unsupported_image_type"),
    "icns_huge_png": (415, "unsupported_image_type"),
    "psd_huge": (415, "unsupported_image_type"),
    "dds_huge": (415, "unsupported_image_type"),
    "jpeg2000": (415, "unsupported_image_type"),
    "svg": (415, "unsupported_image_type"),
    "pdf": (422, "not_an_image"),
    "jpeg_many_scans": (422, "too_many_scans"),
    "tiff_jpeg_many_scans": (422, "not_an_image"),
    "jpeg_many_segments": (422, "too_many_segments"),
    "png_many_chunks": (422, "too_many_segments"),
    "gif_many_blocks": (422, "too_many_segments"),
    "jpeg_progressive_at_limits": (200, None),
    "jpeg_cmyk_progressive_at_ceiling": (200, None),
    "webp_at_ceiling": (200, None),
    "webp_over_ceiling": (422, "too_many_pixels"),
    "jpeg_huge_icc": (200, None),
    "jpeg_absurd_exif": (200, None),
    "png_ztxt_bomb": (422, "not_an_image"),
    "png_many_text_chunks": (422, "not_an_image"),
    "png_icc_bomb": (422, "not_an_image"),
    "png16_at_ceiling": (200, None),
    "gif_many_frames": (200, None),
    "webp_many_frames": (200, None),
    "gif_many_tiny_frames": (200, None),
    "gif_frames_many_sub_blocks": (200, None),
    "jpeg_truncated": (422, "not_an_image"),
    "png_truncated": (422, "not_an_image"),
    "gif_truncated": (422, "not_an_image"),
    "webp_truncated": (422, "not_an_image"),
    "tiff_truncated": (422, "not_an_image"),
}

# What the rendering endpoint answers where it differs from image_decode's answer above: an
# animation the render keeps animated has its frames counted and decoded there (rendering/services.py).
HTTP_EXPECTED = {
    **EXPECTED,
    "gif_many_frames": (422, "animation_too_large"),
    "webp_many_frames": (422, "animation_too_large"),
    "gif_many_tiny_frames": (422, "too_many_frames"),
    "gif_frames_many_sub_blocks": (422, "too_many_segments"),
}
