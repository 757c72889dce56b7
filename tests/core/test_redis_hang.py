"""A Redis that hangs (accepts, never answers) costs a request a bounded wait, never redis-py's
5 s timeouts retried: the rate limit fails open within 0.25 s, and cached renders keep answering."""

import socket
import subprocess
import threading
import time

import pytest
import requests
from django.core.cache import caches

from accounts.limits import render_admit
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command

pytestmark = [pytest.mark.redis]


@pytest.fixture
def silent_redis():
    """A peer that accepts connections and reads what it is sent, and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)  # Kept open, never answered.

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def hung_cache(settings, silent_redis):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": silent_redis}}
    yield caches["default"]


def test_the_rate_count_fails_open_within_a_quarter_second(hung_cache, account):
    for _ in range(3):  # A new connection, then the pooled ones: each wait is bounded.
        started = time.monotonic()
        render_admit(account=account)  # Fails open: no exception.
        assert time.monotonic() - started < 0.3  # 0.05 s to connect + 0.2 s to answer, at most.
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 (redis-py's own TimeoutError)
        hung_cache.incr_window("k", 1, 60)
    assert time.monotonic() - started < 0.3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cached_renders_answer_on_the_real_server_while_redis_hangs(source, worker_env, silent_redis):
    port = free_port()
    env = {**worker_env, "REDIS_URL": silent_redis, "CELERY_BROKER_URL": "memory://"}
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/render/{source.slug}/astronaut.jpg?w=40"
    try:
        wait_for_port(port, proc=proc)
        first = requests.get(url, timeout=10)
        times = []
        for _ in range(10):
            started = time.monotonic()
            response = requests.get(url, timeout=10)
            times.append(time.monotonic() - started)
            assert response.status_code == 200
    finally:
        stop_process(proc)
    assert first.status_code == 200
    times.sort()
    assert times[5] < 0.5 and times[-1] < 1.0, times
