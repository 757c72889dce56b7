"""Liveness, readiness and metrics endpoints for load balancers and Prometheus."""

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

from core.metrics import metrics_text

CHECK_TIMEOUT = 0.5


class NotReadyError(Exception):
    """A check's own reason, shown as it is in /readyz's answer: write none with a URL or secret."""
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def healthz(request):
    """The process is up and answering; nothing else is checked."""
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker():
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)


def _storage_probe():
    """The storage round trip to time. Building the S3 client (no network, but a second or so
    of CPU the first time in a new process) happens here, outside the check's timeout."""
    from django.core.files.storage import default_storage

    bucket = getattr(default_storage, "bucket", None)
    if bucket is not None:
        client = bucket.meta.client
        # S3: a real round trip (exists() may answer without asking when overwriting is on).
        return lambda: client.head_bucket(Bucket=bucket.name)
    return lambda: default_storage.exists("readyz-probe")


def _storage():
    _storage_probe()()


# Apps add their own (cutouts/apps.py: "models", "workers"); a check raises to say what is wrong,
# in its own words with NotReadyError, else by its exception's type name.
CHECKS = {"database": _database, "broker": _broker, "storage": _storage}


def _run(check):
    # The database check runs here: Django connections belong to their thread.
    if check is _database:
        check()
        return
    if check is _storage:
        check = _storage_probe()
    _pool.submit(check).result(timeout=CHECK_TIMEOUT)


def readyz(request):
    """Each dependency, checked with a short timeout; 503 if any fails. Names only, never URLs."""
    started = time.monotonic()
    results = {}
    for name, check in CHECKS.items():
        if name not in settings.READYZ_CHECKS:
            continue
        try:
            _run(check)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = "timeout"
        except NotReadyError as exc:
            results[name] = f"not ready: {exc}"
        except Exception as exc:  # Each backend raises its own; the type name is enough to act on.
            results[name] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in results.values())
    body = {"status": "ok" if ok else "unavailable", "checks": results,
            "seconds": round(time.monotonic() - started, 3)}
    return JsonResponse(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


def metrics(request):
    return HttpResponse(metrics_text(), content_type="text/plain; version=0.0.4; charset=utf-8")
