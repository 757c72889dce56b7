"""Reads for sources."""

from django.conf import settings

from .models import Source


def source_get(*, slug: str) -> Source | None:
    return Source.objects.select_related("account").filter(slug=slug).first()


def source_bg_remove_enabled(*, source: Source) -> bool:
    """The effective entitlement: the source's own setting, or its account's when it inherits."""
    if source.bg_remove == Source.BgRemove.INHERIT:
        return source.account.bg_remove_enabled
    return source.bg_remove == Source.BgRemove.ON


def source_bg_remove_model(*, source: Source, requested: str | None = None) -> str:
    """The model for a render: a provisioned one asked for on the URL, else the source's default."""
    if requested and requested in settings.BG_REMOVE_MODELS:
        return requested
    if source.bg_remove_model in settings.BG_REMOVE_MODELS:
        return source.bg_remove_model
    return settings.BG_REMOVE_DEFAULT_MODEL
