"""remove.bg's request bodies (multipart, urlencoded, JSON) as fields and files, bounded before and while parsing."""

import json
import re
from json.decoder import scanstring

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import QueryDict
from django.http.multipartparser import MultiPartParserError

from removebg_api.errors import RemoveBgError

# The fields that carry an image: bounded by ORIGIN_MAX_BYTES (as base64), not REMOVEBG_JSON_MAX_STRING.
IMAGE_FIELDS = ("image_file_b64", "bg_image_file_b64")
_SPACE = re.compile(rb"[ \t\n\r]*")
_NUMBER = re.compile(rb"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {b"true": True, b"false": False, b"null": None}


class BodyError(RemoveBgError):
    def __init__(self, detail: str):
        super().__init__("invalid_parameters", "Invalid parameters", detail)


def _too_large(detail: str) -> RemoveBgError:
    return RemoveBgError("file_too_large", "File too large", detail)


def request_fields(request) -> tuple[dict, dict]:
    """(fields, files) of a multipart, urlencoded or JSON body, refused from its Content-Length
    when over REMOVEBG_MAX_REQUEST_BYTES before a byte is read. Called only once the call is
    authenticated and within its account's rate and entitlement (removebg_api/services.py)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.REMOVEBG_MAX_REQUEST_BYTES
    if length > limit:
        raise _too_large(f"The request is over {limit} bytes.")
    content_type = request.content_type
    try:
        if content_type == "multipart/form-data":
            # Django's parser: files stream to disk past 2.5 MB; a plain (non-file) field is
            # bounded by DATA_UPLOAD_MAX_MEMORY_SIZE, the fields' count by DATA_UPLOAD_MAX_NUMBER_FIELDS.
            return {k: request.POST.get(k) for k in request.POST}, {k: request.FILES.get(k) for k in request.FILES}
        body = request.read(limit + 1)
        if len(body) > limit:
            raise _too_large(f"The request is over {limit} bytes.")
        if content_type == "application/x-www-form-urlencoded":
            query = QueryDict(body, encoding=request.encoding or "utf-8")
            return {k: query.get(k) for k in query}, {}
        if content_type == "application/json":
            return json_fields(body), {}
    except RequestDataTooBig:
        raise _too_large("A plain multipart field is limited to 2.5 MB: send the image as image_file, or its "
                         "base64 in a JSON or urlencoded body.") from None
    except (ValueError, TooManyFieldsSent, MultiPartParserError, SuspiciousOperation):
        raise BodyError(f"The {content_type} body could not be parsed.") from None
    return {}, {}


def json_fields(body: bytes) -> dict:
    """A JSON body as remove.bg's fields: one object whose values are strings, numbers, booleans
    or null, at most REMOVEBG_JSON_MAX_FIELDS of them, each string at most REMOVEBG_JSON_MAX_STRING
    (the base64 images at most ORIGIN_MAX_BYTES as base64). Read in one pass that stops at the
    first thing out of bounds, so nothing nested is ever built: json.loads would build every
    object of a body of nested empty objects before anything could look at it."""
    # Read as bytes, each string decoded alone: the body is never copied whole as text.
    text = body
    max_fields, max_string = settings.REMOVEBG_JSON_MAX_FIELDS, settings.REMOVEBG_JSON_MAX_STRING
    max_image = (settings.ORIGIN_MAX_BYTES + 2) // 3 * 4 + 64  # A data: URL's prefix included.
    fields: dict = {}
    at = _SPACE.match(text, 0).end()
    if at == len(text):
        return fields
    if text[at:at + 1] != b"{":
        raise BodyError("The JSON body is an object of fields.")
    at = _SPACE.match(text, at + 1).end()
    if text[at:at + 1] == b"}":
        return _end(text, at + 1, fields)
    while True:
        if text[at:at + 1] != b'"':
            raise BodyError("A field's name is a string.")
        name, at = _string(text, at + 1, max_string)
        at = _SPACE.match(text, at).end()
        if text[at:at + 1] != b":":
            raise BodyError("A field's name is followed by a colon.")
        at = _SPACE.match(text, at + 1).end()
        char = text[at:at + 1]
        if char == b'"':
            value, at = _string(text, at + 1, max_image if name in IMAGE_FIELDS else max_string)
        elif char in (b"{", b"["):
            raise BodyError(f"{name[:100]} is nested; every field is a string, a number or a boolean.")
        elif match := _NUMBER.match(text, at):
            if match.end() - at > 64:
                raise BodyError(f"{name[:100]} is a number of over 64 characters.")
            value, at = json.loads(match.group()), match.end()
        else:
            literal = next((word for word in _LITERALS if text.startswith(word, at)), None)
            if literal is None:
                raise BodyError("The JSON body could not be parsed.")
            value, at = _LITERALS[literal], at + len(literal)
        fields[name] = value
        if len(fields) > max_fields:
            raise BodyError(f"More than {max_fields} fields.")
        at = _SPACE.match(text, at).end()
        char = text[at:at + 1]
        if char == b"}":
            return _end(text, at + 1, fields)
        if char != b",":
            raise BodyError("The JSON body could not be parsed.")
        at = _SPACE.match(text, at + 1).end()


def _string(text: bytes, at: int, limit: int) -> tuple[str, int]:
    # The closing quote is found first (an escaped quote only moves it on), so a string over
    # its limit is refused before it is decoded.
    end = at
    while True:
        end = text.find(b'"', end)
        if end < 0:
            raise BodyError("A string is not closed.")
        before = end - 1
        while before >= at and text[before] == 0x5C:  # A backslash.
            before -= 1
        if (end - 1 - before) % 2 == 0:
            break
        end += 1
    if end - at > limit:
        raise _too_large(f"A string of the JSON body is over {limit} characters.")
    try:
        value, _ = scanstring(text[at:end + 1].decode("utf-8"), 0, True)
    except (UnicodeDecodeError, ValueError):
        raise BodyError("A string of the JSON body could not be parsed.") from None
    return value, end + 1


def _end(text: bytes, at: int, fields: dict) -> dict:
    if _SPACE.match(text, at).end() != len(text):
        raise BodyError("Nothing may follow the JSON object.")
    return fields
