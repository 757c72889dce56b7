"""The jobs' events, turned into deliveries: the one way background removal reaches webhooks."""

import logging

from django.db import transaction
from django.dispatch import receiver

from cutouts.signals import bg_remove_job_ended
from webhooks import services
from webhooks.tasks import webhook_deliver

logger = logging.getLogger(__name__)


@receiver(bg_remove_job_ended, dispatch_uid="webhooks_job_ended")
def job_ended(sender, *, job_id, event: str, **kwargs) -> None:
    for delivery_id in services.webhook_job_ended(job_id=job_id, event=event):
        transaction.on_commit(lambda delivery_id=delivery_id: _enqueue(delivery_id), robust=True)


def _enqueue(delivery_id) -> None:
    try:
        webhook_deliver.apply_async(kwargs={"delivery_id": str(delivery_id)}, retry=True)
    except Exception as exc:  # kombu/redis raise many types; all mean "not queued".
        logger.warning("could not enqueue webhook delivery %s: %s", delivery_id, exc)
        services.webhook_delivery_unqueued(delivery_id=delivery_id)
