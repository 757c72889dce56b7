"""Writes for sources: create, update, delete, rotate signing tokens."""

import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Account
from config.exceptions import BadRequestError, ConflictError

from .models import Source

# Fields an account's own API key may set; background removal itself is switched by an
# account manager (the reference: "activated through an account manager").
CUSTOMER_FIELDS = {
    "slug", "kind", "base_url", "s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url",
    "s3_access_key_id", "s3_secret_access_key", "local_path", "require_signature",
    "bg_remove_model", "bg_remove_refinement", "cache_max_age",
}
TOKENS_KEPT = 2


class SourceInvalidError(BadRequestError):
    code = "invalid"


def _save(source: Source) -> Source:
    try:
        source.full_clean()
    except ValidationError as exc:
        if "slug" in exc.message_dict and any("already exists" in m for m in exc.message_dict["slug"]):
            raise ConflictError(f"A source named {source.slug!r} already exists.", code="slug_taken") from None
        error = SourceInvalidError("Invalid source.")
        error.fields = exc.message_dict
        raise error from None
    try:
        with transaction.atomic():
            source.save()
    except IntegrityError:
        raise ConflictError(f"A source named {source.slug!r} already exists.", code="slug_taken") from None
    return source


def source_create(*, account: Account, **fields) -> Source:
    source = Source(account=account, **{k: v for k, v in fields.items() if k in CUSTOMER_FIELDS})
    if source.require_signature and not source.secure_tokens:
        source.secure_tokens = [secrets.token_hex(16)]
    return _save(source)


def source_update(*, source: Source, **fields) -> Source:
    for name, value in fields.items():
        if name in CUSTOMER_FIELDS - {"slug"}:
            setattr(source, name, value)
    if source.require_signature and not source.secure_tokens:
        source.secure_tokens = [secrets.token_hex(16)]
    return _save(source)


def source_delete(*, source: Source) -> None:
    """The source and its rows; its stored objects (renders, cutouts, marks) follow once the
    delete is committed, through the delete signal rendering subscribes to."""
    source.delete()


def source_token_rotate(*, source: Source) -> str:
    """A new signing token first; the previous one stays valid until the next rotation."""
    token = secrets.token_hex(16)
    source.secure_tokens = [token, *source.secure_tokens][:TOKENS_KEPT]
    source.save(update_fields=["secure_tokens"])
    return token
