"""Test settings: the project's settings, pointed at this machine's services when they answer."""

import fcntl
import os
import socket
import tempfile
from pathlib import Path


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Two checkouts on one machine may test at the same time: unless DATABASE_URL and REDIS_URL are
# given, a run takes the lowest free slot, held by an exclusive lock on a file for as long as
# this process lives (so a killed run frees its slot), and slot N means the database
# `cutout_test_N` (pytest-django creates and drops `test_cutout_test_N`) and Redis database 15 - N.
# A developer's Redis databases are the low numbers; the suite flushes its own.
SLOTS = 8
SLOT_DIR = Path(tempfile.gettempdir()) / "cutout-test-slots"


def _claim_slot() -> int:
    SLOT_DIR.mkdir(exist_ok=True)
    for slot in range(SLOTS):
        handle = open(SLOT_DIR / f"{slot}.lock", "a")  # held (locked) until the process ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return slot
    raise RuntimeError(f"All {SLOTS} test slots in {SLOT_DIR} are taken; set DATABASE_URL and REDIS_URL.")


_held: list = []
# The suite runs on the real services when they are there (always under CI=true, where
# conftest makes a missing one fail); elsewhere it falls back to the embedded defaults and
# the service-marked tests skip with a message saying what to start.
need_database = "DATABASE_URL" not in os.environ and _reachable("127.0.0.1", 5432)
need_redis = "REDIS_URL" not in os.environ and _reachable("127.0.0.1", 6379)
if need_database or need_redis:
    TEST_SLOT = _claim_slot()
    if need_database:
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/cutout_test_{TEST_SLOT}"
    if need_redis:
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{15 - TEST_SLOT}"
# A developer's .env (`make run` writes DJANGO_DEBUG=true there) is not the tests': neither this
# process nor the processes it starts read it. Tests of the file name their own.
os.environ["CUTOUT_ENV_FILE"] = os.devnull
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret")
os.environ.setdefault("CUTOUT_VAR_DIR", tempfile.mkdtemp(prefix="cutout-test-var-"))
os.environ.setdefault("CELERY_QUEUE", f"cutout-test-{os.getpid()}")

from config.settings import *  # noqa: E402,F401,F403
from config.settings import ALLOWED_HOSTS, BASE_DIR  # noqa: E402

# Django's test client sends `Host: testserver`; the project's default does not allow it.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]

# Tests use the model provisioned by `make models` rather than fetching their own.
BG_REMOVE_MODEL_HOME = Path(os.environ.get("BG_REMOVE_MODEL_HOME", BASE_DIR / "var" / "models"))
# Both models the platform ships are provisioned for the tests (`make test`).
BG_REMOVE_MODELS = ["u2netp", "u2net"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
STATIC_ROOT = Path(os.environ["CUTOUT_VAR_DIR"]) / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Live-server threads must not keep connections open after a request (a browser's keep-alive
# socket would hold one past the end of the run and block dropping the test database).
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Tests change sources with queryset updates (no signals) and expect the next request to see it;
# the cache itself has its own test.
SOURCE_CACHE_SECONDS = 0
RENDER_LOOKUP_CACHE_SECONDS = 0
