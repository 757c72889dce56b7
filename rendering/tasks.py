"""Celery tasks: load by id, call the service, declare retries."""

from celery import shared_task

from . import jobs, usage, webhooks


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def bg_remove_job_run(self, *, job_id: str) -> None:
    # One message, one job: the worker may run another queued job than the one named (fairness
    # across accounts, rendering/jobs.py); retries and their bounds are the job's own.
    try:
        jobs.bg_remove_job_process(job_id=job_id)
    except (jobs.JobLeaseHeldError, jobs.TransientJobError) as exc:
        raise self.retry(countdown=max(exc.wait, 1), max_retries=None) from None


@shared_task
def usage_persist_run() -> None:
    # Not retried: the next beat tick moves whatever this run could not.
    usage.usage_persist()


@shared_task(bind=True, acks_late=True, max_retries=None)
def webhook_deliver(self, *, delivery_id: str) -> None:
    delivery = webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
    # Still pending: the attempt failed in a way another one may fix (WEBHOOK_MAX_ATTEMPTS bounds it).
    if delivery is not None and delivery.status == delivery.Status.PENDING:
        raise self.retry(countdown=webhooks.webhook_retry_countdown(attempts=delivery.attempts), max_retries=None)
