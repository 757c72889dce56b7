"""An RSGI front for a WSGI application: a request's body is received whole before a thread runs it.

Under a WSGI server the application is called as soon as a request's headers have arrived, and
reading `wsgi.input` then waits on the client inside the worker thread: a client that declares a
large Content-Length and sends a few bytes every few seconds holds that thread for as long as it
likes, and a handful of them hold every thread of a process (granian's WSGI reads the body on the
calling thread, without any timeout). Here the body is received by the event loop, where a slow
client costs a coroutine, not a thread:

- a request without a body (every render, every GET) goes to a thread at once, unless `fast`
  answers it in the loop first (a response kept in memory, config/rsgi.py);
- a declared Content-Length over `max_body_bytes` is refused at once (413), before a byte is read;
- a body must be complete within `body_timeout` seconds of the headers, or the request is answered
  408 and closed, and no thread ever sees it; a chunked body is counted as it arrives (413 past the cap);
- the bodies being received at once by a process hold at most `max_buffered_bytes`; past that a
  request is answered 503 with Retry-After, so many clients that each send most of a large body
  and then stall cannot take the process's memory.

The WSGI environ is the one granian's WSGI interface builds (granian has no raw path in RSGI: a
path whose percent-escapes are not UTF-8 reaches the application with U+FFFD in their place).
Responses are sent from the thread that ran the application, as granian's WSGI interface sends
them, so a thread's work ends with its response; the coroutines that waited are woken in batches
every few milliseconds while requests keep finishing, which keeps most of the loop's wake-ups off
each request's cost, and not at all while none finish (a long request costs no polling).
"""

import asyncio
import io
import json
import logging
import os
import queue
import stat
import sys
import threading

from granian.rsgi import ProtocolClosed, ProtocolError

logger = logging.getLogger(__name__)

_NO_BODY = b""
# How long a finished request's coroutine may wait to be woken (its response is already sent).
_REAP_SECONDS = 0.002
_STOP = object()
# A streamed response up to this size is read whole and sent at once: one call instead of a
# round trip through the event loop per chunk (Django's files stream in 8 KB blocks).
_WHOLE_BYTES = 512 * 1024


class FileWrapper:
    """`wsgi.file_wrapper` (PEP 3333): a file the application returns whole. Sent by granian from
    its path when it is a regular file on disk (BodyFront._respond), else read in blocks."""

    def __init__(self, filelike, block_size: int = 64 * 1024):
        self.filelike = filelike
        self.block_size = block_size

    def path(self) -> str | None:
        """The file's path when it names the very file open here (a regular file, not renamed
        away since), else None."""
        raw = getattr(self.filelike, "file", self.filelike)  # Django's File wraps the open file.
        name = getattr(raw, "name", None)
        try:
            if not isinstance(name, str) or raw.tell() != 0:
                return None
            opened, named = os.fstat(raw.fileno()), os.stat(name)
        except (AttributeError, OSError, ValueError):
            return None
        same = (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)
        return name if same and stat.S_ISREG(named.st_mode) else None

    def __iter__(self):
        while True:
            block = self.filelike.read(self.block_size)
            if not block:
                return
            yield block

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()  # Django's: the response's close(), so request_finished too.


_BASE_ENVIRON = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SCRIPT_NAME": "",
    "SERVER_SOFTWARE": "Granian",
    "wsgi.errors": sys.stderr,
    "wsgi.file_wrapper": FileWrapper,
    "wsgi.input_terminated": True,
    "wsgi.multiprocess": False,
    "wsgi.multithread": True,
    "wsgi.run_once": False,
    "wsgi.version": (1, 0),
}


# remove.bg's API answers its own error shape (removebg_api/views.py), its clients read no other:
# a refusal made here, before Django, is in that shape under its prefix too.
REMOVEBG_PREFIX = "/v1.0/"


def _error(status: int, code: str, message: str, extra=(), *, path: str = ""):
    if path.startswith(REMOVEBG_PREFIX):
        body = json.dumps({"errors": [{"title": message, "code": code}]}).encode()
    else:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [("content-type", "application/json"), ("cache-control", "no-store"), ("connection", "close"),
               *extra]
    return status, headers, body


class BodyFront:
    """`app` (a WSGI callable) served over RSGI by `threads` threads per process, with request
    bodies received in the event loop first (see the module's docstring)."""

    def __init__(self, app, *, threads: int, body_timeout: float, max_body_bytes: int, max_buffered_bytes: int,
                 fast=None, keep_alive_hint: int | None = None):
        self.app = app
        # fast(environ) -> (status, headers, body) | None: called in the event loop for each request
        # without a body, before a thread is asked; an answer is sent at once. It must never wait
        # (no socket, no database): the loop serves every connection of the process.
        self.fast = fast
        # `Keep-Alive: timeout=N` on every response the application makes: how long an idle
        # connection is kept, so a client pool that reads it closes first (docs/deploy.md).
        self._keep_alive = [("keep-alive", f"timeout={keep_alive_hint}")] if keep_alive_hint else []
        self.threads = threads
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self.buffered = 0  # Bytes of bodies being received now; the loop's own counter.
        self._jobs = queue.SimpleQueue()
        self._finished = []
        self._finished_lock = threading.Lock()
        self._idle = True  # No wake-up of the loop is due: the next finished request must ask for one.
        self._loop = None
        self._workers = []

    # --- granian's RSGI hooks ---------------------------------------------------------------

    def __rsgi_init__(self, loop):
        self._loop = loop
        for number in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"wsgi-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def __rsgi_del__(self, loop):
        for _ in self._workers:
            self._jobs.put(_STOP)

    async def __rsgi__(self, scope, protocol):
        if scope.proto != "http":
            return  # No websockets here (granian runs with --no-ws).
        headers = scope.headers
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            body = _NO_BODY
        else:
            body = await self._receive(protocol, length, scope.path)
            if isinstance(body, tuple):
                protocol.response_bytes(*body)
                return
        environ = self._environ(scope, headers, body)
        if body is _NO_BODY and self.fast is not None:
            try:
                answer = self.fast(environ)
            except Exception:
                logger.exception("the event loop's answer failed; a thread answers")
                answer = None
            if answer is not None:
                status, headers, content = answer
                protocol.response_bytes(status, headers + self._keep_alive, content)
                return
        done = self._loop.create_future()
        self._jobs.put((environ, protocol, done))
        await done

    # --- the body, in the event loop ---------------------------------------------------------

    async def _receive(self, protocol, length, path: str = ""):
        """The whole body, or (status, headers, body) of the answer that refuses it (in the shape
        of the API `path` is under)."""
        if length is not None:
            try:
                declared = int(length)
                if declared < 0:
                    raise ValueError
            except ValueError:
                return _error(400, "bad_request", "Content-Length is not a number of bytes.", path=path)
            if declared > self.max_body_bytes:
                return _error(413, "request_too_large",
                              f"The request body is over {self.max_body_bytes} bytes.", path=path)
            if declared == 0:
                return _NO_BODY
        chunks, received = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                async for chunk in protocol:
                    received += len(chunk)
                    self.buffered += len(chunk)
                    chunks.append(chunk)
                    if received > self.max_body_bytes:
                        return _error(413, "request_too_large",
                                      f"The request body is over {self.max_body_bytes} bytes.", path=path)
                    if self.buffered > self.max_buffered_bytes:
                        logger.warning("request bodies being received hold over %d bytes", self.max_buffered_bytes)
                        return _error(503, "server_busy", "Too many request bodies are being received; try again.",
                                      [("retry-after", "5")], path=path)
        except TimeoutError:
            return _error(408, "request_timeout",
                          f"The request body did not arrive within {self.body_timeout:g} seconds.", path=path)
        except (ProtocolClosed, ProtocolError):
            received_all = False
        else:
            received_all = length is None or received == declared
        finally:
            self.buffered -= received
        if not received_all:
            # The client went away mid-body: what came is not the request it meant.
            return _error(400, "bad_request", "The request body ended before its Content-Length.", path=path)
        return b"".join(chunks)

    # --- the application, on a thread ----------------------------------------------------------

    def _environ(self, scope, headers, body: bytes) -> dict:
        environ = _BASE_ENVIRON.copy()
        server_host, _, server_port = scope.server.rpartition(":")
        environ["SERVER_PROTOCOL"] = "HTTP/" + scope.http_version
        environ["SERVER_NAME"] = server_host.strip("[]")
        environ["SERVER_PORT"] = server_port
        environ["REMOTE_ADDR"] = scope.client.rpartition(":")[0].strip("[]")
        environ["REQUEST_METHOD"] = scope.method
        # WSGI's str is the path's bytes as Latin-1 (PEP 3333), as granian's WSGI interface gives it.
        environ["PATH_INFO"] = scope.path.encode("utf-8").decode("latin-1")
        environ["QUERY_STRING"] = scope.query_string
        environ["wsgi.url_scheme"] = scope.scheme
        environ["wsgi.input"] = io.BytesIO(body)
        for name, value in headers.items():
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            elif name == "content-length":
                environ["CONTENT_LENGTH"] = value
            elif "_" in name:
                # `X_Forwarded_Proto` would pose as the `X-Forwarded-Proto` a proxy sets (both are
                # HTTP_X_FORWARDED_PROTO): dropped, as Django's runserver and gunicorn drop it.
                continue
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
                if key in environ:
                    # Repeated headers, joined as granian's WSGI interface joins them.
                    environ[key] += (";" if key == "HTTP_COOKIE" else ",") + value
                else:
                    environ[key] = value
        if body and "CONTENT_LENGTH" not in environ:
            environ["CONTENT_LENGTH"] = str(len(body))  # A chunked body, now whole: its length is known.
        if "HTTP_HOST" not in environ:
            environ["HTTP_HOST"] = scope.authority or ""
        return environ

    def _work(self):
        jobs, finished, lock = self._jobs, self._finished, self._finished_lock
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            environ, protocol, done = job
            try:
                self._respond(environ, protocol)
            except BaseException:
                logger.exception("the WSGI application failed")
                protocol.response_empty(500, [])  # Ignored when a response was already sent.
            with lock:
                finished.append(done)
                wake, self._idle = self._idle, False
            if wake:
                self._loop.call_soon_threadsafe(self._reap)

    def _respond(self, environ, protocol):
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [int(status[:3]), headers + self._keep_alive]  # A new list: a replay may reuse its own.

        result = self.app(environ, start_response)
        if isinstance(result, list):
            status, headers = started
            protocol.response_bytes(status, headers, b"".join(result))
            return
        if isinstance(result, FileWrapper):
            path = result.path()
            if path is not None:
                # granian sends the file itself, reading it as the client takes it: a client that
                # reads slowly holds neither a thread nor the file's bytes in memory (a streamed
                # body is taken from the application as fast as it comes, with no backpressure).
                status, headers = started
                try:
                    protocol.response_file(status, headers, path)
                finally:
                    result.close()
                return
        try:
            chunks = iter(result)
            head, size = [], 0
            for chunk in chunks:
                head.append(chunk)
                size += len(chunk)
                if size > _WHOLE_BYTES:
                    break
            else:
                status, headers = started
                protocol.response_bytes(status, headers, b"".join(head))
                return
            # A large streamed response (a file): sent chunk by chunk from this thread, as
            # granian's WSGI interface sends it.
            status, headers = started
            transport = protocol.response_stream(status, headers)
            self._send(transport, b"".join(head))
            for chunk in chunks:
                self._send(transport, chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # Django's request_finished, on the thread whose connections it closes.

    def _send(self, transport, chunk: bytes):
        if chunk:
            asyncio.run_coroutine_threadsafe(_send(transport, chunk), self._loop).result()

    def _reap(self):
        """Wakes the coroutines whose requests a thread has answered since the last call; again
        in _REAP_SECONDS while requests keep finishing, else at the next one that finishes."""
        with self._finished_lock:
            batch = self._finished[:]
            self._finished.clear()
            self._idle = not batch
        for done in batch:
            if not done.done():
                done.set_result(None)
        if batch:
            self._loop.call_later(_REAP_SECONDS, self._reap)


async def _send(transport, chunk: bytes):
    await transport.send_bytes(chunk)

