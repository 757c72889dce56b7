"""The playground's work: a source's URL (signed where the source requires it), and an image dropped on the page."""

import re
from urllib.parse import quote

from django.conf import settings

from accounts.models import Account
from core.errors import BadRequestError, ServiceError
from imaging.decode import BG_REMOVE_TYPES, NotAnImageError, TooManyPixelsError, UnsupportedImageTypeError, image_sniff
from removebg_api.errors import RemoveBgError
from removebg_api.inputs import input_store
from rendering.gate import Door, Entry, Pass, render_gate
from rendering.params import params_parse
from rendering.signing import url_signed
from sources.models import Source, Upload
from sources.origins import path_clean
from sources.origins.base import OriginTooLargeError
from sources.selectors import source_get_for
from sources.services import source_uploads_ensure

# How the path is written in a URL the page makes: imgix-python's encoding, the first the
# signature check tries (rendering/signing.py SDK_SAFE).
PATH_SAFE = "/&$;=@,"
# An upload's name: its content's SHA-256 and extension (removebg_api/inputs.py input_store).
UPLOAD_NAME = re.compile(r"^[0-9a-f]{64}\.(?:jpg|png)$")
MB = 1024 * 1024


class UploadsNotPublicError(BadRequestError):
    code = "uploads_not_public"
    default_message = ("An account's uploads have no public URL: drop the image on the page to try it, or put it "
                       "in one of the account's sources.")


class LengthRequiredError(ServiceError):
    status_code = 411
    code = "length_required"
    default_message = "Send the image with its Content-Length."


class EmptyUploadError(BadRequestError):
    code = "empty_upload"
    default_message = "The file is empty."


class UploadNotFoundError(ServiceError):
    status_code = 404
    code = "upload_not_found"
    default_message = "No such uploaded image."


# remove.bg's codes for the checks input_store makes, as this project's errors (README's table).
_REMOVEBG_ERRORS = {
    "file_too_large": OriginTooLargeError,
    "resolution_too_high": TooManyPixelsError,
    "invalid_file_type": UnsupportedImageTypeError,
    "failed_to_read_image": NotAnImageError,
}


def playground_url(*, account: Account, slug: str, path: str, query: str) -> tuple[str, Source]:
    """The rendering URL (site-relative) of `path` on the account's source `slug` with `query`,
    signed with the source's token where it requires signatures. The path and every parameter are
    checked as a request's would be (400 naming what is wrong), so the page shows the error at once."""
    source = source_get_for(account=account, slug=slug)  # 404 for another account's.
    if source.kind == Source.Kind.UPLOADS:
        raise UploadsNotPublicError()
    path = path_clean(path.strip().lstrip("/"))
    query = query.strip().lstrip("?")
    if any(part.startswith("s=") for part in query.split("&")):
        raise BadRequestError("Leave `s` out: the playground signs the URL itself.", code="signature_given")
    params_parse(query)
    url = f"/render/{source.slug}/{quote(path, safe=PATH_SAFE)}" + (f"?{query}" if query else "")
    return url_signed(source=source, url=url), source


def playground_upload(*, account: Account, body, length: str | None) -> Upload:
    """An image dropped on the page, kept as one of the account's uploads (the uploads source
    remove.bg's API keeps its images in, with its ceiling and retention). The checks, before any
    work on the image: its declared length within ORIGIN_MAX_BYTES (before the body is read),
    the gate on the account's uploads (the account's request rate), the bytes read within the cap,
    JPG or PNG by content; then input_store's checks of the header (structure, pixels)."""
    limit = settings.ORIGIN_MAX_BYTES
    try:
        declared = int(length) if length not in (None, "") else None
    except ValueError:
        declared = None
    if declared is None:
        raise LengthRequiredError()
    if declared > limit:
        raise _too_large(declared, limit)
    if declared == 0:
        raise EmptyUploadError()
    source = source_uploads_ensure(account=account)
    render_gate(Entry(door=Door.PLAYGROUND, source=source, account=account))
    data = body.read(limit + 1)
    if len(data) > limit:  # A Content-Length that understated the body.
        raise _too_large(len(data), limit)
    kind = image_sniff(data)
    if kind not in BG_REMOVE_TYPES:
        what = f"a {kind.upper()} image" if kind else "not an image of a type we know"
        raise UnsupportedImageTypeError(f"Only JPG and PNG images are taken (judged by their content, not their "
                                        f"name); this file is {what}.")
    try:
        return input_store(account=account, source=source, data=data).upload
    except RemoveBgError as exc:
        error = _REMOVEBG_ERRORS.get(exc.code, BadRequestError)
        raise error(f"{exc.message}: {exc.detail}" if exc.detail else exc.message) from None


def playground_upload_gate(*, account: Account, path: str, query: str) -> Pass:
    """A render of one of the account's uploads, through the gate's playground door."""
    if not UPLOAD_NAME.match(path):
        raise UploadNotFoundError()
    source = source_uploads_ensure(account=account)
    return render_gate(Entry(door=Door.PLAYGROUND, source=source, path=path, raw_query=query, account=account))


def _too_large(size: int, limit: int) -> OriginTooLargeError:
    return OriginTooLargeError(f"The file is {size / MB:.1f} MB; the limit is {limit / MB:g} MB.")
