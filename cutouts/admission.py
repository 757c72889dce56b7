"""Admission of new background-removal work: the queue ceilings and the account's rate."""

import logging
import math
import statistics
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from accounts.limits import RateLimitedError, account_limits, rate_count, rate_limit
from accounts.models import Account
from cutouts.models import BgRemoveJob

logger = logging.getLogger(__name__)
UNFINISHED = [BgRemoveJob.Status.QUEUED, BgRemoveJob.Status.RUNNING]
# pg_advisory_xact_lock's key for admission: any constant no other code of the database uses.
ADMISSION_LOCK = 0x6375_7430  # "cut0"


def bg_remove_admission_lock() -> None:
    """Serialises admission until the caller's transaction ends, so "count, then insert" is one
    step: a ceiling of 3 admits 3 under any number of parallel first requests (per account and
    platform-wide alike). PostgreSQL: a transaction-level advisory lock, which costs no row and
    ends with the commit. SQLite: nothing to do, its transactions begin IMMEDIATE (settings), i.e.
    holding the database's one write lock, which serialises them already.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("bg_remove_admission_lock() needs a transaction around the count and the insert.")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK])


def bg_remove_admit(*, account: Account) -> None:
    """Before a new job: the queue ceilings, then the account's (lower) bg-remove limit.

    Call it under `bg_remove_admission_lock`, in the transaction that then inserts the job. The
    limit is only read here; `bg_remove_count` adds the job once it exists, so the many requests
    that lose the race for one image's job do not use up the account's limit.
    """
    pending = BgRemoveJob.objects.filter(status__in=UNFINISHED)
    total = pending.count()
    if total >= settings.BG_REMOVE_MAX_PENDING:
        raise RateLimitedError(
            "Background removal is saturated across the platform; retry later.",
            code="bg_remove_queue_full", retry_after=queue_wait_seconds(total),
        )
    mine = pending.filter(source__account=account).count()
    ceiling = account_limits(account).bg_remove_max_pending
    if mine >= ceiling:
        raise RateLimitedError(
            f"The account has {mine} background removals in progress, its ceiling; retry later.",
            code="bg_remove_account_queue_full", retry_after=queue_wait_seconds(mine),
        )
    rate_limit(group="background-removal rate", code="bg_remove_rate_limited", account=account, increment=False,
               rate=account_limits(account).bg_remove_rate)


def bg_remove_count(*, account: Account) -> None:
    rate_count(group="background-removal rate", account=account, rate=account_limits(account).bg_remove_rate)


def recent_job_seconds() -> float:
    """Median wall time of recent jobs (cached briefly; it only steers Retry-After)."""
    try:
        cached = cache.get("bg_remove_recent_job_seconds")
    except Exception:  # Only a hint for Retry-After: compute it without the cache.
        cached = None
    if cached is not None:
        return cached
    since = timezone.now() - timedelta(hours=1)
    durations = [
        (finished - started).total_seconds()
        for started, finished in BgRemoveJob.objects.filter(
            status=BgRemoveJob.Status.DONE, finished_at__gte=since, started_at__isnull=False
        ).order_by("-finished_at").values_list("started_at", "finished_at")[:50]
    ]
    value = statistics.median(durations) if durations else settings.BG_REMOVE_EXPECTED_JOB_SECONDS
    try:
        cache.set("bg_remove_recent_job_seconds", value, 30)
    except Exception:
        pass
    return value


def queue_wait_seconds(ahead: int) -> int:
    """Seconds until `ahead` queued jobs are done, given the workers' slots and recent job times."""
    seconds = (ahead + 1) * recent_job_seconds() / max(1, settings.BG_REMOVE_WORKER_SLOTS)
    return min(max(1, math.ceil(seconds)), 600)


def job_retry_after(job: BgRemoveJob) -> int:
    """For a 202: how long until this job is likely done, from the jobs queued before it."""
    if job.status == BgRemoveJob.Status.RUNNING:
        return queue_wait_seconds(0)
    ahead = BgRemoveJob.objects.filter(status__in=UNFINISHED, created_at__lt=job.created_at).count()
    return queue_wait_seconds(ahead)
