"""How the response is delivered, without changing the image: `dl` (a download, with its file
name) and `ch` (client hints: the Width, DPR and Save-Data request headers standing in for w, dpr
and auto=compress). The view reads them for its headers; the hints are applied to the parameters
(`client_hints_apply`) before the render is looked up, so the cache key holds what they set."""

import dataclasses
import re
import unicodedata
from collections.abc import Mapping
from pathlib import PurePosixPath

from rendering.encode import COMPRESS_QUALITY
from rendering.stage import Param, Stage
from rendering.values import MAX_DIMENSION, Dim, decimal, items, number_parse

# Each hint imgix serves, and the request headers that carry it: the Sec-CH- name browsers send
# today first, then the original one imgix documents.
HINT_HEADERS = {
    "width": ("Sec-CH-Width", "Width"),
    "dpr": ("Sec-CH-DPR", "DPR"),
    "save-data": ("Save-Data",),
}
MAX_FILENAME = 200
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]')
# The extension of the served format, for a download named after its origin.
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/avif": ".avif",
              "image/gif": ".gif", "application/json": ".json"}


def _dl(value: str) -> str:
    # `dl` without a value downloads under the origin's name (imgix): "" is that, None no download.
    return value.strip()


def _ch(value: str) -> tuple | None:
    return items(HINT_HEADERS)(value)


class DeliveryStage(Stage):
    name = "delivery"
    pixels = False
    params = (
        Param("dl", _dl, keyed=False,
              differs="the name is cleaned (no path, quotes or control characters); without one, the origin's "
                      "name with the served format's extension"),
        # What the hints set (w, dpr, auto, q) keys the cache; `ch` itself does not.
        Param("ch", _ch, (), keyed=False,
              differs="Width is device pixels (w = Width ÷ DPR); Sec-CH-Width and Sec-CH-DPR are read too; "
                      "Save-Data: on acts as auto=compress (q at most 45)"),
    )


def hint_headers(p) -> tuple[str, ...]:
    """The request headers the response depends on through `ch` (for Vary and Accept-CH)."""
    return tuple(header for hint in p.ch for header in HINT_HEADERS[hint])


def client_hints_apply(p, headers: Mapping[str, str]):
    """`p` with what the hints the URL names (`ch`) and the request sends set: Width (device
    pixels, so w is Width ÷ the DPR in effect) overrides w, DPR overrides dpr, Save-Data: on adds
    auto=compress (q 45, or the URL's q when lower). A hint not sent leaves the URL's value."""
    if not p.ch:
        return p
    changes = {}
    dpr = p.dpr
    if "dpr" in p.ch:
        value = decimal(0.01, 5.0)(_hint(headers, "dpr"))
        if value is not None:
            changes["dpr"] = dpr = value
    if "width" in p.ch:
        width = number_parse(_hint(headers, "width"))
        if width is not None and width >= 1:
            changes["w"] = Dim(min(max(1, round(width / dpr)), MAX_DIMENSION))
    if "save-data" in p.ch and _hint(headers, "save-data").strip().lower() == "on":
        changes["auto"] = p.auto | {"compress"}
        if p.q is not None:
            changes["q"] = min(p.q, COMPRESS_QUALITY)
    return dataclasses.replace(p, **changes) if changes else p


def hint_environ_name(header: str) -> str:
    """The WSGI environ (request.META) name of a request header."""
    return "HTTP_" + header.upper().replace("-", "_")


def hints_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The hint headers a request sends, by header name."""
    return {header: environ[key] for header, key in _HINT_ENVIRON if environ.get(key)}


def _hint(headers: Mapping[str, str], hint: str) -> str:
    return next((headers[h] for h in HINT_HEADERS[hint] if headers.get(h)), "")


def download_filename(p, path: str, content_type: str) -> str | None:
    """The file name a `dl` response is saved under, None without `dl`: the URL's name, cleaned
    of anything that could leave the header or the download folder (control characters, quotes,
    path separators); without one, the origin's name with the served format's extension."""
    if p.dl is None:
        return None
    name = _clean(p.dl)
    if not name:
        origin = PurePosixPath(_clean(PurePosixPath(path).name) or "image")
        name = origin.stem + EXTENSIONS.get(content_type, origin.suffix)
    return name


def _clean(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]  # The last part of a path, as a browser does.
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:MAX_FILENAME]


_HINT_ENVIRON = tuple((h, hint_environ_name(h)) for headers in HINT_HEADERS.values() for h in headers)
STAGE = DeliveryStage()
