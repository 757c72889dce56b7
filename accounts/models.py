"""Accounts: the tenants that own sources."""

from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

from accounts.history import history_user

# A rate: a count per period, e.g. 600/m, 10/s, 5000/h, 100/5m (accounts/limits.py).
rate_validator = RegexValidator(r"^\d+/\d*[smhd]$", "A count per period, such as 600/m, 10/s or 5000/h.")


class Account(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    bg_remove_enabled = models.BooleanField(
        "background removal enabled",
        default=False,
        help_text="Turns background removal on for every source of the account that inherits.",
    )
    render_rate_limit = models.CharField(
        "request rate limit", max_length=16, blank=True, validators=[rate_validator],
        help_text="Rendering requests per period for the whole account, e.g. 600/m. Empty: platform default.",
    )
    bg_remove_rate_limit = models.CharField(
        "background-removal rate limit", max_length=16, blank=True, validators=[rate_validator],
        help_text="New background-removal jobs per period, e.g. 30/m. Empty: platform default.",
    )
    bg_remove_max_pending = models.PositiveIntegerField(
        "background-removal queue ceiling", null=True, blank=True,
        help_text="Unfinished background-removal jobs the account may have at once. Empty: platform default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Who changed what, when: entitlements are audited (old → new in the admin history).
    history = HistoricalRecords(get_user=history_user, excluded_fields=["created_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ApiKey(models.Model):
    """A management API key: shown once at creation, stored as a SHA-256 hash."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"
        PURGE = "purge"
        KEYS = "keys"
        # The remove.bg-compatible API (/v1.0/…, removebg_api/): `X-Api-Key` with this scope only.
        REMOVEBG = "removebg"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    # The key's public first part, for finding it and for showing it ("ck_ab12cd34…").
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(get_user=history_user, excluded_fields=["key_hash", "last_used_at"])

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name or 'key'} ({self.prefix}…)"
