"""Shared fixtures: real services (or a clear skip), photographs, origins, a real worker."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import AccountFactory, SourceFactory

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() == "true"

HOW_TO_START = {
    "postgres": "start PostgreSQL on 127.0.0.1:5432 or set DATABASE_URL",
    "redis": "start Redis on 127.0.0.1:6379 or set REDIS_URL",
}


def require(service: str, available: bool) -> None:
    """Skips a test whose service is missing, with what to start; under CI=true, fails it."""
    if available:
        return
    message = f"{service} is not available: {HOW_TO_START.get(service, service)}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: service tests may not skip)")
    pytest.skip(message)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("postgres"):
            item.fixturenames.append("_needs_postgres")
        if item.get_closest_marker("redis"):
            item.fixturenames.append("_needs_redis")


@pytest.fixture
def _needs_postgres():
    require("postgres", connection.vendor == "postgresql")


@pytest.fixture
def _needs_redis():
    require("redis", bool(settings.REDIS_URL))


@pytest.fixture(scope="session", autouse=True)
def _clean_redis():
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    yield


@pytest.fixture
def photo_jpg() -> bytes:
    return (FIXTURES / "astronaut.jpg").read_bytes()


@pytest.fixture
def photo_png() -> bytes:
    return (FIXTURES / "chelsea.png").read_bytes()


@pytest.fixture(autouse=True)
def media_storage(tmp_path, settings):
    """Each test renders into its own folder of local object storage (and node cache)."""
    media = tmp_path / "media"
    settings.RENDER_NODE_CACHE_DIR = tmp_path / "node-cache"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media), "allow_overwrite": True},
        },
    }
    return media


@pytest.fixture
def origin_root(tmp_path, settings):
    """ORIGIN_LOCAL_ROOT for the test, with a `photos` folder holding the test photographs."""
    root = tmp_path / "origins"
    photos = root / "photos"
    photos.mkdir(parents=True)
    shutil.copy(FIXTURES / "astronaut.jpg", photos / "astronaut.jpg")
    shutil.copy(FIXTURES / "chelsea.png", photos / "chelsea.png")
    settings.ORIGIN_LOCAL_ROOT = root
    return root


@pytest.fixture
def account(db):
    return AccountFactory(slug="acme", name="Acme", bg_remove_enabled=True)


@pytest.fixture
def source(account, origin_root):
    return SourceFactory(account=account, slug="acme-photos", kind="local", local_path="photos")


def web_command(port: int, *, workers: int = 1, threads: int = 4) -> list[str]:
    """The web server as platform/Procfile runs it (granian, config/rsgi.py's front with `threads`
    threads per process), on the test's own port."""
    return ["env", f"WEB_THREADS={threads}", sys.executable, "-m", "granian", "config.rsgi:application",
            "--interface", "rsgi", "--no-ws", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def stop_process(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def moto_server():
    """An S3-compatible server over HTTP (moto[server]) for the whole run."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def s3_bucket(moto_server, request):
    """A fresh bucket on the moto server, and a boto3 client for it."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"test-{re.sub(r'[^a-z0-9-]', '-', request.node.name.lower())[:40]}-{os.getpid()}"
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture
def s3_storage(s3_bucket, moto_server, settings):
    """Render storage on the S3 server through django-storages (the production backend)."""
    _, bucket = s3_bucket
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "endpoint_url": moto_server, "region_name": "us-east-1",
                        "access_key": "testing", "secret_key": "testing", "file_overwrite": True,
                        "default_acl": None, "querystring_auth": False},
        },
    }
    return s3_bucket


class WorkerProcess:
    def __init__(self, proc, log_path):
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(env_overrides: dict, log_path: Path, *, ready_timeout: float = 90) -> WorkerProcess:
    """A real `celery worker` process; returns once it reports ready."""
    env = {**os.environ, **env_overrides}
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "--concurrency=1",
         "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    worker = WorkerProcess(proc, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.log()}")
        if " ready." in worker.log():
            return worker
        time.sleep(0.2)
    stop_process(proc)
    raise TimeoutError(f"worker not ready in {ready_timeout}s:\n{worker.log()}")


@pytest.fixture
def worker_env(settings, tmp_path):
    """What a worker process needs to see this test's database, broker, storage and origins."""
    db = connection.settings_dict
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "tests-only-secret",
        "CUTOUT_ENV_FILE": os.devnull,  # Not a developer's .env (tests/settings.py).
        "CUTOUT_VAR_DIR": str(tmp_path / "worker-var"),
        "BG_REMOVE_MODEL_HOME": str(settings.BG_REMOVE_MODEL_HOME),
        "ORIGIN_LOCAL_ROOT": str(settings.ORIGIN_LOCAL_ROOT),
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL or "",
    }
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    storage = settings.STORAGES["default"]
    if storage["BACKEND"] == "storages.backends.s3.S3Storage":
        opts = storage["OPTIONS"]
        env.update(AWS_STORAGE_BUCKET_NAME=opts["bucket_name"], AWS_S3_ENDPOINT_URL=opts["endpoint_url"],
                   **S3_CREDENTIALS)
    else:
        env["CUTOUT_MEDIA_ROOT"] = storage["OPTIONS"]["location"]
    return env
