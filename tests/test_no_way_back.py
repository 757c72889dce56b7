"""No way back in: outgoing fetches never reach this service, directly, by redirect or by alias."""

import ipaddress
import subprocess
import threading
import time
from datetime import timedelta
from urllib.parse import quote

import psutil
import pytest
import requests
from django.utils import timezone

from cutouts.models import BgRemoveJob
from rendering.models import Render
from sources.origins.base import OriginLoopError
from sources.origins.net import FETCH_MARKER_HEADER, _marker_for, fetch_marker, fetch_url, post_url
from sources.origins.s3 import S3Origin
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from webhooks import services as webhooks
from webhooks.models import WebhookDelivery
from webhooks.tasks import webhook_deliver

MB = 1024 * 1024


@pytest.fixture
def our_names(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "img.example.test", ".cutout.test", "203.0.113.9"]
    settings.RENDER_DOMAIN = "render.test"
    settings.ORIGIN_ALLOW_LOOPBACK = True  # The redirecting servers of these tests listen on loopback.


def assert_loop(err):
    assert err.value.status_code == 508 and err.value.code == "origin_loop", err.value


@pytest.mark.parametrize("url", [
    "http://img.example.test/render/acme/a.jpg", "https://IMG.example.test./a.jpg",  # Case, trailing dot.
    "http://cutout.test/api/v1/sources", "http://a.b.cutout.test/a.jpg",  # `.cutout.test` and below.
    "http://render.test/a.jpg", "http://acme.render.test/a.jpg",  # RENDER_DOMAIN and its sources.
])
def test_our_own_host_names_are_refused_before_resolving(our_names, url):
    """None of these names resolves: a refusal that waited for DNS would be origin_not_found."""
    with pytest.raises(OriginLoopError) as err:
        fetch_url(url, max_bytes=MB)
    assert_loop(err)


@pytest.mark.parametrize("target", [
    "http://img.example.test/render/acme/a.jpg?mark=x",
    "http://shop.cutout.test/api/v1/purge",
    "http://203.0.113.9/render/acme/a.jpg",
    "http://3405803785/render/acme/a.jpg",  # 203.0.113.9, spelled as one number: judged by address.
])
def test_a_redirect_to_our_own_host_or_address_is_refused(our_names, httpserver, target):
    httpserver.expect_request("/hop").respond_with_data("", status=302, headers={"Location": target})
    with pytest.raises(OriginLoopError) as err:
        fetch_url(httpserver.url_for("/hop"), max_bytes=MB)
    assert_loop(err)


def interface_address() -> str:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family.name in ("AF_INET", "AF_INET6"):
                ip = ipaddress.ip_address(address.address.split("%")[0])
                if not ip.is_loopback and not ip.is_link_local:
                    return f"[{ip}]" if ip.version == 6 else str(ip)
    pytest.fail("this machine has no address but loopback")


def test_a_redirect_to_one_of_this_machines_addresses_is_refused(our_names, httpserver):
    """An interface address of ours, whatever kind of network it is on (here one that the address
    rules refuse anyway): the loop is named, before the address's network is judged."""
    target = f"http://{interface_address()}:{httpserver.port}/render/acme/a.jpg"
    httpserver.expect_request("/hop").respond_with_data("", status=302, headers={"Location": target})
    with pytest.raises(OriginLoopError) as err:
        fetch_url(httpserver.url_for("/hop"), max_bytes=MB)
    assert_loop(err)


def test_webhooks_and_s3_endpoints_on_our_own_hosts_are_refused(our_names):
    with pytest.raises(OriginLoopError) as err:
        post_url("https://hooks.cutout.test/hook", body=b"{}", headers={}, connect_timeout=1, total_timeout=2)
    assert_loop(err)
    origin = S3Origin(bucket="bucket", endpoint_url="https://s3.cutout.test", region="us-east-1")
    with pytest.raises(OriginLoopError) as err:
        origin.fetch("a.jpg", max_bytes=MB)
    assert_loop(err)


def test_a_webhook_on_our_own_host_fails_at_once_without_retries(our_names, source):
    finished = timezone.now()
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp", status="done",
                                     started_at=finished - timedelta(seconds=1), finished_at=finished)
    webhook = webhooks.webhook_create(account=source.account, url="https://hooks.cutout.test/hook")
    webhooks.webhook_job_ended(job_id=job.id, event="job.done")
    delivery = WebhookDelivery.objects.get(webhook=webhook, job=job)
    webhook_deliver.apply(kwargs={"delivery_id": str(delivery.id)})
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "leads back to this service" in delivery.last_error


def test_every_outgoing_request_carries_our_marker(httpserver, settings):
    settings.ORIGIN_ALLOW_LOOPBACK = True
    httpserver.expect_request("/a.jpg").respond_with_data(b"\xff\xd8\xff")
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    httpserver.expect_request("/bucket/a.jpg").respond_with_data(b"\xff\xd8\xff", headers={"ETag": '"v"'})
    fetch_url(httpserver.url_for("/a.jpg"), max_bytes=MB)
    post_url(httpserver.url_for("/hook"), body=b"{}", headers={}, connect_timeout=1, total_timeout=2)
    S3Origin(bucket="bucket", endpoint_url=httpserver.url_for("/").rstrip("/"),
             region="us-east-1").fetch("a.jpg", max_bytes=MB)
    assert [request.path for request, _ in httpserver.log] == ["/a.jpg", "/hook", "/bucket/a.jpg"]
    assert {request.headers.get(FETCH_MARKER_HEADER) for request, _ in httpserver.log} == {fetch_marker()}
    # Derived from the secret key: another installation's marker is another value.
    assert fetch_marker() == _marker_for(settings.SECRET_KEY) != _marker_for("another installation's key")


@pytest.fixture
def granian(source, worker_env, settings):
    """A real web process (granian, 1 × 4 threads) serving `source`, allowed to fetch loopback as
    development is."""
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL or "", "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "ORIGIN_ALLOW_LOOPBACK": "true", "ORIGIN_TOTAL_TIMEOUT": "5"}
    port = free_port()
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_carrying_our_marker_is_refused_before_any_work(granian, source):
    url = f"http://127.0.0.1:{granian}/render/{source.slug}/astronaut.jpg?w=40"
    ours = {FETCH_MARKER_HEADER: fetch_marker()}
    refused = requests.get(url, headers=ours, timeout=30)
    assert refused.status_code == 508 and refused.headers["Cache-Control"] == "no-store"
    assert refused.json()["error"]["code"] == "request_loop"
    assert Render.objects.count() == 0  # Nothing rendered, nothing stored.
    # Another installation's fetch (one that uses ours as its origin) is served.
    theirs = requests.get(url, headers={FETCH_MARKER_HEADER: _marker_for("another installation")}, timeout=30)
    assert theirs.status_code == 200 and Render.objects.count() == 1
    # Refused before the cached hit too, and on every other door (the API).
    assert requests.get(url, headers=ours, timeout=30).status_code == 508
    assert requests.get(f"http://127.0.0.1:{granian}/api/v1/sources", headers=ours, timeout=30).status_code == 508


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_mark_that_redirects_back_to_our_render_url_ends_at_once(granian, source, httpserver):
    """The issue's loop: a mark on a foreign host redirects to our own render URL carrying the same
    mark. Loopback is allowed (development), so no name or address check stops the redirect:
    the marker does. The first request ends with an error, the foreign host sees one request and
    no more, and the server stays responsive."""
    mark = httpserver.url_for("/logo.png")
    render = f"http://127.0.0.1:{granian}/render/{source.slug}/astronaut.jpg?w=64&mark={quote(mark, safe='')}"
    httpserver.expect_request("/logo.png").respond_with_data("", status=302, headers={"Location": render})
    started = time.monotonic()
    first = requests.get(render, timeout=30)
    elapsed = time.monotonic() - started
    assert first.status_code == 508 and first.json()["error"]["code"] == "origin_loop", first.text
    assert elapsed < 3, elapsed  # Not the 5 s fetch deadline: nothing waited on itself.
    hits = len(httpserver.log)
    time.sleep(2)
    assert hits == 1 and len(httpserver.log) == hits  # No self-request sustains itself.

    timings = []

    def health():
        started = time.monotonic()
        timings.append((requests.get(f"http://127.0.0.1:{granian}/healthz", timeout=30).status_code,
                        time.monotonic() - started))

    checks = [threading.Thread(target=health) for _ in range(4)]
    for check in checks:
        check.start()
    for check in checks:
        check.join()
    assert all(status == 200 and seconds < 1 for status, seconds in timings), timings
