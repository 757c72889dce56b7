"""GET /api/v1/: the API's resources and docs, for anyone, with no account's data in it."""

import pytest
from rest_framework.test import APIClient

from tests.api.test_api import key_client
from tests.api.test_tenancy import PUBLIC, api_routes

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/api/v1/", "/api/v1"])
def test_index_answers_anyone(url, account):
    response = APIClient().get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    index = response.json()
    assert index["docs"] == "http://testserver/api/v1/docs/"
    assert index["redoc"] == "http://testserver/api/v1/redoc/"
    assert index["schema"] == "http://testserver/api/v1/schema/"
    assert index["resources"]["purge"] == "http://testserver/api/v1/purge"
    assert "Bearer" in index["authentication"] and "account" in index["authentication"]
    assert account.slug not in response.content.decode() and account.name not in response.content.decode()


def test_index_lists_every_collection_and_each_one_answers(account):
    collections = {name.removeprefix("api:") for name, route, _ in api_routes()
                   if "<" not in route and name not in PUBLIC}
    index = APIClient().get("/api/v1/").json()
    assert set(index["resources"]) == collections
    client = key_client(account, ["read", "write", "purge", "keys"])
    for name, url in index["resources"].items():
        # Each URL is a real route: a GET answers it (a write-only route answers 405, never 404).
        assert client.get(url).status_code in (200, 405), name
    for page in ("docs", "redoc", "schema"):
        assert APIClient().get(index[page]).status_code == 200, page


def test_a_wrong_key_does_not_stop_the_index(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer ck_not_a_key")
    assert client.get("/api/v1/").status_code == 200
    assert client.get("/api/v1/sources").status_code == 401


def test_index_is_in_the_schema_once_and_public(db):
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/"]["get"]
    assert operation["operationId"] == "index" and not operation.get("security")
    assert set(operation["responses"]) == {"200"}
    assert "/api/v1" not in schema["paths"]
