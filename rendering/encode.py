"""Encoding: choosing the output format (fm, auto=format and Accept) and writing the bytes."""

import io

from django.conf import settings
from PIL import Image

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "pjpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
# What an origin of each sniffed type is served as when no format is asked for.
DEFAULT_FOR_ORIGIN = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "avif": "avif"}


def format_negotiate(params, accept: str) -> str:
    """The output format the URL and Accept ask for, or "" for the image's own default."""
    if params.auto_format:
        accept = (accept or "").lower()
        if "image/avif" in accept:
            return "avif"
        if "image/webp" in accept:
            return "webp"
    return params.fm


def format_default(kind: str | None, *, cutout: bool) -> str:
    if cutout:
        return "png"
    return DEFAULT_FOR_ORIGIN.get(kind or "", "png")


def image_encode(image: Image.Image, fmt: str, params) -> tuple[bytes, str]:
    quality = params.q if params.q is not None else settings.RENDER_DEFAULT_QUALITY
    out = io.BytesIO()
    if fmt in ("jpg", "pjpg"):
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            # A JPEG has no alpha: transparency is flattened on white.
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        image.convert("RGB").save(out, "JPEG", quality=quality, progressive=fmt == "pjpg", optimize=True)
    elif fmt == "webp":
        image.save(out, "WEBP", quality=quality, method=4)
    elif fmt == "avif":
        image.save(out, "AVIF", quality=quality, speed=8)
    elif fmt == "gif":
        image.save(out, "GIF")
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "I;16"):
            image = image.convert("RGBA")
        image.save(out, "PNG", compress_level=6)
        fmt = "png"
    return out.getvalue(), CONTENT_TYPES[fmt]
