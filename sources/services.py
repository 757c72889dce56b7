"""Writes for sources: create, update, delete, rotate signing tokens."""

import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from core.errors import BadRequestError, ConflictError, ForbiddenError
from sources.models import Source, Upload

# Fields an account's own API key may set; background removal itself is switched by an
# account manager (the reference: "activated through an account manager"). `local_path` only
# matters to operators: a key cannot create a local-folder source or move one (see below).
CUSTOMER_FIELDS = {
    "slug", "kind", "base_url", "s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url",
    "s3_access_key_id", "s3_secret_access_key", "local_path", "require_signature",
    "bg_remove_model", "bg_remove_refinement", "cache_max_age",
}
# Where images come from and how their URLs are signed: the owner's business (its keys) or a
# superuser's. An account manager sees these read-only in the admin (sources/admin.py) and may
# not change them through the API either; MANAGER_FIELDS is what the admin lets them edit.
ORIGIN_FIELDS = [
    "account", "slug", "kind", "base_url", "s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url",
    "s3_access_key_id", "s3_secret_access_key", "local_path", "require_signature", "secure_tokens",
]
MANAGER_FIELDS = {"bg_remove", "bg_remove_model", "bg_remove_refinement", "cache_max_age"}
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


# Each kind's own fields, what its origin reads. s3_region has a default and means nothing
# without a bucket: not counted.
KIND_FIELDS = {
    Source.Kind.WEB_FOLDER: {"base_url"},
    Source.Kind.S3: {"s3_bucket", "s3_prefix", "s3_endpoint_url", "s3_access_key_id", "s3_secret_access_key"},
    Source.Kind.LOCAL_FOLDER: {"local_path"},
}


def _other_kinds_fields_refuse(kind: str, fields: dict) -> None:
    """A field of another kind given a value would be kept and never used: refused by name (the
    admin's form clears those of a kind it hides; a client leaves them out or sends "")."""
    stray = sorted(name for other, names in KIND_FIELDS.items() if other != kind
                   for name in names if fields.get(name))
    if stray:
        error = SourceInvalidError(f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not used by a source "
                                   f"of kind {kind}: leave {'it' if len(stray) == 1 else 'them'} out.")
        error.fields = {name: [f"Not used by a source of kind {kind}."] for name in stray}
        raise error


class LocalFolderForbiddenError(ForbiddenError):
    code = "local_folder_forbidden"
    default_message = (
        "Local-folder sources are an operator's development feature: an API key cannot create one, "
        "turn a source into one or change its folder. An operator sets them up in the admin."
    )


class SourceFieldsForbiddenError(ForbiddenError):
    code = "fields_forbidden"


class UploadsKindForbiddenError(ForbiddenError):
    code = "uploads_kind_forbidden"
    default_message = (
        "An account's uploads source is made by the remove.bg API itself (one per account); "
        "no source can be created as one or turned into one."
    )


def source_create(*, account: Account, operator: bool = False, **fields) -> Source:
    """A new source. `operator` (a superuser): may create a local-folder source."""
    if fields.get("kind") == Source.Kind.UPLOADS:
        raise UploadsKindForbiddenError()
    if not operator and (fields.get("kind") == Source.Kind.LOCAL_FOLDER or fields.get("local_path")):
        raise LocalFolderForbiddenError()
    _other_kinds_fields_refuse(fields.get("kind", ""), fields)
    source = Source(account=account, **{k: v for k, v in fields.items() if k in CUSTOMER_FIELDS})
    if source.require_signature and not source.secure_tokens:
        source.secure_tokens = [secrets.token_hex(16)]
    return _save(source)


def source_update(*, source: Source, operator: bool = False, editable: set | None = None, **fields) -> Source:
    """Changes a source. A field given with its current value changes nothing and is always
    accepted (a client may send back what it read); `editable` bounds the others (an account
    manager's), and only an `operator` may make a source local or change its folder."""
    changed = {name for name, value in fields.items() if getattr(source, name) != value}
    if "kind" in changed and Source.Kind.UPLOADS in (fields["kind"], source.kind):
        raise UploadsKindForbiddenError()
    if not operator and ("local_path" in changed or ("kind" in changed and fields["kind"] == Source.Kind.LOCAL_FOLDER)):
        raise LocalFolderForbiddenError()
    refused = sorted(changed - editable) if editable is not None else []
    if refused:
        error = SourceFieldsForbiddenError(
            f"You may not change {', '.join(refused)}: the admin shows these read-only to you."
        )
        error.fields = {name: ["Read-only for you."] for name in refused}
        raise error
    # Only what this call sets: fields a source already holds from an earlier kind stay as they are.
    _other_kinds_fields_refuse(fields.get("kind", source.kind), {name: fields[name] for name in changed})
    if editable is not None:
        settable = editable
    else:
        settable = CUSTOMER_FIELDS | MANAGER_FIELDS if operator else CUSTOMER_FIELDS
    for name, value in fields.items():
        if name in settable - {"slug"}:
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


def source_uploads_ensure(*, account: Account) -> Source:
    """The account's uploads source (the remove.bg API's), made on first use. Found by account
    and kind, never by slug: the slug is random, so it takes no name a customer might want and
    tells nobody which account it belongs to. Background removal inherits the account's switch."""
    source = Source.objects.select_related("account").filter(account=account, kind=Source.Kind.UPLOADS).first()
    if source is not None:
        return source
    with transaction.atomic():
        # One per account even under concurrent first calls: the account row is the lock.
        Account.objects.select_for_update().filter(pk=account.pk).first()
        source = Source.objects.filter(account=account, kind=Source.Kind.UPLOADS).first()
        if source is None:
            source = Source.objects.create(account=account, kind=Source.Kind.UPLOADS,
                                           slug=f"uploads-{secrets.token_hex(8)}")
    source.account = account
    return source


def upload_record(*, source: Source, path: str, size: int, width: int, height: int) -> Upload:
    """The upload's row, made on first use and marked used now (its retention starts again)."""
    now = timezone.now()
    upload, created = Upload.objects.get_or_create(
        source=source, path=path,
        defaults={"size": size, "width": width, "height": height, "last_used_at": now})
    if not created:
        Upload.objects.filter(pk=upload.pk).update(last_used_at=now)
        upload.last_used_at = now
    return upload
