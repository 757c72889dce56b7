"""Test settings: the project's settings, pointed at this machine's services when they answer."""

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


# The suite runs on the real services when they are there (always under CI=true, where
# conftest makes a missing one fail); elsewhere it falls back to the embedded defaults and
# the service-marked tests skip with a message saying what to start.
if "DATABASE_URL" not in os.environ and _reachable("127.0.0.1", 5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/test"
if "REDIS_URL" not in os.environ and _reachable("127.0.0.1", 6379):
    # Database 15: the suite flushes it, so it must not be one a developer uses.
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"
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
