"""Decoding origin bytes safely: type by content, pixel ceiling before decode, fidelity to sRGB."""

import io
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageCms, ImageFile

from core.errors import ServiceError

# The formats the contract decodes, each read by exactly one Pillow plugin: never "whatever Pillow
# opens". Animated and multi-page files give their first frame or page only, except through
# image_frames (animated GIF and WebP). Not AVIF: Pillow
# gives libavif no size limit, and the AV1 frame may be far bigger than the size the container
# states (a file saying 16×16 decodes a 64-megapixel frame), so no header check can bound it.
DECODERS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP"}

SIGNATURES = [
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    # Images we recognise but do not serve: 415 before any decoder sees them (icons and the like
    # decode their entries on open).
    (b"\x00\x00\x01\x00", "ico"),
    (b"\x00\x00\x02\x00", "cur"),
    (b"icns", "icns"),
    (b"8BPS", "psd"),
    (b"DDS ", "dds"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg 2000"),
    (b"\xff\x4f\xff\x51", "jpeg 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jpeg xl"),
    (b"\xff\x0a", "jpeg xl"),
    (b"%!PS", "eps"),
    (b"\xc5\xd0\xd3\xc6", "eps"),
    (b"SIMPLE  =", "fits"),
    (b"qoif", "qoi"),
    (b"BLP1", "blp"),
    (b"BLP2", "blp"),
    (b"\x01\xda", "sgi"),
    (b"\x59\xa6\x6a\x95", "sun raster"),
    (b"\xb1\x68\xde\x3a", "dcx"),
    (b"/* XPM */", "xpm"),
    (b"#define", "xbm"),
    (b"\xd7\xcd\xc6\x9a", "wmf"),
    (b"gimp xcf", "xcf"),
]
_NETPBM = re.compile(rb"P[1-7]\s")
BG_REMOVE_TYPES = {"jpeg", "png"}
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
EXIF_ORIENTATION = 0x0112
# How each EXIF orientation is turned upright, as ImageOps.exif_transpose does.
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UnsupportedImageTypeError(ServiceError):
    status_code = 415
    code = "unsupported_image_type"


class NotAnImageError(ServiceError):
    status_code = 422
    code = "not_an_image"
    default_message = "The origin file is not an image, or it is corrupt."


class TooManyPixelsError(ServiceError):
    status_code = 422
    code = "too_many_pixels"


class TooManyScansError(ServiceError):
    status_code = 422
    code = "too_many_scans"


class TooManySegmentsError(ServiceError):
    status_code = 422
    code = "too_many_segments"


class TooManyFramesError(ServiceError):
    status_code = 422
    code = "too_many_frames"


# Structure no real file comes near, each far below what costs a second to walk: Pillow reads
# every JPEG segment, PNG chunk and GIF block before the first frame in Python (~3–7 µs each,
# so 12 MB of empty ones is 6 CPU-seconds), and every TIFF strip or tile is one decoder call.
JPEG_MAX_SEGMENTS = 4096  # Real files: 10–300 (APP2 carries an ICC profile in up to 255 chunks).
PNG_MAX_CHUNKS = 20_000  # libpng writes 8 kB IDAT chunks: 1 500 for a 12 MB file.
GIF_MAX_BLOCKS = 10_000  # Extension sub-blocks before the first frame (XMP takes a few hundred).
TIFF_MAX_TILES = 100_000  # Strips or tiles of the first page: 16×16 tiles of 50 megapixels is 200 000.
# Blocks of a whole animated GIF (sub-blocks, and stray bytes Pillow steps over one by one), each
# read in Python again when Pillow moves to the next frame: encoders write 255-byte sub-blocks, so
# 12 MB of frames is 50 000; 6 million one-byte ones would be a CPU-second before any pixel.
GIF_MAX_ANIMATION_BLOCKS = 200_000
WEBP_MAX_CHUNKS = 100_000  # RIFF chunks of an animated WebP: one per frame and a few more.
# What Pillow's parsers and decoders raise on a malformed header or body: each is the client's file,
# never a 5xx.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
                 struct.error, ZeroDivisionError, OverflowError)
# Markers inside entropy-coded JPEG data: 0xFF then anything but stuffing (00), restarts (D0–D7), fill (FF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0–SOF15: the frame header with the size.
# Rows of a 16-bit or float image converted at a time: a few MB of temporaries, never a whole copy.
_CHUNK_PIXELS = 1 << 20


def image_sniff(data: bytes) -> str | None:
    """The image type named by the file's first bytes; extensions and headers are not trusted.

    Types not in DECODERS are images we recognise but do not serve.
    """
    for magic, kind in SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":
        box = data[8:min(len(data), max(16, int.from_bytes(data[:4], "big")))]
        brands = {box[i:i + 4] for i in range(0, len(box) - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "avif"
        if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}:
            return "heif"
    if _NETPBM.match(data[:3]):
        return "netpbm"
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<") and b"<svg" in head:
        return "svg"
    return None


def image_check_bg_removable(data: bytes) -> str:
    kind = image_sniff(data)
    if kind is None:
        raise NotAnImageError("The origin file is not a JPG or PNG image (its content is not an image).")
    if kind not in BG_REMOVE_TYPES:
        raise UnsupportedImageTypeError(
            f"Background removal needs a JPG or PNG origin; this one is {kind.upper()}."
        )
    return kind


def image_decode(data: bytes, *, at_least: tuple[int, int] | None = None) -> Image.Image:
    """Opens, checks the pixel ceiling from the header, decodes, orients (EXIF) and normalises to sRGB
    RGB or RGBA with no metadata, so later stages can rely on both.

    Security checks in order, all before any pixel is allocated: the type by content (only
    DECODERS), the file's structure (image_check_structure), the header's size against
    ORIGIN_MAX_PIXELS; Pillow's own bomb guard stays on behind them.

    `at_least` (width, height as displayed) lets a JPEG decode at 1/2, 1/4 or 1/8 of its size
    while still at least that big: far less work for a thumbnail of a large photo.
    """
    image = _image_open(data)
    geometry = None
    if at_least and image.format in ("JPEG", "MPO"):
        wanted, stored = at_least, image.size
        sideways = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
        if sideways:
            wanted = (at_least[1], at_least[0])  # Stored sideways: the draft is asked before turning.
        drafted = image.draft(None, wanted)
        if drafted is not None and image.size != stored:
            # Decoded at 1/scale: the pixels cover stored/scale, their last row and column only
            # partly (2000×1333 at 1/4 is 500×334 pixels for 500×333.25 of picture).
            scale = stored[0] / drafted[1][2]
            displayed = stored[::-1] if sideways else stored
            geometry = Geometry(size=displayed, box=(displayed[0] / scale, displayed[1] / scale))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            image = image_orient(image)
    except DECODE_ERRORS:
        raise NotAnImageError("The origin image is truncated or corrupt.") from None
    try:
        image = image_mode_normalise(image_to_srgb(image))
    except ValueError:
        # A mode Pillow decodes but cannot turn into RGB (LAB TIFF, say).
        raise UnsupportedImageTypeError(f"Origin images in the {image.mode} colour mode are not supported.") from None
    if isinstance(image, ImageFile.ImageFile):
        # A plain image on the same decoded pixels (no copy): the file's cached EXIF and its
        # buffer do not travel on to later stages.
        image = image._new(image.im)
    # Nothing of the origin's metadata (EXIF, XMP, ICC, comments) may leak into an output.
    image.info = {}
    if geometry is not None:
        # An attribute, not info: a new image made from this one (a crop, a resize) does not
        # inherit it, so no later stage can read a geometry that is not its image's.
        image.geometry = geometry
    # The EXIF orientation it was turned upright by (1: none): `orient` replaces it.
    image.orientation = orientation if orientation in ORIENTATIONS or orientation == 1 else 1
    return image


def _image_open(data: bytes) -> ImageFile.ImageFile:
    """The file opened by its one decoder, after the checks on its bytes and before any pixel."""
    kind = image_sniff(data)
    if kind is None:
        raise NotAnImageError()
    if kind not in DECODERS:
        raise UnsupportedImageTypeError(
            f"{kind.upper()} origins are not supported; use JPEG, PNG, WebP, GIF, TIFF or BMP."
        )
    image_check_structure(data, kind)
    limit = settings.ORIGIN_MAX_PIXELS
    # The second line: Pillow warns over the limit and refuses over twice it, also for sizes only
    # known while it opens (a GIF frame bigger than its screen).
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[DECODERS[kind]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixelsError(
            f"The origin image has more pixels than the limit of {limit / 1_000_000:g} megapixels."
        ) from None
    except ValueError:
        # Pillow's limits on metadata: PNG text and profile chunks (1 MB each, 64 MB in all).
        raise NotAnImageError("The origin image is corrupt, or its metadata is over the decoder's limits.") from None
    except DECODE_ERRORS:
        raise NotAnImageError() from None
    image_check_pixels(image)
    return image


@dataclass(frozen=True)
class Animation:
    """An animated GIF or WebP, read from its structure before any frame is decoded."""

    frames: int
    size: tuple[int, int]  # The canvas the frames are served at (a GIF's as its first frame opens).
    # The largest canvas decoding allocates for any frame (a GIF frame may lie outside the screen).
    extent: tuple[int, int]
    alpha: bool  # Whether any frame may be transparent.


def image_animation(data: bytes, *, max_frames: int) -> Animation | None:
    """The frame count and canvas of an animated GIF or WebP from its bytes alone (None for a
    still image or another type), refusing more than `max_frames` frames before any is decoded.
    Pillow's n_frames would walk a GIF's blocks in Python, unbounded; this walk is bounded too."""
    kind = image_sniff(data)
    if kind == "gif":
        found = _gif_animation(data, max_frames)
    elif kind == "webp":
        found = _webp_animation(data, max_frames)
    else:
        return None
    if found is None or found.frames < 2:
        return None
    _pixels_check(*found.extent, weight=2 if kind == "webp" else 1)
    if found.frames > max_frames:
        raise TooManyFramesError(
            f"The origin {kind.upper()} has over {max_frames} frames, the limit of this platform "
            "(RENDER_MAX_FRAMES); ask for frame=1 or another format for a still image."
        )
    return found


def image_frames(data: bytes, *, count: int, alpha: bool) -> Iterator[tuple[Image.Image, int]]:
    """The first `count` frames of an animated GIF or WebP, each as a viewer shows it (composited
    onto the frames before it, disposal applied: Pillow's ImageSequence), in sRGB, RGBA when
    `alpha` (any frame may be transparent) else RGB, all at the first frame's size, with each
    frame's duration in milliseconds. Decoded one at a time: only the current frame is held."""
    image = _image_open(data)
    size, mode = image.size, "RGBA" if alpha else "RGB"
    srgb = _srgb_transform(image.info.get("icc_profile"), mode)
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for index in range(count):
                image.seek(index)
                frame = image.convert(mode)
                if frame.size != size:
                    frame = frame.crop((0, 0, *size))  # As browsers do: the canvas is the first frame's.
                if srgb is not None:
                    frame = ImageCms.applyTransform(frame, srgb)
                if orientation in ORIENTATIONS:
                    frame = frame.transpose(ORIENTATIONS[orientation])
                frame.info = {}
                frame.orientation = orientation if orientation in ORIENTATIONS else 1
                yield frame, int(image.info.get("duration") or 0)
    except DECODE_ERRORS:
        raise NotAnImageError("The origin animation is truncated or corrupt.") from None


def _srgb_transform(icc: bytes | None, mode: str):
    """The transform from an embedded profile to sRGB, built once for every frame (None: sRGB
    already, no profile, or a broken one, ignored as browsers do)."""
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower():
            return None
        return ImageCms.buildTransform(profile, _SRGB, mode, mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _gif_animation(data: bytes, max_frames: int) -> Animation | None:
    """Walks every block of a GIF as Pillow reads them, counting frames (to one past
    `max_frames`), their extent, and whether any names a transparent colour."""
    if len(data) < 13:
        return None
    screen = struct.unpack("<HH", data[6:10])
    width, height = screen
    pos, end, frames, blocks, alpha = 13, len(data), 0, 0, False
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    first = None
    while pos < end and frames <= max_frames:
        introducer = data[pos]
        if introducer == 0x21:  # Extension: its label, then sub-blocks.
            if pos + 3 < end and data[pos + 1] == 0xF9 and data[pos + 2] >= 4:
                alpha = alpha or bool(data[pos + 3] & 1)  # Graphic control: a transparent index.
            pos += 2
        elif introducer == 0x2C:  # A frame: its descriptor, local palette, code size, sub-blocks.
            if pos + 10 > end:
                break
            x, y, w, h = struct.unpack("<HHHH", data[pos + 1:pos + 9])
            width, height = max(width, x + w), max(height, y + h)
            if first is None:
                first = (width, height)
            frames += 1
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        elif introducer == 0x3B:  # Trailer.
            break
        else:
            pos += 1  # Pillow steps over a stray byte, one read at a time.
            blocks += 1
            continue
        while pos < end:
            length = data[pos]
            pos += 1 + length
            blocks += 1
            if blocks > GIF_MAX_ANIMATION_BLOCKS:
                raise TooManySegmentsError(f"The origin GIF has over {GIF_MAX_ANIMATION_BLOCKS} blocks.")
            if not length:
                break
    if first is None:
        return None
    return Animation(frames=frames, size=first, extent=(width, height), alpha=alpha)


def _webp_animation(data: bytes, max_frames: int) -> Animation | None:
    """Counts the ANMF chunks of a WebP whose VP8X header says it is animated."""
    if data[12:16] != b"VP8X" or len(data) < 30 or not data[20] & 0x02:
        return None
    size = _webp_canvas(data)
    pos, end, frames, chunks = 12, min(len(data), 8 + int.from_bytes(data[4:8], "little")), 0, 0
    while pos + 8 <= end and frames <= max_frames:
        chunks += 1
        if chunks > WEBP_MAX_CHUNKS:
            raise TooManySegmentsError(f"The origin WebP has over {WEBP_MAX_CHUNKS} chunks.")
        if data[pos:pos + 4] == b"ANMF":
            frames += 1
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        pos += 8 + length + (length & 1)
    return Animation(frames=frames, size=size, extent=size, alpha=bool(data[20] & 0x10))


def image_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1–8) decoding turned the image upright by; 1 for an image not
    decoded here."""
    return getattr(image, "orientation", 1)


def image_alpha_possible(data: bytes) -> bool:
    """Whether the file can hold transparency at all, from its header alone: PNG with an alpha
    channel or a tRNS chunk, WebP with alpha, GIF (any frame may name a transparent colour)."""
    kind = image_sniff(data)
    if kind == "png":
        return len(data) > 25 and (data[25] in (4, 6) or b"tRNS" in data[:65536])
    if kind == "webp" and len(data) > 20:
        chunk = data[12:16]
        return chunk == b"VP8L" or (chunk == b"VP8X" and bool(data[20] & 0x10))  # Lossless, or the alpha flag.
    return kind == "gif"


def image_transparency(image: Image.Image) -> float:
    """The share of the image's pixels that are not fully opaque (0 for an image without alpha)."""
    if not image.has_transparency_data:
        return 0.0
    alpha = (image if image.mode in ("RGBA", "LA") else image.convert("RGBA")).getchannel("A")
    histogram = alpha.histogram()
    return 1.0 - histogram[255] / (image.width * image.height)


@dataclass(frozen=True)
class Geometry:
    """A reduced-scale decode (JPEG draft): `size` is the image's own size, which sizing
    arithmetic uses (as imgix would, on the whole image); `box` the part of the decoded pixels
    that picture covers, which resampling reads."""

    size: tuple[int, int]
    box: tuple[float, float]


def image_geometry(image: Image.Image) -> Geometry:
    """The image's geometry: its own size and box unless it was decoded at reduced scale."""
    return getattr(image, "geometry", None) or Geometry(size=image.size, box=image.size)


def image_check_structure(data: bytes, kind: str) -> None:
    """The header's size against the ceiling (JPEG, PNG, GIF, WebP, TIFF, BMP), and what pixel
    counts do not bound (JPEG scans and segments, PNG chunks, GIF blocks, TIFF strips and tiles,
    RLE bitmaps), read from the bytes before Pillow parses anything."""
    if kind == "jpeg":
        _jpeg_check(data)
    elif kind == "png" and len(data) >= 24:
        _pixels_check(int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
        _png_check(data)
    elif kind == "gif":
        _gif_check(data)
    elif kind == "webp":
        size = _webp_canvas(data)
        if size is not None:
            # libwebp allocates two RGBA canvases when the file is opened (the frame and the one
            # before it, even for a still image): a WebP counts twice against the ceiling.
            _pixels_check(*size, weight=2)
    elif kind == "tiff":
        _tiff_check(data)
        # JPEG-compressed strips and tiles are decoded by libtiff, whose only knob on scans is this
        # variable (read each time it sets up a JPEG strip; its own default is 100). It refuses the
        # scan numbered at the limit, hence the + 1. Set only when it changes: setenv is not
        # thread-safe against the getenv of a decode running in another thread.
        scans = str(settings.ORIGIN_MAX_JPEG_SCANS + 1)
        if os.environ.get("LIBTIFF_JPEG_MAX_ALLOWED_SCAN_NUMBER") != scans:
            os.environ["LIBTIFF_JPEG_MAX_ALLOWED_SCAN_NUMBER"] = scans
    elif kind == "bmp" and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 header: 16-bit sizes.
            _pixels_check(int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little"))
        else:
            width, height = struct.unpack("<ii", data[18:26])
            _pixels_check(abs(width), abs(height))
            if data[30:34] in (b"\x01\x00\x00\x00", b"\x02\x00\x00\x00"):
                raise _bmp_rle_error()


def image_check_pixels(image: Image.Image) -> None:
    """The ceiling again on the size Pillow read, behind the checks on the bytes."""
    _pixels_check(*image.size)
    if any(tile.codec_name == "bmp_rle" for tile in image.tile):
        raise _bmp_rle_error()


def _bmp_rle_error() -> UnsupportedImageTypeError:
    # Pillow decodes RLE bitmaps in Python, run by run: 11 MB of one-pixel runs is 8 CPU-seconds.
    return UnsupportedImageTypeError(
        "Run-length-encoded BMP origins are not supported; use an uncompressed BMP, PNG or JPEG."
    )


def _pixels_check(width: int, height: int, *, what: str = "image", weight: int = 1) -> None:
    limit = settings.ORIGIN_MAX_PIXELS // weight
    # Checked before decode so a decompression bomb never allocates.
    if width * height > limit:
        raise TooManyPixelsError(
            f"The origin {what} has {width}×{height} pixels, over the limit of "
            f"{limit / 1_000_000:g} megapixels{' for this format' if weight > 1 else ''}."
        )


def _jpeg_check(data: bytes) -> None:
    """Counts the scans and segments of the first image (up to EOI), walking the marker stream.

    A progressive JPEG's decode cost is pixels × scans: 5 000 empty refinement scans of a
    4-megapixel image take libjpeg 20 CPU-seconds in a 100 kB file.
    """
    max_scans = settings.ORIGIN_MAX_JPEG_SCANS
    pos, end, scans, segments = 2, len(data), 0, 0
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return  # Not a marker: corrupt, and the decoder will say so.
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # Fill byte.
            continue
        if marker == _JPEG_EOI:
            return
        segments += 1
        if segments > JPEG_MAX_SEGMENTS:
            raise TooManySegmentsError(f"The origin JPEG has over {JPEG_MAX_SEGMENTS} marker segments.")
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in _JPEG_FRAMES and pos + 9 <= end:
            _pixels_check(int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big"))
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == _JPEG_SOS:
            scans += 1
            if scans > max_scans:
                raise TooManyScansError(
                    f"The origin JPEG has over {max_scans} progressive scans; real encoders write at most a few dozen."
                )
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                return
            pos = found.start()


def _png_check(data: bytes) -> None:
    pos, end, chunks = 8, len(data), 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > PNG_MAX_CHUNKS:
            raise TooManySegmentsError(f"The origin PNG has over {PNG_MAX_CHUNKS} chunks.")
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IEND":
            return
        pos += 12 + length


def _gif_check(data: bytes) -> None:
    """Counts the extension sub-blocks (and stray bytes) before the first frame, the ones Pillow
    reads one by one on open."""
    if len(data) < 13:
        return
    pos, blocks = 13, 0
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)  # Global colour table.
    end = len(data)
    # 0x2C (the first frame) or the trailer ends the walk.
    while pos < end and data[pos] not in (0x2C, 0x3B):
        if data[pos] != 0x21:  # A stray byte, which Pillow steps over one read at a time.
            pos += 1
            blocks += 1
        else:  # An extension: its label, then its sub-blocks.
            pos += 2
            while pos < end and data[pos]:
                blocks += 1
                if blocks > GIF_MAX_BLOCKS:
                    break
                pos += 1 + data[pos]
            pos += 1
        if blocks > GIF_MAX_BLOCKS:
            raise TooManySegmentsError(
                f"The origin GIF has over {GIF_MAX_BLOCKS} extension blocks before its first frame."
            )
    if pos + 9 <= end and data[pos] == 0x2C:
        # Pillow grows the image to hold a first frame that lies outside the logical screen.
        x, y, width, height = struct.unpack("<HHHH", data[pos + 1:pos + 9])
        screen_width, screen_height = struct.unpack("<HH", data[6:10])
        _pixels_check(max(screen_width, x + width), max(screen_height, y + height))


def _tiff_check(data: bytes) -> None:
    """The first page's size, tile size and strip or tile count, from its IFD: Pillow builds one
    Python object per strip while it opens the file (a million strips: 14 CPU-seconds)."""
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    entries = data[ifd + 2:ifd + 2 + 12 * count]
    values, counts = {}, {}
    for tag, kind, n, raw in struct.iter_unpack(order + "HHI4s", entries[:len(entries) // 12 * 12]):
        counts[tag] = n
        if n == 1 and kind == 3:
            values[tag] = struct.unpack(order + "H", raw[:2])[0]
        elif n == 1 and kind == 4:
            values[tag] = struct.unpack(order + "I", raw)[0]
    if 256 in values and 257 in values:
        _pixels_check(values[256], values[257])
    if 322 in values and 323 in values:
        # libtiff allocates a whole tile whatever the image size: a 64×64 image can claim 4-gigapixel tiles.
        _pixels_check(values[322], values[323], what="tile")
    pieces = max(counts.get(273, 0), counts.get(324, 0))  # StripOffsets, TileOffsets.
    if pieces > TIFF_MAX_TILES:
        raise TooManySegmentsError(f"The origin TIFF has {pieces} strips or tiles, over the limit of {TIFF_MAX_TILES}.")


def _webp_canvas(data: bytes) -> tuple[int, int] | None:
    """The canvas size from the first chunk (VP8X, VP8 or VP8L), as libwebp reads it."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_orient(image: Image.Image) -> Image.Image:
    """Turned upright by its EXIF (or XMP) orientation; the image itself when already upright.

    Not ImageOps.exif_transpose: that copies every upright image and rewrites metadata that
    image_decode drops anyway.
    """
    # After load(): a PNG may keep its eXIf chunk after the pixels.
    method = ORIENTATIONS.get(image.getexif().get(EXIF_ORIENTATION, 1))
    if method is None:
        return image
    return image.transpose(method)  # info (the ICC profile) is kept for the sRGB conversion.


def image_to_srgb(image: Image.Image) -> Image.Image:
    """Converts pixels from an embedded ICC profile to sRGB, so every later stage and output is sRGB."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if image.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(profile).lower():
            return image  # Already sRGB: a transform would only cost time.
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, profile, _SRGB, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # A broken profile is ignored, as browsers do; the pixels are still usable.


def image_mode_normalise(image: Image.Image) -> Image.Image:
    """RGB or RGBA, whatever the origin's mode, so later stages handle two modes only.

    Greyscale (L) becomes RGB too: one rule for every stage costs a little memory, not quality.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        return _to_eight_bits(image, _sixteen_to_eight).convert("RGB")
    if image.mode == "F":
        return _to_eight_bits(image, _float_to_eight).convert("RGB")
    if image.has_transparency_data:
        # Palette and colour-key transparency (tRNS) become a real alpha channel.
        return image if image.mode == "RGBA" else image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_eight_bits(image: Image.Image, convert) -> Image.Image:
    """An L image converted band of rows by band of rows: no copy of the whole image in a wider type
    (a float64 copy of 50 megapixels alone is 400 MB)."""
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    rows = max(1, _CHUNK_PIXELS // max(1, width))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = convert(np.asarray(image.crop((0, top, width, bottom))))
    return Image.fromarray(out, "L")


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    # Pillow's own I;16 → L conversion clips at 255, which turns every mid-grey white. This is
    # round(v / 257) in integers: 257 is odd, so there are no ties to round.
    return ((np.clip(values, 0, 65535).astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_eight(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0, 255).astype(np.uint8)
