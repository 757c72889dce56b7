"""Background-removal jobs and the stored renders they and other requests produce."""

import uuid

from django.db import models
from django.utils import timezone

from accounts.models import Account
from sources.models import Source


class BgRemoveJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="bg_remove_jobs")
    path = models.CharField(max_length=1024)
    model = models.CharField(max_length=32)
    refinement = models.CharField(max_length=16, default="none")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)

    origin_version = models.CharField(max_length=200, blank=True)
    cutout_name = models.CharField(max_length=512, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)

    # Times, for users and for Retry-After estimates.
    created_at = models.DateTimeField(auto_now_add=True)
    # When the message was last handed to the broker; None while it is not known to be queued.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    fetch_seconds = models.FloatField(null=True, blank=True)
    inference_seconds = models.FloatField(null=True, blank=True)
    # A worker's claim on the job lasts until then; a vanished worker's job can be claimed again.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # host:pid of the worker process holding the claim.
    claimed_by = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Runs that ended with their worker gone (the process killed, out of memory, the machine lost):
    # at BG_REMOVE_MAX_ATTEMPTS the job fails instead of killing workers forever (a poison message).
    crashes = models.PositiveIntegerField(default=0)
    # Runs that ended in a transient error (origin 5xx, storage); BG_REMOVE_MAX_RETRIES bounds them.
    retries = models.PositiveIntegerField(default=0)
    # A queued job is not run before this (the backoff after a transient error).
    run_after = models.DateTimeField(null=True, blank=True)
    # How often the model ran for this job: the "one inference per image" invariant, measured.
    inferences = models.PositiveIntegerField(default=0)

    # On failure: the HTTP status a later request answers, a code and a message a user can read.
    error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # Something a user should know about a finished job (e.g. alpha matting fell back to the plain mask).
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            # One job per image: concurrent first requests race on this, and exactly one wins.
            models.UniqueConstraint(
                fields=["source", "path", "model", "refinement"], name="one_bg_remove_job_per_image"
            ),
        ]
        indexes = [
            models.Index(fields=["source", "status", "created_at"]),
            # The fair pick reads each account's latest start (rendering/jobs.py _fair_next).
            models.Index(fields=["started_at"], name="bg_remove_job_started_at"),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.source_id}:{self.path} ({self.model}, {self.status})"

    @property
    def duration_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Render(models.Model):
    """A finished image in object storage, found by the digest of what the URL means.

    Several renders of one image may share one object (identical bytes), and a render may be a
    job's cutout itself: an object is deleted only once nothing refers to it.
    """

    key = models.CharField(max_length=64, unique=True)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="renders")
    path = models.CharField(max_length=1024)
    # Indexed: "does another render still use this object?" is asked before deleting one.
    storage_name = models.CharField(max_length=512, db_index=True)
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    etag = models.CharField(max_length=70)
    created_at = models.DateTimeField(auto_now_add=True)
    # When a request last found it, to within RENDER_LAST_USED_SECONDS (not a write per hit):
    # the account's stored renders are evicted least recently used first.
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["source", "path"]), models.Index(fields=["source", "last_used_at"])]

    def __str__(self):
        return self.storage_name


class UsageDaily(models.Model):
    """Per source and day: what was served. Counted in the request path, persisted in batches."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    renders = models.PositiveBigIntegerField(default=0)
    bytes_served = models.PositiveBigIntegerField(default=0)
    cache_hits = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "day"], name="one_usage_row_per_source_day")]
        ordering = ["-day"]


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
        ordering = ["-created_at"]
