"""Repeated cached hits answered before Django: the exact response a URL just got, replayed.

A cached hit through Django costs its handler, middleware, signals and URL resolution, more than
the lookups themselves. When a plain GET of a small finished render has just been answered, the
web process keeps that response (status, headers, bytes) under everything the response depended
on: the host headers, the path, the query as received (its signature and `expires` included) and
the Accept header. The same request again within RENDER_LOOKUP_CACHE_SECONDS gets it back
directly, after what every request must still pay: the account's request rate (one Redis round
trip), usage metering, metrics and the access log line.

It is exactly as fresh as the lookup caches it sits on (a purge, a source's or an account's
change elsewhere shows within RENDER_LOOKUP_CACHE_SECONDS; a purge in this process clears it at
once), and bounded by RENDER_MEMORY_CACHE_BYTES like the bodies it holds. Everything it does not
take on goes to Django as before: conditional requests, HEAD, an `expires` that has passed, a
request over its account's rate (which Django then refuses), and every miss.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from accounts.limits import RateLimitedError, render_admit
from core.local_cache import ExpiringCache
from core.middleware import request_observed
from usage.services import usage_record

# The request's parts a response may depend on. Anything conditional is not served here.
_KEY_FIELDS = ("PATH_INFO", "QUERY_STRING", "HTTP_HOST", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
               "SERVER_NAME", "SERVER_PORT", "HTTP_ACCEPT", "wsgi.url_scheme")
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_RANGE")
# Larger renders are streamed from storage (views.py), never kept here.
MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class HotResponse:
    """What the view knew about a hit it answered, for keeping the response (views.py)."""

    account: object
    source_id: int
    expires: int | None
    route: str


@dataclass(frozen=True)
class _Entry:
    status: str
    headers: list
    body: bytes
    hot: HotResponse


_entries = ExpiringCache(max_entries=20_000, max_weight=0)


def _key(environ) -> tuple:
    return tuple(environ.get(name) for name in _KEY_FIELDS)


def hot_serve(environ, start_response):
    """The kept response for this request, sent; None when Django must answer it."""
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    if ttl <= 0 or environ.get("REQUEST_METHOD") != "GET" or any(name in environ for name in _CONDITIONAL):
        return None
    entry = _entries.get(_key(environ), None)
    if entry is None:
        return None
    started = time.monotonic()
    hot = entry.hot
    if hot.expires is not None and hot.expires < time.time():
        return None  # Django answers that it has expired.
    try:
        render_admit(account=hot.account)
    except RateLimitedError:
        return None  # Counted; Django counts it again and refuses it (429), with its headers.
    usage_record(source_id=hot.source_id, day=datetime.now(UTC).date(), served_bytes=len(entry.body), hit=True)
    start_response(entry.status, list(entry.headers))  # A server may add to the list it is given.
    request_observed(route=hot.route, method="GET", path=environ.get("PATH_INFO", ""), status=200,
                     seconds=time.monotonic() - started, account=hot.account.slug, cache="hit", served="hot")
    return [entry.body]


def hot_keep(environ, response) -> None:
    """Keeps the response Django just gave, when the view marked it as a plain hit to repeat."""
    hot = getattr(response, "hot", None)
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    budget = settings.RENDER_MEMORY_CACHE_BYTES
    if (hot is None or ttl <= 0 or budget <= 0 or response.status_code != 200 or response.streaming
            or response.cookies or environ.get("REQUEST_METHOD") != "GET"
            or any(name in environ for name in _CONDITIONAL)):
        return
    body = response.content
    if len(body) > MAX_BODY_BYTES:
        return
    status = f"{response.status_code} {response.reason_phrase}"
    key, headers = _key(environ), list(response.items())
    # Weighed with its key and headers (a query may be 8000 characters): the budget bounds it all.
    weight = len(body) + sum(len(part) for part in key if isinstance(part, str)) + sum(
        len(name) + len(value) for name, value in headers) + 512
    _entries.max_weight = budget
    _entries.set(key, _Entry(status, headers, body, hot), ttl, weight=weight)


def hot_clear() -> None:
    _entries.clear()
