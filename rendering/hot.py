"""Repeated cached hits answered before Django: the exact response a URL just got, replayed.

A cached hit through Django costs its handler, middleware, signals and URL resolution, more than
the lookups themselves. When a plain GET of a small finished render has just been answered, the
web process keeps that response (status, headers, bytes) under everything the response depended
on: the host headers, the path, the query as received (its signature and `expires` included), and
the request headers the response varies on: Accept when the URL negotiates its format
(`auto=format`), the client hints it names (`ch`); no other response depends on a request
header. The same request again within RENDER_LOOKUP_CACHE_SECONDS gets it back directly, after
what every request must still pay: the account's request rate (one Redis round trip, which also
reads the cache generation), usage metering, metrics and the access log line.

It is exactly as fresh as the lookup caches it sits on: a purge, a source's or an account's change
in any process moves the cache generation (core/generation.py), and a kept response stored under
an older one is not sent (the request goes to Django). Bounded by RENDER_MEMORY_CACHE_BYTES like
the bodies it holds. Everything it does not take on goes to Django as before: conditional
requests, HEAD, an `expires` that has passed, a request over its account's rate (which Django
then refuses), and every miss.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from accounts.limits import RateLimitedError, rate_count_waits, render_admit
from core import generation
from core.generation import generation_begin, generation_end, generation_in_redis, generation_mark_counted
from core.local_cache import ExpiringCache
from core.middleware import request_observed
from usage.services import usage_record, usage_record_waits

# Anything conditional is not served here.
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
    # The request headers (WSGI environ names) the response depends on too: Accept when the URL
    # negotiates its format (auto=format), the client hints it names (ch).
    varies: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Entry:
    status: str
    code: int
    headers: list
    body: bytes
    hot: HotResponse


_entries = ExpiringCache(max_entries=20_000, max_weight=0)


@dataclass(frozen=True)
class _Varies:
    """Kept under a URL's key when its responses depend on request headers: they are kept under
    (key, the values of those headers)."""

    names: tuple[str, ...]


# Set in a request's environ once the cache generation is read for it (the view reads it otherwise).
GENERATION_BEGUN = "cutout.generation_begun"
# Set when the event loop counted the request and handed it to a thread (hot_fast).
_COUNTED = "cutout.hot_counted"
# The request's key, taken before Django replaces PATH_INFO (the path's bytes as Latin-1 text,
# PEP 3333) with its UTF-8 decoding: kept under that, `café` would be found by the request whose
# bytes are the Latin-1 `caf\xe9`, and never by its own repeats.
_KEY = "cutout.hot_key"


def _key(environ) -> tuple:
    """The request's parts any response may depend on (and the headers a URL's _Varies names)."""
    get = environ.get
    return (get("PATH_INFO"), get("QUERY_STRING"), get("HTTP_HOST"), get("HTTP_X_FORWARDED_HOST"),
            get("HTTP_X_FORWARDED_PROTO"), get("SERVER_NAME"), get("SERVER_PORT"), get("wsgi.url_scheme"))


def hot_serve(environ, start_response):
    """The kept response for this request, sent; None when Django must answer it. Called first for
    every request a thread runs (rendering/wsgi.py): it starts the request's cache generation."""
    entry = _answer(environ)
    if entry is None:
        return None
    start_response(entry.status, list(entry.headers))  # A server may add to the list it is given.
    return [entry.body]


def hot_fast(environ):
    """The kept response as (status, headers, body), for core/front.py's event loop; None when a
    thread must run the request (rendering/wsgi.py, hot_serve first). The loop answers only where
    nothing on the way can wait: the rate counted in this process, the cache generation read
    from the mapped file, usage added to the in-process buffer (the embedded defaults). With
    Redis, or when the usage buffer is due to be written, a thread answers, as it answers every
    miss: the loop never waits on a socket or the database."""
    if generation_in_redis() or rate_count_waits() or usage_record_waits():
        return None
    entry = _answer(environ)
    if entry is None:
        generation_end()  # The loop thread's own state; the thread that runs it begins it again.
        return None
    return entry.code, entry.headers, entry.body


def _answer(environ) -> "_Entry | None":
    """The kept entry to send for this request, with what every request pays counted; None when
    Django must answer it."""
    begun = generation_begin()
    environ[GENERATION_BEGUN] = True
    environ[_KEY] = key = _key(environ)
    counted = environ.pop(_COUNTED, None)
    if counted is not None:
        # The event loop counted this request, then found the generation moved (hot_fast).
        generation_mark_counted(account_id=counted[0], usage=counted[1])
        return None
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    if ttl <= 0 or environ.get("REQUEST_METHOD") != "GET" or any(name in environ for name in _CONDITIONAL):
        return None
    entry = _entries.get(key, None)
    if isinstance(entry, _Varies):
        entry = _entries.get((key, tuple(environ.get(name) for name in entry.names)), None)
    if entry is None:
        return None
    started = time.monotonic()
    hot = entry.hot
    if hot.expires is not None and hot.expires < time.time():
        return None  # Django answers that it has expired.
    try:
        usage = render_admit(account=hot.account)
    except RateLimitedError:
        return None  # Counted; Django counts it again and refuses it (429), with its headers.
    if generation.version != begun:
        # The count read a new generation (a purge or a change elsewhere): the response may be
        # stale, so Django answers, from the database, without counting the request again.
        generation_mark_counted(account_id=hot.account.pk, usage=usage)
        environ[_COUNTED] = (hot.account.pk, usage)  # For the thread, when this is the event loop.
        return None
    usage_record(source_id=hot.source_id, day=datetime.now(UTC).date(), served_bytes=len(entry.body), hit=True)
    request_observed(route=hot.route, method="GET", path=environ.get("PATH_INFO", ""), status=200,
                     seconds=time.monotonic() - started, account=hot.account.slug, cache="hit", served="hot")
    generation_end()
    return entry


def hot_keep(environ, response) -> None:
    """Keeps the response Django just gave, when the view marked it as a plain hit to repeat."""
    hot, key = getattr(response, "hot", None), environ.get(_KEY)
    ttl = settings.RENDER_LOOKUP_CACHE_SECONDS
    budget = settings.RENDER_MEMORY_CACHE_BYTES
    if (hot is None or key is None or ttl <= 0 or budget <= 0 or response.status_code != 200 or response.streaming
            or response.cookies or environ.get("REQUEST_METHOD") != "GET"
            or any(name in environ for name in _CONDITIONAL)):
        return
    body = response.content
    if len(body) > MAX_BODY_BYTES:
        return
    status = f"{response.status_code} {response.reason_phrase}"
    headers = list(response.items())
    # Weighed with its key and headers (a query may be 8000 characters): the budget bounds it all.
    weight = len(body) + sum(len(part) for part in key if isinstance(part, str)) + sum(
        len(name) + len(value) for name, value in headers) + 512
    _entries.max_weight = budget
    if hot.varies:
        values = tuple(environ.get(name) for name in hot.varies)
        _entries.set(key, _Varies(hot.varies), ttl, weight=weight - len(body))
        key, weight = (key, values), weight + sum(len(value or "") for value in values)
    _entries.set(key, _Entry(status, response.status_code, headers, body, hot), ttl, weight=weight)


def hot_clear() -> None:
    _entries.clear()
