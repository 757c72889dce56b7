"""One file cut out by the server, through remove.bg's API (the file uploaded) or a rendering URL
(the file already in a source): the answer streamed into a partial file renamed into place, 429
and 503 (and lost connections) tried again with a backoff that honours Retry-After."""

import email.utils
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3

from cutout_client.files import Item, partial_path
from cutout_client.signing import path_encode, query_encode, url_sign

RETRIED_STATUSES = {429, 503}
CHUNK_BYTES = 256 * 1024
ERROR_BODY_BYTES = 64 * 1024  # An error's body is read this far, no further.
MAX_RETRY_AFTER = 300.0  # A longer Retry-After is waited this long, then asked again.
MAX_OUTPUT_BYTES = 512 * 1024 * 1024  # The server's largest output is far below; a disk is not filled.
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}
USER_AGENT = "cutout-client/0.1"


class CallError(Exception):
    """A file the server (or the connection) refused: its HTTP status (None when no answer came),
    the server's error code and message."""

    def __init__(self, status: int | None, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retries = 0

    def __str__(self) -> str:
        return f"{self.status or '-'} {self.code}: {self.message}"


class Interrupted(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM) before the file was done."""


@dataclass
class Outcome:
    retries: int
    bytes: int


@dataclass
class Retry:
    """At most `retries` tries again after the first; each waits Retry-After when the answer has
    one (at most MAX_RETRY_AFTER), else `base` × 2ⁿ seconds up to `cap`, with jitter so that
    parallel calls do not come back at once."""

    retries: int
    stop: threading.Event
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return min(self.cap, self.base * 2 ** attempt) * random.uniform(0.5, 1.0)

    def sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted()


class Client:
    """What both ways share: the pool of connections, the retries, writing the answer."""

    def __init__(self, *, server: str, http: urllib3.PoolManager, retry: Retry, timeout: float, extension: str):
        self.server = server.rstrip("/")
        self.http = http
        self.retry = retry
        self.timeout = urllib3.Timeout(connect=10.0, read=timeout)
        self.media_type = MEDIA_TYPES[extension]

    def cut(self, item: Item, target: Path) -> Outcome:
        response, retries = self._answer(item)
        try:
            if response.status != 200:
                raise _error_of(response)
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if media_type != self.media_type:
                raise CallError(200, "unexpected_type", f"the server answered {media_type or 'no type'}, "
                                                        f"not {self.media_type}; nothing was written")
            written = _write(response, target)
        finally:
            response.release_conn()
        return Outcome(retries=retries, bytes=written)

    def _answer(self, item: Item):
        raise NotImplementedError

    def _send(self, method: str, url: str, **kwargs):
        """The answer to the request, once it is neither 429 nor 503 (those, and a lost
        connection, are tried again); with how many tries again it took."""
        attempt = 0
        while True:
            if self.retry.stop.is_set():
                raise Interrupted()
            retry_after = None
            try:
                response = self.http.request(method, url, preload_content=False, retries=False, redirect=False,
                                             timeout=self.timeout, **kwargs)
            except urllib3.exceptions.HTTPError as exc:
                error = CallError(None, "connection_failed", str(exc))
            else:
                if response.status not in RETRIED_STATUSES:
                    return response, attempt
                error, retry_after = _error_of(response), _retry_after(response)
                response.release_conn()
            if attempt >= self.retry.retries:
                error.message += f" (after {attempt} retries)" if attempt else ""
                error.retries = attempt
                raise error
            self.retry.sleep(self.retry.delay(attempt, retry_after))
            attempt += 1


class RemoveBgClient(Client):
    """POST /v1.0/removebg with `X-Api-Key` and the file as `image_file`, as remove.bg's clients do."""

    def __init__(self, *, key: str, fields: list[tuple[str, str]], max_bytes: int, **kwargs):
        super().__init__(**kwargs)
        self.key, self.fields, self.max_bytes = key, fields, max_bytes

    def _answer(self, item: Item):
        with item.path.open("rb") as file:
            data = file.read(self.max_bytes + 1)  # Bounded, whatever the file grew to since it was listed.
        if len(data) > self.max_bytes:
            raise CallError(None, "file_too_large", f"over --max-bytes ({self.max_bytes} bytes); not sent")
        media_type = "image/png" if item.path.suffix.lower() == ".png" else "image/jpeg"
        fields = [("image_file", (item.path.name, data, media_type)), *self.fields]
        return self._send("POST", f"{self.server}/v1.0/removebg", fields=fields,
                          headers={"X-Api-Key": self.key, "Accept": self.media_type, "User-Agent": USER_AGENT})


class RenderClient(Client):
    """GET /render/{source}/{path}?bg-remove=true…, signed when a token is given; a 202 is asked
    again after its Retry-After until the cutout is served or `job_timeout` passes."""

    def __init__(self, *, source: str, params: list[tuple[str, str]], token: str | None, job_timeout: float,
                 prefix: str = "", **kwargs):
        super().__init__(**kwargs)
        self.source, self.params, self.token, self.job_timeout = source, params, token, job_timeout
        self.prefix = prefix

    def url_for(self, rel: str) -> str:
        path = path_encode(f"/render/{self.source}/{self.prefix}/{rel}" if self.prefix
                           else f"/render/{self.source}/{rel}")
        query = query_encode([("bg-remove", "true"), *self.params])
        return self.server + (url_sign(path, query, self.token) if self.token else f"{path}?{query}")

    def _answer(self, item: Item):
        url, retries = self.url_for(item.rel), 0
        deadline = time.monotonic() + self.job_timeout
        while True:
            response, again = self._send("GET", url, headers={"User-Agent": USER_AGENT})
            retries += again
            if response.status != 202:
                return response, retries
            wait = _retry_after(response) or 1.0
            response.drain_conn()
            response.release_conn()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallError(202, "timeout", f"the cutout was still being made after {self.job_timeout:g} s "
                                                "(--job-timeout); the next run finds it")
            self.retry.sleep(min(wait, remaining, MAX_RETRY_AFTER))


def _write(response, target: Path) -> int:
    """The body into a partial file beside `target`, renamed over it once whole: an output that
    exists is complete, whenever the process was killed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    written = 0
    try:
        with partial.open("wb") as out:
            for chunk in response.stream(CHUNK_BYTES):
                written += len(chunk)
                if written > MAX_OUTPUT_BYTES:
                    raise CallError(200, "output_too_large", f"the answer is over {MAX_OUTPUT_BYTES} bytes; "
                                                             "nothing was written")
                out.write(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _error_of(response) -> CallError:
    """The server's error, in either of its shapes: ours `{"error": {"code", "message"}}`,
    remove.bg's `{"errors": [{"title", "code", "detail"}]}`."""
    body = response.read(ERROR_BODY_BYTES, decode_content=True) or b""
    code, message = "http_error", ""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = str(data["error"].get("code") or code)
        message = str(data["error"].get("message") or "")
    elif isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        first = data["errors"][0] if isinstance(data["errors"][0], dict) else {}
        code = str(first.get("code") or code)
        message = " — ".join(str(first[k]) for k in ("title", "detail") if first.get(k))
    else:
        message = body[:200].decode("utf-8", "replace").strip()
    return CallError(response.status, code, message or response.reason or "")
