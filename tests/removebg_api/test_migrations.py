"""Migration 0004 (unmetered by default): the accounts the old default left at 0 credits become
unmetered, with a History entry; an account a person gave credits to, or one calls charged, keeps them."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_the_old_default_becomes_unmetered_and_grants_stay():
    old = migrate([("removebg_api", "0003_call_held")])
    Account = old.get_model("accounts", "Account")
    Credit, History = old.get_model("removebg_api", "CreditAccount"), old.get_model("removebg_api",
                                                                                    "HistoricalCreditAccount")
    person = get_user_model().objects.create(username="manager")
    rows = {}
    for slug, credits, charged, by_person in (("untouched", 0, 0, False), ("granted", 0, 0, True),
                                              ("paid", 5, 2, False), ("spent", 0, 1, False)):
        account = Account.objects.create(name=slug, slug=slug)
        rows[slug] = credit = Credit.objects.create(account=account, credits=credits, charged=charged)
        History.objects.create(id=credit.pk, account_id=account.pk, credits=credits, free_calls=50,
                               history_date="2026-12-01T00:00:00Z", history_type="+",
                               history_user_id=person.pk if by_person else None)

    new = migrate([("removebg_api", "0004_unmetered_by_default")])
    Credit, History = new.get_model("removebg_api", "CreditAccount"), new.get_model("removebg_api",
                                                                                    "HistoricalCreditAccount")
    credits = {slug: Credit.objects.get(pk=row.pk).credits for slug, row in rows.items()}
    assert credits == {"untouched": None, "granted": 0, "paid": 5, "spent": 0}
    entry = History.objects.filter(id=rows["untouched"].pk).latest("history_id")
    assert (entry.credits, entry.history_type) == (None, "~") and "migration 0004" in entry.history_change_reason
    assert History.objects.count() == 5

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
