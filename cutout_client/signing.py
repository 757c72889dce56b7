"""imgix's URL signature as the server checks it (rendering/signing.py): `s` = MD5(token + path + "?" + query)."""

import hashlib
from urllib.parse import quote

# imgix-python's encoding of the path, one of those the server tries against the decoded path.
PATH_SAFE = "/&$;=@,"


def path_encode(path: str) -> str:
    return quote(path, safe=PATH_SAFE)


def query_encode(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in params)


def url_sign(path: str, query: str, token: str) -> str:
    """`path?query` with `s` appended last; `path` and `query` exactly as they will be sent."""
    signature = hashlib.md5((token + path + (f"?{query}" if query else "")).encode("utf-8")).hexdigest()
    return f"{path}?{query}&s={signature}" if query else f"{path}?s={signature}"
