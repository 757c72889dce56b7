"""/v1.0/'s routes with or without a trailing slash (a POST keeps its body), and its unknown
routes, wrong methods and 500s in remove.bg's error shape, DEBUG or not."""

import base64

import pytest
from django.test import Client
from django.urls import resolve, reverse

from tests.removebg_api.test_api import errors

pytestmark = [pytest.mark.django_db]


@pytest.mark.parametrize("name", ["removebg", "account", "improve"])
def test_each_route_with_or_without_its_slash(name):
    assert reverse(f"removebg:{name}") == f"/v1.0/{name}"
    assert resolve(f"/v1.0/{name}").view_name == resolve(f"/v1.0/{name}/").view_name == f"removebg:{name}"


def test_account_with_a_slash_answers_as_without(call):
    plain, slashed = call(path="/v1.0/account", method="get"), call(path="/v1.0/account/", method="get")
    assert plain.status_code == slashed.status_code == 200
    assert plain.json() == slashed.json()


def test_a_post_with_a_slash_keeps_its_body(call):
    # The body is read: a base64 field that is not an image is refused for what it is, not as missing.
    with_body = call({"image_file_b64": base64.b64encode(b"not an image").decode()}, path="/v1.0/removebg/")
    without = call({}, path="/v1.0/removebg/")
    assert with_body.status_code == without.status_code == 400
    assert errors(without)["code"] != errors(with_body)["code"], (without.json(), with_body.json())


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_routes_are_404s_in_removebgs_shape(settings, debug):
    settings.DEBUG = debug
    for method, url in [("get", "/v1.0/nope"), ("post", "/v1.0/removebg/x"), ("get", "/v1.0/"), ("get", "/v1.0")]:
        response = getattr(Client(), method)(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json" and errors(response)["code"] == "not_found", url


def test_wrong_methods_are_405s_in_removebgs_shape(call):
    for method, path, allowed in [("get", "/v1.0/removebg/", "POST"), ("delete", "/v1.0/account/", "GET")]:
        response = call(path=path, method=method)
        assert response.status_code == 405 and response["Allow"] == allowed
        assert errors(response)["code"] == "method_not_allowed"


def test_a_500_is_in_removebgs_shape_without_a_traceback(settings, monkeypatch, removebg_key):
    from removebg_api import views

    def boom(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views, "api_key_authenticate", boom)
    client = Client(raise_request_exception=False)
    for debug in (False, True):
        settings.DEBUG = debug
        response = client.get("/v1.0/account/", headers={"X-Api-Key": removebg_key})
        assert response.status_code == 500 and errors(response)["code"] == "internal_error", debug
        assert "secret internals" not in response.content.decode()
