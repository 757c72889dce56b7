"""A source's admin page: only its kind's fields, and signing tokens masked, copied and rotated."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.test import Client

from accounts.services import account_manager_create
from sources.admin import token_fingerprint, token_masked
from sources.models import Source

pytestmark = pytest.mark.django_db

TOKENS = ["aaaa1111bbbb2222cccc3333dddd4444", "eeee5555ffff6666gggg7777hhhh8888"]


@pytest.fixture
def superuser_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def manager(client):
    user = account_manager_create(username="mia", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def viewer(db):
    """Staff who may view sources and nothing more."""
    user = get_user_model().objects.create_user("vic", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_source"))
    return user


@pytest.fixture
def signed(source):
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=TOKENS)
    source.refresh_from_db()
    return source


def fieldset_classes(page: str) -> list[str]:
    return re.findall(r'<fieldset class="module aligned ([^"]*origin-kind[^"]*)"', page)


def new_source_form(**fields):
    data = {"account": "", "slug": "new-one", "kind": "web", "base_url": "", "s3_bucket": "", "s3_prefix": "",
            "s3_region": "us-east-1", "s3_endpoint_url": "", "s3_access_key_id": "", "s3_secret_access_key": "",
            "local_path": "", "bg_remove": "inherit", "bg_remove_model": "",
            "bg_remove_refinement": "clean-edges", "cache_max_age": ""}
    return {**data, **fields}


def test_add_form_has_one_fieldset_per_kind_and_the_switching_script(superuser_client, account):
    page = superuser_client.get("/admin/sources/source/add/").content.decode()
    assert [c.split()[-1] for c in fieldset_classes(page)] == ["origin-kind-web", "origin-kind-s3", "origin-kind-local"]
    assert re.search(r'<script src="/static/sources/admin/source_form\.js"', page)
    assert finders.find("sources/admin/source_form.js")  # Collected by collectstatic, served by whitenoise.


def test_saving_a_kind_clears_the_other_kinds_fields_and_says_so(superuser_client, account):
    response = superuser_client.post("/admin/sources/source/add/", new_source_form(
        account=account.pk, kind="web", base_url="https://images.example.com/", s3_bucket="left-over",
        s3_access_key_id="AKIA", s3_secret_access_key="secret", local_path="photos"), follow=True)
    source = Source.objects.get(slug="new-one")
    assert (source.kind, source.base_url) == ("web", "https://images.example.com/")
    assert (source.s3_bucket, source.s3_access_key_id, source.s3_secret_access_key, source.local_path) == ("", "", "", "")
    assert source.s3_region == "us-east-1"
    message = [str(m) for m in response.context["messages"]]
    assert any("Cleared the fields of other kinds of source: S3 bucket" in m and "local path" in m.lower()
               for m in message)


def test_the_kind_s_own_fields_are_still_required(superuser_client, account):
    response = superuser_client.post("/admin/sources/source/add/", new_source_form(
        account=account.pk, kind="s3", base_url="https://images.example.com/"))
    assert response.status_code == 200 and not Source.objects.filter(slug="new-one").exists()
    assert "Required for this kind of source." in response.content.decode()


def test_superuser_requiring_signatures_gets_a_first_token(superuser_client, account):
    superuser_client.post("/admin/sources/source/add/", new_source_form(
        account=account.pk, base_url="https://images.example.com/", require_signature="on"))
    source = Source.objects.get(slug="new-one")
    assert source.require_signature and len(source.secure_tokens) == 1 and len(source.secure_tokens[0]) == 32


def test_manager_sees_only_the_fieldset_of_the_source_s_kind(client, manager, source):
    page = client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()
    assert [c.split()[-1] for c in fieldset_classes(page)] == ["origin-kind-local"]
    s3 = Source.objects.create(account=source.account, slug="bucket", kind="s3", s3_bucket="b",
                               s3_access_key_id="AKIA", s3_secret_access_key="very-secret-value")
    page = client.get(f"/admin/sources/source/{s3.pk}/change/").content.decode()
    assert [c.split()[-1] for c in fieldset_classes(page)] == ["origin-kind-s3"]
    assert "very-secret-value" not in page and "AKIA" in page


def test_tokens_are_listed_masked_never_in_full(client, manager, signed):
    page = client.get(f"/admin/sources/source/{signed.pk}/change/").content.decode()
    assert "aaaa•••" in page and "eeee•••" in page
    for token in TOKENS:
        assert token not in page and token[4:12] not in page
    assert page.count('class="button token-copy"') == 2 and 'class="button token-rotate"' in page
    assert token_masked("short-token") == "•••"  # A hand-made short token shows none of itself.


def test_manager_reveals_a_token_by_post_only(client, manager, signed):
    url = f"/admin/sources/source/{signed.pk}/tokens/{token_fingerprint(TOKENS[1])}/reveal/"
    assert client.get(url).status_code == 403
    response = client.post(url)
    assert response.status_code == 200 and response.json() == {"token": TOKENS[1]}
    assert "no-store" in response["Cache-Control"]
    assert client.post(f"/admin/sources/source/{signed.pk}/tokens/{'0' * 16}/reveal/").status_code == 404
    entry = LogEntry.objects.get(object_id=str(signed.pk))
    assert entry.user == manager and "Copied signing token eeee•••" in entry.change_message
    assert TOKENS[1] not in entry.change_message


def test_reveal_and_rotate_need_a_csrf_token(manager, signed):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    assert strict.post(f"/admin/sources/source/{signed.pk}/tokens/{token_fingerprint(TOKENS[0])}/reveal/").status_code == 403
    assert strict.post(f"/admin/sources/source/{signed.pk}/tokens/rotate/").status_code == 403
    signed.refresh_from_db()
    assert signed.secure_tokens == TOKENS


def test_view_only_staff_gets_no_token(client, viewer, signed):
    client.force_login(viewer)
    page = client.get(f"/admin/sources/source/{signed.pk}/change/").content.decode()
    assert "aaaa•••" in page and "token-copy" not in page and "token-rotate" not in page
    for token in TOKENS:
        assert token not in page
        response = client.post(f"/admin/sources/source/{signed.pk}/tokens/{token_fingerprint(token)}/reveal/")
        assert response.status_code == 403 and token not in response.content.decode()
    assert client.post(f"/admin/sources/source/{signed.pk}/tokens/rotate/").status_code == 403
    signed.refresh_from_db()
    assert signed.secure_tokens == TOKENS
    anonymous = Client()
    response = anonymous.post(f"/admin/sources/source/{signed.pk}/tokens/{token_fingerprint(TOKENS[0])}/reveal/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_rotation_puts_a_new_token_first_keeps_the_previous_and_is_audited(client, manager, signed):
    response = client.post(f"/admin/sources/source/{signed.pk}/tokens/rotate/", follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/sources/source/{signed.pk}/change/"
    signed.refresh_from_db()
    new = signed.secure_tokens[0]
    assert signed.secure_tokens == [new, TOKENS[0]] and new not in TOKENS and len(new) == 32
    record = signed.history.latest("history_date")
    assert record.history_user == manager and record.history_type == "~"
    assert record.history_change_reason.startswith("Rotated the signing token")
    assert "aaaa•••" in record.history_change_reason and "eeee•••" in record.history_change_reason
    history = client.get(f"/admin/sources/source/{signed.pk}/history/").content.decode()
    assert "Rotated the signing token" in history and "mia" in history
    for token in [new, *TOKENS]:
        assert token not in history and token not in record.history_change_reason
    messages = [str(m) for m in response.context["messages"]]
    assert any(f"New signing token {new[:4]}•••" in m for m in messages)
    assert not any(new in m for m in messages)


def test_rotation_creates_the_first_token_of_a_source_without_any(client, manager, source):
    page = client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()
    assert "No tokens." in page and "Create a token" in page
    client.post(f"/admin/sources/source/{source.pk}/tokens/rotate/")
    source.refresh_from_db()
    assert len(source.secure_tokens) == 1


def test_superuser_adds_an_existing_token_which_is_never_shown_back(superuser_client, signed):
    imported = "imgix-token-0123456789abcdef"
    response = superuser_client.post(f"/admin/sources/source/{signed.pk}/change/", new_source_form(
        account=signed.account.pk, slug=signed.slug, kind="local", local_path="photos", require_signature="on",
        add_token=imported), follow=True)
    signed.refresh_from_db()
    assert signed.secure_tokens == [imported, TOKENS[0]]
    assert imported not in response.content.decode() and "imgi•••" in response.content.decode()
    assert signed.history.latest("history_date").history_change_reason == "Added signing token imgi•••"
    short = superuser_client.post(f"/admin/sources/source/{signed.pk}/change/", new_source_form(
        account=signed.account.pk, slug=signed.slug, kind="local", local_path="photos", require_signature="on",
        add_token="short"))
    assert "At least 16 characters." in short.content.decode() and 'value="short"' not in short.content.decode()


def test_manager_cannot_add_a_token_through_the_form(client, manager, signed):
    page = client.get(f"/admin/sources/source/{signed.pk}/change/").content.decode()
    assert "id_add_token" not in page
    client.post(f"/admin/sources/source/{signed.pk}/change/", {
        "bg_remove": "inherit", "bg_remove_model": "", "bg_remove_refinement": "clean-edges", "cache_max_age": "",
        "add_token": "a-manager-made-token-0123456789"})
    signed.refresh_from_db()
    assert signed.secure_tokens == TOKENS
