"""What a `mark` names: an image on the web, a file of the same source, or a rendering URL of the
same account (imgix: "watermarks served by imgix can take our parameters within the mark")."""

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from core.errors import BadRequestError
from rendering.params import mark_query_canonical
from rendering.signing import SDK_SAFE as _SDK_SAFE
from sources.addresses import RENDER_PREFIX, source_slug_for_host
from sources.origins import path_clean

# Marks inside marks: the render, its mark, and that mark's mark; one more level is refused.
MAX_DEPTH = 2


class MarkError(BadRequestError):
    code = "bad_mark"


class MarkLoopError(BadRequestError):
    code = "mark_loop"
    default_message = "The mark refers back to an image it is drawn on; a mark may not contain its own base."


class MarkTooDeepError(BadRequestError):
    code = "mark_too_deep"
    default_message = f"Marks are nested more than {MAX_DEPTH} deep (a mark's mark's mark)."


@dataclass(frozen=True)
class MarkRef:
    """`url`: fetched from the web; `path`: the file of the base's source, as it is; `render`: a
    rendering of `path` on the source `source_slug` ("" for the base's) with `query`'s parameters,
    made by this platform's own pipeline, never fetched from ourselves."""

    kind: str
    path: str = ""
    query: str = ""
    source_slug: str = ""
    url: str = ""
    # The path as written in the mark (percent-encoding kept), which is what a signature of the
    # mark's own URL covers: the whole path of an absolute URL, or a path relative to the base's
    # source.
    raw_path: str = ""

    def signed_paths(self, slug: str) -> list[str]:
        """The path in each spelling the mark's own URL may have been signed in: an absolute URL's
        path as written; a relative one's as on its source's host (`/{path}`) and as on the
        `/render/{source}/` form, each as written and as the imgix SDKs encode it."""
        if self.source_slug or self.url:
            paths = [self.raw_path]
        else:
            paths = [f"/{self.raw_path}", f"{RENDER_PREFIX}{slug}/{self.raw_path}"]
        decoded = [unquote(path) for path in paths]
        return list(dict.fromkeys([*paths, *(quote(path, safe=safe) for path in decoded for safe in _SDK_SAFE)]))


def mark_ref(mark: str, name: str = "mark") -> MarkRef:
    """What `mark` (or another parameter naming an image, `name`: `blend`) names; 400 for
    anything else (another scheme, a path escaping the source)."""
    if mark.startswith(("http://", "https://")):
        parts = urlsplit(mark)
        host = parts.netloc.rpartition("@")[2]
        slug = source_slug_for_host(host)
        if slug is not None:
            return MarkRef("render", path=path_clean(unquote(parts.path).lstrip("/")), query=parts.query,
                           source_slug=slug, raw_path=parts.path)
        if parts.path.startswith(RENDER_PREFIX) and _platform_host(host):
            slug, _, rest = unquote(parts.path)[len(RENDER_PREFIX):].partition("/")
            if not slug:
                raise MarkError(f"The {name}'s rendering URL names no source.")
            return MarkRef("render", path=path_clean(rest), query=parts.query, source_slug=slug,
                           raw_path=parts.path)
        return MarkRef("url", url=mark)
    if "://" in mark:
        raise MarkError(f"{name} must be an http(s) URL or a path on the same source.")
    path, _, query = mark.lstrip("/").partition("?")
    if mark_query_canonical(query):
        return MarkRef("render", path=path_clean(path), query=query, raw_path=path)
    # No query, or one that changes nothing (a cache-busting `?v=2`): the file itself. Its query
    # is kept for the checks that still apply to it (`expires`).
    return MarkRef("path", path=path_clean(path), query=query, raw_path=path)


def _platform_host(host: str) -> bool:
    """A host this platform answers on (ALLOWED_HOSTS): its `/render/` URLs are rendered here."""
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
