"""The remove.bg API on our server: authentication, inputs (normal and hostile), limits, credits,
the job it waits for, /account, /improve, uploads' purge and retention."""

import base64
import io
import json
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from removebg_api.models import CreditAccount, Improvement
from removebg_api.retention import uploads_expire
from rendering.store import render_purge
from sources.models import Source, Upload
from tests import hostile

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]


def errors(response):
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    assert {"title", "code"} <= set(body["errors"][0])
    return body["errors"][0]


def png(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


class TestAuthentication:
    def test_missing_key_is_403_in_remove_bg_shape(self, call):
        response = call({"image_url": "http://10.0.0.1/a.jpg"}, key=None)
        assert response.status_code == 403
        assert errors(response) == {"title": "Missing API Key", "code": "missing_api_key"}

    def test_wrong_key_is_403(self, call):
        for key in ("nonsense", "ck_00000000_" + "0" * 48):
            response = call({}, key=key)
            assert response.status_code == 403 and errors(response)["title"] == "API Key invalid"

    def test_a_key_without_the_removebg_scope_is_403(self, call, account):
        _, key = api_key_create(account=account, scopes=["read", "write", "purge", "keys"])
        response = call({}, key=key)
        assert response.status_code == 403 and errors(response)["code"] == "scope_missing"

    def test_our_bearer_keys_are_not_accepted_in_authorization(self, call, removebg_key):
        response = call({}, key=None, headers={"Authorization": f"Bearer {removebg_key}"})
        assert response.status_code == 403

    def test_account_and_improve_need_the_key_too(self, call):
        assert call(path="/v1.0/account", method="get", key=None).status_code == 403
        assert call({}, path="/v1.0/improve", key="x").status_code == 403

    def test_other_methods_are_405(self, call):
        response = call(path="/v1.0/removebg", method="get")
        assert response.status_code == 405 and response["Allow"] == "POST"


class TestInputs:
    def test_no_image(self, call):
        response = call({"size": "preview"})
        assert response.status_code == 400 and errors(response)["code"] == "missing_source"

    def test_two_images(self, call):
        response = call({"image_url": "http://10.0.0.1/a.jpg", "image_file_b64": base64.b64encode(png()).decode()})
        assert response.status_code == 400 and errors(response)["code"] == "multiple_sources"

    @pytest.mark.parametrize("field, value, code", [
        ("size", "enormous", "invalid_size"),
        ("format", "gif", "invalid_format"),
        ("channels", "rgb", "invalid_channels"),
        ("crop_margin", "10px 20 30", "invalid_crop_margin"),
        ("crop_margin", "60%", "invalid_crop_margin"),
        ("bg_color", "not-a-colour", "invalid_bg_color"),
        ("scale", "5%", "invalid_scale"),
        ("position", "left", "invalid_position"),
        ("roi", "0 0 10", "invalid_roi"),
        ("crop", "maybe", "invalid_crop"),
        ("semitransparency", "sometimes", "invalid_semitransparency"),
    ])
    def test_bad_options_are_400_with_remove_bg_codes(self, call, field, value, code):
        response = call({field: value, "image_file_b64": base64.b64encode(png()).decode()})
        assert response.status_code == 400 and errors(response)["code"] == code

    def test_not_an_image(self, call):
        response = call({"image_file": io.BytesIO(b"%PDF-1.4 not an image")})
        assert response.status_code == 400
        assert errors(response)["code"] == "invalid_file_type"
        assert not Upload.objects.exists() and not BgRemoveJob.objects.exists()

    def test_unsupported_image_type(self, call):
        response = call({"image_file": io.BytesIO(hostile.svg())})
        assert response.status_code == 400 and errors(response)["code"] == "invalid_file_type"

    def test_upload_over_the_byte_cap(self, call, settings):
        settings.ORIGIN_MAX_BYTES = 1000
        response = call({"image_file": io.BytesIO(b"\x89PNG" + b"x" * 2000)})
        assert response.status_code == 400 and errors(response)["code"] == "file_too_large"

    def test_base64_over_the_byte_cap_is_refused_before_decoding(self, call, settings):
        settings.ORIGIN_MAX_BYTES = 1000
        response = call(json.dumps({"image_file_b64": "A" * 5000}), content_type="application/json")
        assert response.status_code == 400 and errors(response)["code"] == "file_too_large"

    def test_body_over_the_request_cap_is_refused_unread(self, call, settings):
        settings.REMOVEBG_MAX_REQUEST_BYTES = 10_000
        response = call("image_file_b64=" + "A" * 20_000, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 400 and errors(response)["code"] == "file_too_large"

    def test_bad_base64(self, call):
        response = call({"image_file_b64": "@@@not base64@@@"}, content_type="application/json")
        assert response.status_code == 400
        assert errors(response)["code"] in ("failed_to_read_image", "invalid_file_type")

    def test_a_large_plain_multipart_field_is_refused_with_what_to_do(self, call):
        response = call({"image_file_b64": "A" * (3 * 1024 * 1024)})
        assert response.status_code == 400
        error = errors(response)
        assert error["code"] == "file_too_large" and "image_file" in error["detail"]

    def test_deeply_nested_json_is_a_400(self, call):
        response = call("[" * 100_000 + "]" * 100_000, content_type="application/json")
        assert response.status_code == 400 and errors(response)["code"] == "invalid_parameters"

    def test_non_string_fields_are_a_400(self, call):
        response = call(json.dumps({"image_url": {"nested": 1}}), content_type="application/json")
        assert response.status_code == 400 and errors(response)["code"] == "invalid_parameters"

    def test_json_that_is_not_an_object(self, call):
        response = call("[1, 2]", content_type="application/json")
        assert response.status_code == 400 and errors(response)["code"] == "invalid_parameters"

    @pytest.mark.parametrize("url", ["http://10.0.0.1/a.jpg", "http://127.0.0.1:9/a.jpg", "http://[::1]/a.jpg",
                                     "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"])
    def test_image_url_to_a_private_address_is_refused(self, call, url):
        response = call({"image_url": url})
        assert response.status_code == 400
        error = errors(response)
        assert error["code"] == "failed_image_download", error

    def test_decompression_bomb_is_refused_from_its_header(self, call, media_storage):
        response = call({"image_file": io.BytesIO(hostile.png_huge_header())})
        assert response.status_code == 400 and errors(response)["code"] == "resolution_too_high"
        assert not Upload.objects.exists() and not BgRemoveJob.objects.exists()
        assert not (media_storage / "uploads").exists() or not any((media_storage / "uploads").rglob("*.png"))

    def test_jpeg_with_absurd_scans_is_refused(self, call):
        response = call({"image_file": io.BytesIO(hostile.jpeg_many_scans(scans=500, size=64))})
        assert response.status_code == 400 and errors(response)["code"] == "failed_to_read_image"

    def test_other_formats_we_decode_are_kept_as_png_for_the_model(self, call, settings, media_storage):
        settings.REMOVEBG_WAIT_SECONDS = 0
        webp = io.BytesIO()
        Image.new("RGB", (50, 40), (0, 0, 200)).save(webp, "WEBP")
        assert errors(call({"image_file": io.BytesIO(webp.getvalue())}))["code"] == "result_pending"
        upload = Upload.objects.get()
        assert upload.path.endswith(".png") and (upload.width, upload.height) == (50, 40)
        stored = Image.open(media_storage / "uploads" / str(upload.source_id) / upload.path)
        assert stored.format == "PNG" and stored.size == (50, 40)
        assert BgRemoveJob.objects.get().path == upload.path

    def test_background_removal_must_be_enabled_for_the_account(self, call, account):
        account.bg_remove_enabled = False
        account.save()
        response = call({"image_file_b64": base64.b64encode(png()).decode()})
        assert response.status_code == 403 and errors(response)["code"] == "bg_remove_not_enabled"
        assert not Upload.objects.exists() and not BgRemoveJob.objects.exists()


class TestJobsAndLimits:
    def test_a_call_that_times_out_answers_429_and_its_job_is_visible(self, call, settings, account):
        settings.REMOVEBG_WAIT_SECONDS = 0.2
        response = call({"image_file": io.BytesIO(png())})
        assert response.status_code == 429
        assert errors(response)["code"] == "result_pending"
        assert int(response["Retry-After"]) >= 1
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(response.headers)
        job = BgRemoveJob.objects.get()
        assert job.status == "queued" and job.source.kind == Source.Kind.UPLOADS
        assert job.source.account == account and job.path.endswith(".png")
        # The management API lists it like any other job.
        _, key = api_key_create(account=account, scopes=["read"])
        from django.test import Client

        listed = Client().get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}).json()
        assert [j["id"] for j in listed["results"]] == [str(job.id)]

    def test_the_same_image_twice_is_one_upload_and_one_job(self, call, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        data = png()
        assert call({"image_file": io.BytesIO(data)}).status_code == 429
        assert call({"image_file_b64": base64.b64encode(data).decode()}).status_code == 429
        assert BgRemoveJob.objects.count() == 1 and Upload.objects.count() == 1
        assert Source.objects.filter(kind=Source.Kind.UPLOADS).count() == 1

    def test_too_many_waiting_calls_get_429_at_once(self, call, settings):
        settings.REMOVEBG_MAX_WAITING = 0
        response = call({"image_file": io.BytesIO(png())})
        assert response.status_code == 429 and errors(response)["code"] == "too_many_waiting"
        assert response["Retry-After"] == "2"

    def test_busy_render_slots_are_429_with_retry_after(self, call, made, settings):
        made({"image_file": io.BytesIO(png(size=(60, 60)))})
        settings.RENDER_MAX_CONCURRENT = 0
        response = call({"image_file": io.BytesIO(png(size=(60, 60)))})
        assert response.status_code == 429 and errors(response)["code"] == "render_busy"
        assert int(response["Retry-After"]) >= 1

    def test_request_rate_limit(self, call, account):
        account.render_rate_limit = "1/m"
        account.save()
        assert call({"size": "preview"}).status_code == 400  # Counted: well formed, no image.
        response = call({"size": "preview"})
        assert response.status_code == 429 and errors(response)["code"] == "request_rate_limited"
        assert response["X-RateLimit-Limit"] == "1" and response["X-RateLimit-Remaining"] == "0"
        assert int(response["X-RateLimit-Reset"]) > timezone.now().timestamp()
        assert int(response["Retry-After"]) >= 1

    def test_account_queue_ceiling(self, call, account, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        account.bg_remove_max_pending = 1
        account.save()
        assert errors(call({"image_file": io.BytesIO(png(colour=(1, 2, 3)))}))["code"] == "result_pending"
        response = call({"image_file": io.BytesIO(png(colour=(4, 5, 6)))})
        assert response.status_code == 429 and errors(response)["code"] == "bg_remove_account_queue_full"
        assert BgRemoveJob.objects.count() == 1

    def test_bg_remove_rate_limit(self, call, account, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        account.bg_remove_rate_limit = "1/m"
        account.save()
        call({"image_file": io.BytesIO(png(colour=(1, 2, 3)))})
        response = call({"image_file": io.BytesIO(png(colour=(4, 5, 6)))})
        assert response.status_code == 429 and errors(response)["code"] == "bg_remove_rate_limited"
        assert response["X-RateLimit-Limit"] == "1"
        # The refused image is not kept: only the first call's upload (and its file) remain.
        from django.core.files.storage import default_storage

        from sources.origins.uploads import upload_name

        upload = Upload.objects.get()
        assert BgRemoveJob.objects.get().path == upload.path
        folder = upload_name(source_id=upload.source_id, path=upload.path).rsplit("/", 1)[0]
        assert default_storage.listdir(folder)[1] == [upload.path.rsplit("/", 1)[-1]]

    def test_insufficient_credits_is_402_before_any_work(self, call, account):
        credit = CreditAccount.objects.create(account=account, credits=0, free_calls=0)
        response = call({"image_file": io.BytesIO(png()), "size": "full"})
        assert response.status_code == 402 and errors(response)["title"] == "Insufficient credits"
        assert not BgRemoveJob.objects.exists() and not Upload.objects.exists()
        # It says where credits come from.
        detail = errors(response)["detail"]
        assert f"/admin/removebg_api/creditaccount/{credit.pk}/change/" in detail
        assert "REMOVEBG_DEFAULT_CREDITS" in detail and "unmetered" in detail

    def test_uploads_are_not_served_through_render(self, call, client, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        call({"image_file": io.BytesIO(png())})
        upload = Upload.objects.select_related("source").get()
        for query in ("", "?bg-remove=true", "?w=10"):
            response = client.get(f"/render/{upload.source.slug}/{upload.path}{query}")
            assert response.status_code == 404, query
            assert response.json()["error"]["code"] == "source_not_found"

    def test_uploads_sources_cannot_be_made_through_the_api(self, account):
        _, key = api_key_create(account=account, scopes=["read", "write"])
        from django.test import Client

        response = Client().post("/api/v1/sources", {"slug": "mine", "kind": "uploads"},
                                 content_type="application/json", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 403
        assert not Source.objects.filter(kind=Source.Kind.UPLOADS).exists()


class TestAccountAndImprove:
    def test_account_in_remove_bg_shape(self, call, account):
        # Granted 10, one full call charged, one of the month's 5 free calls used.
        CreditAccount.objects.create(account=account, credits=10, free_calls=5, charged=1, free_used=1,
                                     free_month=timezone.now().date().replace(day=1))
        response = call(path="/v1.0/account", method="get")
        assert response.status_code == 200
        assert response.json() == {"data": {"attributes": {
            "credits": {"total": 9.0, "subscription": 9.0, "payg": 0.0, "enterprise": 0.0, "metered": True},
            "api": {"free_calls": 4, "sizes": "all"},
        }}}

    def test_an_unmetered_account_reports_a_balance_no_call_uses_up(self, call, account):
        CreditAccount.objects.create(account=account, credits=None)
        response = call(path="/v1.0/account", method="get")
        assert response.json() == {"data": {"attributes": {
            "credits": {"total": 1e9, "subscription": 0.0, "payg": 0.0, "enterprise": 1e9, "metered": False},
            "api": {"free_calls": 0, "sizes": "all"},
        }}}

    def test_a_new_account_is_unmetered(self, call, account):
        attributes = call(path="/v1.0/account", method="get").json()["data"]["attributes"]
        assert attributes["credits"]["metered"] is False
        assert CreditAccount.objects.get(account=account).credits is None

    def test_a_new_account_starts_with_the_configured_defaults(self, call, settings):
        settings.REMOVEBG_DEFAULT_CREDITS = 3
        settings.REMOVEBG_FREE_CALLS = 7
        attributes = call(path="/v1.0/account", method="get").json()["data"]["attributes"]
        assert attributes["credits"]["total"] == 3.0 and attributes["api"]["free_calls"] == 7

    def test_improve_stores_the_submission(self, call, account):
        data = png()
        response = call({"image_file": io.BytesIO(data), "tag": "batch_1", "image_filename": "car.png"},
                        path="/v1.0/improve")
        assert response.status_code == 200
        improvement = Improvement.objects.get()
        assert response.json() == {"id": str(improvement.id)}
        assert (improvement.account, improvement.tag, improvement.filename) == (account, "batch_1", "car.png")
        with default_storage.open(improvement.storage_name, "rb") as fh:
            assert fh.read() == data

    def test_improve_as_json(self, call):
        body = json.dumps({"image_file_b64": base64.b64encode(png()).decode(), "tag": "t"})
        assert call(body, path="/v1.0/improve", content_type="application/json").status_code == 200

    def test_improve_refuses_a_non_image_and_no_image(self, call):
        assert errors(call({"image_file": io.BytesIO(b"hello")}, path="/v1.0/improve"))["code"] == "invalid_file_type"
        assert errors(call({"tag": "x"}, path="/v1.0/improve"))["code"] == "missing_source"
        assert not Improvement.objects.exists()

    def test_improve_rate(self, call, settings):
        settings.REMOVEBG_IMPROVE_RATE_LIMIT = "1/d"
        assert call({"image_file": io.BytesIO(png())}, path="/v1.0/improve").status_code == 200
        response = call({"image_file": io.BytesIO(png())}, path="/v1.0/improve")
        assert response.status_code == 429 and "Retry-After" in response


class TestPurgeAndRetention:
    def test_purging_an_upload_removes_it_its_cutout_and_its_job(self, call, made, media_storage):
        job = made({"image_file": io.BytesIO(png(size=(80, 60)))})
        upload = Upload.objects.select_related("source").get()
        files = {p.relative_to(media_storage).as_posix() for p in media_storage.rglob("*") if p.is_file()}
        assert {f"uploads/{upload.source_id}/{upload.path}", job.cutout_name} <= files
        result = render_purge(source=upload.source, path=upload.path)
        assert result.cutouts == 1 and result.files >= 2
        assert not Upload.objects.exists() and not BgRemoveJob.objects.exists()
        assert not any(p.is_file() for p in media_storage.rglob("*"))

    def test_expired_uploads_go_and_recent_ones_stay(self, call, made, media_storage, settings):
        settings.REMOVEBG_UPLOAD_RETENTION_DAYS = 7
        made({"image_file": io.BytesIO(png(colour=(9, 9, 9)))})
        settings.REMOVEBG_WAIT_SECONDS = 0
        call({"image_file": io.BytesIO(png(colour=(8, 8, 8)))})
        old, recent = Upload.objects.order_by("created_at")
        Upload.objects.filter(pk=old.pk).update(last_used_at=timezone.now() - timedelta(days=8))
        assert uploads_expire() == 1
        assert list(Upload.objects.values_list("pk", flat=True)) == [recent.pk]
        assert list(BgRemoveJob.objects.values_list("path", flat=True)) == [recent.path]
        names = {p.name for p in media_storage.rglob("*") if p.is_file()}
        assert old.path not in names and recent.path in names
        assert uploads_expire() == 0
