"""How long, and how many, remove.bg uploads and /improve submissions are kept: expiry, and each account's ceiling."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from cutouts.models import BgRemoveJob
from removebg_api.errors import UploadsFullError
from removebg_api.improvements import improvement_delete
from removebg_api.models import Improvement
from rendering.store import render_purge
from sources.models import Source, Upload
from sources.selectors import upload_list_expired

logger = logging.getLogger(__name__)

# Uploads expired by one call at most, so no call pays for a long expiry.
ROOM_BATCH = 20


def uploads_room_make(*, source: Source, size: int) -> None:
    """Room for a new upload of `size` bytes within the account's REMOVEBG_UPLOADS_MAX_PER_ACCOUNT
    and REMOVEBG_UPLOADS_MAX_BYTES_PER_ACCOUNT: the least recently used uploads that no unfinished
    job needs are expired first (with their cutouts and results, as retention would); when that is
    not enough, 429 uploads_storage_full. Uploads are originals, not derived renders: they have
    their own ceiling, and the renders' eviction (rendering/store.py) never takes one."""
    max_count, max_bytes = settings.REMOVEBG_UPLOADS_MAX_PER_ACCOUNT, settings.REMOVEBG_UPLOADS_MAX_BYTES_PER_ACCOUNT
    if not max_count and not max_bytes:
        return
    uploads = Upload.objects.filter(source=source)
    totals = uploads.aggregate(count=Count("id"), bytes=Sum("size"))
    over_count = totals["count"] + 1 - max_count if max_count else 0
    over_bytes = (totals["bytes"] or 0) + size - max_bytes if max_bytes else 0
    if over_count <= 0 and over_bytes <= 0:
        return
    busy = BgRemoveJob.objects.filter(source=source, status__in=[BgRemoveJob.Status.QUEUED,
                                                                 BgRemoveJob.Status.RUNNING]).values("path")
    for path, stored in uploads.exclude(path__in=busy).order_by("last_used_at", "id").values_list(
            "path", "size")[:ROOM_BATCH]:
        if over_count <= 0 and over_bytes <= 0:
            break
        render_purge(source=source, path=path)
        over_count, over_bytes = over_count - 1, over_bytes - stored
    if over_count > 0 or over_bytes > 0:
        raise UploadsFullError()


def uploads_expire(*, now=None, batch: int = 500) -> int:
    """Deletes uploads unused for REMOVEBG_UPLOAD_RETENTION_DAYS, with everything made from them
    (jobs, cutouts, renders: rendering's purge of the image). The number of uploads deleted."""
    now = now or timezone.now()
    before = now - timedelta(days=settings.REMOVEBG_UPLOAD_RETENTION_DAYS)
    expired = list(upload_list_expired(before=before)[:batch])
    for upload in expired:
        render_purge(source=upload.source, path=upload.path)
    if expired:
        logger.info("removebg: %d uploads expired", len(expired))
    return len(expired)


def improvements_expire(*, now=None, batch: int = 500) -> int:
    """Deletes /improve submissions older than REMOVEBG_IMPROVE_RETENTION_DAYS, image and row, so
    an account's submissions do not pile up in storage without end."""
    now = now or timezone.now()
    before = now - timedelta(days=settings.REMOVEBG_IMPROVE_RETENTION_DAYS)
    expired = list(Improvement.objects.filter(created_at__lt=before).order_by("created_at")[:batch])
    for improvement in expired:
        improvement_delete(improvement=improvement)
    if expired:
        logger.info("removebg: %d improvement submissions expired", len(expired))
    return len(expired)
