"""POST /v1.0/improve's submissions: one per distinct image and account, within the account's ceiling."""

import hashlib
import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum

from accounts.models import Account
from core.storage import storage_put
from imaging.decode import DECODERS, image_sniff
from removebg_api.errors import ImprovementsFullError, RemoveBgError
from removebg_api.models import Improvement
from rendering.store import storage_errors

EXTENSIONS = {"jpeg": "jpg", "png": "png"}


def improvement_store(*, account: Account, data: bytes, tag: str = "", filename: str = "") -> Improvement:
    """Keeps a submitted image for the account's operators. The same image again is the same
    submission (nothing more is stored); a new one must fit REMOVEBG_IMPROVE_MAX_PER_ACCOUNT and
    REMOVEBG_IMPROVE_MAX_BYTES_PER_ACCOUNT (429 improve_storage_full: submissions expire after
    REMOVEBG_IMPROVE_RETENTION_DAYS)."""
    kind = image_sniff(data)
    if kind is None or kind not in DECODERS:
        raise RemoveBgError("invalid_file_type", "Invalid file type",
                            f"Expected jpg/png, received {kind or 'an unknown type'}")
    digest = hashlib.sha256(data).hexdigest()
    existing = Improvement.objects.filter(account=account, digest=digest).first()
    if existing is not None:
        return existing
    max_count, max_bytes = settings.REMOVEBG_IMPROVE_MAX_PER_ACCOUNT, settings.REMOVEBG_IMPROVE_MAX_BYTES_PER_ACCOUNT
    if max_count or max_bytes:
        totals = Improvement.objects.filter(account=account).aggregate(count=Count("id"), bytes=Sum("size"))
        if (max_count and totals["count"] + 1 > max_count) or (max_bytes and (totals["bytes"] or 0) + len(data) >
                                                                max_bytes):
            raise ImprovementsFullError()
    ident = uuid.uuid4()
    with storage_errors():
        name = storage_put(f"improve/{account.pk}/{ident}.{EXTENSIONS.get(kind, kind)}", data)
    try:
        with transaction.atomic():
            return Improvement.objects.create(id=ident, account=account, tag=tag[:200], filename=filename[:200],
                                              storage_name=name, size=len(data), digest=digest)
    except IntegrityError:
        # The same image submitted at the same moment by another call: that one is kept.
        with storage_errors():
            default_storage.delete(name)
        return Improvement.objects.get(account=account, digest=digest)


def improvement_delete(*, improvement: Improvement) -> None:
    """The submission and its stored image."""
    with storage_errors():
        default_storage.delete(improvement.storage_name)
    improvement.delete()
