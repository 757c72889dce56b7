"""Uncached renders wait a bounded time for a render slot, first come first served, with a bounded
number waiting; in-process for the mechanism, and on a real granian server for the burst."""

import io
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.db import transaction
from PIL import Image

from rendering import budget
from rendering.budget import RenderBusyError, render_slot
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.factories import SourceFactory


@pytest.fixture
def one_slot(settings):
    settings.RENDER_MAX_CONCURRENT = 1
    settings.RENDER_SLOT_MAX_WAITERS = 3
    settings.RENDER_SLOT_WAIT_SECONDS = 5
    yield settings
    assert budget._slots_taken == 0 and not budget._waiters, "a slot or a waiter was left behind"


def _waiting(count: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while len(budget._waiters) < count:
        assert time.monotonic() < deadline, f"{len(budget._waiters)} waiting, not {count}"
        time.sleep(0.005)


def _render(results: list, name: str, hold: float = 0.0):
    started = time.monotonic()
    try:
        with render_slot():
            results.append((name, "slot", time.monotonic() - started))
            time.sleep(hold)
    except RenderBusyError as exc:
        results.append((name, exc.code, time.monotonic() - started))


def _render_elsewhere(results: list, name: str):
    """A render from another thread (this one holds the slot), waited for."""
    thread = threading.Thread(target=_render, args=(results, name))
    thread.start()
    thread.join()


def test_a_render_waits_for_a_slot_and_waiters_are_served_in_arrival_order(one_slot):
    results = []
    threads = []
    with render_slot():
        for number in range(3):
            thread = threading.Thread(target=_render, args=(results, f"r{number}", 0.05))
            thread.start()
            threads.append(thread)
            _waiting(number + 1)  # Each arrives after the one before is queued.
        time.sleep(0.1)
        assert results == []  # All three are waiting, none refused.
    for thread in threads:
        thread.join()
    assert [name for name, outcome, _ in results] == ["r0", "r1", "r2"]
    assert all(outcome == "slot" for _, outcome, _ in results)


def test_a_newcomer_does_not_jump_the_queue_when_a_slot_is_given_back(one_slot):
    # The slot given back goes to the waiter, even though the newcomer asks in between.
    results = []
    with render_slot():
        waiter = threading.Thread(target=_render, args=(results, "waiter", 0.2))
        waiter.start()
        _waiting(1)
    newcomer = threading.Thread(target=_render, args=(results, "newcomer"))
    newcomer.start()
    waiter.join()
    newcomer.join()
    assert [name for name, _, _ in results] == ["waiter", "newcomer"]


def test_past_the_wait_the_render_is_busy_and_its_place_is_given_up(one_slot):
    one_slot.RENDER_SLOT_WAIT_SECONDS = 0.3
    results = []
    with render_slot():
        _render_elsewhere(results, "late")
        assert not budget._waiters
    (name, outcome, seconds), = results
    assert outcome == "render_busy" and 0.3 <= seconds < 1.0


def test_past_the_waiter_cap_a_render_is_busy_at_once(one_slot):
    one_slot.RENDER_SLOT_MAX_WAITERS = 2
    results = []
    with render_slot():
        waiters = [threading.Thread(target=_render, args=(results, f"w{n}")) for n in range(2)]
        for thread in waiters:
            thread.start()
        _waiting(2)
        _render_elsewhere(results, "third")
        assert results == [("third", "render_busy", pytest.approx(0, abs=0.05))]
    for thread in waiters:
        thread.join()
    assert sorted(outcome for _, outcome, _ in results) == ["render_busy", "slot", "slot"]


def test_no_wait_when_the_wait_is_zero(one_slot):
    one_slot.RENDER_SLOT_WAIT_SECONDS = 0
    results = []
    with render_slot():
        _render_elsewhere(results, "now")
    assert results == [("now", "render_busy", pytest.approx(0, abs=0.05))]


@pytest.mark.django_db
def test_inside_a_transaction_a_render_never_waits(one_slot):
    # Its locks would be held while it waited.
    results = []
    holder = threading.Event()
    release = threading.Event()

    def hold():
        with render_slot():
            holder.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    holder.wait(5)
    try:
        with transaction.atomic():
            _render(results, "in a transaction")
    finally:
        release.set()
        thread.join()
    assert results == [("in a transaction", "render_busy", pytest.approx(0, abs=0.05))]


def test_a_slot_is_not_taken_twice_by_one_thread(one_slot):
    # It could wait for itself: refused loudly, and the outer slot is still given back.
    with render_slot():
        with pytest.raises(RuntimeError, match="not re-entrant"):
            with render_slot():
                pass
    with render_slot():
        pass


# --- On a real server -----------------------------------------------------------------------------


class _SlowOrigin(BaseHTTPRequestHandler):
    """A PNG origin that answers after `delay` seconds, and while `gate` is shut, only once it opens."""

    gate = threading.Event()
    delay = 0.0
    in_flight = 0
    lock = threading.Lock()
    body = b""

    def do_GET(self):
        with self.lock:
            type(self).in_flight += 1
        try:
            self.gate.wait(30)
            time.sleep(self.delay)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        finally:
            with self.lock:
                type(self).in_flight -= 1

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_origin():
    image = io.BytesIO()
    Image.new("RGB", (300, 200), (30, 160, 90)).save(image, "PNG")
    _SlowOrigin.body = image.getvalue()
    _SlowOrigin.gate.set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowOrigin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _SlowOrigin, f"http://127.0.0.1:{server.server_address[1]}/"
    _SlowOrigin.gate.set()
    server.shutdown()
    server.server_close()


def _get(url: str, out: list):
    started = time.monotonic()
    response = requests.get(url, timeout=60)
    code = response.json()["error"]["code"] if response.status_code != 200 else None
    out.append((response.status_code, code, response.headers.get("Retry-After"), time.monotonic() - started))


def _all(urls: list[str]) -> list:
    out = []
    threads = [threading.Thread(target=_get, args=(url, out)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_burst_waits_for_slots_past_the_waiters_it_is_busy_at_once_and_hits_go_on(
        source, slow_origin, worker_env, settings):
    """One granian process of 8 threads: 2 render slots and so 2 waiters (config/settings.py)."""
    origin, base_url = slow_origin
    SourceFactory(account=source.account, slug="slow", kind="web", base_url=base_url, local_path="")
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "RENDER_RATE_LIMIT": "1000000/m", "ORIGIN_ALLOW_LOOPBACK": "true", "RENDER_SLOT_WAIT_SECONDS": "3"}
    port = free_port()
    web = subprocess.Popen(web_command(port, workers=1, threads=8), cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    render = f"http://127.0.0.1:{port}/render/slow/photo.png?fm=webp&w="
    hits, stop = [], threading.Event()

    def hit_client():
        with requests.Session() as http:
            while not stop.is_set():
                started = time.monotonic()
                status = http.get(f"{render}32", timeout=30).status_code
                hits.append((status, time.monotonic() - started))
                time.sleep(0.02)

    try:
        wait_for_port(port, proc=web)
        assert requests.get(f"{render}32", timeout=30).status_code == 200

        # A burst of twice the slots, each render holding its slot 0.5 s: the two beyond the slots
        # wait for them and are served (before, they were 503 at once).
        origin.delay = 0.5
        burst = _all([f"{render}{w}" for w in range(100, 104)])
        assert [status for status, *_ in burst] == [200] * 4, burst
        assert max(seconds for *_, seconds in burst) >= 0.9, "none waited: the burst was not beyond the slots"

        # Slots held (the origin stalls), two waiting: more renders are refused at once, with
        # Retry-After, while cached hits are served from the threads left.
        origin.delay = 0.0
        origin.gate.clear()
        watcher = threading.Thread(target=hit_client)
        watcher.start()
        held = []
        holders = [threading.Thread(target=_get, args=(f"{render}{w}", held)) for w in (200, 201)]
        for thread in holders:
            thread.start()
        deadline = time.monotonic() + 10
        while origin.in_flight < 2:
            assert time.monotonic() < deadline, "the renders never reached the origin"
            time.sleep(0.01)
        waiters = [threading.Thread(target=_get, args=(f"{render}{w}", held)) for w in (202, 203)]
        for thread in waiters:
            thread.start()
        time.sleep(0.5)
        refused = [_all([f"{render}{300 + n}"])[0] for n in range(3)]
        time.sleep(0.3)
        origin.gate.set()
        for thread in holders + waiters:
            thread.join()
        stop.set()
        watcher.join()
    finally:
        origin.gate.set()
        stop.set()
        stop_process(web)
    assert all(status == 503 and code == "render_busy" and retry == "2" and seconds < 0.5
               for status, code, retry, seconds in refused), refused
    assert [status for status, *_ in held] == [200] * 4, held
    assert origin.in_flight == 0
    assert len(hits) >= 10 and all(status == 200 for status, _ in hits), hits
    slowest = max(seconds for _, seconds in hits)
    print(f"\nburst: {[round(s, 2) for *_, s in burst]} s; refused in {[round(s, 3) for *_, s in refused]} s; "
          f"{len(hits)} hits meanwhile, slowest {slowest * 1000:.0f} ms")
    assert slowest < 0.5, hits
