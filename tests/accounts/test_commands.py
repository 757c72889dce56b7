"""`manage.py create_account`, as an operator runs it."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Account

pytestmark = pytest.mark.django_db


def test_create_account_prints_its_slug_and_records_the_creation():
    out = StringIO()
    call_command("create_account", "acme", "--name", "Acme Ltd", "--bg-remove", stdout=out)
    assert out.getvalue().strip() == "acme"
    account = Account.objects.get(slug="acme")
    assert (account.name, account.bg_remove_enabled) == ("Acme Ltd", True)
    assert account.history.get().history_type == "+"
    call_command("create_account", "plain", stdout=StringIO())
    assert Account.objects.get(slug="plain").name == "plain"
    assert not Account.objects.get(slug="plain").bg_remove_enabled


@pytest.mark.parametrize("slug, message", [("acme", "slug: Account with this Slug already exists."),
                                           ("not a slug", "slug: Enter a valid “slug”")])
def test_create_account_refuses_a_taken_or_malformed_slug(slug, message):
    call_command("create_account", "acme", stdout=StringIO())
    with pytest.raises(CommandError, match=message):
        call_command("create_account", slug, stdout=StringIO())
    assert Account.objects.count() == 1
