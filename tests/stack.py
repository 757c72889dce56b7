"""The production stack for load-and-fault tests: platform/Procfile's web, worker, webhooks and beat on
Postgres, Redis and S3 (moto), each service reached through a forwarder the test owns
(tests/faults.py), so an outage is made without touching the machine's shared services; and a
mixed client load recorded request by request."""

import io
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from django.conf import settings
from django.db import connection
from PIL import Image

from tests.conftest import S3_CREDENTIALS, free_port, stop_process, wait_for_port
from tests.faults import Forwarder
from tests.processes import pool_children, start_procfile_process


@dataclass
class Answer:
    kind: str
    started: float  # Seconds since the load began.
    seconds: float
    status: int
    code: str | None = None


@dataclass
class Stack:
    port: int
    env: dict
    postgres: Forwarder
    redis: Forwarder
    s3: Forwarder
    tmp: Path
    processes: dict = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, name: str, **extra) -> None:
        markers = {"web": "Started worker", "worker": " ready.", "webhooks": " ready.", "beat": "beat: Starting"}
        self.processes[name] = start_procfile_process(name, {**self.env, **extra}, self.tmp / f"{name}.log",
                                                      ready_marker=markers[name])
        if name == "web":
            wait_for_port(self.port, proc=self.processes[name].proc)

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        """The process itself, as the kernel's OOM killer would (its children are left to notice)."""
        os.kill(self.processes[name].proc.pid, sig)
        self.processes[name].proc.wait(timeout=10)

    def lease_and_sweep(self) -> float:
        return float(self.env["BG_REMOVE_JOB_LEASE"]) + float(self.env["BG_REMOVE_SWEEP_SECONDS"])

    def kill_pool_process(self) -> int:
        """One prefork pool process of the worker, SIGKILLed; its pid."""
        (child, *_) = pool_children(self.processes["worker"].proc.pid)
        os.kill(child, signal.SIGKILL)
        return child

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process.proc)
            for child in _orphans(process.proc.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for forwarder in (self.postgres, self.redis, self.s3):
            forwarder.close()


def _orphans(pid: int) -> list[int]:
    try:
        return pool_children(pid)
    except OSError:
        return []


def stack_start(*, tmp: Path, moto_url: str, bucket: str, origin_root: Path, **extra) -> Stack:
    db = connection.settings_dict
    redis_url = redis.connection.parse_url(settings.REDIS_URL)
    moto_host, _, moto_port = moto_url.removeprefix("http://").partition(":")
    postgres = Forwarder(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    cache = Forwarder(redis_url.get("host", "127.0.0.1"), int(redis_url.get("port", 6379)))
    s3 = Forwarder(moto_host, int(moto_port))
    database = redis_url.get("db", 0)
    port = free_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "tests-only-secret",
        "CUTOUT_ENV_FILE": os.devnull,
        "CUTOUT_VAR_DIR": str(tmp / "var"),
        "BG_REMOVE_MODEL_HOME": str(settings.BG_REMOVE_MODEL_HOME),
        "ORIGIN_LOCAL_ROOT": str(origin_root),
        "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{postgres.port}/{db['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{cache.port}/{database}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{cache.port}/{database}",
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3.port}",
        **S3_CREDENTIALS,
        "PORT": str(port),
        "WEB_WORKERS": "2",
        "WORKER_CONCURRENCY": "1",
        "RENDER_RATE_LIMIT": "100000/m",
        "LOG_FLUSH_SECONDS": "0",
        # Shorter than production's (60 s, 15 s), so a fault's jobs end within a test's minute.
        "BG_REMOVE_JOB_LEASE": "20",
        "BG_REMOVE_SWEEP_SECONDS": "5",
        **extra,
    }
    stack = Stack(port=port, env=env, postgres=postgres, redis=cache, s3=s3, tmp=tmp)
    try:
        for name in ("web", "worker", "webhooks", "beat"):
            stack.start(name)
    except BaseException:
        stack.stop()
        raise
    return stack


def distinct_photo(base: Image.Image, n: int) -> bytes:
    """A JPEG no other call made: a crop of `base` chosen by `n`."""
    rng = random.Random(n)
    x, y = rng.randrange(0, base.width // 3), rng.randrange(0, base.height // 3)
    crop = base.crop((x, y, x + base.width * 2 // 3, y + base.height * 2 // 3))
    out = io.BytesIO()
    crop.save(out, "JPEG", quality=80 + n % 15)
    return out.getvalue()


class Load:
    """Clients at a mixed rate (hits, uncached renders, new cutouts, purges, remove.bg calls),
    each answer recorded; every cutout asked for is followed until it is served. New photos are
    written to `photos` (the source's folder), crops of its astronaut.jpg."""

    def __init__(self, stack: Stack, *, source: str, api_key: str, removebg_key: str, hits: list[str],
                 photos: Path, rate: float = 15.0, clients: int = 6):
        self.stack = stack
        self.photos = photos
        self._base = Image.open(photos / "astronaut.jpg").convert("RGB")
        self.source, self.api_key, self.removebg_key = source, api_key, removebg_key
        self.hits = hits
        self.rate, self.clients = rate, clients
        self.answers: list[Answer] = []
        self.cutouts: dict[str, tuple[float, float | None]] = {}  # url → (asked, served or None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._n = 0
        self.began = None

    def _next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n

    def start(self) -> None:
        self.began = time.monotonic()
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        follower = threading.Thread(target=self._follow, daemon=True)
        follower.start()
        self._threads.append(follower)

    def photo(self) -> str:
        n = self._next()
        name = f"load-{n:05d}.jpg"
        (self.photos / name).write_bytes(distinct_photo(self._base, n))
        return name

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def follow_until(self, deadline: float) -> None:
        """Polls the cutouts not yet served until all are or `deadline` (monotonic) passes."""
        with requests.Session() as http:
            while time.monotonic() < deadline and self.pending():
                for url in self.pending():
                    self._poll(http, url)
                time.sleep(0.5)

    def pending(self) -> list[str]:
        with self._lock:
            return [url for url, (_, served) in self.cutouts.items() if served is None]
    def _client(self, i: int) -> None:
        rng = random.Random(i)
        interval = self.clients / self.rate
        with requests.Session() as http:
            while not self._stop.is_set():
                started = time.monotonic()
                roll = rng.random()
                if roll < 0.55:
                    self._get(http, "hit", rng.choice(self.hits))
                elif roll < 0.75:
                    self._get(http, "render", f"/render/{self.source}/astronaut.jpg?w={self._next() % 900 + 20}"
                                              f"&fm=webp&q={rng.randrange(40, 90)}")
                elif roll < 0.88:
                    self._cutout(http)
                elif roll < 0.94:
                    self._purge(http, rng)
                else:
                    self._removebg(http)
                self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _record(self, kind, started, response) -> None:
        code = None
        if response is not None and response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = response.json()
                # Ours ({"error": {"code"}}) or remove.bg's ({"errors": [{"code"}]}).
                code = body["error"]["code"] if "error" in body else body["errors"][0].get("code")
            except (ValueError, AttributeError, KeyError, IndexError, TypeError):
                pass
        status = response.status_code if response is not None else 0
        self.answers.append(Answer(kind, started - self.began, time.monotonic() - started, status, code))

    def _get(self, http, kind, path):
        started = time.monotonic()
        try:
            response = http.get(self.stack.url(path), timeout=30)
        except requests.RequestException:
            response = None
        self._record(kind, started, response)
        return response

    def _cutout(self, http):
        url = f"/render/{self.source}/{self.photo()}?bg-remove=true"
        asked = time.monotonic()
        response = self._get(http, "cutout", url)
        with self._lock:
            self.cutouts[url] = (asked, time.monotonic() if response is not None and response.status_code == 200
                                 else None)

    def _follow(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                for url in self.pending():
                    self._poll(http, url)
                self._stop.wait(0.5)

    def _poll(self, http, url) -> None:
        response = self._get(http, "cutout-poll", url)
        if response is not None and response.status_code == 200:
            with self._lock:
                self.cutouts[url] = (self.cutouts[url][0], time.monotonic())

    def cutout_seconds(self, since: float = 0.0) -> list[float]:
        """Seconds from asking to being served, of the cutouts asked `since` seconds into the load."""
        with self._lock:
            return [served - asked for asked, served in self.cutouts.values()
                    if served is not None and asked - self.began >= since]

    def _purge(self, http, rng):
        started = time.monotonic()
        # Another photo than the hits': a purge removes every render of its image, so purging the
        # hits' photo would make each hit a new render (and, with S3 down, a 503).
        path = f"/render/{self.source}/chelsea.png?w={rng.randrange(20, 920)}&fm=webp"
        try:
            response = http.post(self.stack.url("/api/v1/purge"), json={"url": self.stack.url(path)},
                                 headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30)
        except requests.RequestException:
            response = None
        self._record("purge", started, response)

    def _removebg(self, http):
        started = time.monotonic()
        photo = (self.photos / self.photo()).read_bytes()
        try:
            response = http.post(self.stack.url("/v1.0/removebg"), files={"image_file": photo},
                                 data={"size": "preview"}, headers={"X-Api-Key": self.removebg_key}, timeout=60)
        except requests.RequestException:
            response = None
        self._record("removebg", started, response)
