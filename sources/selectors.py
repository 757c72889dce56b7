"""Reads for sources."""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from core.errors import NotFoundError
from core.generation import generation_bump
from core.local_cache import MISSING, ExpiringCache
from core.model_files import model_provisioned
from sources.models import Source, Upload

logger = logging.getLogger(__name__)

# slug → source (or None). Every rendering request looks its source up; keeping it a
# moment saves a query per request. A save or delete of a source or an account clears it in this
# process at once, and in the others before their next request (the cache generation, see
# source_cache_clear); SOURCE_CACHE_SECONDS bounds it besides.
_cache = ExpiringCache(max_entries=10_000)
# The same, as last read, for RENDER_STALE_IF_ERROR_SECONDS: while the database is down, hits
# this machine kept are still served (rendering/node_cache.py), through the gate, with the source
# as it was, when nothing changed since (the cache generation ends these entries as it does _cache's).
_last_read = ExpiringCache(max_entries=10_000)


def source_get(*, slug: str) -> Source | None:
    ttl = settings.SOURCE_CACHE_SECONDS
    source = _cache.get(slug) if ttl > 0 else MISSING
    if source is not MISSING:
        return source
    try:
        # [:1], not first(): no ORDER BY to build or run.
        found = list(Source.objects.select_related("account").filter(slug=slug)[:1])
    except (OperationalError, InterfaceError):
        source = _last_read.get(slug)
        if source is MISSING:
            raise
        return source
    source = found[0] if found else None
    _cache.set(slug, source, ttl)
    if source is not None:  # A source not found is not answered as such while the database is down.
        _last_read.set(slug, source, settings.RENDER_STALE_IF_ERROR_SECONDS)
    return source


def source_list_for(*, account):
    return Source.objects.select_related("account").filter(account=account).order_by("slug")


def source_get_for(*, account, slug: str) -> Source:
    """The account's source of that slug; 404, not 403, so one account cannot probe another's."""
    source = Source.objects.select_related("account").filter(account=account, slug=slug).first()
    if source is None:
        raise NotFoundError("No such source.")
    return source


def source_cache_clear(**kwargs) -> None:
    """A source or an account changed (apps.py connects it to their saves and deletes): this
    process forgets it now, and every process once the change is committed (the cache
    generation moves, core/generation.py), so none goes on with the old source, entitlement or
    limits, or with renders of a deleted source."""
    _cache.clear()
    _last_read.clear()
    transaction.on_commit(_generation_move, robust=True)


def _generation_move() -> None:
    try:
        generation_bump()
    except Exception as exc:  # Redis down: no process trusts its cache until it answers again.
        logger.warning("cache generation not moved after a source or account change: %s", exc)


def source_bg_remove_enabled(*, source: Source) -> bool:
    """The effective entitlement: the source's own setting, or its account's when it inherits."""
    if source.bg_remove == Source.BgRemove.INHERIT:
        return source.account.bg_remove_enabled
    return source.bg_remove == Source.BgRemove.ON


def source_bg_remove_model(*, source: Source, requested: str | None = None) -> str:
    """The model for a render: one asked for, else the source's, else the platform's default; the
    first two only when provisioned here (file present, checksum verified once per process),
    whether or not BG_REMOVE_MODELS preloads them. A URL's bg-remove-model was refused already
    when not provisioned (rendering/operations/bgremove.py); what falls through here is a hint
    (remove.bg's `type`) or a source whose model file went away, and the response names the
    model that ran (X-Bg-Remove-Model)."""
    if requested and model_provisioned(requested):
        return requested
    if source.bg_remove_model and model_provisioned(source.bg_remove_model):
        return source.bg_remove_model
    return settings.BG_REMOVE_DEFAULT_MODEL


def upload_get(*, source: Source, path: str) -> Upload | None:
    return Upload.objects.filter(source=source, path=path).first()


def upload_list_expired(*, before):
    """Uploads not used since `before` (retention), oldest first."""
    return Upload.objects.select_related("source").filter(last_used_at__lt=before).order_by("last_used_at")
