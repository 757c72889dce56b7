"""A call's images: which one was given (nothing read yet), its bytes, its checks from the header, and the upload it is kept as."""

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

from django.conf import settings
from PIL import Image

from accounts.models import Account
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
from removebg_api.errors import RemoveBgError
from removebg_api.retention import uploads_room_make
from rendering.budget import render_slot
from rendering.encode import image_encode
from rendering.params import RenderParams
from rendering.store import storage_errors
from sources.models import Source, Upload
from sources.origins import OriginError
from sources.origins.net import fetch_url
from sources.origins.uploads import upload_store, upload_stored
from sources.services import upload_record

EXTENSIONS = {"jpeg": "jpg", "png": "png"}


@dataclass(frozen=True)
class ImageGiven:
    """One image as the call gave it: an upload, base64 or a URL; `what` is "image" or "bg"
    (remove.bg's codes and field names differ)."""

    file: object = None
    b64: str | None = None
    url: str | None = None
    what: str = "image"


def image_given(*, file=None, b64: str | None = None, url: str | None = None, what: str = "image") -> ImageGiven | None:
    """Which image the call gave, checked without reading or fetching anything (the call is not
    yet known to be payable): exactly one way, an upload or base64 within ORIGIN_MAX_BYTES. None
    when none is given."""
    given = [value for value in (file, b64, url) if value not in (None, "")]
    if len(given) > 1:
        if what == "image":
            raise RemoveBgError("multiple_sources", "Multiple image sources given: Please provide either the "
                                "image_url, image_file or image_file_b64 parameter.")
        raise RemoveBgError("multiple_bg_sources", "Multiple background sources given: Please provide either "
                            "the bg_color, the bg_image_url or the bg_image_file parameter.")
    if not given:
        return None
    limit = settings.ORIGIN_MAX_BYTES
    if file not in (None, "") and file.size > limit:
        raise _too_large(limit)
    if b64 not in (None, ""):
        # Checked on the text's length before decoding, so the decoded copy is never over the cap.
        text = b64.split(",", 1)[1] if b64.startswith("data:") else b64
        if len(text) > (limit + 2) // 3 * 4 + 4:
            raise _too_large(limit)
    return ImageGiven(file=file if file not in (None, "") else None, b64=b64 or None, url=url or None, what=what)


def image_read(given: ImageGiven) -> bytes:
    """The image's bytes (an image_url fetched under the origins' network rules), within
    ORIGIN_MAX_BYTES. Called once the call's charge is taken."""
    limit = settings.ORIGIN_MAX_BYTES
    field = "image" if given.what == "image" else "bg_image"
    if given.file is not None:
        data = given.file.read(limit + 1)
        if len(data) > limit:
            raise _too_large(limit)
        return data
    if given.b64 is not None:
        text = given.b64.split(",", 1)[1] if given.b64.startswith("data:") else given.b64
        try:
            return base64.b64decode(text.strip(), validate=False)
        except (binascii.Error, ValueError):
            raise RemoveBgError("failed_to_read_image", "There was an error reading the image.",
                                f"{field}_file_b64 is not valid base64.") from None
    url = given.url
    try:
        return fetch_url(url.strip(), max_bytes=limit).data
    except OriginError as exc:
        if exc.status_code == 413:
            raise _too_large(limit) from None
        image = given.what == "image"
        code, name = ("failed_image_download", "image_url") if image else ("failed_bg_download", "bg_image_url")
        raise RemoveBgError(code, f"Failed to download {'' if image else 'background '}image from given "
                            f"{name}: {url[:200]}", exc.message) from None


def _too_large(limit: int) -> RemoveBgError:
    return RemoveBgError("file_too_large", "File too large", f"File exceeds limit of {limit // (1024 * 1024)}MB")


@dataclass(frozen=True)
class Input:
    source: Source
    upload: Upload
    # True when this call stored the image (no earlier call had): a call that then costs
    # nothing takes it away again, unless a job of another call uses it.
    new: bool = False


def input_store(*, account: Account, source: Source, data: bytes) -> Input:
    """The image as an upload of the account's uploads source, named by its content (so the
    same image twice is one upload and one job). Checked before anything is stored: the image's
    type by content, its structure and pixel count from the header (JPEG, PNG), and room within
    the account's uploads ceiling (removebg_api/retention.py); other formats we decode are
    decoded here, in a render slot, and kept as PNG, which the workers take."""
    kind = image_sniff(data)
    if kind is None or kind not in DECODERS:
        received = kind or "an unknown type"
        raise RemoveBgError("invalid_file_type", "Invalid file type", f"Expected jpg/png, received {received}")
    digest = hashlib.sha256(data).hexdigest()
    path = f"{digest}.{EXTENSIONS.get(kind, 'png')}"
    existing = Upload.objects.filter(source=source, path=path).first()
    if existing is not None:
        # Complete at its recorded size (written whole, core/storage.py), or stored again.
        with storage_errors():
            present = upload_stored(source_id=source.id, path=path, size=existing.size)
        if present:
            return Input(source, upload_record(source=source, path=path, size=existing.size, width=existing.width,
                                               height=existing.height))
    if kind in BG_REMOVE_TYPES:
        width, height = image_header_size(data, kind)
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
    if existing is None:
        uploads_room_make(source=source, size=len(stored))
    with storage_errors():
        upload_store(source_id=source.id, path=path, data=stored)
    return Input(source, upload_record(source=source, path=path, size=len(stored), width=width, height=height),
                 new=existing is None)


def image_header_size(data: bytes, kind: str) -> tuple[int, int]:
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


def background_check(data: bytes) -> None:
    """A background image's type, structure and pixels from its header, before the job: a bad
    background is refused while the call still costs nothing."""
    kind = image_sniff(data)
    if kind is None or kind not in DECODERS:
        raise RemoveBgError("failed_bg_download", "Failed to read the background image.",
                            f"Expected an image, received {kind or 'an unknown type'}")
    if kind in BG_REMOVE_TYPES:
        image_header_size(data, kind)


def roi_check(*, roi: tuple | None, upload: Upload) -> None:
    """The region of interest against the input image's size (from its header), before the job:
    a roi outside the image is refused while the call still costs nothing."""
    if roi is None:
        return
    x1, y1, x2, y2 = (length.pixels(ref) for length, ref in zip(roi, (upload.width, upload.height) * 2))
    if x2 > upload.width or y2 > upload.height:
        raise RemoveBgError("roi_exceeds_bounds", "ROI exceeds image bounds",
                            "The given roi parameter defines a region that exceeds the image bounds")
    if x2 <= x1 or y2 <= y1:
        raise RemoveBgError("roi_region_empty", "ROI region is empty",
                            "The given roi parameter defines an empty region")
