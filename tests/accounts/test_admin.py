"""Account managers switch background removal in the admin; every change is audited."""

import re

import pytest
from django.contrib.auth.models import Group

from accounts.models import Account
from accounts.services import ACCOUNT_MANAGERS_GROUP, account_manager_create
from sources.models import Source

pytestmark = pytest.mark.django_db

URL = "/render/acme-photos/astronaut.jpg?bg-remove=true"


@pytest.fixture
def manager(client):
    user = account_manager_create(username="maria", password="pw-for-tests")
    client.force_login(user)
    return user


def account_form(account, **changes):
    data = {"name": account.name, "bg_remove_enabled": "on" if account.bg_remove_enabled else ""}
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def source_form(source, **changes):
    data = {"bg_remove": source.bg_remove, "bg_remove_model": source.bg_remove_model,
            "bg_remove_refinement": source.bg_remove_refinement, "cache_max_age": source.cache_max_age or ""}
    data.update(changes)
    return data


def test_group_exists_after_migrate_with_limited_permissions():
    group = Group.objects.get(name=ACCOUNT_MANAGERS_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"change_account", "change_source", "view_historicalaccount"} <= codenames
    assert not any(c.endswith("_user") or c.endswith("_group") or c.endswith("_permission") for c in codenames)


def test_manager_is_staff_not_superuser(manager):
    assert manager.is_staff and not manager.is_superuser


def test_manager_turns_account_off_and_requests_follow(client, manager, source):
    assert client.get(URL).status_code == 202
    account = source.account
    response = client.post(f"/admin/accounts/account/{account.pk}/change/", account_form(account, bg_remove_enabled=""))
    assert response.status_code == 302, response.content[:2000]
    account.refresh_from_db()
    assert account.bg_remove_enabled is False
    # Entitlement is checked on every request, cached cutouts included.
    assert client.get(URL).status_code == 403

    history = list(account.history.order_by("history_date"))
    last = history[-1]
    assert last.history_user == manager
    delta = last.diff_against(history[-2])
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("bg_remove_enabled", True, False)]


def test_manager_sets_source_on_off_inherit_and_history_shows_old_to_new(client, manager, source):
    account = source.account
    Account.objects.filter(pk=account.pk).update(bg_remove_enabled=False)
    change_url = f"/admin/sources/source/{source.pk}/change/"
    expected = {"on": 202, "off": 403, "inherit": 403}
    for mode, status in expected.items():
        source.refresh_from_db()
        response = client.post(change_url, source_form(source, bg_remove=mode))
        assert response.status_code == 302, response.content[:2000]
        assert client.get(URL).status_code == status, mode

    records = list(source.history.order_by("history_date"))
    changes = [
        (c.old, c.new)
        for newer, older in zip(records[1:], records[:-1])
        for c in newer.diff_against(older).changes
        if c.field == "bg_remove"
    ]
    assert changes == [("inherit", "on"), ("on", "off"), ("off", "inherit")]
    assert all(r.history_user == manager for r in records[1:])

    page = client.get(f"/admin/sources/source/{source.pk}/history/")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.content.decode())
    assert ">maria</a>" in text
    for old, new in changes:
        assert f"<strong>Background removal:</strong> {old} &nbsp;&rarr;&nbsp;&nbsp;{new}" in text


def test_manager_cannot_change_where_images_come_from(client, manager, source):
    response = client.post(f"/admin/sources/source/{source.pk}/change/",
                           {**source_form(source), "local_path": "elsewhere", "kind": "web"})
    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.kind, source.local_path) == ("local", "photos")


@pytest.mark.parametrize("url", ["/admin/auth/user/", "/admin/auth/group/", "/admin/auth/user/add/"])
def test_manager_cannot_reach_users_or_groups(client, manager, url):
    assert client.get(url).status_code == 403


def test_manager_never_sees_origin_credentials(client, manager, source):
    Source.objects.filter(pk=source.pk).update(s3_secret_access_key="very-secret-value")
    page = client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()
    assert page.count("very-secret-value") == 0 and "bg_remove" in page


def test_manager_sets_the_account_limits(client, manager, source):
    account = source.account
    response = client.post(f"/admin/accounts/account/{account.pk}/change/",
                           account_form(account, render_rate_limit="3/m", bg_remove_rate_limit="1/m",
                                        bg_remove_max_pending="7"))
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.render_rate_limit, account.bg_remove_rate_limit, account.bg_remove_max_pending) == ("3/m", "1/m", 7)
    bad = client.post(f"/admin/accounts/account/{account.pk}/change/", account_form(account, render_rate_limit="lots"))
    assert bad.status_code == 200 and "A count per period" in bad.content.decode()


def test_manager_creates_a_key_shown_once_and_revokes_it(client, manager, account):
    response = client.post("/admin/accounts/apikey/add/",
                           {"account": account.pk, "name": "shop", "scopes": ["read", "purge"]}, follow=True)
    text = response.content.decode()
    secret = re.search(r"shown only this once: (ck_[0-9a-f]+_[0-9a-f]+)", text).group(1)
    from accounts.models import ApiKey
    from accounts.services import api_key_authenticate

    key = ApiKey.objects.get(name="shop")
    assert key.scopes == ["read", "purge"] and api_key_authenticate(key=secret) == key
    assert secret not in client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert api_key_authenticate(key=secret) is None
    history = list(key.history.order_by("history_date"))
    assert history[-1].revoked_at is not None and history[-1].history_user == manager


def revert(client, obj, record):
    """Opens the history record's revert page and submits it as shown, as an admin user would."""
    from django import forms

    url = f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/history/{record.history_id}/"
    page = client.get(url)
    assert page.status_code == 200, page.content[:500]
    data = {}
    for bound in page.context["adminform"].form:
        value = bound.value()
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[bound.name] = "on"
        else:
            data[bound.name] = "" if value is None else value
    return page, client.post(url, data)


@pytest.fixture
def superuser(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", password="pw-for-tests")


@pytest.fixture
def changed_source(source):
    """A source whose origin, signing and entitlement changed since its first history record."""
    first = source.history.earliest("history_date")
    source.local_path, source.bg_remove, source.cache_max_age = "newer", "on", 120
    source.require_signature, source.secure_tokens = True, ["current-token"]
    source.s3_secret_access_key = "current-secret"
    source.save()
    return source, first


def test_manager_revert_changes_only_what_the_manager_may_edit(client, manager, changed_source, origin_root):
    source, first = changed_source
    (origin_root / "newer").mkdir()
    page, response = revert(client, source, first)
    assert response.status_code == 302, response.content[:2000]
    # The read-only fields show their current values on the revert page, not the record's.
    text = page.content.decode()
    assert "newer" in text and "current-secret" not in text and "current-token" not in text
    source.refresh_from_db()
    assert (source.bg_remove, source.cache_max_age) == ("inherit", None)  # Reverted: the manager's fields.
    assert (source.local_path, source.require_signature, source.secure_tokens, source.s3_secret_access_key) == (
        "newer", True, ["current-token"], "current-secret")
    assert source.history.latest("history_date").history_user == manager


def test_manager_revert_keeps_the_account_slug(client, manager, account, superuser):
    first = account.history.earliest("history_date")
    account.slug, account.name, account.bg_remove_enabled = "acme-renamed", "Acme Inc", False
    account.save()
    _, response = revert(client, account, first)
    assert response.status_code == 302, response.content[:2000]
    account.refresh_from_db()
    assert (account.slug, account.name, account.bg_remove_enabled) == ("acme-renamed", "Acme", True)
    # A superuser may rename, so their revert brings the slug back too.
    client.force_login(superuser)
    account.name = "Acme again"
    account.save()
    _, response = revert(client, account, first)
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.slug, account.name) == ("acme", "Acme")


def test_superuser_revert_restores_the_origin_and_keeps_the_secrets(client, superuser, changed_source,
                                                                      origin_root):
    """The history does not keep secrets: a revert keeps the current ones instead of emptying them."""
    source, first = changed_source
    client.force_login(superuser)
    page, response = revert(client, source, first)
    assert response.status_code == 302, response.content[:3000]
    source.refresh_from_db()
    assert (source.local_path, source.bg_remove, source.require_signature) == ("photos", "inherit", False)
    # The tokens are kept; an S3 secret on a local-folder source is not (the admin keeps only the
    # fields of a source's kind, tests/sources/test_admin.py), so the S3 case is its own below.
    assert (source.s3_secret_access_key, source.secure_tokens) == ("", ["current-token"])


def test_superuser_revert_keeps_the_s3_secret_of_an_s3_source(client, superuser, account):
    source = Source.objects.create(account=account, slug="bucket", kind="s3", s3_bucket="b",
                                   s3_access_key_id="AKIA", s3_secret_access_key="first-secret")
    first = source.history.earliest("history_date")
    source.bg_remove, source.s3_secret_access_key = "on", "current-secret"
    source.save()
    client.force_login(superuser)
    _, response = revert(client, source, first)
    assert response.status_code == 302, response.content[:3000]
    source.refresh_from_db()
    assert (source.bg_remove, source.s3_secret_access_key) == ("inherit", "current-secret")


def test_api_key_revert_cannot_unrevoke_or_change_a_key(client, manager, account):
    from accounts.models import ApiKey
    from accounts.services import api_key_create, api_key_revoke

    key, _ = api_key_create(account=account, scopes=["read"], name="shop")
    first = key.history.earliest("history_date")
    api_key_revoke(api_key=key)
    stored = ApiKey.objects.get(pk=key.pk)
    page, response = revert(client, key, first)
    assert page.context["revert_disabled"] is True
    after = ApiKey.objects.get(pk=key.pk)
    assert after.revoked_at == stored.revoked_at and after.key_hash == stored.key_hash and after.scopes == ["read"]


def test_manager_cannot_restore_a_deleted_source_from_its_history(client, manager, source, superuser):
    record = source.history.earliest("history_date")
    pk = source.pk
    source.delete()
    url = f"/admin/sources/source/{pk}/history/{record.history_id}/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"bg_remove": "on"}).status_code == 403
    assert not Source.objects.filter(pk=pk).exists()
