"""Celery tasks: load by id, call the service, declare retries."""

from celery import shared_task

from webhooks import services


# The wire name is the one from before the app split, so deliveries queued by an older release run.
@shared_task(name="rendering.tasks.webhook_deliver", bind=True, acks_late=True, max_retries=None)
def webhook_deliver(self, *, delivery_id: str) -> None:
    delivery = services.webhook_delivery_attempt(delivery_id=delivery_id)
    # Still pending: the attempt failed in a way another one may fix (WEBHOOK_MAX_ATTEMPTS bounds it).
    if delivery is not None and delivery.status == delivery.Status.PENDING:
        raise self.retry(countdown=services.webhook_retry_countdown(attempts=delivery.attempts), max_retries=None)
