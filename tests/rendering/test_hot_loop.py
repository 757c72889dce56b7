"""rendering/hot.py's answers from core/front.py's event loop (hot_fast): on the embedded defaults
a repeated hit is answered without a thread, so it is answered while every thread is busy, and it
is still counted; with Redis (a socket to wait on) a thread answers it."""

import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from accounts.limits import rate_status
from accounts.models import Account
from config.wsgi import application
from core import generation
from rendering import hot
from rendering.store import render_lookup_cache_clear
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.factories import SourceFactory
from tests.rendering.test_hot import call
from tests.test_slow_clients import trickling_origin  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

HIT = "/render/acme-photos/astronaut.jpg?w=64&fm=webp"


def _serve(worker_env, log: Path, **extra):
    """One process with one thread, so one slow request holds every thread it has."""
    import subprocess

    port = free_port()
    env = {**worker_env, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "ORIGIN_ALLOW_LOOPBACK": "true",
           "RENDER_LOOKUP_CACHE_SECONDS": "60", "LOG_FLUSH_SECONDS": "0", **extra}
    with log.open("wb") as out:
        proc = subprocess.Popen(web_command(port, workers=1, threads=1), cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, proc=proc)
    return port, proc


def _hold_the_thread(port: int, held: list):
    """A render whose origin trickles a byte a second: it holds the process's only thread."""
    try:
        held.append(requests.get(f"http://127.0.0.1:{port}/render/trickle/slow.png?w=10", timeout=60).status_code)
    except requests.RequestException:
        held.append(0)


@pytest.mark.postgres
def test_a_kept_hit_is_answered_while_every_thread_is_busy_and_is_counted(source, trickling_origin,  # noqa: F811
                                                                           worker_env, tmp_path):
    SourceFactory(account=source.account, slug="trickle", kind="web", base_url=trickling_origin, local_path="")
    # The embedded defaults: no Redis, so the rate is counted in the process and the loop answers.
    port, proc = _serve(worker_env, tmp_path / "web.log", REDIS_URL="", RENDER_RATE_LIMIT="8/d")
    url = f"http://127.0.0.1:{port}{HIT}"
    try:
        first = requests.get(url, timeout=30)  # Rendered by a thread, and kept (count 1).
        assert first.status_code == 200
        held = []
        holder = threading.Thread(target=_hold_the_thread, args=(port, held))
        holder.start()
        time.sleep(1)  # The trickling render has the thread (count 2).
        assert holder.is_alive() and not held
        started = time.monotonic()
        again = [requests.get(url, timeout=5) for _ in range(3)]  # Counts 3, 4, 5: from the loop.
        seconds = time.monotonic() - started
        assert [r.status_code for r in again] == [200] * 3 and seconds < 2, seconds
        assert all(r.content == first.content and r.headers["ETag"] == first.headers["ETag"] for r in again)
        # The same render with its query in another order is not kept: it needs the thread,
        # which the trickling render holds.
        with pytest.raises(requests.Timeout):
            requests.get(url.replace("w=64&fm=webp", "fm=webp&w=64"), timeout=1.5)  # Counted when run.
        from tests.test_slow_clients import _Trickle

        _Trickle.stop.set()  # The origin ends; the held render fails and frees the thread.
        holder.join(timeout=60)
        # The loop's answers were counted: of 8 a day, 5 or 6 are used (the request that timed out
        # is run once the thread is free), so at most 3 more are served; uncounted, 5 would be.
        statuses = [requests.get(url, timeout=10).status_code for _ in range(4)]
        assert statuses[-1] == 429 and statuses.count(200) in (2, 3), statuses
    finally:
        stop_process(proc)
    lines = [line for line in (tmp_path / "web.log").read_text().splitlines() if "cutout.requests" in line]
    assert sum(f"GET {HIT.split('?')[0]} 200" in line for line in lines) >= 6, lines  # Logged, each one.


@pytest.mark.postgres
@pytest.mark.redis
def test_with_redis_a_thread_answers_the_kept_hit(source, trickling_origin, worker_env, tmp_path):  # noqa: F811
    SourceFactory(account=source.account, slug="trickle", kind="web", base_url=trickling_origin, local_path="")
    port, proc = _serve(worker_env, tmp_path / "web.log", REDIS_URL=settings.REDIS_URL)
    url = f"http://127.0.0.1:{port}{HIT}"
    try:
        assert requests.get(url, timeout=30).status_code == 200
        held = []
        holder = threading.Thread(target=_hold_the_thread, args=(port, held))
        holder.start()
        time.sleep(1)
        # The rate count waits on Redis, which the loop never does: the hit waits for the thread.
        with pytest.raises(requests.Timeout):
            requests.get(url, timeout=1.5)
        from tests.test_slow_clients import _Trickle

        _Trickle.stop.set()
        holder.join(timeout=60)
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        stop_process(proc)


@pytest.fixture
def embedded(settings):
    """This process on the embedded defaults: the rate counted in-process, the generation in a file."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.REDIS_URL = None
    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 8 * 1024 * 1024
    render_lookup_cache_clear()
    yield
    render_lookup_cache_clear()


def _environ(query="w=30"):
    from django.test import RequestFactory

    return RequestFactory()._base_environ(PATH_INFO="/render/acme-photos/astronaut.jpg", QUERY_STRING=query,
                                          REQUEST_METHOD="GET", HTTP_HOST="testserver")


def _count(account) -> int:
    usage = rate_status(group="request rate", account=account, rate=settings.RENDER_RATE_LIMIT)
    return usage.count


def test_the_loop_answers_what_django_answered(source, embedded):
    first = call()
    status, headers, body = hot.hot_fast(_environ())
    assert (status, headers, body) == first


def test_a_moved_generation_hands_the_request_to_a_thread_counted_once(source, embedded, monkeypatch):
    account = Account.objects.get(pk=source.account_id)
    call()
    before = _count(account)
    real_admit = hot.render_admit

    def admit_then_purge_elsewhere(**kwargs):
        usage = real_admit(**kwargs)
        generation.generation_bump()  # A purge answered between the loop's read and its count.
        return usage

    monkeypatch.setattr(hot, "render_admit", admit_then_purge_elsewhere)
    environ = _environ()
    assert hot.hot_fast(environ) is None  # The kept response may be stale: not sent.
    assert _count(account) == before + 1
    monkeypatch.setattr(hot, "render_admit", real_admit)
    # A thread runs it (rendering/wsgi.py): Django answers from the database without counting again.
    import io
    import sys

    environ["wsgi.input"], environ["wsgi.errors"] = io.BytesIO(b""), sys.stderr
    started = {}
    response = application(environ, lambda status, headers, exc_info=None: started.update(status=status))
    b"".join(response)
    response.close()
    assert started["status"].startswith("200")
    assert _count(account) == before + 1


def test_with_redis_the_loop_does_not_answer(source, settings):
    if not settings.REDIS_URL:
        pytest.skip("Redis is not configured")  # Never under CI (tests/conftest.py requires it).
    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    render_lookup_cache_clear()
    call()
    assert hot.hot_fast(_environ()) is None
    assert call()[0] == 200
