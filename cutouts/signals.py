"""What this app tells others: a job ended (webhooks subscribe)."""

from django.dispatch import Signal

# Sent after the commit that ends a job; arguments: job_id, event ("job.done" or "job.failed").
bg_remove_job_ended = Signal()
