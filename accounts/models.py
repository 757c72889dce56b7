"""Accounts: the tenants that own sources."""

from django.db import models
from simple_history.models import HistoricalRecords


class Account(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    bg_remove_enabled = models.BooleanField(
        "background removal enabled",
        default=False,
        help_text="Turns background removal on for every source of the account that inherits.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Who changed what, when: entitlements are audited (old → new in the admin history).
    history = HistoricalRecords(excluded_fields=["created_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
