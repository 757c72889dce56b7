"""Whether a worker consumes the job queue: each worker reports in, /readyz reads the latest report."""

import logging
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from core.health import NotReadyError

logger = logging.getLogger(__name__)


def _key() -> str:
    return f"bg-remove-worker-seen:{settings.CELERY_TASK_DEFAULT_QUEUE}"


def _file() -> Path:
    # Without Redis (embedded: one machine, the filesystem broker) the cache is per process: a
    # file under the var folder that web and workers share says it instead.
    return Path(settings.VAR_DIR) / f"worker-seen-{settings.CELERY_TASK_DEFAULT_QUEUE}"


def bg_remove_worker_report() -> None:
    """This worker consumes the job queue now (Redis: a key that expires after the staleness
    bound; embedded: the file's modification time)."""
    if settings.REDIS_URL:
        cache.set(_key(), time.time(), timeout=settings.BG_REMOVE_WORKER_STALE_SECONDS)
    else:
        path = _file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def bg_remove_workers_check() -> None:
    """For /readyz: raises NotReadyError unless a worker reported within BG_REMOVE_WORKER_STALE_SECONDS."""
    bound = settings.BG_REMOVE_WORKER_STALE_SECONDS
    if settings.REDIS_URL:
        seen = cache.get(_key())
    else:
        try:
            seen = _file().stat().st_mtime
        except FileNotFoundError:
            seen = None
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    if seen is None or time.time() - seen > bound:
        raise NotReadyError(f"no worker has consumed the queue {queue!r} in the last {bound:g} s")


class WorkerReports:
    """A thread of the worker's main process reporting every third of the staleness bound while
    it consumes (started and stopped with the consumer, so a worker that lost its broker stops
    reporting). A report that fails (Redis away) is logged and tried again at the next tick."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bg-remove-worker-reports", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        while True:
            try:
                bg_remove_worker_report()
            except Exception as exc:  # The cache's client raises its own types; the next tick tries again.
                logger.warning("worker report not written: %s", exc)
            if self._stop.wait(settings.BG_REMOVE_WORKER_STALE_SECONDS / 3):
                return
