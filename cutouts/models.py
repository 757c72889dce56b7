"""Background-removal jobs: one row per image, model and refinement."""

import uuid

from django.db import models

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
    refinement = models.CharField(max_length=16, default="clean-edges")
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
        db_table = "rendering_bgremovejob"  # Kept from before the app split (the rows never moved).
        constraints = [
            # One job per image: concurrent first requests race on this, and exactly one wins.
            models.UniqueConstraint(
                fields=["source", "path", "model", "refinement"], name="one_bg_remove_job_per_image"
            ),
        ]
        indexes = [
            models.Index(fields=["source", "status", "created_at"]),
            # The fair pick reads each account's latest start (cutouts/services.py _fair_next).
            models.Index(fields=["started_at"], name="bg_remove_job_started_at"),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.source_id}:{self.path} ({self.model}, {self.status})"

    @property
    def error(self) -> dict | None:
        """What a failed job tells its users (status page, API, webhooks): None unless failed."""
        if self.status != self.Status.FAILED:
            return None
        return {"status": self.error_status, "code": self.error_code, "message": self.error_message}

    @property
    def duration_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
