"""Where a source is served: `/render/{source}/{path}` and `{source}.{RENDER_DOMAIN}/{path}`.

The one parser of those addresses, for the rendering host routing, the WSGI entry point, and the
APIs that take rendering URLs (purge, pre-warm).
"""

from urllib.parse import unquote, urlsplit

from django.conf import settings

from core.errors import BadRequestError
from sources.origins import path_clean

RENDER_PREFIX = "/render/"


def source_slug_for_host(host: str) -> str | None:
    """The source slug a `{source}.{RENDER_DOMAIN}` host names (one label, no port), or None."""
    domain = settings.RENDER_DOMAIN
    if not domain:
        return None
    host = host.rsplit(":", 1)[0].lower() if not host.endswith("]") else host.lower()
    suffix = "." + domain.lower()
    if host.endswith(suffix) and "." not in host[: -len(suffix)] and len(host) > len(suffix):
        return host[: -len(suffix)]
    return None


def render_url_parse(*, url: str) -> tuple[str, str]:
    """(source slug, path) of a rendering URL on either form; the query is ignored."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError("url must be an absolute http(s) rendering URL.", code="bad_url")
    path = unquote(parts.path)
    slug = source_slug_for_host(parts.netloc.rpartition("@")[2])
    if slug is not None:
        return slug, path_clean(path.lstrip("/"))
    if path.startswith(RENDER_PREFIX):
        slug, _, rest = path[len(RENDER_PREFIX):].partition("/")
        return slug, path_clean(rest)
    raise BadRequestError("url is not a rendering URL (/render/{source}/{path} or {source}.RENDER_DOMAIN).",
                          code="bad_url")
