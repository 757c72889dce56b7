"""A call's result: made from the job's cutout by the rendering stages, kept in the render store, read again by the same call."""

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image, ImageFilter

from core.errors import ServiceError, ServiceUnavailableError
from cutouts.models import BgRemoveJob
from imaging.decode import image_decode
from removebg_api.errors import RemoveBgError
from removebg_api.inputs import roi_check
from removebg_api.options import MAX_MARGIN_PX, Options
from rendering.budget import render_budget_check, render_slot
from rendering.encode import image_encode, image_has_alpha
from rendering.operations.bg import bg_apply
from rendering.operations.mark import mark_apply
from rendering.operations.resize import resize_apply
from rendering.params import Dim, RenderParams
from rendering.stage import StageContext
from rendering.stages import stages_apply
from rendering.store import (
    SMALL_RENDER_BYTES,
    render_forget,
    render_get,
    render_key,
    render_open,
    render_read,
    render_store,
    storage_errors,
)
from sources.models import Upload

# A pixel of the cutout is the subject's from this alpha on (crop, position, X-Foreground-*):
# the model leaves faint values in the background that would otherwise count as subject.
FOREGROUND_ALPHA = 8
JPEG_QUALITY = 90
# The colour image and the matte of format=zip, named as remove.bg names them.
ZIP_COLOR, ZIP_ALPHA = "color.jpg", "alpha.png"


@dataclass(frozen=True)
class Result:
    data: bytes
    content_type: str
    width: int
    height: int
    # The subject's box in the result's pixels (as remove.bg gives X-Foreground-*): left, top,
    # width, height.
    foreground: tuple[int, int, int, int]


# A kept result: this tag, the length of its JSON header, the header (size, subject's box), the body.
_RESULT_TAG = b"RBG1"
RESULT_CONTENT_TYPE = "application/x-removebg-result"


def result_render(*, job: BgRemoveJob, upload: Upload, options: Options, background: bytes | None) -> Result:
    """The result of this call: kept in the render store as a rendering URL's render is (under
    the upload's source and path, so purging or expiring the upload removes it, and within the
    account's stored-render ceiling), so the same call again reads it instead of making it."""
    digest = hashlib.sha256(background).hexdigest() if background is not None else ""
    key = render_key(source_id=upload.source_id, path=upload.path, model=f"{job.model}/{job.refinement}",
                     canonical=f"removebg2\x1f{options!r}\x1f{digest}", fmt=options.format)
    kept = render_get(key=key)
    if kept is not None:
        try:
            if kept.size <= SMALL_RENDER_BYTES:
                return _result_unpack(render_read(kept))
            with render_open(kept) as fh:
                return _result_unpack(fh.read())
        except FileNotFoundError:
            render_forget(kept)  # Lost from storage: made again below.
    result = _result_make(job=job, upload=upload, options=options, background=background)
    render_store(key=key, source=upload.source, path=upload.path, data=_result_pack(result),
                 content_type=RESULT_CONTENT_TYPE)
    return result


def _result_pack(result: Result) -> bytes:
    header = json.dumps({"content_type": result.content_type, "width": result.width, "height": result.height,
                         "foreground": list(result.foreground)}).encode()
    return _RESULT_TAG + len(header).to_bytes(4, "big") + header + result.data


def _result_unpack(data: bytes) -> Result:
    if data[:4] != _RESULT_TAG:
        raise ServiceUnavailableError("A kept remove.bg result is unreadable; purge the upload to make it again.")
    size = int.from_bytes(data[4:8], "big")
    header = json.loads(data[8:8 + size])
    return Result(data=data[8 + size:], content_type=header["content_type"], width=header["width"],
                  height=header["height"], foreground=tuple(header["foreground"]))


def _result_make(*, job: BgRemoveJob, upload: Upload, options: Options, background: bytes | None) -> Result:
    """The finished cutout as remove.bg would answer: roi, then the rendering pipeline's own
    stages (rendering/stages.py: the matte for channels=alpha, rect for crop and position,
    resize to the size's pixel ceiling, pad for crop_margin and the canvas) under its budget and
    in one of its render slots, then the shadow, bg colour or image (the mark stage, the cutout
    as the mark), and the encoder."""
    with storage_errors(), default_storage.open(job.cutout_name, "rb") as fh:
        data = fh.read()
    with render_slot():
        cutout = image_decode(data)
        if cutout.mode != "RGBA":
            cutout = cutout.convert("RGBA")
        scale = upload.width / cutout.width  # Cutouts over BG_REMOVE_MAX_PIXELS were made smaller.
        if options.roi is not None:
            cutout = _roi_apply(cutout, options.roi, upload, scale)
        box = cutout.getchannel("A").point(lambda v: 255 if v >= FOREGROUND_ALPHA else 0).getbbox()
        if box is None:
            raise RemoveBgError("unknown_foreground", "Could not identify foreground in image. For details and "
                                "recommendations see https://www.remove.bg/supported-images.")
        fmt = _budget_format(options, background)
        params = _params(cutout.size, box, options, _ceiling(options, fmt))
        budget = render_budget_check(size=cutout.size, params=params, requested=fmt, default="png", accept="",
                                     has_alpha=True)
        image = stages_apply(cutout, params, StageContext(max_pixels=budget.max_pixels))
        # Read from the result itself, before a background hides its alpha: whatever the size,
        # crop, margins, scale and position did, the box is where the subject is in it.
        foreground = _foreground(image)
        if options.channels == "rgba":
            if options.add_shadow:
                image = _shadow(image)
            if options.bg_color is not None:
                image = bg_apply(image, options.bg_color)
            if background is not None:
                image = _over_background(image, background)
        body, content_type = _encode(image, options)
    return Result(data=body, content_type=content_type, width=image.width, height=image.height,
                  foreground=foreground)


def _foreground(image: Image.Image) -> tuple[int, int, int, int]:
    """The subject's box in `image` (its alpha, or the matte itself for channels=alpha): left,
    top, width, height; (0, 0, 0, 0) when resizing left no pixel of it at FOREGROUND_ALPHA."""
    matte = image.getchannel("A") if "A" in image.getbands() else image.convert("L")
    box = matte.point(lambda v: 255 if v >= FOREGROUND_ALPHA else 0).getbbox()
    if box is None:
        return (0, 0, 0, 0)
    return (box[0], box[1], box[2] - box[0], box[3] - box[1])


def _roi_apply(cutout: Image.Image, roi: tuple, upload: Upload, scale: float) -> Image.Image:
    """Everything outside the region of interest is background. The corners are in the input
    image's pixels (or percentages of it), as remove.bg takes them."""
    roi_check(roi=roi, upload=upload)  # Made before the job too (removebg_api/inputs.py): never fails here.
    x1, y1, x2, y2 = (length.pixels(ref) for length, ref in zip(roi, (upload.width, upload.height) * 2))
    left, top = math.floor(x1 / scale), math.floor(y1 / scale)
    right, bottom = math.ceil(x2 / scale), math.ceil(y2 / scale)
    if (left, top, right, bottom) == (0, 0, cutout.width, cutout.height):
        return cutout
    inside = Image.new("L", cutout.size, 0)
    inside.paste(255, (left, top, right, bottom))
    alpha = Image.composite(cutout.getchannel("A"), inside, inside)
    cutout = cutout.copy()
    cutout.putalpha(alpha)
    return cutout


def _budget_format(options: Options, background: bytes | None) -> str:
    """The encoder whose pixel budget bounds the output (PNG, the strictest, when unsure)."""
    if options.format in ("jpg", "webp"):
        return options.format
    opaque = background is not None or (options.bg_color is not None and options.bg_color[3] == 255)
    if options.format == "auto" and opaque and options.channels == "rgba":
        return "jpg"
    return "png"


def _ceiling(options: Options, fmt: str) -> int:
    encoder = {"png": settings.RENDER_MAX_PNG_PIXELS, "webp": settings.RENDER_MAX_WEBP_PIXELS}.get(
        fmt, settings.RENDER_MAX_OUTPUT_PIXELS)
    return min(options.max_pixels, settings.RENDER_MAX_OUTPUT_PIXELS, encoder)


def _params(size: tuple[int, int], box: tuple, options: Options, ceiling: int) -> RenderParams:
    """remove.bg's geometry as rendering parameters: the output is the image scaled to the size's
    pixel ceiling; crop keeps the subject (rect) with its margins (pad); scale and position put
    the subject (rect) on the image's canvas (pad around it)."""
    width, height = size
    factor = min(1.0, math.sqrt(ceiling / (width * height)))
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    mask = "mask" if options.channels == "alpha" else ""
    # semitransparency=false: every pixel of the subject kept whole or removed whole (the
    # bg-remove stage's hard edges, as bg-remove-semi-transparency=false).
    base = {"bg_remove": True, "bg_remove_output": mask, "bg_remove_semi_transparency": options.semitransparency,
            "fit": "scale", "q": JPEG_QUALITY}
    rect = (Dim(left), Dim(top), Dim(bw), Dim(bh))
    if options.crop:
        crop = factor
        for _ in range(16):  # Margins may grow the subject's box past the ceiling: scaled down until not.
            sw, sh = max(1, math.floor(bw * crop)), max(1, math.floor(bh * crop))
            pad = _margins(options.crop_margin, sw, sh)
            area = (sw + pad[0] + pad[2]) * (sh + pad[1] + pad[3])
            if area <= ceiling or (sw == 1 and sh == 1):
                break
            crop *= math.sqrt(ceiling / area) * 0.999
        return RenderParams(**base, rect=rect, w=Dim(sw + pad[0] + pad[2]), h=Dim(sh + pad[1] + pad[3]), pad=pad)
    if options.scale is not None or options.position is not None:
        cw, ch = max(1, math.floor(width * factor)), max(1, math.floor(height * factor))
        k = min(options.scale * cw / bw, options.scale * ch / bh) if options.scale is not None else factor
        sw, sh = min(cw, max(1, round(bw * k))), min(ch, max(1, round(bh * k)))
        if options.position is not None:
            px, py = options.position
        elif options.scale is not None:
            px, py = 0.5, 0.5  # remove.bg: scaling the subject implies position=center.
        else:
            px, py = (left / (width - bw) if width > bw else 0.5), (top / (height - bh) if height > bh else 0.5)
        x, y = round(px * (cw - sw)), round(py * (ch - sh))
        return RenderParams(**base, rect=rect, w=Dim(cw), h=Dim(ch), pad=(x, y, cw - sw - x, ch - sh - y))
    if factor < 1.0:
        # Rounded down, so the output is never over the ceiling.
        w, h = max(1, math.floor(width * factor)), max(1, math.floor(height * factor))
        return RenderParams(**base, w=Dim(w), h=Dim(h))
    return RenderParams(**{**base, "fit": "clip"})


def _margins(margin: tuple, sw: int, sh: int) -> tuple[int, int, int, int]:
    """crop_margin (top, right, bottom, left) as pad's (left, top, right, bottom) output pixels:
    relative ones of the subject's size; each at most 500 px or half the subject (remove.bg)."""
    if not margin:
        return (0, 0, 0, 0)
    top, right, bottom, left = margin

    def side(length, reference):
        return round(min(length.pixels(reference), MAX_MARGIN_PX, reference / 2))

    return (side(left, sw), side(top, sh), side(right, sw), side(bottom, sh))


def _shadow(image: Image.Image) -> Image.Image:
    """A soft drop shadow under the subject: its matte, blurred, offset down and right, at 40%
    black; the subject over it."""
    if image.mode != "RGBA":
        return image
    alpha = image.getchannel("A")
    reach = max(2, round(max(image.size) * 0.015))
    shadow_alpha = alpha.point(lambda v: v * 2 // 5).filter(ImageFilter.GaussianBlur(reach))
    shadow = Image.new("RGBA", image.size, (0, 0, 0, 0))
    cast = shadow_alpha.crop((0, 0, image.width - reach, image.height - reach))
    shadow.paste((0, 0, 0, 255), (reach, reach), mask=cast)
    return Image.alpha_composite(shadow, image)


# The mark stage with the cutout as the mark: drawn at its own size, centred, no margin.
_CUTOUT_AS_MARK = RenderParams(mark="cutout", mark_align=("middle", "center"), mark_pad=0)


def _over_background(image: Image.Image, background: bytes) -> Image.Image:
    """The cutout over the background image, which is centred and resized to fill the canvas
    keeping its aspect ratio (fit=crop), as remove.bg does."""
    try:
        back = image_decode(background, at_least=image.size)
    except ServiceError as exc:
        raise RemoveBgError("failed_bg_download", "Failed to read the background image.", exc.message) from None
    back = resize_apply(back, RenderParams(w=Dim(image.width), h=Dim(image.height), fit="crop"))
    return mark_apply(back, image, _CUTOUT_AS_MARK)


def _encode(image: Image.Image, options: Options) -> tuple[bytes, str]:
    params = RenderParams(q=JPEG_QUALITY)
    if options.format == "zip":
        # remove.bg's zip: the colour image (no transparency) and the alpha matte, to be joined
        # by the client; colour where the subject is not is whatever the cutout holds there.
        alpha = image.getchannel("A") if "A" in image.getbands() else Image.new("L", image.size, 255)
        color, _ = image_encode(image.convert("RGB"), "jpg", params)
        matte, _ = image_encode(alpha, "png", params)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(ZIP_COLOR, color)
            archive.writestr(ZIP_ALPHA, matte)
        return out.getvalue(), "application/zip"
    fmt = options.format
    if fmt == "auto":
        fmt = "png" if image_has_alpha(image) or image.mode == "L" else "jpg"
    return image_encode(image, fmt, params)
