"""Reads for accounts."""

from accounts.models import Account


def account_get(*, slug: str) -> Account | None:
    return Account.objects.filter(slug=slug).first()
