"""Decoding origin bytes safely: type by content, pixel ceiling before decode, fidelity to sRGB."""

import io
import warnings

import numpy as np
from django.conf import settings
from PIL import Image, ImageCms, ImageFile

from config.exceptions import ServiceError

# Our own ceiling is checked from the header; Pillow's warning-based one is turned off.
Image.MAX_IMAGE_PIXELS = None

SIGNATURES = [
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
]
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


def image_sniff(data: bytes) -> str | None:
    """The image type named by the file's first bytes; extensions and headers are not trusted."""
    for magic, kind in SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        return "avif" if data[8:12] in (b"avif", b"avis") else "heif"
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

    `at_least` (width, height as displayed) lets a JPEG decode at 1/2, 1/4 or 1/8 of its size
    while still at least that big: far less work for a thumbnail of a large photo.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, Image.DecompressionBombError):
        raise NotAnImageError() from None
    width, height = image.size
    # Checked before decode so a decompression bomb never allocates.
    if width * height > settings.ORIGIN_MAX_PIXELS:
        raise TooManyPixelsError(
            f"The origin image has {width}×{height} pixels, over the limit of "
            f"{settings.ORIGIN_MAX_PIXELS // 1_000_000} megapixels."
        )
    if at_least and image.format == "JPEG":
        wanted = at_least
        if image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
            wanted = (at_least[1], at_least[0])  # Stored sideways: the draft is asked before turning.
        image.draft(None, wanted)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            image = image_orient(image)
    except (OSError, ValueError, SyntaxError):
        raise NotAnImageError("The origin image is truncated or corrupt.") from None
    image = image_mode_normalise(image_to_srgb(image))
    if isinstance(image, ImageFile.ImageFile):
        # A plain image on the same decoded pixels (no copy): the file's cached EXIF and its
        # buffer do not travel on to later stages.
        image = image._new(image.im)
    # Nothing of the origin's metadata (EXIF, XMP, ICC, comments) may leak into an output.
    image.info = {}
    return image


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
        return _sixteen_to_eight(image).convert("RGB")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8)).convert("RGB")
    if image.has_transparency_data:
        # Palette and colour-key transparency (tRNS) become a real alpha channel.
        return image if image.mode == "RGBA" else image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _sixteen_to_eight(image: Image.Image) -> Image.Image:
    # Pillow's own I;16 → L conversion clips at 255, which turns every mid-grey white.
    values = np.asarray(image).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
