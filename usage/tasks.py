"""Celery tasks: load by id, call the service, declare retries."""

from celery import shared_task

from usage import services


# The wire name is the one from before the app split (settings route and schedule it by name).
@shared_task(name="rendering.tasks.usage_persist_run")
def usage_persist_run() -> None:
    # Not retried: the next beat tick moves whatever this run could not.
    services.usage_persist()
