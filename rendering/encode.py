"""Encoding: choosing the output format (fm, auto=format/compress, Accept) and writing the bytes."""

import io

import numpy as np
from django.conf import settings
from PIL import Image, ImageCms

# Variants before their base format: cache.py inverts this dict, and the last key for a type wins.
CONTENT_TYPES = {
    "pjpg": "image/jpeg",
    "jpg": "image/jpeg",
    "png8": "image/png",
    "png32": "image/png",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
# What an origin of each sniffed type is served as when no format is asked for.
DEFAULT_FOR_ORIGIN = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "avif": "avif"}
COMPRESS_QUALITY = 45  # imgix's q default under auto=compress (its auto=compress documentation).
GIF_TRANSPARENT_INDEX = 255
GIF_ALPHA_THRESHOLD = 128  # GIF transparency is all or nothing: below half opacity is transparent.
WHITE = (255, 255, 255)
# What a palette=css|json render negotiates: a document of its colours (operations/palette.py), not an image.
PALETTE = "palette"
# Pillow's JPEG subsampling for imgix's chromasub (4:4:4, 4:2:2, 4:2:0).
SUBSAMPLING = {444: 0, 422: 1, 420: 2}
# The sRGB profile cs=srgb (and tinysrgb) embeds: LittleCMS's, 588 bytes, itself compact.
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# cs values that embed it: the pixels are sRGB (imaging/decode.py converts at decode), so `origin`
# is imgix's own fallback for an origin profile it cannot keep.
PROFILE_SPACES = {"srgb", "tinysrgb", "origin"}


def format_negotiate(params, accept: str) -> str:
    """The output format the URL and Accept ask for, or "" when it depends on the image: its origin's
    type, or (auto=compress) whether it has transparency. `format_resolve` settles "" later.
    auto=format takes AVIF or WebP, whichever Accept weighs more (AVIF on a tie), and neither when
    Accept does not name it or names it with `q=0`."""
    if params.palette:
        return PALETTE  # Over fm: the palette of the image as it would be drawn.
    if params.fm == "json":
        return "json"
    if params.auto_format:
        weights = accept_weights(accept)
        avif, webp = weights.get("image/avif", 0), weights.get("image/webp", 0)
        if avif or webp:
            return "avif" if avif >= webp else "webp"
    if params.auto_compress:
        return ""  # auto=compress overrides fm with PNG or JPEG, chosen by the image's alpha.
    return params.fm


def accept_weights(accept: str) -> dict[str, float]:
    """Each media type Accept names, with its weight (RFC 9110 §12.5.1): `q=0` means "not
    acceptable", so a type listed that way is no more wanted than one not listed. A weight that is
    not a number from 0 to 1 counts as 1, as if it were absent."""
    weights = {}
    for entry in (accept or "").lower().split(","):
        media_type, *parameters = entry.split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    continue
                if not 0 <= weight <= 1:
                    weight = 1.0
        if media_type.strip():
            weights[media_type.strip()] = weight
    return weights


def format_resolve(requested: str, *, params, has_alpha: bool, default: str) -> str:
    """The final format once the rendered image is known: `requested` (from `format_negotiate`),
    else auto=compress's choice by transparency (docs/rendering.md), else `default`.
    `has_alpha` is `image_has_alpha(rendered_image)`."""
    if requested:
        return requested
    if params.auto_compress:
        if not has_alpha:
            return "jpg"
        # With auto=format the documented fallback for transparency is PNG8, without it PNG.
        return "png8" if params.auto_format else "png"
    return default


def format_default(kind: str | None, *, cutout: bool) -> str:
    if cutout:
        return "png"
    return DEFAULT_FOR_ORIGIN.get(kind or "", "png")


def image_has_alpha(image: Image.Image) -> bool:
    """Whether any pixel is less than fully opaque (an alpha channel alone does not count)."""
    if not image.has_transparency_data:
        return False
    rgba = image if image.mode in ("RGBA", "LA") else image.convert("RGBA")
    return rgba.getchannel("A").getextrema()[0] < 255


def quality_for(params) -> int:
    """q wins; otherwise 45 under auto=compress, else the default (75)."""
    if params.q is not None:
        return params.q
    return COMPRESS_QUALITY if params.auto_compress else settings.RENDER_DEFAULT_QUALITY


def image_encode(image: Image.Image, fmt: str, params) -> tuple[bytes, str]:
    """Writes `image` as `fmt` with no metadata (no EXIF, XMP, comments, and an ICC profile only
    with cs=srgb; the DPI with dpi); an unknown or empty `fmt` writes PNG. Returns the bytes and
    their content type."""
    if fmt not in WRITERS:
        fmt = "png"
    if params.colorquant and fmt not in PALETTE_WRITERS:
        # colorquant in a format without a palette: the colours reduced, the pixels kept as they were.
        image = _colors_reduce(image, params.colorquant)
    out = io.BytesIO()
    WRITERS[fmt](image, out, fmt, params)
    return out.getvalue(), CONTENT_TYPES[fmt]


def _colors_reduce(image: Image.Image, colors: int) -> Image.Image:
    mode = "RGBA" if image.has_transparency_data else "RGB"
    # Fast octree: 0.7 s for 50 megapixels where median cut takes 5 s, and it keeps alpha.
    return _quantize(image.convert(mode), colors, Image.Quantize.FASTOCTREE).convert(mode)


def _palette_size(params, most: int = 256) -> int:
    return min(params.colorquant or most, most)


def _profile(params) -> bytes | None:
    return SRGB_PROFILE if params.cs in PROFILE_SPACES else None


def _dpi(params) -> dict:
    return {"dpi": (params.dpi, params.dpi)} if params.dpi else {}


# --- One writer per format --------------------------------------------------------------------------

def _jpeg(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    flat = _flatten(image)
    options = dict(quality=quality_for(params), exif=b"", comment=b"", subsampling=SUBSAMPLING.get(params.chromasub, 2),
                   icc_profile=_profile(params), **_dpi(params))
    try:
        flat.save(out, "JPEG", optimize=True, progressive=fmt == "pjpg" or params.jpg_progressive, **options)
    except OSError:
        # An optimised or progressive JPEG is written from one buffer that Pillow sizes at one or
        # two bytes a pixel; noise at q 95+ or 4:4:4 needs more ("broken data stream"). Such a
        # picture is written as a plain baseline JPEG, which streams, rather than failing.
        out.seek(0)
        out.truncate()
        flat.save(out, "JPEG", optimize=False, progressive=False, **options)


def _png(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    image.save(out, "PNG", compress_level=6, icc_profile=_profile(params), **_dpi(params))


def _png8(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    """Palettised, at most 256 colours; the palette carries alpha, so transparency survives."""
    if image.mode != "P":
        rgba = image_has_alpha(image)
        image = image.convert("RGBA" if rgba else "RGB")
        # Fast octree is the quantiser in Pillow that keeps an alpha channel.
        image = _quantize(image, _palette_size(params),
                          Image.Quantize.FASTOCTREE if rgba else Image.Quantize.MEDIANCUT)
    image.save(out, "PNG", optimize=True, icc_profile=_profile(params), **_dpi(params))


def _png32(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    image.convert("RGBA").save(out, "PNG", compress_level=6, icc_profile=_profile(params), **_dpi(params))


def _webp(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    if params.lossless:
        # For lossless WebP, quality is compression effort, not fidelity.
        image.save(out, "WEBP", lossless=True, quality=80, method=4, exact=True, icc_profile=_profile(params))
    else:
        image.save(out, "WEBP", quality=quality_for(params), method=4, icc_profile=_profile(params))


def _avif(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    # Pillow's AVIF writer has no lossless option, and imgix documents AVIF as lossy only, so
    # `lossless` is ignored here.
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    image.save(out, "AVIF", quality=quality_for(params), speed=8, icc_profile=_profile(params))


def _gif(image: Image.Image, out: io.BytesIO, fmt: str, params) -> None:
    """255 colours (or colorquant's) plus one fully transparent index where the image is mostly
    transparent."""
    if not image_has_alpha(image):
        _quantize(image.convert("RGB"), _palette_size(params), Image.Quantize.MEDIANCUT).save(out, "GIF")
        return
    rgba = image.convert("RGBA")
    paletted = _quantize(rgba.convert("RGB"), _palette_size(params, 255), Image.Quantize.MEDIANCUT)
    indices = np.asarray(paletted).copy()
    indices[np.asarray(rgba.getchannel("A")) < GIF_ALPHA_THRESHOLD] = GIF_TRANSPARENT_INDEX
    result = Image.fromarray(indices, "P")
    palette = paletted.getpalette()[: 255 * 3]
    result.putpalette(palette + [0] * (768 - len(palette)))
    result.save(out, "GIF", transparency=GIF_TRANSPARENT_INDEX)


def frame_prepare(image: Image.Image, fmt: str) -> Image.Image:
    """One frame of an animation as `frames_encode` takes it, made as the frame comes so that
    only the prepared frames are held: a GIF frame palettised (one byte a pixel), with a
    palette of its own; a WebP frame RGB or RGBA."""
    if fmt == "gif":
        return _gif_frame(image)
    return image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")


def frames_encode(frames: list[Image.Image], fmt: str, params, *, durations: list[int],
                  loop: int) -> tuple[bytes, str]:
    """Writes the frames (all one size, from `frame_prepare`) as one animated GIF or WebP with
    no metadata: each shown for its duration (milliseconds), the whole played `loop` times (0:
    for ever). A GIF frame with transparency clears the canvas before the next one."""
    out = io.BytesIO()
    if fmt == "gif":
        disposal = 2 if any("transparency" in frame.info for frame in frames) else 1
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=loop,
                       disposal=disposal)
        return out.getvalue(), CONTENT_TYPES["gif"]
    if params.lossless:
        options = {"lossless": True, "quality": 80, "exact": True}
    else:
        options = {"quality": quality_for(params)}
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=durations, loop=loop, method=4,
                   **options)
    return out.getvalue(), CONTENT_TYPES["webp"]


def _gif_frame(image: Image.Image) -> Image.Image:
    """One frame with a palette of its own (fast octree: median cut is 30 times slower, which
    a frame count multiplies), 255 colours plus one fully transparent index where needed."""
    if not image_has_alpha(image):
        return _quantize(image.convert("RGB"), 256, Image.Quantize.FASTOCTREE)
    rgba = image.convert("RGBA")
    paletted = _quantize(rgba.convert("RGB"), 255, Image.Quantize.FASTOCTREE)
    indices = np.asarray(paletted).copy()
    indices[np.asarray(rgba.getchannel("A")) < GIF_ALPHA_THRESHOLD] = GIF_TRANSPARENT_INDEX
    result = Image.fromarray(indices, "P")
    palette = paletted.getpalette()[: 255 * 3]
    result.putpalette(palette + [0] * (768 - len(palette)))
    result.info["transparency"] = GIF_TRANSPARENT_INDEX
    return result


def _quantize(image: Image.Image, colors: int, method: Image.Quantize) -> Image.Image:
    paletted = image.quantize(colors, method=method)
    # quantize copies `info`; the GIF writer would copy a comment from it into the file.
    paletted.info = {}
    return paletted


def _flatten(image: Image.Image) -> Image.Image:
    """RGB; transparency flattened on white, since JPEG has no alpha (docs/rendering.md)."""
    if not image.has_transparency_data:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


PALETTE_WRITERS = {"png8", "gif"}
WRITERS = {
    "jpg": _jpeg, "pjpg": _jpeg, "png": _png, "png8": _png8, "png32": _png32,
    "webp": _webp, "avif": _avif, "gif": _gif,
}
