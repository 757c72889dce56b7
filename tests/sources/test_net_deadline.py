"""A peer that trickles (headers, body or TLS handshake) costs a fetch its total deadline, no more."""

import socket
import threading
import time

import pytest
from werkzeug.wrappers import Response

from sources.origins.base import OriginTimeoutError
from sources.origins.net import fetch_url, post_url
from sources.origins.s3 import S3Origin

MB = 1024 * 1024
DEADLINE = 2.0
# Scheduling on a loaded machine; a fetch that ignored the deadline would run TRICKLE_FOR seconds.
EPSILON = 0.75
TRICKLE_FOR = 10.0


class Trickler:
    """A real server on loopback that answers one byte every `interval` seconds, for up to
    TRICKLE_FOR seconds: `headers` (a status line, then a header without end), `body` (complete
    headers announcing 100 kB, then the body) or `tls` (a TLS record header, then its payload:
    the client's handshake waits for the rest)."""

    def __init__(self, mode: str, interval: float = 0.1):
        self.mode, self.interval = mode, interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(TRICKLE_FOR)
            try:
                if self.mode != "tls":
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        head += chunk
                    self.requests.append(head)
                prefix, trickle = {
                    "headers": (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n", b"X-Slow: " + b"a" * 100_000),
                    "body": (b'HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nETag: "v"\r\nContent-Length: 100000\r\n\r\n',
                             b"\xff" * 100_000),
                    "tls": (b"", b"\x16\x03\x03\x40\x00" + b"\x02" * 16384),
                }[self.mode]
                conn.sendall(prefix)
                end = time.monotonic() + TRICKLE_FOR
                for byte in trickle:
                    if self.stopped.is_set() or time.monotonic() > end:
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                return  # The client gave up: what the test wants.

    def close(self):
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def trickler(settings):
    settings.ORIGIN_ALLOW_LOOPBACK = True  # The trickling server listens on loopback.
    settings.ORIGIN_TOTAL_TIMEOUT = DEADLINE
    servers = []

    def start(mode):
        servers.append(Trickler(mode))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def timed(call):
    """(the exception `call` raised, wall seconds, this thread's CPU seconds)."""
    wall, cpu = time.monotonic(), time.thread_time()
    with pytest.raises(OriginTimeoutError) as err:
        call()
    return err.value, time.monotonic() - wall, time.thread_time() - cpu


def assert_bounded(error, wall, cpu):
    assert error.status_code == 504 and error.code == "origin_timeout"
    assert DEADLINE - 0.1 <= wall <= DEADLINE + EPSILON, wall
    assert cpu < 0.3, cpu  # Blocked in recv, not polling.


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_fetch_url_ends_at_the_total_deadline_against_a_trickling_server(trickler, httpserver, mode):
    server = trickler(mode)
    assert_bounded(*timed(lambda: fetch_url(f"http://127.0.0.1:{server.port}/a.jpg", max_bytes=MB)))
    assert server.connections == 1
    # The next fetches, and one after the deadline has long passed, are whole: nothing lingers.
    body = b"\xff\xd8\xff" + b"x" * 300_000
    httpserver.expect_request("/a.jpg").respond_with_data(body)
    assert fetch_url(httpserver.url_for("/a.jpg"), max_bytes=MB).data == body
    time.sleep(DEADLINE + 0.2)
    assert fetch_url(httpserver.url_for("/a.jpg"), max_bytes=MB).data == body


def test_a_redirect_chain_shares_one_deadline(trickler, httpserver):
    """The deadline is the whole fetch's, not each hop's: a slow first hop leaves less for the next."""
    server = trickler("headers")

    def slow_redirect(request):
        time.sleep(1.2)
        return Response("", status=302, headers={"Location": f"http://127.0.0.1:{server.port}/a.jpg"})

    httpserver.expect_request("/hop").respond_with_handler(slow_redirect)
    assert_bounded(*timed(lambda: fetch_url(httpserver.url_for("/hop"), max_bytes=MB)))


def test_post_url_ends_at_its_total_deadline(trickler):
    """A webhook receiver that trickles its status line and headers."""
    server = trickler("headers")
    assert_bounded(*timed(lambda: post_url(f"http://127.0.0.1:{server.port}/hook", body=b"{}",
                                           headers={"Content-Type": "application/json"},
                                           connect_timeout=1, total_timeout=DEADLINE)))


@pytest.mark.parametrize("mode", ["headers", "body", "tls"])
def test_s3_origin_ends_at_the_total_deadline_against_a_trickling_endpoint(trickler, mode):
    """A tenant's S3 endpoint is a URL of its choosing: botocore's receives are bounded the same
    way, and its retry does not start a second deadline."""
    server = trickler(mode)
    scheme = "https" if mode == "tls" else "http"  # A TLS handshake that trickles.
    origin = S3Origin(bucket="bucket", endpoint_url=f"{scheme}://127.0.0.1:{server.port}", region="us-east-1")
    assert_bounded(*timed(lambda: origin.fetch("a.jpg", max_bytes=MB)))
    assert server.connections == 1
