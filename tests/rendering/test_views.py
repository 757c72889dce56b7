"""The rendering endpoint through Django's test client; jobs run in-process on the real model."""

import io
from urllib.parse import quote

import pytest
from PIL import Image

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.models import Render
from sources.models import Source
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db

URL = "/render/acme-photos/astronaut.jpg?bg-remove=true"


def run_job(job_id):
    job = bg_remove_job_process(job_id=job_id)
    assert job is not None
    return job


def first_then_done(client, url=URL, **headers):
    response = client.get(url, **headers)
    assert response.status_code == 202, response.content
    run_job(response.json()["job"])
    return client.get(url, **headers)


def open_image(response):
    return Image.open(io.BytesIO(b"".join(response.streaming_content) if response.streaming else response.content))


def test_first_request_is_202_with_job_and_retry_after(client, source):
    response = client.get(URL)
    assert response.status_code == 202
    assert int(response["Retry-After"]) > 0
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    job = BgRemoveJob.objects.get()
    assert body == {"status": "queued", "job": str(job.id),
                    "status_url": f"http://testserver/_/jobs/{job.id}"}
    assert client.get(f"/_/jobs/{job.id}").json()["status"] == "queued"


def test_repeated_requests_name_the_same_job(client, source):
    ids = {client.get(URL).json()["job"] for _ in range(3)}
    assert len(ids) == 1 and BgRemoveJob.objects.count() == 1


def test_done_job_serves_a_png_cutout_with_real_alpha(client, source):
    response = first_then_done(client)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "public, max-age=31536000"
    assert "Content-Disposition" not in response
    assert response["ETag"].startswith('"') and response["Last-Modified"]
    image = open_image(response)
    assert image.mode == "RGBA" and image.size == (512, 512)
    alpha = image.getchannel("A")
    assert alpha.getpixel((5, 5)) < 20, "background corner should be transparent"
    assert alpha.getpixel((256, 110)) > 235, "the astronaut's face should be opaque"
    job = BgRemoveJob.objects.get()
    assert (job.status, job.inferences, job.width, job.height) == ("done", 1, 512, 512)
    assert job.inference_seconds > 0 and job.finished_at >= job.started_at


def test_cached_render_needs_no_origin_and_answers_conditionals(client, source, origin_root):
    response = first_then_done(client)
    etag = response["ETag"]
    (origin_root / "photos" / "astronaut.jpg").unlink()
    again = client.get(URL)
    assert again.status_code == 200 and again["ETag"] == etag
    not_modified = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified["ETag"] == etag
    head = client.head(URL)
    assert head.status_code == 200 and head.content == b""
    assert int(head["Content-Length"]) == len(b"".join(again.streaming_content) if again.streaming else again.content)


@pytest.mark.parametrize(
    "accept, content_type",
    [("image/avif,image/webp,*/*", "image/avif"), ("image/webp,*/*", "image/webp"), ("*/*", "image/png")],
)
def test_auto_format_keeps_alpha_and_varies_on_accept(client, source, accept, content_type):
    url = URL + "&auto=format"
    response = first_then_done(client, url, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Vary"] == "Accept"
    image = open_image(response)
    assert image.mode == "RGBA"
    assert image.getchannel("A").getpixel((5, 5)) < 30


def test_formats_share_one_cutout_job(client, source):
    first_then_done(client)
    response = client.get(URL + "&fm=webp")
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert BgRemoveJob.objects.count() == 1 and BgRemoveJob.objects.get().inferences == 1
    assert Render.objects.count() == 2


@pytest.mark.parametrize(
    "account_on, source_mode, enabled",
    [
        (True, "inherit", True),
        (False, "inherit", False),
        (True, "off", False),
        (False, "on", True),
    ],
)
def test_entitlement_inherit_on_off(client, source, account_on, source_mode, enabled):
    source.account.bg_remove_enabled = account_on
    source.account.save()
    Source.objects.filter(pk=source.pk).update(bg_remove=source_mode)
    response = client.get(URL)
    if enabled:
        assert response.status_code == 202
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "bg_remove_not_enabled"
        assert "not enabled for this source" in response.json()["error"]["message"]
        assert response["Cache-Control"] == "no-store"
        assert BgRemoveJob.objects.count() == 0


def test_unknown_source_is_404(client, db):
    response = client.get("/render/nope/a.jpg?bg-remove=true")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "source_not_found"


def test_path_escape_is_400(client, source):
    response = client.get("/render/acme-photos/a/../../secret.jpg")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_path"


def write_origin(origin_root, name, data):
    (origin_root / "photos" / name).write_bytes(data)


def gif_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, data, status, code",
    [
        ("page.jpg", b"<html><body>not an image</body></html>", 422, "not_an_image"),
        ("anim.png", gif_bytes(), 415, "unsupported_image_type"),
        ("huge.jpg", b"\xff\xd8\xff" + b"\0" * (12 * 1024 * 1024), 413, "origin_too_large"),
        ("empty.jpg", b"", 422, "not_an_image"),
    ],
)
def test_bad_origins_end_in_a_clear_4xx(client, source, origin_root, name, data, status, code):
    write_origin(origin_root, name, data)
    url = f"/render/acme-photos/{name}?bg-remove=true"
    job = run_job(client.get(url).json()["job"])
    assert job.status == "failed" and job.error_status == status and job.inferences == 0
    response = client.get(url)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response["Cache-Control"] == "no-store"
    assert not Render.objects.exists()


def test_missing_origin_is_404_after_the_job(client, source):
    url = "/render/acme-photos/missing.jpg?bg-remove=true"
    run_job(client.get(url).json()["job"])
    assert client.get(url).status_code == 404


def test_origin_gone_between_request_and_processing_fails_the_job_with_a_reason(client, source, origin_root,
                                                                                photo_png):
    url = "/render/acme-photos/brief.png?bg-remove=true"
    write_origin(origin_root, "brief.png", photo_png)
    first = client.get(url)
    assert first.status_code == 202
    (origin_root / "photos" / "brief.png").unlink()  # Deleted before a worker gets to it.
    job = run_job(first.json()["job"])
    assert (job.status, job.error_status, job.error_code, job.inferences) == ("failed", 404, "origin_not_found", 0)
    status = client.get(first.json()["status_url"]).json()
    assert status["status"] == "failed" and status["error"]["status"] == 404 and status["error"]["message"]
    later = client.get(url)
    assert later.status_code == 404 and later.json()["error"]["code"] == "origin_not_found"
    assert later["Cache-Control"] == "no-store" and not Render.objects.filter(path="brief.png").exists()


def test_failed_job_is_retried_once_the_origin_is_fixed(client, source, origin_root, photo_png, settings):
    url = "/render/acme-photos/later.png?bg-remove=true"
    run_job(client.get(url).json()["job"])
    assert client.get(url).status_code == 404
    settings.BG_REMOVE_FAILED_RETRY_AFTER = 0
    write_origin(origin_root, "later.png", photo_png)
    response = client.get(url)
    assert response.status_code == 202
    run_job(response.json()["job"])
    assert client.get(url).status_code == 200
    assert BgRemoveJob.objects.count() == 1


def test_plain_render_without_bg_remove(client, source, origin_root):
    response = client.get("/render/acme-photos/astronaut.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    png = client.get("/render/acme-photos/astronaut.jpg?fm=png")
    assert png["Content-Type"] == "image/png" and open_image(png).size == (512, 512)
    assert not BgRemoveJob.objects.exists()
    missing = client.get("/render/acme-photos/none.jpg")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "origin_not_found"


def test_render_domain_host_serves_the_source(client, source, settings):
    settings.RENDER_DOMAIN = "img.example.com"
    settings.ALLOWED_HOSTS = [".img.example.com"]
    response = client.get("/astronaut.jpg?bg-remove=true", HTTP_HOST="acme-photos.img.example.com")
    assert response.status_code == 202
    assert response.json()["status_url"].startswith("http://acme-photos.img.example.com/_/jobs/")
    assert client.get(response.json()["status_url"], HTTP_HOST="acme-photos.img.example.com").status_code == 200


@pytest.mark.parametrize("path", [
    "a%2F..%2F..%2Fsecret.jpg", "%2e%2e/secret.jpg", "a/%00.jpg", "x" * 1100 + ".jpg", "a//b.jpg", "./a.jpg",
])
def test_path_tricks_are_400(client, source, path):
    response = client.get(f"/render/acme-photos/{path}")
    assert response.status_code == 400, path
    assert response.json()["error"]["code"] == "bad_path"


@pytest.mark.parametrize("path", [
    "\uff0e\uff0e/secret.jpg", "\uff0e\uff0e\uff0fsecret.jpg", "\u2025/secret.jpg", "a\u2215..\u2215secret.jpg",
    "\u2024\u2024/secret.jpg", "%C0%AE%C0%AE/secret.jpg",
])
def test_lookalike_dots_and_slashes_are_names_not_traversal(client, source, origin_root, path):
    # Paths are used as sent, never NFKC-folded into "../": these are file names, and missing ones.
    (origin_root / "secret.jpg").write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    response = client.get(f"/render/acme-photos/{path if '%' in path else quote(path)}?w=10")
    assert response.status_code in (400, 404), path
    assert "error" in response.json()


def test_unicode_spellings_are_distinct_names(client, source, origin_root):
    """NFC and NFD spellings of a name are different files to a filesystem or S3, so each names its
    own image and cache entry: nothing is folded onto another file."""
    nfc, nfd = "caf\u00e9.jpg", "cafe\u0301.jpg"
    photos = origin_root / "photos"
    (photos / nfc).write_bytes((photos / "astronaut.jpg").read_bytes())
    composed = client.get(f"/render/acme-photos/{quote(nfc)}?w=16")
    assert composed.status_code == 200
    assert client.get(f"/render/acme-photos/{quote(nfd)}?w=16").status_code == 404
    Image.open(photos / "chelsea.png").convert("RGB").save(photos / nfd, "JPEG")
    decomposed = client.get(f"/render/acme-photos/{quote(nfd)}?w=16")
    assert decomposed.status_code == 200 and decomposed["ETag"] != composed["ETag"]
    assert sorted(Render.objects.values_list("path", flat=True)) == sorted([nfc, nfd])


def test_temporary_origin_failures_are_never_cached(client, account, httpserver, settings):
    from tests.factories import SourceFactory

    settings.ORIGIN_ALLOW_LOOPBACK = True
    SourceFactory(account=account, slug="flaky", kind="web", base_url=httpserver.url_for("/"), local_path="")
    httpserver.expect_ordered_request("/a.jpg").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/a.jpg").respond_with_data(
        (FIXTURES / "astronaut.jpg").read_bytes(), content_type="image/jpeg")
    down = client.get("/render/flaky/a.jpg?w=20")
    assert down.status_code == 502 and down["Cache-Control"] == "no-store"
    assert not Render.objects.filter(path="a.jpg").exists()
    up = client.get("/render/flaky/a.jpg?w=20")
    assert up.status_code == 200 and up["Cache-Control"].startswith("public")


def test_small_renders_are_sent_from_memory_while_their_lookup_is_kept(client, source, settings):
    from django.core.files.storage import default_storage

    from rendering.store import render_lookup_cache_clear, render_purge

    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 1024 * 1024
    render_lookup_cache_clear()
    small = "/render/acme-photos/astronaut.jpg?w=40&fm=png"
    first = client.get(small)
    assert first.status_code == 200
    client.get(small)  # Kept after this read.
    default_storage.delete(Render.objects.get().storage_name)
    # Still sent, the same bytes, with no file behind it.
    again = client.get(small)
    assert again.status_code == 200 and again.content == first.content and again["ETag"] == first["ETag"]
    assert Render.objects.count() == 1
    settings.RENDER_MEMORY_CACHE_BYTES = 10  # Smaller than any render: nothing new is kept.
    render_purge(source=source)  # A purge in this process forgets the bytes at once.
    remade = client.get(small)
    assert remade.status_code == 200 and Render.objects.filter(path="astronaut.jpg").count() == 1
    name = Render.objects.get().storage_name
    default_storage.delete(name)
    # The lost object is noticed when it is opened, and made again (under its content's name).
    assert client.get(small).status_code == 200 and default_storage.exists(Render.objects.get().storage_name)


def test_render_lookups_kept_briefly_survive_a_purge_elsewhere(client, source, settings):
    from rendering.store import render_lookup_cache_clear, render_purge

    settings.RENDER_LOOKUP_CACHE_SECONDS = 60
    settings.RENDER_MEMORY_CACHE_BYTES = 0  # The lookup alone: the bytes are read each time.
    render_lookup_cache_clear()
    url = "/render/acme-photos/astronaut.jpg?w=33"
    first = client.get(url)
    assert client.get(url)["ETag"] == first["ETag"]
    # Another process purges: this one still remembers the render, finds its object gone,
    # and renders it again instead of failing.
    Render.objects.all().delete()
    from django.core.files.storage import default_storage

    for name in default_storage.listdir("renders")[0]:
        import shutil

        shutil.rmtree(default_storage.path(f"renders/{name}"))
    again = client.get(url)
    assert again.status_code == 200 and Render.objects.count() == 1
    render_purge(source=source)  # A purge in this process forgets at once.
    assert client.get(url).status_code == 200 and Render.objects.count() == 1


NEGOTIATED = "/render/acme-photos/astronaut.jpg?w=40&auto=format"
BODY_HEADERS = ("Content-Type", "Content-Length")


@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_304_is_the_200s_headers_without_the_bodys(client, source, if_none_match):
    ok = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp")
    assert ok.status_code == 200 and ok["Content-Type"] == "image/webp" and ok["Vary"] == "Accept"
    tag = if_none_match.format(etag=ok["ETag"])
    not_modified = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_NONE_MATCH=tag)
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert "Content-Type" not in not_modified
    # The test client's stack (settings.MIDDLEWARE) adds a Content-Length; the render stack does not
    # (test_hot.py).
    assert {k: v for k, v in not_modified.items() if k not in BODY_HEADERS} == {
        k: v for k, v in ok.items() if k not in BODY_HEADERS}


def test_if_none_match_names_no_other_render(client, source):
    ok = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp")
    for tag in ('"other"', 'W/"other", "another"', ok["ETag"].strip('"')):
        response = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_NONE_MATCH=tag)
        assert response.status_code == 200 and response.content == ok.content, tag


def test_if_modified_since_alone_is_answered_by_the_renders_date(client, source):
    """A CDN that revalidates by date alone (no ETag kept) gets a 304 too; If-None-Match, when
    sent, decides instead (RFC 9110 §13.2.2)."""
    from django.utils.http import http_date, parse_http_date

    ok = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp")
    made = parse_http_date(ok["Last-Modified"])
    same = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_MODIFIED_SINCE=ok["Last-Modified"])
    assert same.status_code == 304 and "Content-Type" not in same and same["ETag"] == ok["ETag"]
    later = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_MODIFIED_SINCE=http_date(made + 60))
    assert later.status_code == 304
    earlier = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_MODIFIED_SINCE=http_date(made - 60))
    assert earlier.status_code == 200 and earlier.content == ok.content
    garbled = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_MODIFIED_SINCE="yesterday")
    assert garbled.status_code == 200
    # A tag that names another render wins over a date that would match.
    other = client.get(NEGOTIATED, HTTP_ACCEPT="image/webp", HTTP_IF_NONE_MATCH='"other"',
                       HTTP_IF_MODIFIED_SINCE=ok["Last-Modified"])
    assert other.status_code == 200


def test_if_none_match_star_on_no_image_is_its_404(client, source):
    # `*` matches a current representation only (RFC 9110 §13.1.2): there is none to match.
    response = client.get("/render/acme-photos/missing.jpg?w=40", HTTP_IF_NONE_MATCH="*")
    assert response.status_code == 404


def test_auto_format_leaves_out_what_accept_weighs_zero_each_format_its_own_render(client, source):
    # One URL, Accepts in turn: each answer is the format its Accept allows, rendered under a key
    # of its own (never an earlier Accept's render) and marked as varying on Accept.
    for accept, content_type in [
        ("image/avif,image/webp,*/*", "image/avif"),
        ("image/avif;q=0, image/webp", "image/webp"),
        ("image/webp;q=0", "image/jpeg"),
        ("image/avif;q=0.0,image/webp;q=0,*/*", "image/jpeg"),
        ("image/webp;q=0.9, image/avif;q=0.5", "image/webp"),
        ("image/avif;q=1, image/webp", "image/avif"),
    ]:
        response = client.get(NEGOTIATED, HTTP_ACCEPT=accept)
        assert response.status_code == 200, accept
        assert response["Content-Type"] == content_type and response["Vary"] == "Accept", accept
        assert open_image(response).format == content_type.split("/")[1].upper(), accept
    assert Render.objects.count() == 3


def test_a_fallbacks_304_keeps_its_no_store_and_reason(client, source):
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-fallback=true&w=40"
    ok = client.get(url)
    assert ok.status_code == 200 and ok["Cache-Control"] == "no-store" and ok["X-Bg-Remove-Status"] == "processing"
    not_modified = client.get(url, HTTP_IF_NONE_MATCH=ok["ETag"])
    assert not_modified.status_code == 304 and "Content-Type" not in not_modified
    assert {k: v for k, v in not_modified.items() if k not in BODY_HEADERS} == {
        k: v for k, v in ok.items() if k not in BODY_HEADERS}
