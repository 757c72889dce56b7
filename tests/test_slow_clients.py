"""Slow peers against the real web server (granian as platform/Procfile starts it, 2 processes):
clients that send a request body a few bytes at a time and origins that trickle a byte a second
must not stop cached renders."""

import http.client
import json
import socket
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.factories import SourceFactory

BODY_TIMEOUT = 8  # WEB_BODY_TIMEOUT of the server under test: long enough to overlap the hits.
SLOW_BODIES = 20
TRICKLING_RENDERS = 20


class _Trickle(BaseHTTPRequestHandler):
    """An origin that declares 100 kB of PNG and sends one byte a second, until told to stop."""

    stop = threading.Event()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            self.wfile.write(b"\x89")
            self.wfile.flush()
            while not self.stop.wait(1):
                self.wfile.write(b"P")
                self.wfile.flush()
        except OSError:
            pass  # The client gave up.

    def log_message(self, *args):
        pass


def _slow_body(port: int, cookie: str, results: list, stop: threading.Event):
    """POST /admin/login/ with a CSRF cookie (all an anonymous client needs for Django to read the
    form), declaring 100 kB and sending a byte a second; records (status, code, seconds)."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        sock.sendall((f"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: csrftoken={cookie}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
                      f"csrfmiddlewaretoken={cookie}&username=a").encode())
        sock.settimeout(1)
        answer = b""
        while not stop.is_set() and time.monotonic() - started < 60:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(b"a")
                except OSError:
                    break
                continue
            if not data:
                break
            answer += data
            if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
                break
    except OSError:
        answer = b""
    finally:
        sock.close()
    seconds = time.monotonic() - started
    if not answer:
        results.append((0, None, seconds))
        return
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    results.append((status, code, seconds))


@pytest.fixture
def trickling_origin():
    _Trickle.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    _Trickle.stop.set()
    server.shutdown()
    server.server_close()


def _serve(worker_env, settings, workers=2, **extra):
    port = free_port()
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL or "", "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "RENDER_RATE_LIMIT": "1000000/m", "ORIGIN_ALLOW_LOOPBACK": "true", "WEB_BODY_TIMEOUT": str(BODY_TIMEOUT),
           **extra}
    proc = subprocess.Popen(web_command(port, workers=workers, threads=4), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, proc=proc)
    return port, proc


@pytest.fixture
def web_server(source, trickling_origin, worker_env, settings):
    SourceFactory(account=source.account, slug="trickle", kind="web", base_url=trickling_origin, local_path="")
    # Two processes of four threads, as platform/Procfile runs the web server.
    port, proc = _serve(worker_env, settings)
    try:
        yield port
    finally:
        stop_process(proc)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_cached_renders_answer_while_slow_bodies_and_trickling_origins_are_open(web_server):
    port = web_server
    hit = f"http://127.0.0.1:{port}/render/acme-photos/astronaut.jpg?w=64&fm=webp"
    for _ in range(4):  # Cached, and seen by both processes (each answers some of these).
        assert requests.get(hit, timeout=30).status_code == 200
    login = requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=30)
    cookie = login.cookies["csrftoken"]

    stop = threading.Event()
    bodies, renders = [], []

    def trickling_render(n):
        with requests.Session() as http:
            i = 0
            while not stop.is_set():
                i += 1
                started = time.monotonic()
                try:
                    response = http.get(f"http://127.0.0.1:{port}/render/trickle/slow.png?w=10&q={n}{i}",
                                        timeout=120)
                    renders.append((response.status_code, time.monotonic() - started))
                    if response.status_code == 503:
                        stop.wait(0.5)  # render_busy: every slot of that process is held; ask again.
                except requests.RequestException:
                    renders.append((0, time.monotonic() - started))

    attackers = [threading.Thread(target=_slow_body, args=(port, cookie, bodies, stop)) for _ in range(SLOW_BODIES)]
    attackers += [threading.Thread(target=trickling_render, args=(n,)) for n in range(TRICKLING_RENDERS)]
    opened = time.monotonic()
    hits, health = [], []
    try:
        for t in attackers:
            t.start()
        time.sleep(1.5)  # Every slow body has sent its headers; the trickling renders hold their slots.
        with requests.Session() as http:
            while time.monotonic() - opened < BODY_TIMEOUT - 1:
                for url, seen in ((hit, hits), (f"http://127.0.0.1:{port}/healthz", health)):
                    started = time.perf_counter()
                    try:
                        status = http.get(url, timeout=5).status_code
                    except requests.RequestException:
                        status = 0
                    seen.append((status, time.perf_counter() - started))
                time.sleep(0.05)
        during = len(bodies)  # Slow bodies answered while the hits ran: none yet.
        stop.wait(BODY_TIMEOUT + 3 - (time.monotonic() - opened))
    finally:
        stop.set()
        _Trickle.stop.set()  # The origin ends its responses; the renders waiting on it fail and return.
        for t in attackers:
            t.join(timeout=150)

    latencies = sorted(seconds for _, seconds in hits)
    print(f"\n{len(hits)} cached hits during the attack: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms; slow bodies: {sorted({(s, c) for s, c, _ in bodies})}, "
          f"answered after {min(t for _, _, t in bodies):.1f}–{max(t for _, _, t in bodies):.1f} s; "
          f"trickling renders: {sorted({status for status, _ in renders})}, "
          f"longest {max(seconds for _, seconds in renders):.1f} s")
    assert len(hits) >= 20 and all(status == 200 for status, _ in hits), hits
    assert latencies[-1] < 1, latencies[-5:]
    assert all(status == 200 and seconds < 1 for status, seconds in health), health
    assert during == 0, bodies
    # Each slow body was refused at WEB_BODY_TIMEOUT, by the server, without reaching Django.
    assert len(bodies) == SLOW_BODIES
    assert all(status == 408 and code == "request_timeout" for status, code, _ in bodies), bodies
    assert all(BODY_TIMEOUT - 0.5 < seconds < BODY_TIMEOUT + 3 for _, _, seconds in bodies), bodies
    # Trickling origins hold render slots, so the rest are refused at once (503 render_busy).
    assert 503 in {status for status, _ in renders}, renders


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_large_body_is_received_and_one_over_the_cap_is_refused_before_it_is_sent(web_server, settings):
    port = web_server
    login = requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=30)
    cookie = login.cookies["csrftoken"]
    # A 12 MB file (the largest origin an upload may be) in a form: received whole, and Django
    # parses it (a failed login answers the form again).
    upload = requests.post(f"http://127.0.0.1:{port}/admin/login/", cookies={"csrftoken": cookie},
                           data={"csrfmiddlewaretoken": cookie, "username": "a", "password": "b"},
                           files={"image_file": ("big.png", b"\0" * settings.ORIGIN_MAX_BYTES)}, timeout=60)
    assert upload.status_code == 200 and b"correct username" in upload.content

    def over_the_cap(path):
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", path)
        conn.putheader("Content-Length", str(settings.WEB_MAX_BODY_BYTES + 1))
        conn.putheader("Content-Type", "application/json")
        conn.endheaders()  # And no body at all: the answer comes from the Content-Length alone.
        response = conn.getresponse()
        assert time.monotonic() - started < 2
        return response.status, json.loads(response.read())

    # In each API's own error shape, though Django never sees the request: remove.bg's under /v1.0/.
    status, body = over_the_cap("/v1.0/removebg")
    assert status == 413 and body["errors"][0]["code"] == "request_too_large"
    assert body["errors"][0]["title"] == f"The request body is over {settings.WEB_MAX_BODY_BYTES} bytes."
    status, body = over_the_cap("/api/v1/purge")
    assert status == 413 and body["error"]["code"] == "request_too_large"


def _partial_post(port: int, declared: int, sent: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {declared}\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode() + b"a" * sent)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict, str]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)["error"]["code"]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_bodies_being_received_hold_at_most_the_buffer_budget(source, worker_env, settings):
    """Clients that each send most of a large body and stall cannot take a process's memory:
    past WEB_BODY_BUFFER_BYTES a request is refused (503, Retry-After); the budget comes back."""
    port, proc = _serve(worker_env, settings, workers=1, WEB_BODY_BUFFER_BYTES="1000000")
    try:
        first = _partial_post(port, 900_000, 700_000)
        time.sleep(1)  # The first 700 kB are held by the process.
        second = _partial_post(port, 900_000, 700_000)
        status, headers, code = _answer(second)
        assert (status, code) == (503, "server_busy") and headers["retry-after"] == "5"
        assert _answer(first)[:1] == (408,)  # At WEB_BODY_TIMEOUT: its bytes are let go.
        third = _partial_post(port, 900_000, 900_000)
        # Received whole and handed to Django, which refuses it for its missing CSRF cookie.
        assert third.recv(12) == b"HTTP/1.1 403"
    finally:
        stop_process(proc)


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(pid)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_clients_that_read_a_large_render_slowly_hold_neither_threads_nor_its_bytes(source, origin_root, worker_env,
                                                                                   settings):
    import numpy as np
    from PIL import Image

    from tests.processes import pool_children

    # Noise does not compress: a 16.7 MB PNG, stored as a local file (over RENDER's 256 KB in memory).
    noise = np.random.default_rng(1).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
    Image.fromarray(noise).save(origin_root / "photos" / "noise.png")
    port, proc = _serve(worker_env, settings, workers=1)  # Four threads, as the Procfile's.
    large = "/render/acme-photos/noise.png?fm=png&w=2400&fit=scale"
    readers = []
    try:
        made = requests.get(f"http://127.0.0.1:{port}{large}", timeout=120)
        assert made.status_code == 200 and len(made.content) > 10_000_000
        assert requests.get(f"http://127.0.0.1:{port}{large}", timeout=60).content == made.content
        (worker,) = pool_children(proc.pid)
        before = _rss_kib(worker)
        for _ in range(20):  # Each asks for the file and reads a few hundred bytes of it, no more.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {large} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert sock.recv(256).startswith(b"HTTP/1.1 200")
            readers.append(sock)
        time.sleep(2)
        grown = _rss_kib(worker) - before
        started = time.monotonic()
        other = requests.get(f"http://127.0.0.1:{port}/render/acme-photos/astronaut.jpg?w=31", timeout=10)
        seconds = time.monotonic() - started
        print(f"\n20 slow readers of a {len(made.content) / 1e6:.1f} MB render: web process RSS +{grown / 1024:.0f} MiB;"
              f" another render answered in {seconds * 1000:.0f} ms")
        assert other.status_code == 200 and seconds < 5
        # Sent from the file as they read it: not 20 copies of its bytes (335 MB) in memory.
        assert grown < 64 * 1024, grown
        # A reader that resumes gets every byte.
        sock = readers.pop()
        sock.settimeout(30)
        data = b""
        while len(data) < len(made.content) + 200:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        assert data.endswith(made.content)
    finally:
        for sock in readers:
            sock.close()
        stop_process(proc)
