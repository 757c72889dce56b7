"""Every management API route with or without its trailing slash (a POST keeps its body), listed
once; every error under /api/ is JSON in the one shape, DEBUG or not, while the site keeps HTML."""

import re

import pytest
from django.test import Client
from django.urls import resolve, reverse
from rest_framework.test import APIClient

from accounts.services import account_manager_create
from tests.api.test_api import key_client
from tests.api.test_tenancy import api_routes

pytestmark = pytest.mark.django_db


def concrete(route):
    return (route.replace("<int:key_id>", "7").replace("<str:slug>", "some-source")
            .replace("<uuid:job_id>", "6f1c5f0e-2f0a-4f6e-9d36-1b5a3f4b8c11").replace("<int:webhook_id>", "3"))


def test_every_route_resolves_with_and_without_its_trailing_slash():
    for name, route, _ in api_routes():
        url = concrete(route)
        other = url[:-1] if url.endswith("/") else url + "/"
        assert resolve(url).view_name == resolve(other).view_name == name, (url, other)
        assert resolve(url).kwargs == resolve(other).kwargs


def test_reverse_gives_the_route_as_written():
    assert reverse("api:purge") == "/api/v1/purge"
    assert reverse("api:docs") == "/api/v1/docs/"
    assert reverse("api:index") == "/api/v1/"


def test_a_neighbour_of_a_route_is_still_unknown(account):
    client = key_client(account, ["read"])
    for url in ("/api/v1/sourcesx", "/api/v1/sources//", "/api/v1x", "/api/v1/keys/abc/"):
        response = client.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url


def test_the_schema_lists_each_route_once(client):
    paths = client.get("/api/v1/schema/?format=json").json()["paths"]
    assert len(paths) == len([name for name, _, _ in api_routes() if name not in ("api:schema", "api:docs", "api:redoc")])
    assert not {p.rstrip("/") for p in paths if p.endswith("/") and p != "/api/v1/"} & set(paths)


def test_post_with_a_trailing_slash_keeps_its_body(account, source):
    client = key_client(account, ["purge", "write"])
    for url in ("/api/v1/purge/", "/api/v1/purge"):
        response = client.post(url, {"source": source.slug}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["source"] == source.slug and response.json()["path"] is None
    # A body that names a missing source is read too (not dropped): 404 from the service, not 400.
    missing = client.post("/api/v1/purge/", {"source": "nope"}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.post("/api/v1/purge/", {}, format="json").json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_urls_are_json_404s_debug_or_not(settings, debug):
    settings.DEBUG = debug
    http = Client()
    for method, url in [("get", "/api/v1/nope"), ("post", "/api/v1/purge/x/"), ("get", "/api/v2/keys"),
                        ("get", "/api/"), ("get", "/api"), ("delete", "/api/v1/keys/not-a-number")]:
        response = getattr(http, method)(url)
        assert response.status_code == 404, (url, response.status_code)
        assert response["Content-Type"] == "application/json" and response["Cache-Control"] == "no-store"
        error = response.json()["error"]
        assert error["code"] == "not_found" and set(error) == {"code", "message"}


@pytest.mark.parametrize("debug", [False, True])
def test_the_rest_of_the_site_keeps_its_html_pages(settings, admin_client, debug):
    settings.DEBUG = debug
    for url in ("/admin/nope/", "/nope", "/apinope"):
        response = admin_client.get(url)
        assert response.status_code == 404 and response["Content-Type"].startswith("text/html"), url


def test_wrong_methods_are_json_405s_with_allow(account):
    client = key_client(account, ["read", "purge"])
    for method, url, allowed in [("delete", "/api/v1/purge", "POST"), ("put", "/api/v1/purge/", "POST"),
                                 ("post", "/api/v1/", "GET"), ("post", "/api/v1/docs/", "GET"),
                                 ("delete", "/api/v1/schema", "GET")]:
        response = getattr(client, method)(url)
        assert response.status_code == 405, (url, response.content)
        assert response.json()["error"]["code"] == "method_not_allowed", url
        assert allowed in response["Allow"], url


def test_a_staff_session_without_an_account_reads_the_docs(client):
    # The report: signed in to the admin, /api/v1/docs/ answered a plain-text 401.
    client.force_login(account_manager_create(username="maria", password="pw"))
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert client.get("/api/v1/redoc/").status_code == 200
    assert client.get("/api/v1/schema/").status_code == 200


@pytest.mark.parametrize("page", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_docs_pages_load_their_files_from_our_static_files(settings, tmp_path, page):
    """As a deployment serves them: collectstatic, then WhiteNoise (DEBUG off, no finders)."""
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--noinput", verbosity=0)
    http = Client()
    html = http.get(page).content.decode()
    assert "cdn." not in html and "googleapis" not in html and "unpkg" not in html
    files = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any(f.endswith(".js") for f in files) and all("drf_spectacular_sidecar/" in f for f in files), files
    for url in files:
        response = http.get(url)
        assert response.status_code == 200 and int(response["Content-Length"]) > 500, url


def test_a_500_is_json_without_a_traceback(settings, monkeypatch, account):
    from accounts import apis

    def boom(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(apis, "account_limits", boom)
    client = key_client(account, ["read"])
    client.raise_request_exception = False
    for debug in (False, True):
        settings.DEBUG = debug
        response = client.get("/api/v1/account/")
        assert response.status_code == 500 and response.json() == {
            "error": {"code": "internal_error", "message": "Internal error."}}, debug
        assert "secret internals" not in response.content.decode()


def test_auth_errors_are_json_and_say_what_to_do(db):
    response = APIClient().get("/api/v1/sources/")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    message = response.json()["error"]["message"]
    assert "Authorization: Bearer" in message and "?account=" in message and "/admin/" in message
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer ck_nope")
    assert bad.get("/api/v1/sources").json()["error"]["code"] == "authentication_failed"


def test_the_browsable_api_keeps_its_html_error_pages_for_a_browser(client, account):
    # A browser asked for the browsable API (Accept: text/html): it shows the error on its page;
    # the same call from a client asking for JSON gets JSON.
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("clerk", password="pw", is_staff=True))
    page = client.get("/api/v1/sources?account=acme", HTTP_ACCEPT="text/html")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")
    assert b"Account managers" in page.content
    data = client.get("/api/v1/sources?account=acme", HTTP_ACCEPT="application/json")
    assert data.status_code == 403 and data.json()["error"]["code"] == "permission_denied"
