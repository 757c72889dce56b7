"""imgix signed URLs: imgix's published signing vectors, and URLs made by imgix's own Python library."""

import io
import time
from urllib.parse import urlsplit

import pytest
from imgix import UrlBuilder
from PIL import Image

from rendering.signing import raw_path_candidates, signature_for, split_signature
from sources.models import Source
from tests.conftest import FIXTURES

TOKEN = "FOO123bar"


@pytest.mark.parametrize(
    "path, query, expected",
    [
        ("/users/1.png", "", "6797c24146142d5b40bde3141fd3600c"),
        ("/users/1.png", "w=400&h=300", "c7b86f666a832434dd38577e38cf86d1"),
        ("/users/1.png", "h=300&w=400", "1a4e48641614d1109c6a7af51be23d18"),
        ("/http%3A%2F%2Favatars.com%2Fjohn-smith.png", "", "493a52f008c91416351f8b33d4883135"),
        ("/http%3A%2F%2Favatars.com%2Fjohn-smith.png", "w=400&h=300", "61ea1cc7add87653bb0695fe25f2b534"),
    ],
)
def test_spec_vectors(path, query, expected):
    assert signature_for(TOKEN, path, query) == expected


def test_s_is_removed_and_order_kept():
    assert split_signature("w=1&h=2&s=abc") == ("w=1&h=2", "abc")
    assert split_signature("s=abc") == ("", "abc")


def test_raw_uri_wins_when_the_server_gives_it():
    meta = {"RAW_URI": "/render/a/my%20photo.jpg?w=1", "PATH_INFO": "/render/a/my photo.jpg"}
    assert raw_path_candidates(meta) == ["/render/a/my%20photo.jpg"]


@pytest.fixture
def signed_source(source):
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=["new-token", TOKEN])
    return source


def imgix_url(path, params, token=TOKEN):
    """imgix-python only takes a bare domain: sign on a placeholder, send path and query here."""
    url = UrlBuilder("placeholder.imgix.net", sign_key=token, use_https=False).create_url(path, params)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


pytestmark = pytest.mark.django_db


def test_imgix_signed_urls_are_served(client, signed_source, origin_root):
    (origin_root / "photos" / "my photo (1).jpg").write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    for path, params in [
        ("/render/acme-photos/astronaut.jpg", {"w": 100, "fm": "png"}),
        ("/render/acme-photos/astronaut.jpg", {}),
        ("/render/acme-photos/my photo (1).jpg", {"h": 50, "auto": "format,compress"}),
    ]:
        response = client.get(imgix_url(path, params))
        assert response.status_code == 200, (path, response.content)


def test_the_old_token_keeps_working_during_rotation(client, signed_source):
    assert client.get(imgix_url("/render/acme-photos/astronaut.jpg", {"w": 10}, token="new-token")).status_code == 200
    assert client.get(imgix_url("/render/acme-photos/astronaut.jpg", {"w": 10}, token=TOKEN)).status_code == 200


def tampered(url):
    path, query = url.split("?")
    yield "other path", path.replace("astronaut", "chelsea").replace(".jpg", ".png") + "?" + query
    yield "changed value", url.replace("w=100", "w=101")
    yield "added parameter", url.replace("?", "?h=5&")
    yield "reordered", path + "?" + "&".join(reversed(query.split("&")[:-1])) + "&" + query.split("&")[-1]
    yield "wrong signature", url[:-1] + ("0" if url[-1] != "0" else "1")
    yield "no signature", url.rsplit("&s=", 1)[0]
    yield "other token", imgix_url("/render/acme-photos/astronaut.jpg", {"w": 100}, token="guess")


def test_any_change_is_403_with_a_clear_body(client, signed_source):
    url = imgix_url("/render/acme-photos/astronaut.jpg", {"w": 100})
    assert client.get(url).status_code == 200
    for what, bad in tampered(url):
        response = client.get(bad)
        assert response.status_code == 403, what
        error = response.json()["error"]
        assert error["code"] == "bad_signature", what
        assert "signature" in error["message"] or "`s` parameter is missing" in error["message"]


def test_expires(client, signed_source):
    past = imgix_url("/render/acme-photos/astronaut.jpg", {"expires": int(time.time()) - 10})
    future = imgix_url("/render/acme-photos/astronaut.jpg", {"expires": int(time.time()) + 600})
    assert client.get(past).status_code == 404 and client.get(past).json()["error"]["code"] == "expired"
    assert client.get(future).status_code == 200


def test_unsigned_sources_ignore_s(client, source):
    assert client.get("/render/acme-photos/astronaut.jpg?w=10&s=whatever").status_code == 200


# Made by @imgix/js-core 3.8.0 (`npm pack @imgix/js-core`, run with node 20), on the same
# placeholder domain and token as imgix_url:
#   new ImgixClient({domain: "placeholder.imgix.net", secureURLToken: "FOO123bar", useHTTPS: false})
#     .buildURL(`/render/acme-photos/${name}`, {w: 10})
# CI has no node (.ci/run), so the URLs it produced are kept here: their path and query.
JS_CORE_URLS = {
    "café ü.png": "/render/acme-photos/caf%C3%A9%20%C3%BC.png?ixlib=js-3.8.0&w=10&s=e907819c5e2b4d9222307f40fc32d926",
    "a+b (1).png": "/render/acme-photos/a%2Bb%20(1).png?ixlib=js-3.8.0&w=10&s=cc1dba96d5dee253718ea6a8da07471a",
    "日本.png": "/render/acme-photos/%E6%97%A5%E6%9C%AC.png?ixlib=js-3.8.0&w=10&s=3b54a98ab87fba5b2b87c5f3ba58080c",
}


def sdk_urls(name: str) -> dict[str, str]:
    """The URL of `name` (on the signed source, w=10) as each imgix SDK signs it."""
    return {"imgix-python": imgix_url(f"/render/acme-photos/{name}", {"w": 10}), "js-core": JS_CORE_URLS[name]}


@pytest.mark.parametrize("name", list(JS_CORE_URLS))
def test_paths_beyond_ascii_verify_as_the_sdks_sign_them(client, signed_source, origin_root, name):
    """Latin-1 characters (`café ü`) as well as others (`日本`), and the characters the two SDKs
    encode differently (`+`, `(`)."""
    (origin_root / "photos" / name).write_bytes((FIXTURES / "chelsea.png").read_bytes())
    for sdk, url in sdk_urls(name).items():
        response = client.get(url)
        assert response.status_code == 200, (sdk, response.content)
        assert Image.open(io.BytesIO(response.content)).width == 10
        # The signature covers this path: another spelling of it is not the signed one.
        other = url.replace("png?", "PNG?")
        assert client.get(other).status_code == 403, sdk
