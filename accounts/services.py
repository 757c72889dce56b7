"""Writes and workflows for accounts, their API keys and the people who manage them."""

import hashlib
import hmac
import secrets
from datetime import datetime

from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from accounts.models import Account, ApiKey
from core.errors import ForbiddenError

ACCOUNT_MANAGERS_GROUP = "Account managers"

# What an account manager may do in the admin: see and change accounts, sources and their
# limits, create and revoke API keys, read the audit history and jobs; never users, groups or
# permissions.
ACCOUNT_MANAGER_PERMISSIONS = [
    ("accounts", "view_account"),
    ("accounts", "change_account"),
    ("accounts", "view_historicalaccount"),
    ("accounts", "view_apikey"),
    ("accounts", "add_apikey"),
    ("accounts", "change_apikey"),
    ("accounts", "view_historicalapikey"),
    ("sources", "view_source"),
    ("sources", "change_source"),
    ("sources", "view_historicalsource"),
    ("cutouts", "view_bgremovejob"),
    # The remove.bg API's credits are an account's limit like the others; its calls a record.
    ("removebg_api", "view_creditaccount"),
    ("removebg_api", "change_creditaccount"),
    ("removebg_api", "view_call"),
]
KEY_PREFIX = "ck_"


def account_create(*, slug: str, name: str = "", bg_remove_enabled: bool = False) -> Account:
    """A new tenant; its history records the creation like any admin change."""
    account = Account(slug=slug, name=name or slug, bg_remove_enabled=bg_remove_enabled)
    account.full_clean()
    account.save()
    return account


def account_managers_group_sync() -> Group:
    group, _ = Group.objects.get_or_create(name=ACCOUNT_MANAGERS_GROUP)
    perms = []
    for app_label, codename in ACCOUNT_MANAGER_PERMISSIONS:
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm is not None:
            perms.append(perm)
    group.permissions.add(*perms)
    return group


def account_manager_create(*, username: str, password: str, email: str = ""):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username=username, password=password, email=email, is_staff=True
    )
    user.groups.add(account_managers_group_sync())
    return user


class ApiKeyScopeError(ValueError):
    pass


class ApiKeyScopeNotHeldError(ForbiddenError):
    code = "scope_not_held"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_create(
    *, account: Account, scopes: list[str], name: str = "", expires_at: datetime | None = None,
    granted_by: frozenset | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret text, which is never stored and so can be shown only now.

    `granted_by`: the scopes of the caller minting it (a key's, or a staff session's), which the
    new key may not exceed; None for an operator (management command, admin)."""
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if unknown or not scopes:
        raise ApiKeyScopeError(f"Scopes must be among {', '.join(ApiKey.Scope.values)}.")
    missing = [] if granted_by is None else [s for s in ApiKey.Scope.values if s in scopes and s not in granted_by]
    if missing:
        error = ApiKeyScopeNotHeldError(
            f"A key can only be given scopes its creator holds; this caller lacks: {', '.join(missing)}."
        )
        error.fields = {"scopes": [f"Not held by this caller: {', '.join(missing)}."]}
        raise error
    prefix = KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_hex(24)}"
    api_key = ApiKey.objects.create(
        account=account, name=name, prefix=prefix, key_hash=_hash(key),
        scopes=sorted(set(scopes), key=ApiKey.Scope.values.index), expires_at=expires_at,
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, key: str) -> ApiKey | None:
    """The live key for this secret, or None (unknown, wrong, revoked or expired)."""
    prefix, _, secret = key.rpartition("_")
    prefix = prefix if prefix.startswith(KEY_PREFIX) and secret else ""
    api_key = ApiKey.objects.select_related("account").filter(prefix=prefix).first() if prefix else None
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(key)):
        return None
    now = timezone.now()
    if api_key.revoked_at is not None or (api_key.expires_at is not None and api_key.expires_at <= now):
        return None
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        # Written at most once a minute, so authentication is not a write per request.
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key
