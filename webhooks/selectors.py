"""Reads for webhooks, scoped by account."""

from accounts.models import Account
from core.errors import NotFoundError
from webhooks.models import Webhook, WebhookDelivery


def webhook_list(*, account: Account):
    return Webhook.objects.filter(account=account)


def webhook_get(*, account: Account, webhook_id: int) -> Webhook:
    # 404, not 403, so one account cannot probe another's webhooks.
    webhook = Webhook.objects.filter(account=account, pk=webhook_id).first()
    if webhook is None:
        raise NotFoundError("No such webhook.")
    return webhook


def webhook_delivery_list(*, webhook: Webhook):
    return WebhookDelivery.objects.filter(webhook=webhook)
