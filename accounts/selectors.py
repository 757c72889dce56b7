"""Reads for accounts."""

from .models import Account


def account_get(*, slug: str) -> Account | None:
    return Account.objects.filter(slug=slug).first()
