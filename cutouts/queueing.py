"""Publishing jobs' messages, for the entry points (views, APIs, admin) that ask for jobs."""

import logging

from django.db import transaction

from core.errors import ServiceUnavailableError
from cutouts import services
from cutouts.models import BgRemoveJob
from cutouts.tasks import bg_remove_job_run

logger = logging.getLogger(__name__)


class QueueUnavailableError(ServiceUnavailableError):
    code = "queue_unavailable"
    default_message = "The job queue is unavailable; try again shortly."


def bg_remove_job_enqueue(job: BgRemoveJob) -> None:
    """Publishes the job's message once the row is committed (at once outside a transaction), so
    a worker never gets a message for a row it cannot see yet. A broker outage is the request's
    503; the row stays queued without a message (enqueued_at None), and the next request or the
    sweep (cutouts/tasks.py) sends it."""

    def publish():
        try:
            bg_remove_job_run.apply_async(kwargs={"job_id": str(job.id)}, retry=True)
        except Exception as exc:  # kombu/redis raise many types; all mean "not queued".
            logger.warning("could not enqueue bg-remove job %s: %s", job.id, exc)
            services.bg_remove_job_unqueued(job=job)
            raise QueueUnavailableError() from None

    transaction.on_commit(publish)


def bg_remove_job_request(*, source, path: str, model: str, refinement: str = "clean-edges") -> BgRemoveJob:
    """The image's job, created and queued by the first request only (see bg_remove_job_ensure)."""
    job, queue = services.bg_remove_job_ensure(source=source, path=path, model=model, refinement=refinement)
    if queue:
        bg_remove_job_enqueue(job)
    return job


def bg_remove_job_retry(*, job: BgRemoveJob) -> bool:
    """An account manager's retry of a failed job: queued again at once. False if not failed."""
    if not services.bg_remove_job_retry(job=job):
        return False
    bg_remove_job_enqueue(job)
    return True
