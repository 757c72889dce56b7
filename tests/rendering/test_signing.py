"""imgix signed URLs: imgix's published signing vectors, and URLs made by imgix's own Python library."""

import time
from urllib.parse import urlsplit

import pytest
from imgix import UrlBuilder

from rendering.signing import raw_path_candidates, signature_for, split_signature
from sources.models import Source

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
