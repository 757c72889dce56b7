"""Celery tasks: load by id, call the service, declare retries."""

from celery import shared_task

from removebg_api.retention import improvements_expire, uploads_expire


@shared_task(name="removebg_api.tasks.removebg_uploads_expire_run")
def removebg_uploads_expire_run() -> None:
    # Not retried: the next beat tick deletes whatever this run did not.
    uploads_expire()
    improvements_expire()
