"""The render gate: every door (a request, a mark at any depth, pre-warm) passes the same checks in
the same order — source kind, signature, expires, entitlement, rate — so a mark cannot reach what
its own URL could not."""

import io
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
import requests
from django.test import RequestFactory
from imgix import UrlBuilder
from PIL import Image
from rest_framework.test import APIClient

from accounts.services import api_key_create
from config.wsgi import application
from cutouts.models import BgRemoveJob
from rendering.signing import signature_for
from rendering.store import render_lookup_cache_clear
from sources.models import Source
from sources.services import source_uploads_ensure
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.factories import AccountFactory, SourceFactory

pytestmark = pytest.mark.django_db

TOKEN = "gate-token-0123456789"
DOMAIN = "img.example"


@pytest.fixture
def sources(account, origin_root, settings):
    """acme-photos: open; acme-private: requires signatures; acme-off: no background removal."""
    settings.RENDER_DOMAIN = DOMAIN
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, f".{DOMAIN}"]
    open_ = SourceFactory(account=account, slug="acme-photos", kind="local", local_path="photos")
    private = SourceFactory(account=account, slug="acme-private", kind="local", local_path="photos",
                            require_signature=True, secure_tokens=[TOKEN])
    off = SourceFactory(account=account, slug="acme-off", kind="local", local_path="photos", bg_remove="off")
    return open_, private, off


def composite(mark: str, base: str = "/render/acme-photos/chelsea.png", extra: str = "&fm=png") -> str:
    return f"{base}?mark={quote(mark, safe='')}{extra}"


def signed_mark(path: str, query: str, source: str = "acme-private") -> str:
    """A mark as imgix's SDK makes it: the image's own URL on its source's host, signed."""
    return UrlBuilder(f"{source}.{DOMAIN}", sign_key=TOKEN, include_library_param=False).create_url(path, query)


def error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_signed_source_is_not_readable_through_an_unsigned_sources_mark(client, sources):
    # Its own URL without a signature: 403; the same image as a mark of an open source: 403 too.
    assert error(client.get("/render/acme-private/astronaut.jpg?w=40")) == (403, "bad_signature")
    for mark in (f"https://acme-private.{DOMAIN}/astronaut.jpg?w=40",
                 "https://testserver/render/acme-private/astronaut.jpg?w=40",
                 f"https://acme-private.{DOMAIN}/astronaut.jpg?w=40&s=0123456789abcdef0123456789abcdef"):
        assert error(client.get(composite(mark))) == (403, "bad_signature"), mark
    assert not Image.open(io.BytesIO(client.get("/render/acme-photos/chelsea.png?fm=png").content)).size == (0, 0)


def test_a_mark_signed_as_the_sdk_signs_its_own_url_is_drawn(client, sources):
    mark = signed_mark("astronaut.jpg", {"w": 40})
    response = client.get(composite(mark))
    assert response.status_code == 200, response.content[:300]
    # The /render/{source}/ form, signed over its whole path, as a request to it would be.
    path = "/render/acme-private/astronaut.jpg"
    mark = f"http://testserver{path}?w=40&s={signature_for(TOKEN, path, 'w=40')}"
    assert client.get(composite(mark)).status_code == 200
    # Changing what was signed breaks it.
    assert error(client.get(composite(mark.replace("w=40", "w=41")))) == (403, "bad_signature")


def test_inside_a_signed_url_a_mark_on_the_same_source_is_covered_by_its_signature(client, sources):
    # The base's signature covers the mark's text, written by the token's holder.
    path = "/render/acme-private/chelsea.png"
    query = f"mark={quote('astronaut.jpg?w=40', safe='')}&fm=png"
    response = client.get(f"{path}?{query}&s={signature_for(TOKEN, path, query)}")
    assert response.status_code == 200, response.content[:300]
    # …but not a mark on another source that requires signatures.
    SourceFactory(account=sources[0].account, slug="acme-other", kind="local", local_path="photos",
                  require_signature=True, secure_tokens=["another-token"])
    query = f"mark={quote('https://acme-other.img.example/astronaut.jpg?w=40', safe='')}&fm=png"
    assert error(client.get(f"{path}?{query}&s={signature_for(TOKEN, path, query)}")) == (403, "bad_signature")


def test_a_nested_mark_needs_its_own_signature_at_every_depth(client, sources):
    unsigned_inner = f"https://acme-private.{DOMAIN}/astronaut.jpg?w=20"
    middle = f"https://acme-photos.{DOMAIN}/astronaut.jpg?w=60&mark={quote(unsigned_inner, safe='')}"
    assert error(client.get(composite(middle))) == (403, "bad_signature")
    inner = signed_mark("astronaut.jpg", {"w": 20})
    middle = f"https://acme-photos.{DOMAIN}/astronaut.jpg?w=60&mark={quote(inner, safe='')}"
    assert client.get(composite(middle)).status_code == 200


def test_a_marks_expires_is_checked(client, sources):
    past = int(time.time()) - 10
    for mark in (f"astronaut.jpg?w=40&expires={past}",  # A rendering of the same source.
                 f"astronaut.jpg?expires={past}",  # The file itself, with an expires of its own.
                 f"https://acme-photos.{DOMAIN}/astronaut.jpg?w=40&expires={past}"):
        assert error(client.get(composite(mark))) == (404, "expired"), mark
    # A signed mark whose expires is signed with it: served until then, refused after.
    soon = int(time.time()) + 2
    mark = signed_mark("astronaut.jpg", {"w": 40, "expires": soon})
    assert client.get(composite(mark)).status_code == 200
    time.sleep(max(0.0, soon + 1 - time.time()))
    # Now cached as a composite: still refused, the mark's time is the response's.
    assert error(client.get(composite(mark))) == (404, "expired")


def test_the_uploads_source_is_not_reachable_through_a_mark_or_prewarm(client, sources, account):
    uploads = source_uploads_ensure(account=account)
    assert error(client.get(f"/render/{uploads.slug}/x.png")) == (404, "source_not_found")
    for mark in (f"https://{uploads.slug}.{DOMAIN}/x.png?bg-remove=true",
                 f"http://testserver/render/{uploads.slug}/x.png?w=10"):
        assert error(client.get(composite(mark))) == (400, "bad_mark"), mark
    # The same answer as a source that does not exist, and as another account's.
    other = SourceFactory(account=AccountFactory(slug="other"), slug="other-photos", kind="local", local_path="photos")
    for slug in ("nothing-here", other.slug):
        assert error(client.get(composite(f"https://{slug}.{DOMAIN}/x.png?w=10"))) == (400, "bad_mark")
    _, secret = api_key_create(account=account, scopes=["write"], name="k")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.post("/api/v1/prewarm", {"source": uploads.slug, "paths": ["x.png"]}, format="json")
    assert error(response) == (404, "source_not_found")
    assert not BgRemoveJob.objects.filter(source=uploads).exists()


def test_a_marks_entitlement_is_its_own_sources(client, sources):
    assert error(client.get(composite(f"https://acme-off.{DOMAIN}/astronaut.jpg?bg-remove=true"))) == (
        403, "bg_remove_not_enabled")
    assert not BgRemoveJob.objects.exists()


def test_prewarm_passes_the_gate_with_the_urls_own_parameters(client, sources, account):
    _, secret = api_key_create(account=account, scopes=["write"], name="k")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    past = int(time.time()) - 10
    url = f"https://acme-photos.{DOMAIN}/astronaut.jpg?bg-remove=true&expires={past}"
    assert error(api.post("/api/v1/prewarm", {"urls": [url]}, format="json")) == (404, "expired")
    # The key stands for the signature: a source that requires one is pre-warmed by its account.
    url = f"https://acme-private.{DOMAIN}/astronaut.jpg?bg-remove=true&bg-remove-model=u2net"
    response = api.post("/api/v1/prewarm", {"urls": [url]}, format="json")
    assert response.status_code == 202, response.content
    # The model the URL names, not the source's default.
    assert BgRemoveJob.objects.get(source=sources[1]).model == "u2net"


def test_each_nested_rendering_url_counts_against_the_rate(client, sources, account, settings):
    account.render_rate_limit = "3/m"
    account.save()
    url = composite("astronaut.jpg?w=40")
    assert client.get(url).status_code == 200  # 2 counted: the request and its mark.
    assert error(client.get(url)) == (429, "request_rate_limited")  # 4 > 3, hit or not.


# --- The same checks on a replay before Django (rendering/hot.py) ------------------------------------

def wsgi_get(path: str, query: str):
    environ = RequestFactory()._base_environ(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET",
                                            HTTP_HOST="testserver")
    environ["wsgi.input"], environ["wsgi.errors"] = io.BytesIO(b""), sys.stderr
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])

    body = application(environ, start_response)
    b"".join(body)
    getattr(body, "close", lambda: None)()
    return started["status"]


@pytest.mark.django_db(transaction=True)
def test_a_kept_composite_is_not_replayed_past_its_marks_expires(sources, settings):
    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 8 * 1024 * 1024
    render_lookup_cache_clear()
    try:
        soon = int(time.time()) + 2
        # A rendering URL as the mark, and the file itself with an expires of its own.
        queries = [f"mark={quote(f'astronaut.jpg?w=40&expires={soon}', safe='')}&fm=png&w=100",
                   f"mark={quote(f'astronaut.jpg?expires={soon}', safe='')}&fm=png&w=100"]
        for query in queries:
            assert [wsgi_get("/render/acme-photos/chelsea.png", query) for _ in range(3)] == [200, 200, 200]
        time.sleep(max(0.0, soon + 1 - time.time()))
        for query in queries:
            assert wsgi_get("/render/acme-photos/chelsea.png", query) == 404
    finally:
        render_lookup_cache_clear()


def test_sources_kinds_are_what_the_doors_know(sources):
    # A guard for the gate's first step: a new kind must be placed on a door deliberately.
    assert set(Source.Kind.values) == {"web", "s3", "local", "uploads"}


def test_the_documented_way_to_sign_a_nested_mark(client, sources, account):
    """docs/rendering.md "Signing a mark", as written, with imgix's own SDK on both URLs."""
    SourceFactory(account=account, slug="brand", kind="local", local_path="photos", require_signature=True,
                  secure_tokens=["BRAND-TOKEN"])
    SourceFactory(account=account, slug="photos", kind="local", local_path="photos", require_signature=True,
                  secure_tokens=["PHOTOS-TOKEN"])
    logo = UrlBuilder(f"brand.{DOMAIN}", sign_key="BRAND-TOKEN").create_url("astronaut.jpg", {"w": 120})
    page = UrlBuilder(f"photos.{DOMAIN}", sign_key="PHOTOS-TOKEN")
    url = page.create_url("chelsea.png", {"w": 300, "mark": logo})
    response = client.get(url.split(DOMAIN, 1)[1], HTTP_HOST=f"photos.{DOMAIN}")
    assert response.status_code == 200, response.content[:300]
    drawn = Image.open(io.BytesIO(b"".join(response.streaming_content) if response.streaming else response.content))
    assert drawn.width == 300
    # The same with the mark signed by another token: its own source refuses it.
    forged = UrlBuilder(f"brand.{DOMAIN}", sign_key="PHOTOS-TOKEN").create_url("astronaut.jpg", {"w": 120})
    url = page.create_url("chelsea.png", {"w": 300, "mark": forged})
    assert error(client.get(url.split(DOMAIN, 1)[1], HTTP_HOST=f"photos.{DOMAIN}")) == (403, "bad_signature")


# --- On the real server ---------------------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_gate_holds_for_marks_on_the_real_server(sources, worker_env, settings):
    """Through granian, its rendering handler and the hot path: a signing source's image is not
    drawn through an open source's mark without its own signature, however often it is asked
    for, and is once the mark is signed."""
    port = free_port()
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL or "", "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "RENDER_DOMAIN": DOMAIN, "DJANGO_ALLOWED_HOSTS": f"127.0.0.1,localhost,.{DOMAIN}",
           "RENDER_LOOKUP_CACHE_SECONDS": "30"}
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc=proc)
        forged = [requests.get(base + composite(f"https://acme-private.{DOMAIN}/astronaut.jpg?w=40"), timeout=30)
                  for _ in range(3)]
        signed = [requests.get(base + composite(signed_mark("astronaut.jpg", {"w": 40})), timeout=30)
                  for _ in range(3)]
    finally:
        stop_process(proc)
    assert [(r.status_code, r.json()["error"]["code"]) for r in forged] == [(403, "bad_signature")] * 3
    assert [r.status_code for r in signed] == [200] * 3
    assert Image.open(io.BytesIO(signed[0].content)).size == (451, 300)


def test_remove_bgs_api_enters_by_the_same_gate(client, account, source, settings):
    """Its door reaches the account's uploads source only, with the key's account, the account's
    entitlement and then its request rate, before the body is read."""
    _, secret = api_key_create(account=account, scopes=["removebg"], name="rbg")
    account.bg_remove_enabled = False
    account.render_rate_limit = "1/h"
    account.save()
    refused = client.post("/v1.0/removebg", {"size": "preview"}, headers={"X-Api-Key": secret})
    assert refused.status_code == 403
    assert "not enabled for this account" in refused.json()["errors"][0]["title"]
    # Refused before the rate: the account's one request of the hour is still there.
    assert client.get("/render/acme-photos/chelsea.png?w=10").status_code == 200
    assert client.post("/v1.0/removebg", {"size": "preview"}, headers={"X-Api-Key": secret}).status_code == 403
    account.bg_remove_enabled = True
    account.save()
    over = client.post("/v1.0/removebg", {"size": "preview"}, headers={"X-Api-Key": secret})
    assert over.status_code == 429, over.content  # The same rate as the account's rendering requests.
    uploads = source_uploads_ensure(account=account)
    assert error(client.get(f"/render/{uploads.slug}/x.png")) == (404, "source_not_found")


@pytest.mark.django_db(transaction=True)
def test_a_composite_of_rendering_urls_counts_each_of_them_on_every_repeat(sources, settings, account):
    """Before Django (rendering/hot.py) as through it: a repeat counts what its first request did."""
    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 8 * 1024 * 1024
    account.render_rate_limit = "5/h"
    account.save()
    render_lookup_cache_clear()
    try:
        query = f"mark={quote('astronaut.jpg?w=40', safe='')}&fm=png&w=100"
        statuses = [wsgi_get("/render/acme-photos/chelsea.png", query) for _ in range(3)]
        assert statuses == [200, 200, 429]  # 2 + 2, then 6 > 5.
    finally:
        render_lookup_cache_clear()
