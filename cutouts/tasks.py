"""Celery tasks: load by id, call the service, declare retries."""

from celery import shared_task

from cutouts import services


# The wire name is the one from before the app split, so messages queued by an older release run.
@shared_task(name="rendering.tasks.bg_remove_job_run", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None)
def bg_remove_job_run(self, *, job_id: str) -> None:
    # One message, one job: the worker may run another queued job than the one named (fairness
    # across accounts, cutouts/services.py); retries and their bounds are the job's own.
    try:
        services.bg_remove_job_process(job_id=job_id)
    except (services.JobLeaseHeldError, services.TransientJobError) as exc:
        raise self.retry(countdown=max(exc.wait, 1), max_retries=None) from None
