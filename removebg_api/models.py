"""The remove.bg API's own records: each account's credits, the calls it paid for, its feedback."""

import uuid

from django.db import models

from accounts.models import Account
from cutouts.models import BgRemoveJob


class CreditAccount(models.Model):
    """An account's remove.bg credits, as an operator configures them (GET /v1.0/account)."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="removebg_credits")
    credits = models.DecimalField(
        max_digits=12, decimal_places=2, default=0,
        help_text="Credits granted in all; what the calls charged is taken off (the balance /v1.0/account shows).")
    free_calls = models.PositiveIntegerField(
        default=50, help_text="Free preview-size calls per calendar month (UTC), as remove.bg's.")

    class Meta:
        verbose_name = "remove.bg credits"
        verbose_name_plural = "remove.bg credits"

    def __str__(self):
        return f"{self.account} ({self.credits} credits)"


class Call(models.Model):
    """One answered POST /v1.0/removebg: what it charged (X-Credits-Charged) and what it made."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="removebg_calls")
    # The job may be purged later; the charge stays.
    job = models.ForeignKey(BgRemoveJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    path = models.CharField(max_length=80)
    size = models.CharField(max_length=8)
    credits = models.DecimalField(max_digits=8, decimal_places=2)
    free = models.BooleanField(default=False)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["account", "created_at"], name="removebg_call_account_time")]
        ordering = ["-created_at"]
        verbose_name = "remove.bg call"

    def __str__(self):
        return f"{self.account_id}:{self.path} ({self.credits})"


class Improvement(models.Model):
    """An image submitted to POST /v1.0/improve, kept for the account's operators to look at."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="removebg_improvements")
    tag = models.CharField(max_length=200, blank=True)
    filename = models.CharField(max_length=200, blank=True)
    storage_name = models.CharField(max_length=300)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "remove.bg improvement submission"

    def __str__(self):
        return f"{self.account_id}:{self.filename or self.id}"
