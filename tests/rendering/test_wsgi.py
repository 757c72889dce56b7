"""rendering/wsgi.py (config/wsgi.py's application): rendering requests take the short middleware
chain, everything else the full one."""

import io
import json
import sys

import pytest
from django.test import RequestFactory
from PIL import Image

from config.wsgi import application

# Real WSGI calls fire request_started, which closes the connection: so no wrapping transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def call(path, *, query="", host="testserver", method="GET", **extra):
    environ = RequestFactory()._base_environ(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method,
                                            HTTP_HOST=host, **extra)
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["wsgi.errors"] = sys.stderr
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(headers)

    body = b"".join(application(environ, start_response))
    return started["status"], started["headers"], body


def middleware_names(handler):
    names, layer = [], handler._middleware_chain
    while layer is not None:
        layer = getattr(layer, "__wrapped__", layer)  # Django wraps each in its exception handler.
        names.append(type(layer).__name__)
        layer = getattr(layer, "get_response", None)
    return names


def test_render_paths_skip_sessions_csrf_and_auth(settings):
    settings.RENDER_DOMAIN = "img.example.test"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".img.example.test"]
    render, full = application.render, application.full
    assert application.handler_for({"PATH_INFO": "/render/acme-photos/a.jpg"}) is render
    assert application.handler_for({"PATH_INFO": "/a.jpg", "HTTP_HOST": "acme-photos.img.example.test"}) is render
    assert application.handler_for({"PATH_INFO": "/a.jpg", "HTTP_HOST": "acme-photos.img.example.test:8000"}) is render
    # Not a source host: a deeper subdomain, the bare domain, another host.
    for host in ("a.b.img.example.test", "img.example.test", "example.test", "[::1]:8000"):
        assert application.handler_for({"PATH_INFO": "/a.jpg", "HTTP_HOST": host}) is full, host
    for path in ("/admin/", "/api/v1/account", "/healthz", "/_/jobs/x"):
        assert application.handler_for({"PATH_INFO": path}) is full, path
    assert "SessionMiddleware" not in middleware_names(render)
    assert "CsrfViewMiddleware" not in middleware_names(render)
    assert {"SessionMiddleware", "CsrfViewMiddleware", "AuthenticationMiddleware"} <= set(middleware_names(full))


def test_a_render_through_the_short_chain(source, settings):
    status, headers, body = call("/render/acme-photos/astronaut.jpg", query="w=40&fm=png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(body)).size == (40, 40)
    assert "Set-Cookie" not in headers and "Vary" not in headers  # No session, no cookie vary.
    # Errors keep the JSON shape without DRF.
    status, headers, body = call("/render/nope/astronaut.jpg")
    assert status == 404 and json.loads(body)["error"]["code"] == "source_not_found"
    status, headers, body = call("/render/acme-photos/astronaut.jpg", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD" and json.loads(body)["error"]["code"] == "method_not_allowed"


def test_a_render_on_a_source_host(source, settings):
    settings.RENDER_DOMAIN = "img.example.test"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".img.example.test"]
    status, headers, body = call("/astronaut.jpg", query="w=30&fm=png", host="acme-photos.img.example.test")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (30, 30)


def test_the_process_environment_is_not_request_metadata(source, monkeypatch):
    # granian copies os.environ into every request's environ; the application drops it again.
    assert "DJANGO_SECRET_KEY" in application._process_keys
    environ = RequestFactory()._base_environ(PATH_INFO="/render/acme-photos/astronaut.jpg", QUERY_STRING="w=20",
                                            DJANGO_SECRET_KEY="tests-only-secret", HTTP_PROXY="http://evil:1")
    monkeypatch.setattr(application, "_process_keys", (*application._process_keys, "HTTP_PROXY"))
    environ["wsgi.input"], environ["wsgi.errors"] = io.BytesIO(b""), sys.stderr
    statuses = []
    b"".join(application(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses[0].startswith("200")
    assert "DJANGO_SECRET_KEY" not in environ and "HTTP_PROXY" not in environ and environ["QUERY_STRING"] == "w=20"


def test_other_paths_keep_the_full_chain(admin_user):
    status, headers, _ = call("/admin/login/")
    assert status == 200 and "csrftoken" in headers.get("Set-Cookie", "")


@pytest.mark.parametrize("path", [
    "/render/acme-photos/a.jpg", "/render/acme-photos/dir/b c.png", "/render/acme-photos/x/",
    "/render/acme-photos/", "/render//a.jpg", "/render/acme-photos", "/render/", "/_/jobs/" + "0" * 32,
    "/_/jobs/00000000-0000-0000-0000-000000000000",
])
def test_the_render_route_matched_by_hand_is_djangos_match(path):
    """RenderHandler.resolve_request's shortcut gives what Django's resolver gives, or defers."""
    from django.urls import Resolver404, resolve

    from rendering.urls import RenderPathUrls

    request = RequestFactory().get(path)
    request.urlconf = RenderPathUrls
    try:
        expected = resolve(path, urlconf=RenderPathUrls)
    except Resolver404:
        expected = None
    try:
        got = application.render.resolve_request(request)
    except Resolver404:
        got = None
    if expected is None:
        assert got is None
    else:
        assert (got.func, got.args, got.kwargs, got.url_name, got.route) == (
            expected.func, expected.args, expected.kwargs, expected.url_name, expected.route)
