"""Decoding origin bytes safely: type by content, pixel ceiling before decode, orientation."""

import io
import warnings

from django.conf import settings
from PIL import Image, ImageOps

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


def image_decode(data: bytes) -> Image.Image:
    """Opens, checks the pixel ceiling from the header, decodes, and applies EXIF orientation."""
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        raise NotAnImageError("The origin image is truncated or corrupt.") from None
    return image
