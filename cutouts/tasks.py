"""Celery tasks: load by id, call the service, declare retries."""

import logging

from celery import current_app, shared_task
from django.conf import settings
from kombu.exceptions import ChannelError

from cutouts import services

logger = logging.getLogger(__name__)


# The wire name is the one from before the app split, so messages queued by an older release run.
@shared_task(name="rendering.tasks.bg_remove_job_run", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None)
def bg_remove_job_run(self, *, job_id: str, release: dict | None = None) -> None:
    # One message, one job: the worker may run another queued job than the one named (fairness
    # across accounts, cutouts/services.py); retries and their bounds are the job's own.
    try:
        services.bg_remove_job_process(job_id=job_id, release=release)
    except (services.JobLeaseHeldError, services.TransientJobError) as exc:
        raise self.retry(countdown=max(exc.wait, 1), max_retries=None) from None
    except services.JobInterruptedError as exc:
        # The database is away: this message keeps the job (and the claim to put back) and comes
        # again after 1, 2, 4 … 30 s, however long the outage; nothing is counted against the job.
        raise self.retry(kwargs={"job_id": job_id, "release": exc.release},
                         countdown=min(2 ** self.request.retries, 30), max_retries=None) from None


# By beat every BG_REMOVE_SWEEP_SECONDS, on the usage queue (the `webhooks` process), so a backlog
# of cutouts never delays the sweep that repairs it.
@shared_task(name="cutouts.tasks.bg_remove_jobs_sweep_run", ignore_result=True)
def bg_remove_jobs_sweep_run() -> None:
    reclaimed = services.bg_remove_jobs_reclaim()
    ids = services.bg_remove_jobs_unsent(waiting=_waiting_messages())
    for n, job_id in enumerate(ids):
        try:
            bg_remove_job_run.apply_async(kwargs={"job_id": str(job_id)}, retry=True)
        except Exception as exc:  # kombu/redis raise many types; all mean "not queued".
            logger.warning("sweep: could not publish bg-remove messages: %s", exc)
            services.bg_remove_jobs_unqueued(ids=ids[n:])
            raise
    if reclaimed or ids:
        logger.warning("sweep: %d abandoned bg-remove job(s) put back, %d message(s) sent again", reclaimed, len(ids))


def _waiting_messages() -> int:
    """Messages in the job queue not yet taken by a worker (Redis: the list's length; the
    filesystem broker: its files)."""
    with current_app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE,
                                                      passive=True).message_count
        except ChannelError:
            return 0  # Redis keeps no empty list: no queue is an empty queue.
