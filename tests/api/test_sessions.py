"""An admin session on the API, as an attacker would try it: CSRF, a plain staff user, an inactive
one, a user who is not staff, an account not named or unknown; and a key that names another account."""

import pytest
from django.contrib.auth import get_user_model
from django.middleware.csrf import get_token
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import account_manager_create
from tests.api.test_api import key_client
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def session_client(user, *, csrf_checks=True):
    client = APIClient(enforce_csrf_checks=csrf_checks)
    client.force_login(user)
    return client


def csrf_token(client):
    """The token the docs page carries: its cookie, set by rendering the page."""
    assert client.get("/api/v1/docs/").status_code == 200
    return client.cookies["csrftoken"].value


def test_a_managers_write_needs_the_csrf_token(account):
    client = session_client(account_manager_create(username="maria", password="pw"))
    body = {"name": "forged", "scopes": ["keys"]}
    forged = client.post("/api/v1/keys?account=acme", body, format="json")
    assert forged.status_code == 403 and forged["Content-Type"] == "application/json"
    assert forged.json()["error"]["code"] == "permission_denied" and "CSRF" in forged.json()["error"]["message"]
    # A token from elsewhere (not this session's cookie) is refused as well.
    stranger = get_token(RequestFactory().get("/"))
    assert client.post("/api/v1/keys?account=acme", body, format="json",
                       HTTP_X_CSRFTOKEN=stranger).status_code == 403
    assert not ApiKey.objects.filter(name="forged").exists()
    made = client.post("/api/v1/keys", {"name": "made", "scopes": ["keys"]}, format="json",
                       HTTP_X_CSRFTOKEN=csrf_token(client), HTTP_X_ACCOUNT="acme")
    assert made.status_code == 201, made.content
    assert ApiKey.objects.get(name="made").account == account


def test_a_managers_read_names_the_account_by_query_or_header(account):
    other = AccountFactory(slug="other", name="Other")
    client = session_client(account_manager_create(username="maria", password="pw"))
    assert client.get("/api/v1/account?account=acme").json()["slug"] == "acme"
    assert client.get("/api/v1/account/", HTTP_X_ACCOUNT="other").json()["slug"] == other.slug
    # The query wins over the header: one account per call, the one in the URL.
    assert client.get("/api/v1/account?account=acme", HTTP_X_ACCOUNT="other").json()["slug"] == "acme"


def test_a_session_without_an_account_or_with_an_unknown_one_is_told(account):
    client = session_client(account_manager_create(username="maria", password="pw"))
    unnamed = client.get("/api/v1/sources")
    assert unnamed.status_code == 401 and "X-Account" in unnamed.json()["error"]["message"]
    unknown = client.get("/api/v1/sources?account=nope")
    assert unknown.status_code == 401 and "`nope`" in unknown.json()["error"]["message"]


def test_a_plain_staff_user_is_refused_and_told_why(account):
    user = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    client = session_client(user)
    response = client.get("/api/v1/sources?account=acme")
    assert response.status_code == 403
    assert "Account managers" in response.json()["error"]["message"]
    written = client.post("/api/v1/keys?account=acme", {"scopes": ["keys"]}, format="json",
                          HTTP_X_CSRFTOKEN=csrf_token(client))
    assert written.status_code == 403 and not ApiKey.objects.exists()


def test_a_user_who_is_not_staff_is_told_to_use_a_key(account):
    client = session_client(get_user_model().objects.create_user("customer", password="pw"))
    response = client.get("/api/v1/account?account=acme")
    assert response.status_code == 401 and "not staff" in response.json()["error"]["message"]


def test_an_inactive_manager_is_no_one(account):
    manager = account_manager_create(username="gone", password="pw")
    client = session_client(manager)
    assert client.get("/api/v1/account?account=acme").status_code == 200
    get_user_model().objects.filter(pk=manager.pk).update(is_active=False)
    response = client.get("/api/v1/account?account=acme")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_a_superuser_session_acts_on_the_named_account(account):
    admin = get_user_model().objects.create_superuser("root", password="pw")
    client = session_client(admin)
    response = client.post("/api/v1/keys?account=acme", {"name": "by-root", "scopes": ["read"]}, format="json",
                           HTTP_X_CSRFTOKEN=csrf_token(client))
    assert response.status_code == 201 and ApiKey.objects.get(name="by-root").account == account


def test_a_key_never_acts_on_another_account(account):
    other = AccountFactory(slug="other", name="Other")
    client = key_client(account, ["read"])
    for kwargs in ({"path": "/api/v1/account?account=other"}, {"path": "/api/v1/account", "HTTP_X_ACCOUNT": "other"}):
        response = client.get(kwargs.pop("path"), **kwargs)
        assert response.status_code == 403 and "own account" in response.json()["error"]["message"]
        assert other.name not in response.content.decode()
    # Naming its own account is allowed (a client may always send it).
    assert client.get("/api/v1/account?account=acme").json()["slug"] == "acme"
    # A key beats a manager's cookie on the same call: the key's account and scopes, not the session's.
    both = key_client(account, ["read"])
    both.force_login(account_manager_create(username="maria", password="pw"))
    assert both.get("/api/v1/account").json()["slug"] == "acme"
    assert both.post("/api/v1/keys", {"scopes": ["keys"]}, format="json").status_code == 403
