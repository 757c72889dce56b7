"""imgix's signed URLs: `s` = MD5(token + path + query without s), compared in constant time."""

import hashlib
import hmac
import time
from urllib.parse import quote

from core.errors import ForbiddenError, NotFoundError

# The path as the client sent it is what was signed. gunicorn puts it in RAW_URI; other servers
# (granian, which platform/Procfile runs) only give the decoded path, so we try how the imgix SDKs
# encode it: imgix-python's `quote(path, safe="/&$;=@,")`, @imgix/js-core's
# `encodeURI(path).replace(/[#?:+]/g, encodeURIComponent)`, and plain `encodeURI`.
SDK_SAFE = ["/&$;=@,", "/&$;=@,!*'()", "/&$;=@,:+!*'()~#?"]


class SignatureError(ForbiddenError):
    code = "bad_signature"


class ExpiredError(NotFoundError):
    code = "expired"
    default_message = "This URL has expired."


def raw_path_candidates(meta: dict) -> list[str]:
    raw = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    if raw:
        return [raw.split("?", 1)[0]]
    # Django's request has already decoded the server's PATH_INFO (the path's bytes as Latin-1
    # text, PEP 3333) as UTF-8 and put the text back in META: decoding it again would turn a path
    # written in Latin-1 characters (`café`) into another one.
    path = meta.get("SCRIPT_NAME", "") + meta.get("PATH_INFO", "")
    return list(dict.fromkeys(quote(path, safe=safe) for safe in SDK_SAFE))


def split_signature(raw_query: str) -> tuple[str, str | None]:
    """The query without `s` (order kept, as received) and the `s` value, if any."""
    kept, signature = [], None
    for part in raw_query.split("&") if raw_query else []:
        if part.startswith("s="):
            signature = part[2:]
        else:
            kept.append(part)
    return "&".join(kept), signature


def signature_for(token: str, path: str, query: str) -> str:
    base = token + path + (f"?{query}" if query else "")
    return hashlib.md5(base.encode("utf-8")).hexdigest()


def url_signed(*, source, url: str) -> str:
    """The project's own links to a source (admin preview, home page): `s` appended, last, with
    the source's first token when the source requires signatures; the URL as it is otherwise."""
    if not source.require_signature or not source.secure_tokens:
        return url
    path, _, query = url.partition("?")
    return f"{url}{'&' if query else '?'}s={signature_for(source.secure_tokens[0], path, query)}"


def signature_check(*, tokens: list[str], paths: list[str], raw_query: str) -> None:
    query, signature = split_signature(raw_query)
    if not signature:
        raise SignatureError("This source requires signed URLs; the `s` parameter is missing.")
    signature = signature.lower()
    matched = False
    for token in tokens:
        for path in paths:
            # Every candidate is compared, so timing does not tell which one was close.
            matched |= hmac.compare_digest(signature_for(token, path, query), signature)
    if not matched:
        raise SignatureError("The URL's signature does not match its path and parameters.")


def expires_check(expires: int | None) -> None:
    if expires is not None and expires < time.time():
        raise ExpiredError()
