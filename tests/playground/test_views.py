"""The playground's calls over HTTP: who may sign in and see what, URLs signed server-side, dropped
images through the same gate as every way in, and their private renders."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from PIL import Image

from accounts.models import Account
from accounts.services import account_manager_create, api_key_create, api_key_revoke
from playground.access import SESSION_KEY
from rendering.gate import Door, Entry, SourceNotFoundError, render_gate
from sources.models import Source, Upload
from sources.services import source_uploads_ensure
from tests.factories import AccountFactory, SourceFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]
MB = 1024 * 1024


@pytest.fixture
def signed_source(account):
    return SourceFactory(account=account, slug="acme-signed", kind="local", local_path="photos",
                         require_signature=True, secure_tokens=["tok-playground-1"])


@pytest.fixture
def other_source(origin_root):
    return SourceFactory(account=AccountFactory(slug="other", name="Other"), slug="other-photos")


def key_client(account, scopes=("read", "write")) -> tuple[Client, str]:
    _, key = api_key_create(account=account, scopes=list(scopes))
    client = Client()
    response = client.post("/playground/sign-in", {"key": key})
    assert response.status_code == 302, response.content
    return client, key


def post_json(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def upload(client, data: bytes, account="acme", **extra):
    return client.generic("POST", f"/playground/uploads?account={account}", data,
                          content_type="application/octet-stream", **extra)


def jpeg(size=(320, 240), colour=(200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=90)
    return out.getvalue()


# --- Signing in ----------------------------------------------------------------------------------

def test_the_page_asks_a_visitor_to_sign_in(client):
    response = client.get("/playground/")
    assert response.status_code == 200
    assert b'name="key"' in response.content and b"csrfmiddlewaretoken" in response.content
    assert client.get("/playground/sources?account=acme").json()["error"]["code"] == "sign_in_required"


def test_a_key_signs_in_and_the_session_keeps_its_id_not_its_secret(account, source, caplog):
    caplog.set_level("DEBUG")
    client, key = key_client(account)
    session = client.session
    assert session[SESSION_KEY] == account.api_keys.get().pk
    assert key not in json.dumps(dict(session)) and key not in str(client.cookies)
    page = client.get("/playground/")
    assert b"playground-config" in page.content and b"playground/playground.js" in page.content
    assert key.encode() not in page.content
    body = client.get("/playground/sources?account=acme").json()
    assert [s["slug"] for s in body["sources"]] == ["acme-photos"]
    assert body["sources"][0]["files"] == ["astronaut.jpg", "chelsea.png"]
    assert "POST /playground/sign-in 302" in caplog.text and key not in caplog.text


@pytest.mark.parametrize("key, message", [
    ("ck_nothing_here", b"unknown, revoked or expired"),
    ("", b"unknown, revoked or expired"),
])
def test_a_bad_key_is_refused_with_a_message(client, key, message):
    response = client.post("/playground/sign-in", {"key": key})
    assert response.status_code == 403 and message in response.content
    assert SESSION_KEY not in client.session


def test_a_key_without_read_is_refused(client, account):
    _, key = api_key_create(account=account, scopes=["removebg"])
    response = client.post("/playground/sign-in", {"key": key})
    assert response.status_code == 403 and b"`read` scope" in response.content


def test_a_key_revoked_after_sign_in_stops_working_at_once(account, source):
    client, _ = key_client(account)
    api_key_revoke(api_key=account.api_keys.get())
    assert client.get("/playground/sources?account=acme").status_code == 401
    assert SESSION_KEY not in client.session


def test_a_key_expired_after_sign_in_stops_working(account, source):
    client, _ = key_client(account)
    account.api_keys.update(expires_at=timezone.now())
    assert client.get("/playground/sources?account=acme").status_code == 401


def test_sign_in_and_every_post_need_the_csrf_token(account, source):
    _, key = api_key_create(account=account, scopes=["read"])
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/playground/sign-in", {"key": key}).status_code == 403
    page = strict.get("/playground/")
    token = page.context["csrf_token"]
    assert strict.post("/playground/sign-in", {"key": key, "csrfmiddlewaretoken": str(token)}).status_code == 302
    body = json.dumps({"account": "acme", "source": "acme-photos", "path": "astronaut.jpg", "query": ""})
    assert strict.post("/playground/url", body, content_type="application/json").status_code == 403
    assert strict.generic("POST", "/playground/uploads?account=acme", jpeg(),
                          content_type="application/octet-stream").status_code == 403
    token = strict.get("/playground/").context["csrf_token"]
    assert strict.post("/playground/url", body, content_type="application/json",
                       HTTP_X_CSRFTOKEN=str(token)).status_code == 200


def test_sign_out_forgets_the_key(account, source):
    client, _ = key_client(account)
    assert client.post("/playground/sign-out").status_code == 302
    assert client.get("/playground/sources?account=acme").status_code == 401


# --- Accounts a visitor sees ------------------------------------------------------------------------

def test_a_key_sees_its_own_account_only(account, source, other_source):
    client, _ = key_client(account)
    response = client.get("/playground/sources?account=other")
    assert response.status_code == 404 and response.json()["error"]["code"] == "account_not_found"
    response = post_json(client, "/playground/url", {"account": "acme", "source": "other-photos",
                                                     "path": "astronaut.jpg", "query": ""})
    assert response.status_code == 404
    assert [a["slug"] for a in client.get("/playground/").context["config"]["accounts"]] == ["acme"]


def test_an_account_manager_sees_every_account(client, source, other_source):
    account_manager_create(username="anna", password="a-long-test-password")
    client.login(username="anna", password="a-long-test-password")
    config = client.get("/playground/").context["config"]
    assert {a["slug"] for a in config["accounts"]} == {"acme", "other"}
    assert client.get("/playground/sources?account=other").json()["sources"][0]["slug"] == "other-photos"


def test_staff_outside_the_managers_group_are_not_let_in(client, source):
    get_user_model().objects.create_user(username="bob", password="a-long-test-password", is_staff=True)
    client.login(username="bob", password="a-long-test-password")
    assert client.get("/playground/sources?account=acme").status_code == 401
    assert b'name="key"' in client.get("/playground/").content


def test_a_superuser_is_let_in(client, source):
    get_user_model().objects.create_superuser(username="root", password="a-long-test-password")
    client.login(username="root", password="a-long-test-password")
    assert client.get("/playground/sources?account=acme").status_code == 200


# --- URLs ------------------------------------------------------------------------------------------

def test_the_url_of_an_unsigned_source(account, source):
    client, _ = key_client(account)
    response = post_json(client, "/playground/url", {"account": "acme", "source": "acme-photos",
                                                     "path": "astronaut.jpg", "query": "bg-remove=true&w=300"})
    assert response.json() == {"url": "http://testserver/render/acme-photos/astronaut.jpg?bg-remove=true&w=300",
                               "signed": False}


def test_a_signed_source_gets_a_url_signed_server_side_that_renders(account, source, signed_source):
    client, _ = key_client(account)
    response = post_json(client, "/playground/url", {"account": "acme", "source": "acme-signed",
                                                     "path": "chelsea.png", "query": "w=120&fm=png"})
    body = response.json()
    assert body["signed"] is True and "&s=" in body["url"]
    assert "tok-playground-1" not in response.content.decode()
    anonymous = Client()
    path = body["url"].removeprefix("http://testserver")
    image = anonymous.get(path)
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).width == 120
    # The same URL without its signature, or with another query, is refused.
    assert anonymous.get(path.split("&s=")[0]).status_code == 403
    assert anonymous.get(path.replace("w=120", "w=121")).status_code == 403


@pytest.mark.parametrize("path, query, status, code", [
    ("astronaut.jpg", "bg-remove=true&bg-remove-model=nope", 400, "bg_remove_model_unavailable"),
    ("astronaut.jpg", "fm=mp4", 400, None),
    ("../secret.jpg", "", 400, None),
    ("astronaut.jpg", "w=10&s=deadbeef", 400, "signature_given"),
])
def test_a_bad_url_is_refused_with_its_reason(account, source, path, query, status, code):
    client, _ = key_client(account)
    response = post_json(client, "/playground/url", {"account": "acme", "source": "acme-photos", "path": path,
                                                     "query": query})
    assert response.status_code == status and response.json()["error"]["message"]
    if code:
        assert response.json()["error"]["code"] == code


def test_the_uploads_source_has_no_public_url(account, source):
    client, _ = key_client(account)
    assert upload(client, jpeg()).status_code == 201
    uploads = Source.objects.get(account=account, kind=Source.Kind.UPLOADS)
    response = post_json(client, "/playground/url", {"account": "acme", "source": uploads.slug,
                                                     "path": "x.jpg", "query": ""})
    assert response.json()["error"]["code"] == "uploads_not_public"
    assert uploads.slug not in [s["slug"] for s in client.get("/playground/sources?account=acme").json()["sources"]]


# --- Dropped images ----------------------------------------------------------------------------

def test_a_dropped_jpeg_is_kept_as_an_upload_and_rendered_privately(account, source):
    client, _ = key_client(account)
    response = upload(client, jpeg())
    assert response.status_code == 201
    body = response.json()
    assert body["path"].endswith(".jpg") and (body["width"], body["height"]) == (320, 240)
    upload_row = Upload.objects.get()
    assert upload_row.source.kind == Source.Kind.UPLOADS and upload_row.source.account == account
    assert upload(client, jpeg()).json()["path"] == body["path"]  # The same content: one upload.

    render = client.get(body["render"] + "?w=100&fm=png", HTTP_X_PLAYGROUND="1")
    assert render.status_code == 200 and render["Content-Type"] == "image/png"
    assert render["Cache-Control"] == "private, no-store"
    assert Image.open(io.BytesIO(render.content)).size == (100, 75)
    # Not from another page (no X-Playground), not by anyone signed out, not through /render/.
    assert client.get(body["render"] + "?w=100", ).json()["error"]["code"] == "playground_page_only"
    assert Client().get(body["render"], HTTP_X_PLAYGROUND="1").status_code == 401
    assert Client().get(f"/render/{upload_row.source.slug}/{body['path']}").status_code == 404


def test_a_render_of_an_upload_with_bg_remove_answers_202_with_its_job(account, source, settings):
    client, _ = key_client(account)
    body = upload(client, jpeg()).json()
    response = client.get(body["render"] + "?bg-remove=true", HTTP_X_PLAYGROUND="1")
    assert response.status_code == 202 and response["Retry-After"]
    assert response.json()["status"] == "queued" and "/_/jobs/" in response.json()["status_url"]


def test_an_upload_render_refuses_nested_images_and_unknown_names(account, source):
    client, _ = key_client(account)
    body = upload(client, jpeg()).json()
    response = client.get(body["render"] + "?mark=x.png", HTTP_X_PLAYGROUND="1")
    assert response.status_code == 400 and response.json()["error"]["code"] == "playground_images"
    response = client.get("/playground/uploads/acme/..%2Fetc.jpg", HTTP_X_PLAYGROUND="1")
    assert response.status_code == 404
    response = client.get(f"/playground/uploads/acme/{'0' * 64}.jpg", HTTP_X_PLAYGROUND="1")
    assert response.status_code == 404


def test_another_accounts_upload_cannot_be_rendered(account, source, other_source):
    client, _ = key_client(account)
    body = upload(client, jpeg()).json()
    other_client, _ = key_client(other_source.account)
    response = other_client.get(f"/playground/uploads/acme/{body['path']}", HTTP_X_PLAYGROUND="1")
    assert response.status_code == 404
    # Its own uploads do not hold it either.
    response = other_client.get(f"/playground/uploads/other/{body['path']}", HTTP_X_PLAYGROUND="1")
    assert response.status_code == 404


def test_a_file_declared_over_12_mb_is_refused_before_its_body_is_read(account, source):
    client, _ = key_client(account)

    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body was read")

    # The declared length alone decides: the body is never read.
    response = client.generic("POST", "/playground/uploads?account=acme", b"", content_type="application/octet-stream",
                              CONTENT_LENGTH=str(13 * MB), **{"wsgi.input": Unreadable()})
    assert response.status_code == 413 and response.json()["error"]["code"] == "origin_too_large"
    assert "13.0 MB" in response.json()["error"]["message"] and "12 MB" in response.json()["error"]["message"]
    assert not Upload.objects.exists()


def test_a_13_mb_file_is_refused(account, source):
    client, _ = key_client(account)
    response = upload(client, b"\xff\xd8\xff" + bytes(13 * MB))
    assert response.status_code == 413 and not Upload.objects.exists()


def test_a_pdf_renamed_jpg_is_refused_by_its_content(account, source):
    client, _ = key_client(account)
    response = upload(client, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_image_type"
    assert "JPG and PNG" in response.json()["error"]["message"]
    assert not Upload.objects.exists()


def test_a_gif_is_refused_though_renders_decode_it(account, source):
    client, _ = key_client(account)
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    response = upload(client, out.getvalue())
    assert response.status_code == 415 and "GIF" in response.json()["error"]["message"]


def test_a_corrupt_jpeg_is_refused(account, source):
    client, _ = key_client(account)
    response = upload(client, b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    assert response.status_code == 422


def test_an_empty_file_is_refused(account, source):
    client, _ = key_client(account)
    assert upload(client, b"", CONTENT_LENGTH="0").json()["error"]["code"] == "empty_upload"
    assert upload(client, b"", CONTENT_LENGTH="").json()["error"]["code"] == "length_required"


def test_a_read_only_key_may_not_drop_images(account, source):
    client, _ = key_client(account, scopes=("read",))
    response = upload(client, jpeg())
    assert response.status_code == 403 and response.json()["error"]["code"] == "upload_forbidden"


def test_drops_count_against_the_accounts_request_rate(account, source):
    Account.objects.filter(pk=account.pk).update(render_rate_limit="2/m")
    client, _ = key_client(account)
    assert upload(client, jpeg(colour=(1, 2, 3))).status_code == 201
    assert upload(client, jpeg(colour=(4, 5, 6))).status_code == 201
    response = upload(client, jpeg(colour=(7, 8, 9)))
    assert response.status_code == 429 and response["Retry-After"]
    assert Upload.objects.count() == 2


def test_the_playground_door_reaches_only_the_accounts_uploads(account, source, other_source):
    with pytest.raises(SourceNotFoundError):
        render_gate(Entry(door=Door.PLAYGROUND, source=source, path="astronaut.jpg", account=account))
    uploads = source_uploads_ensure(account=account)
    assert render_gate(Entry(door=Door.PLAYGROUND, source=uploads, path=f"{'a' * 64}.jpg", account=account))
    with pytest.raises(SourceNotFoundError):
        render_gate(Entry(door=Door.PLAYGROUND, source=uploads, path=f"{'a' * 64}.jpg",
                          account=other_source.account))
    with pytest.raises(SourceNotFoundError):
        render_gate(Entry(door=Door.REQUEST, source=uploads, path=f"{'a' * 64}.jpg"))
