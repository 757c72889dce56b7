"""The remove.bg API's own records: each account's credits, the calls it paid for, its feedback."""

import uuid

from django.db import models
from simple_history.models import HistoricalRecords

from accounts.history import history_user
from accounts.models import Account
from cutouts.models import BgRemoveJob


class CreditAccount(models.Model):
    """An account's remove.bg credits, as an operator grants them, and what its calls took
    (GET /v1.0/account answers the difference); no credits at all: the account is unmetered."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="removebg_credits")
    # NULL, the default (REMOVEBG_DEFAULT_CREDITS unset): unmetered, every call served; usage on
    # a self-hosted platform is the operator's to meter or not.
    credits = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, default=None,
        help_text="Empty: unmetered (every call served, nothing taken off). A number: metered, the credits "
                  "granted in all; what the calls charged is taken off (the balance /v1.0/account shows), and a "
                  "call the balance and the month's free calls cannot pay is 402.")
    free_calls = models.PositiveIntegerField(
        default=50, help_text="Free preview-size calls per calendar month (UTC), as remove.bg's.")
    # Changed only by one conditional UPDATE per call (removebg_api/credits.py), so concurrent
    # calls never take the balance below zero; never by a save, so never in the history.
    charged = models.DecimalField(max_digits=12, decimal_places=2, default=0, editable=False)
    free_month = models.DateField(null=True, blank=True, editable=False)
    free_used = models.PositiveIntegerField(default=0, editable=False)

    # Grants are audited as every manager change is (who, when, old → new); the calls' charges
    # are not changes of anyone's and stay out of it.
    history = HistoricalRecords(get_user=history_user, excluded_fields=["charged", "free_month", "free_used"])

    class Meta:
        verbose_name = "remove.bg credits"
        verbose_name_plural = "remove.bg credits"

    @property
    def metered(self) -> bool:
        return self.credits is not None

    def __str__(self):
        return f"{self.account} ({self.credits} credits)" if self.metered else f"{self.account} (unmetered)"


class Call(models.Model):
    """One answered POST /v1.0/removebg: what it charged (X-Credits-Charged) and what it made."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="removebg_calls")
    # The job may be purged later; the charge stays.
    job = models.ForeignKey(BgRemoveJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    path = models.CharField(max_length=80)
    size = models.CharField(max_length=8)
    credits = models.DecimalField(max_digits=8, decimal_places=2)
    free = models.BooleanField(default=False)
    # Charged to an unmetered account: `credits` is the price, reported, never taken off.
    metered = models.BooleanField(default=True)
    # 0 × 0 and the error's code for a call charged although it failed: the model ran for it.
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    # A call answered before its result (429): its charge held, because the model will run for it,
    # until the same call again is answered (which takes its place) or the job fails (given back).
    held = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "job"], condition=models.Q(held=True),
                                               name="one_held_call_per_account_and_job")]
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
    # SHA-256 of the image: the same image submitted twice is one submission.
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "digest"], name="one_improvement_per_image")]
        ordering = ["-created_at"]
        verbose_name = "remove.bg improvement submission"

    def __str__(self):
        return f"{self.account_id}:{self.filename or self.id}"
