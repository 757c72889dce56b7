"""Keep-alive on the real web server: granian closes an idle connection after its header read
timeout, and every response tells the client so beforehand (`Keep-Alive: timeout=N`, N under it)."""

import socket
import subprocess
import time

import pytest

from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command

IDLE_MS = 3000  # GRANIAN_HTTP1_HEADER_READ_TIMEOUT of the server under test (30000 by default).


def _exchange(sock: socket.socket, path: str) -> dict:
    """Sends a GET on the open connection; the response's status and headers (body read whole)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection was closed instead of answering {path}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return {"status": int(lines[0].split()[1]), **headers}


@pytest.mark.django_db(transaction=True)
def test_idle_connections_are_closed_after_the_timeout_each_response_announces(source, worker_env, settings):
    env = {**worker_env, "GRANIAN_HTTP1_HEADER_READ_TIMEOUT": str(IDLE_MS), "RENDER_RATE_LIMIT": "1000000/m"}
    port = free_port()
    web = subprocess.Popen(web_command(port, workers=1), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc=web)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            render = f"/render/{source.slug}/astronaut.jpg?w=40&fm=webp"
            answers = [_exchange(sock, path) for path in ("/healthz", render, render)]  # The last one replayed.
            assert [a["status"] for a in answers] == [200, 200, 200]
            assert all(a["keep-alive"] == "timeout=2" for a in answers), answers
            # Idle for less than announced: still open and served.
            time.sleep(1.5)
            assert _exchange(sock, "/healthz")["status"] == 200
            # Idle past the server's timeout: closed by the server, which the client sees (EOF).
            started = time.monotonic()
            sock.settimeout(IDLE_MS / 1000 + 5)
            assert sock.recv(1) == b""
            closed_after = time.monotonic() - started
    finally:
        stop_process(web)
    assert 2.0 <= closed_after <= IDLE_MS / 1000 + 1, closed_after
