"""rendering/hot.py through the real WSGI application: a repeated hit is the response Django gave,
replayed without Django, and still counted (rate, usage, metrics); everything else goes to Django."""

import io
import sys
import time
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings
from django.core.signals import request_started
from django.test import RequestFactory

from accounts.models import Account
from config.wsgi import application
from rendering.store import render_lookup_cache_clear, render_purge
from usage.services import KEY_PREFIX

# Real WSGI calls fire request_started, which closes the connection: so no wrapping transaction.
pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/render/acme-photos/astronaut.jpg"


@pytest.fixture(autouse=True)
def hot(settings):
    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 8 * 1024 * 1024
    render_lookup_cache_clear()
    yield
    render_lookup_cache_clear()


@pytest.fixture
def django_calls():
    calls = []

    def counted(**kwargs):
        calls.append(1)

    request_started.connect(counted)
    yield calls
    request_started.disconnect(counted)


def call(path=PATH, query="w=30", method="GET", **extra):
    environ = RequestFactory()._base_environ(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method,
                                            HTTP_HOST="testserver", **extra)
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["wsgi.errors"] = sys.stderr
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"], started["headers"] = int(status.split()[0]), headers

    body = application(environ, start_response)
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    return started["status"], started["headers"], data


def test_a_repeated_hit_is_djangos_response_without_django(source, django_calls):
    first = call()  # The render is made, and the response kept.
    assert first[0] == 200 and len(django_calls) == 1
    second, third = call(), call()
    assert len(django_calls) == 1  # Not through Django…
    assert second == third == first  # …and byte for byte, header for header, what Django sent.
    assert dict(first[1])["Content-Type"] == "image/jpeg" and "ETag" in dict(first[1])
    # Django's own answer to the same request, once the kept one is forgotten, is the same too.
    render_lookup_cache_clear()
    assert call() == first and len(django_calls) == 2


def test_hot_hits_count_against_the_rate_and_django_refuses_past_it(source):
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    Account.objects.filter(pk=source.account_id).update(render_rate_limit="4/m")
    statuses = [call()[0] for _ in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    status, headers, body = call()
    assert status == 429 and b"request_rate_limited" in body and int(dict(headers)["Retry-After"]) > 0


def test_hot_hits_are_metered(source):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    for _ in range(5):
        call()
    counts = client.hgetall(KEY_PREFIX + datetime.now(UTC).date().isoformat())
    assert int(counts[f"{source.id}:renders".encode()]) == 5
    assert int(counts[f"{source.id}:hits".encode()]) == 4  # The first request made the render.
    body_size = len(call()[2])
    counts = client.hgetall(KEY_PREFIX + datetime.now(UTC).date().isoformat())
    assert int(counts[f"{source.id}:bytes".encode()]) == 6 * body_size


def test_conditional_and_head_go_to_django(source, django_calls):
    call(), call()
    etag = dict(call()[1])["ETag"]
    before = len(django_calls)
    assert call(HTTP_IF_NONE_MATCH=etag)[0] == 304
    assert call(method="HEAD")[0] == 200
    assert len(django_calls) == before + 2


def test_a_304_is_the_kept_200s_headers_without_the_bodys(source, django_calls):
    query, accept = "w=30&auto=format", {"HTTP_ACCEPT": "image/webp"}
    call(query=query, **accept)
    status, headers, _ = call(query=query, **accept)  # The kept response, sent without Django.
    assert status == 200 and dict(headers)["Content-Type"] == "image/webp"
    before = len(django_calls)
    expected = [(name, value) for name, value in headers if name not in ("Content-Type", "Content-Length")]
    for tag in (dict(headers)["ETag"], "*"):
        assert call(query=query, HTTP_IF_NONE_MATCH=tag, **accept) == (304, expected, b"")
    assert len(django_calls) == before + 2  # Django answers conditionals (rendering/hot.py).


def test_accept_keys_a_kept_response_only_when_the_url_negotiates_its_format(source, django_calls):
    first = call(HTTP_ACCEPT="image/webp")
    before = len(django_calls)
    # No auto=format: the response does not depend on Accept, so any Accept is the same hit.
    for accept in ("image/avif,image/webp", "*/*", None):
        extra = {} if accept is None else {"HTTP_ACCEPT": accept}
        assert call(**extra) == first
    assert len(django_calls) == before
    # auto=format: each Accept its own kept response, each the format it negotiated.
    query = "w=30&auto=format"
    webp = call(query=query, HTTP_ACCEPT="image/webp")
    jpeg = call(query=query, HTTP_ACCEPT="image/jpeg")
    assert dict(webp[1])["Content-Type"] == "image/webp" and dict(jpeg[1])["Content-Type"] == "image/jpeg"
    assert len(django_calls) == before + 2
    assert call(query=query, HTTP_ACCEPT="image/webp") == webp
    assert call(query=query, HTTP_ACCEPT="image/jpeg") == jpeg
    assert len(django_calls) == before + 2  # Both kept, neither taken for the other.
    # An Accept that weighs WebP 0 is not the one that asked for WebP.
    refused = call(query=query, HTTP_ACCEPT="image/webp;q=0")
    assert dict(refused[1])["Content-Type"] == "image/jpeg" and len(django_calls) == before + 3


def test_client_hints_key_a_kept_response_only_when_the_url_names_them(source, django_calls):
    first = call(HTTP_WIDTH="20")
    before = len(django_calls)
    assert call(HTTP_WIDTH="25") == first  # No ch: the hint is not read, any Width is the same hit.
    assert len(django_calls) == before
    query = "w=30&ch=width,dpr"
    narrow, wide = call(query=query, HTTP_WIDTH="20"), call(query=query, HTTP_WIDTH="25", HTTP_DPR="1")
    plain = call(query=query)
    assert len(django_calls) == before + 3 and len({narrow[2], wide[2], plain[2]}) == 3
    assert call(query=query, HTTP_WIDTH="20") == narrow
    assert call(query=query, HTTP_WIDTH="25", HTTP_DPR="1") == wide
    assert call(query=query) == plain
    assert len(django_calls) == before + 3  # Each kept under its own hints, none taken for another.
    assert "Width" in dict(narrow[1])["Vary"]


def test_a_path_beyond_ascii_is_kept_under_its_own_bytes(source, origin_root, django_calls):
    (origin_root / "photos" / "café ü.png").write_bytes((origin_root / "photos" / "chelsea.png").read_bytes())
    utf8 = "/render/acme-photos/café ü.png".encode().decode("latin-1")  # WSGI's text of its bytes.
    first = call(path=utf8)
    assert first[0] == 200 and call(path=utf8) == first
    assert len(django_calls) == 1  # The repeat was the kept response.
    # The same characters in Latin-1 bytes (`caf%E9%20%FC.png`) are another path, which Django
    # answers: no such image.
    assert call(path="/render/acme-photos/caf\xe9 \xfc.png")[0] == 404 and len(django_calls) == 2


def test_a_purge_in_this_process_forgets_at_once(source, origin_root, django_calls):
    call(), call()
    render_purge(source=source)
    before = len(django_calls)
    status, _, body = call()
    assert status == 200 and len(django_calls) == before + 1  # Rendered again, through Django.


def test_an_expired_url_is_refused_even_after_hot_hits(source, django_calls):
    query = f"w=30&expires={int(time.time()) + 2}"
    assert [call(query=query)[0] for _ in range(3)] == [200, 200, 200]
    assert len(django_calls) == 1
    time.sleep(max(0.0, int(time.time()) + 3 - time.time()))
    status, _, body = call(query=query)
    assert status == 404 and b"expired" in body


def test_without_the_lookup_cache_nothing_is_kept(source, settings, django_calls):
    settings.RENDER_LOOKUP_CACHE_SECONDS = 0
    for _ in range(3):
        call()
    assert len(django_calls) == 3


def test_kept_responses_stay_within_the_memory_budget_however_long_the_urls(source, settings):
    from rendering import hot

    settings.RENDER_MEMORY_CACHE_BYTES = 200_000
    padding = "x" * 7000
    for width in range(20, 60):
        assert call(query=f"w={width}&pad-color=fff&txt-{padding}=1")[0] in (200, 400)
    weights = sum(entry[1] for entry in hot._entries._entries.values())
    assert 0 < weights <= 200_000
