"""The remove.bg API's workflows: the input image as an upload, its cutout job, the wait, the
result through the rendering stages, credits, feedback and retention."""

import base64
import binascii
import hashlib
import io
import json
import logging
import math
import threading
import time
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Sum
from django.utils import timezone
from PIL import Image, ImageFilter

from accounts.limits import RateLimitedError, rate_limit
from accounts.models import Account
from core.errors import ServiceError, ServiceUnavailableError
from cutouts.admission import job_retry_after
from cutouts.models import BgRemoveJob
from cutouts.services import BgRemoveNotEnabledError, Ensured, bg_remove_job_ensure, bg_remove_job_raise_failure
from imaging.decode import (
    BG_REMOVE_TYPES,
    DECODE_ERRORS,
    DECODERS,
    EXIF_ORIENTATION,
    NotAnImageError,
    image_check_structure,
    image_decode,
    image_sniff,
)
from removebg_api.errors import InsufficientCreditsError, RemoveBgError, TooManyWaitingError, WaitTimeoutError
from removebg_api.models import Call, CreditAccount, Improvement
from removebg_api.options import MAX_MARGIN_PX, Options
from rendering.budget import render_budget_check, render_slot
from rendering.encode import image_encode, image_has_alpha
from rendering.operations.bg import bg_apply
from rendering.operations.mark import mark_apply
from rendering.operations.resize import resize_apply
from rendering.params import Dim, RenderParams
from rendering.services import STAGES, StageContext
from rendering.store import (
    SMALL_RENDER_BYTES,
    render_forget,
    render_get,
    render_key,
    render_open,
    render_purge,
    render_read,
    render_store,
    storage_errors,
)
from sources.models import Source, Upload
from sources.origins import OriginError
from sources.origins.net import fetch_url
from sources.origins.uploads import upload_name
from sources.selectors import source_bg_remove_enabled, source_bg_remove_model, upload_list_expired
from sources.services import source_uploads_ensure, upload_record

logger = logging.getLogger(__name__)

# remove.bg's `type` as a model hint where a provisioned model fits it better than the default.
TYPE_MODELS = {"person": "u2net_human_seg"}
# A pixel of the cutout is the subject's from this alpha on (crop, position, X-Foreground-*):
# the model leaves faint values in the background that would otherwise count as subject.
FOREGROUND_ALPHA = 8
JPEG_QUALITY = 90
# The colour image and the matte of format=zip, named as remove.bg names them.
ZIP_COLOR, ZIP_ALPHA = "color.jpg", "alpha.png"
EXTENSIONS = {"jpeg": "jpg", "png": "png"}


# --- The input image -----------------------------------------------------------------------------

def image_bytes(*, file=None, b64: str | None = None, url: str | None = None, what: str = "image") -> bytes | None:
    """The bytes of one image given as an upload, base64 or a URL (fetched under the origins'
    network rules), each within ORIGIN_MAX_BYTES; None when none is given. `what`: "image" or
    "bg" (remove.bg's codes and field names differ)."""
    given = [value for value in (file, b64, url) if value not in (None, "")]
    field = "image" if what == "image" else "bg_image"
    if len(given) > 1:
        if what == "image":
            raise RemoveBgError("multiple_sources", "Multiple image sources given: Please provide either the "
                                "image_url, image_file or image_file_b64 parameter.")
        raise RemoveBgError("multiple_bg_sources", "Multiple background sources given: Please provide either "
                            "the bg_color, the bg_image_url or the bg_image_file parameter.")
    if not given:
        return None
    limit = settings.ORIGIN_MAX_BYTES
    if file not in (None, ""):
        if file.size > limit:
            raise _too_large(limit)
        data = file.read(limit + 1)
        if len(data) > limit:
            raise _too_large(limit)
        return data
    if b64 not in (None, ""):
        # Checked on the text's length before decoding, so the decoded copy is never over the cap.
        text = b64.split(",", 1)[1] if b64.startswith("data:") else b64
        if len(text) > (limit + 2) // 3 * 4 + 4:
            raise _too_large(limit)
        try:
            return base64.b64decode(text.strip(), validate=False)
        except (binascii.Error, ValueError):
            raise RemoveBgError("failed_to_read_image", "There was an error reading the image.",
                                f"{field}_file_b64 is not valid base64.") from None
    try:
        return fetch_url(url.strip(), max_bytes=limit).data
    except OriginError as exc:
        if exc.status_code == 413:
            raise _too_large(limit) from None
        image = what == "image"
        code, name = ("failed_image_download", "image_url") if image else ("failed_bg_download", "bg_image_url")
        raise RemoveBgError(code, f"Failed to download {'background ' if what != 'image' else ''}image from given "
                            f"{name}: {url[:200]}", exc.message) from None


def _too_large(limit: int) -> RemoveBgError:
    return RemoveBgError("file_too_large", "File too large", f"File exceeds limit of {limit // (1024 * 1024)}MB")


@dataclass(frozen=True)
class Input:
    source: Source
    upload: Upload


def input_store(*, account: Account, data: bytes) -> Input:
    """The image as an upload of the account's uploads source, named by its content (so the
    same image twice is one upload and one job). Checked before anything is stored: background
    removal enabled for the account (or its uploads source), the image's type by
    content, its structure and pixel count from the header (JPEG, PNG); other formats we decode
    are decoded here, in a render slot, and kept as PNG, which the workers take."""
    kind = image_sniff(data)
    if kind is None or kind not in DECODERS:
        received = kind or "an unknown type"
        raise RemoveBgError("invalid_file_type", "Invalid file type", f"Expected jpg/png, received {received}")
    digest = hashlib.sha256(data).hexdigest()
    source = source_uploads_ensure(account=account)
    if not source_bg_remove_enabled(source=source):
        # Before anything is kept of an image it could not use.
        raise BgRemoveNotEnabledError(
            "Background removal is not enabled for this account; ask your account manager to enable it.")
    path = f"{digest}.{EXTENSIONS.get(kind, 'png')}"
    existing = Upload.objects.filter(source=source, path=path).first()
    name = upload_name(source_id=source.id, path=path)
    if existing is not None:
        with storage_errors():
            present = default_storage.exists(name)
        if present:
            return Input(source, upload_record(source=source, path=path, size=existing.size, width=existing.width,
                                               height=existing.height))
    if kind in BG_REMOVE_TYPES:
        width, height = _header_size(data, kind)
        stored = data
    else:
        with render_slot():
            image = image_decode(data)
            width, height = image.size
            stored, _ = image_encode(image, "png", RenderParams())
        if len(stored) > settings.ORIGIN_MAX_BYTES:
            # The worker reads uploads under the same byte cap as any origin.
            raise RemoveBgError("file_too_large", "File too large",
                                f"As PNG, which the model takes, the image is over {settings.ORIGIN_MAX_BYTES} bytes.")
    with storage_errors():
        default_storage.save(name, ContentFile(stored))
    return Input(source, upload_record(source=source, path=path, size=len(stored), width=width, height=height))


def _header_size(data: bytes, kind: str) -> tuple[int, int]:
    """The displayed size from the header alone, after the structure checks (pixel ceiling,
    JPEG scans and segments, PNG chunks): no pixel is decoded here; the worker decodes."""
    image_check_structure(data, kind)
    try:
        with Image.open(io.BytesIO(data), formats=[DECODERS[kind]]) as header:
            width, height = header.size
            sideways = kind == "jpeg" and header.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except (*DECODE_ERRORS, Image.DecompressionBombError):
        raise NotAnImageError() from None
    if width * height > settings.ORIGIN_MAX_PIXELS:
        raise RemoveBgError("resolution_too_high", "Image resolution too high",
                            f"Input image has {width * height / 1e6:.0f} megapixels, maximum supported input "
                            f"resolution is {settings.ORIGIN_MAX_PIXELS / 1e6:g} megapixels")
    return (height, width) if sideways else (width, height)


# --- The job, and the wait for it ----------------------------------------------------------------

def removebg_job_ensure(*, input: Input, options: Options) -> Ensured:
    """The upload's cutout job (one per content, model and refinement), created by the first
    call only, through the same admission as rendering URLs (queue ceilings, bg-remove rate)."""
    source = input.source
    model = source_bg_remove_model(source=source, requested=TYPE_MODELS.get(options.type))
    try:
        return bg_remove_job_ensure(source=source, path=input.upload.path, model=model,
                                    refinement=source.bg_remove_refinement)
    except RateLimitedError:
        # Refused before any job of it exists: the upload is not kept, or every refused call
        # would store up to ORIGIN_MAX_BYTES for the retention period.
        if not BgRemoveJob.objects.filter(source=source, path=input.upload.path).exists():
            render_purge(source=source, path=input.upload.path)
        raise


_waiting_lock = threading.Lock()
_waiting = 0


@contextmanager
def waiting_slot():
    """One of the process's REMOVEBG_MAX_WAITING places for a call waiting on its job, or 429 at
    once: a call waits holding a web thread, and strangers must not park every thread."""
    global _waiting
    with _waiting_lock:
        if _waiting >= settings.REMOVEBG_MAX_WAITING:
            raise TooManyWaitingError()
        _waiting += 1
    try:
        yield
    finally:
        with _waiting_lock:
            _waiting -= 1


def job_wait(*, job: BgRemoveJob, timeout: float | None = None) -> BgRemoveJob:
    """The job once it is done (or failed), reading its row with backoff (50 ms growing to 1 s),
    which every process sees alike; WaitTimeoutError (429, Retry-After) after `timeout` seconds
    (REMOVEBG_WAIT_SECONDS): the job goes on, and the same call again finds it."""
    timeout = settings.REMOVEBG_WAIT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.05
    while job.status not in (BgRemoveJob.Status.DONE, BgRemoveJob.Status.FAILED):
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(retry_after=job_retry_after(job))
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, 1.0)
        found = BgRemoveJob.objects.filter(pk=job.pk).first()
        if found is None:
            raise ServiceUnavailableError("The job was purged while this call waited; send the call again.")
        job = found
    if job.status == BgRemoveJob.Status.FAILED:
        bg_remove_job_raise_failure(job)
    return job


# --- The result ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    data: bytes
    content_type: str
    width: int
    height: int
    # The subject's box in the input image's pixels: left, top, width, height.
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
                     canonical=f"removebg\x1f{options!r}\x1f{digest}", fmt=options.format)
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
    stages (rendering.services.STAGES: the matte for channels=alpha, rect for crop and position,
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
        image = cutout
        context = StageContext(max_pixels=budget.max_pixels)
        for stage in STAGES:
            image = stage(image, params, context)
        if options.channels == "rgba":
            if options.add_shadow:
                image = _shadow(image)
            if options.bg_color is not None:
                image = bg_apply(image, options.bg_color)
            if background is not None:
                image = _over_background(image, background)
        body, content_type = _encode(image, options)
    foreground = tuple(round(v * scale) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1]))
    return Result(data=body, content_type=content_type, width=image.width, height=image.height,
                  foreground=foreground)


def _roi_apply(cutout: Image.Image, roi: tuple, upload: Upload, scale: float) -> Image.Image:
    """Everything outside the region of interest is background. The corners are in the input
    image's pixels (or percentages of it), as remove.bg takes them."""
    x1, y1, x2, y2 = (length.pixels(ref) for length, ref in zip(roi, (upload.width, upload.height) * 2))
    if x2 > upload.width or y2 > upload.height:
        raise RemoveBgError("roi_exceeds_bounds", "ROI exceeds image bounds",
                            "The given roi parameter defines a region that exceeds the image bounds")
    if x2 <= x1 or y2 <= y1:
        raise RemoveBgError("roi_region_empty", "ROI region is empty",
                            "The given roi parameter defines an empty region")
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
    base = {"bg_remove": True, "bg_remove_output": mask, "fit": "scale", "q": JPEG_QUALITY}
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


# --- Credits -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Charge:
    credits: Decimal
    free: bool


def credit_account_ensure(*, account: Account) -> CreditAccount:
    credit, _ = CreditAccount.objects.get_or_create(
        account=account, defaults={"credits": Decimal(str(settings.REMOVEBG_DEFAULT_CREDITS)),
                                   "free_calls": settings.REMOVEBG_FREE_CALLS})
    return credit


def _month_start():
    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def free_calls_left(*, account: Account, credit: CreditAccount) -> int:
    used = Call.objects.filter(account=account, free=True, created_at__gte=_month_start()).count()
    return max(0, credit.free_calls - used)


def credits_left(*, account: Account, credit: CreditAccount) -> Decimal:
    charged = Call.objects.filter(account=account).aggregate(total=Sum("credits"))["total"] or Decimal(0)
    return credit.credits - charged


def charge_check(*, account: Account, options: Options) -> Charge:
    """What the call will charge, or 402 before any work: a preview is free while the month's
    free calls last; otherwise its credits must be left. (Concurrent calls of one account may
    each pass this check; the balance then goes below zero by what they charged.)"""
    credit = credit_account_ensure(account=account)
    if options.size == "preview" and free_calls_left(account=account, credit=credit) > 0:
        return Charge(Decimal(0), True)
    cost = Decimal(options.credits)
    if credits_left(account=account, credit=credit) < cost:
        raise InsufficientCreditsError()
    return Charge(cost, False)


def call_record(*, account: Account, job: BgRemoveJob, upload: Upload, options: Options, charge: Charge,
                result: Result) -> Call:
    return Call.objects.create(account=account, job=job, path=upload.path, size=options.size,
                               credits=charge.credits, free=charge.free, width=result.width, height=result.height)


# --- Feedback (POST /v1.0/improve) ---------------------------------------------------------------------

def improvement_store(*, account: Account, data: bytes, tag: str = "", filename: str = "") -> Improvement:
    """Keeps a submitted image for the account's operators, at most REMOVEBG_IMPROVE_RATE_LIMIT."""
    kind = image_sniff(data)
    if kind is None or kind not in DECODERS:
        raise RemoveBgError("invalid_file_type", "Invalid file type",
                            f"Expected jpg/png, received {kind or 'an unknown type'}")
    rate_limit(group="remove.bg improvement submissions", code="improve_rate_limited", account=account,
               rate=settings.REMOVEBG_IMPROVE_RATE_LIMIT)
    ident = uuid.uuid4()
    with storage_errors():
        name = default_storage.save(f"improve/{account.pk}/{ident}.{EXTENSIONS.get(kind, kind)}", ContentFile(data))
    return Improvement.objects.create(id=ident, account=account, tag=tag[:200], filename=filename[:200],
                                      storage_name=name, size=len(data))


def improvement_delete(*, improvement: Improvement) -> None:
    """The submission and its stored image."""
    with storage_errors():
        default_storage.delete(improvement.storage_name)
    improvement.delete()


# --- Retention -------------------------------------------------------------------------------------

def uploads_expire(*, now=None, batch: int = 500) -> int:
    """Deletes uploads unused for REMOVEBG_UPLOAD_RETENTION_DAYS, with everything made from them
    (jobs, cutouts, renders: rendering's purge of the image). The number of uploads deleted."""
    now = now or timezone.now()
    before = now - timedelta(days=settings.REMOVEBG_UPLOAD_RETENTION_DAYS)
    expired = list(upload_list_expired(before=before)[:batch])
    for upload in expired:
        render_purge(source=upload.source, path=upload.path)
    if expired:
        logger.info("removebg: %d uploads expired", len(expired))
    return len(expired)


def improvements_expire(*, now=None, batch: int = 500) -> int:
    """Deletes /improve submissions older than REMOVEBG_IMPROVE_RETENTION_DAYS, image and row, so
    an account's submissions (rate-limited per day) do not pile up in storage without end."""
    now = now or timezone.now()
    before = now - timedelta(days=settings.REMOVEBG_IMPROVE_RETENTION_DAYS)
    expired = list(Improvement.objects.filter(created_at__lt=before).order_by("created_at")[:batch])
    for improvement in expired:
        improvement_delete(improvement=improvement)
    if expired:
        logger.info("removebg: %d improvement submissions expired", len(expired))
    return len(expired)
