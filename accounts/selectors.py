"""Reads for accounts."""

from accounts.models import Account, ApiKey
from core.errors import NotFoundError


def account_get(*, slug: str) -> Account | None:
    return Account.objects.filter(slug=slug).first()


def api_key_list_for(*, account: Account):
    return ApiKey.objects.filter(account=account)


def api_key_get_for(*, account: Account, key_id) -> ApiKey:
    # 404, not 403, so one account cannot probe another's keys.
    api_key = ApiKey.objects.filter(account=account, pk=key_id).first()
    if api_key is None:
        raise NotFoundError("No such API key.")
    return api_key
