"""Webhooks and their deliveries."""

import uuid

from django.db import models

from accounts.models import Account
from cutouts.models import BgRemoveJob


class Webhook(models.Model):
    """An account's HTTPS endpoint, told when its background-removal jobs finish or fail."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    # Signs each delivery (HMAC-SHA256); shown to the account when the webhook is created.
    secret = models.CharField(max_length=64)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "rendering_webhook"  # Kept from before the app split (the rows never moved).
        ordering = ["-created_at"]


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32)
    job = models.ForeignKey(BgRemoveJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "rendering_webhookdelivery"  # Kept from before the app split (the rows never moved).
        ordering = ["-created_at"]
