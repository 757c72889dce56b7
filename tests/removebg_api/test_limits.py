"""The remove.bg API limits before it works and bills fairly: checks before the body is read,
JSON bounded by structure, nothing downloaded before the call is payable, a call charged once the
model ran for it (else it costs and keeps nothing), credits never below zero under concurrent
calls, grants audited, /improve and uploads within per-account ceilings."""

import base64
import io
import json
import socket
import threading
import time
import tracemalloc
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from removebg_api.models import Call, CreditAccount, Improvement
from sources.models import Upload

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]


def png(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def code(response) -> str:
    return response.json()["errors"][0]["code"]


def credits(account, amount, free_calls=0) -> CreditAccount:
    return CreditAccount.objects.create(account=account, credits=amount, free_calls=free_calls)


def balance(account) -> Decimal:
    credit = CreditAccount.objects.get(account=account)
    return credit.credits - credit.charged


class TestChecksBeforeTheBody:
    def test_a_body_that_cannot_be_parsed_still_counts_against_the_rate(self, call, account):
        account.render_rate_limit = "1/m"
        account.save()
        assert code(call("{{{", content_type="application/json")) == "invalid_parameters"
        response = call("{{{", content_type="application/json")
        assert response.status_code == 429 and code(response) == "request_rate_limited"

    def test_the_entitlement_is_checked_before_the_body(self, call, account):
        account.bg_remove_enabled = False
        account.save()
        response = call("[" * 50_000, content_type="application/json")
        assert response.status_code == 403 and code(response) == "bg_remove_not_enabled"
        response = call("[" * 50_000, path="/v1.0/improve", content_type="application/json")
        assert response.status_code == 403 and code(response) == "bg_remove_not_enabled"

    def test_an_account_that_can_pay_for_nothing_is_402_before_the_body(self, call, account):
        credits(account, 0)
        response = call("[" * 50_000, content_type="application/json")
        assert response.status_code == 402 and code(response) == "insufficient_credits"

    @pytest.mark.django_db(transaction=True)
    def test_a_refused_call_is_answered_without_waiting_for_its_body(self, live_server, account, removebg_key):
        """A real server, a client that sends the headers and a few bytes of a 1 MB body: the
        refusal comes at once, so the body was never read (reading it would wait for the rest)."""
        account.bg_remove_enabled = False
        account.save()
        host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(("POST /v1.0/removebg HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                          f"X-Api-Key: {removebg_key}\r\nContent-Length: 1000000\r\n\r\n").encode() + b'{"image_u')
            started = time.monotonic()
            head = sock.recv(4096)
            assert time.monotonic() - started < 5
        assert head.startswith(b"HTTP/1.1 403"), head[:200]
        assert b"bg_remove_not_enabled" in head or b"403" in head


class TestJsonStructure:
    def test_a_nested_value_is_refused(self, call, settings):
        body = json.dumps({"image_file_b64": base64.b64encode(png()).decode(), "extra": {"a": {}}})
        response = call(body, content_type="application/json")
        assert response.status_code == 400 and code(response) == "invalid_parameters"
        assert "nested" in response.json()["errors"][0]["detail"]
        assert not Upload.objects.exists()
        # Flat, every kind of JSON value is read as json.loads reads it.
        settings.REMOVEBG_WAIT_SECONDS = 0
        body = json.dumps({"image_file_b64": base64.b64encode(png()).decode(), "crop": True, "scale": "50%",
                           "type": None, "size": "preview", "tag\\\"": "\u00e9\\"})
        assert code(call(body, content_type="application/json")) == "result_pending"

    def test_too_many_fields_are_refused(self, call, settings):
        fields = {f"f{i}": "x" for i in range(settings.REMOVEBG_JSON_MAX_FIELDS + 1)}
        response = call(json.dumps(fields), content_type="application/json")
        assert response.status_code == 400 and code(response) == "invalid_parameters"

    def test_a_long_string_in_a_field_that_is_not_an_image_is_refused(self, call, settings):
        body = json.dumps({"image_url": "http://example.com/" + "a" * settings.REMOVEBG_JSON_MAX_STRING})
        response = call(body, content_type="application/json")
        assert response.status_code == 400 and code(response) == "file_too_large"

    def test_33_mb_of_nested_empty_objects_cost_little(self, call):
        """The hostile body of the issue (2.7 CPU-s, +890 MB per request through json.loads):
        refused at its first nested value, within a small fraction of that."""
        body = b'{"image_url": "x", "a": [' + b"{}," * 11_000_000 + b"{}]}"
        tracemalloc.start()
        try:
            started = time.thread_time()
            response = call(body, content_type="application/json")
            cpu = time.thread_time() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # The body itself is read (33 MB) and decoded once (33 MB); nothing is built from it.
        assert cpu < 0.5, cpu
        assert peak < 120 * 1024 * 1024, peak
        assert response.status_code == 400 and code(response) == "invalid_parameters"


class TestPayableBeforeDownload:
    def test_nothing_is_downloaded_before_the_call_is_payable(self, call, account, httpserver, settings):
        settings.ORIGIN_ALLOW_LOOPBACK = True
        httpserver.expect_request("/a.png").respond_with_data(png(), content_type="image/png")
        credits(account, 0, free_calls=5)  # A preview would be free; a full-size call costs 1.
        response = call({"image_url": httpserver.url_for("/a.png"), "bg_image_url": httpserver.url_for("/a.png"),
                         "size": "full"})
        assert response.status_code == 402 and code(response) == "insufficient_credits"
        assert httpserver.log == []
        assert not Upload.objects.exists()


class TestTheBill:
    def test_a_bad_roi_is_refused_before_the_job_and_costs_nothing(self, call, account, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        credits(account, 5)
        response = call({"image_file": io.BytesIO(png()), "size": "full", "roi": "0 0 1000 1000"})
        assert response.status_code == 400 and code(response) == "roi_exceeds_bounds"
        response = call({"image_file": io.BytesIO(png()), "size": "full", "roi": "10 10 10 40"})
        assert response.status_code == 400 and code(response) == "roi_region_empty"
        assert not BgRemoveJob.objects.exists() and not Upload.objects.exists()
        assert balance(account) == 5 and not Call.objects.exists()

    def test_a_call_that_fails_after_the_model_ran_is_charged(self, call, made, account, photo_jpg):
        credits(account, 5)
        made({"image_file": io.BytesIO(photo_jpg), "size": "full"})
        assert balance(account) == 4  # Answered before its result (429): its charge held.
        # A region of interest in the sky's corner: the model ran, and found no subject there.
        response = call({"image_file": io.BytesIO(photo_jpg), "size": "full", "roi": "0 0 4 4"})
        assert response.status_code == 400 and code(response) == "unknown_foreground"
        assert response["X-Credits-Charged"] == "1"
        assert balance(account) == 4  # Charged, in the held charge's place.
        charged = Call.objects.get()
        assert (charged.credits, charged.error_code, charged.width) == (1, "unknown_foreground", 0)
        # The upload and its cutout stay: the model ran for them, and the next call uses them.
        assert Upload.objects.count() == 1 and BgRemoveJob.objects.get().status == "done"
        assert call({"image_file": io.BytesIO(photo_jpg), "size": "full"}).status_code == 200
        assert balance(account) == 3

    def test_a_call_refused_at_the_queue_keeps_nothing_and_costs_nothing(self, call, account, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        credits(account, 5)
        account.bg_remove_max_pending = 1
        account.save()
        assert code(call({"image_file": io.BytesIO(png(colour=(1, 2, 3))), "size": "full"})) == "result_pending"
        response = call({"image_file": io.BytesIO(png(colour=(4, 5, 6))), "size": "full"})
        assert response.status_code == 429 and code(response) == "bg_remove_account_queue_full"
        assert Upload.objects.count() == 1 and BgRemoveJob.objects.count() == 1
        files = [name for name in default_storage.listdir(f"uploads/{Upload.objects.get().source_id}")[1]]
        assert files == [Upload.objects.get().path]
        # Only the first call's charge, held for its job.
        assert balance(account) == 4 and list(Call.objects.values_list("held", flat=True)) == [True]
        # A free call given back is free again.
        CreditAccount.objects.filter(account=account).update(free_calls=1)
        assert code(call({"image_file": io.BytesIO(png(colour=(7, 8, 9)))})) == "bg_remove_account_queue_full"
        assert call(path="/v1.0/account", method="get").json()["data"]["attributes"]["api"]["free_calls"] == 1


    def test_a_call_answered_before_its_result_holds_its_charge_until_its_job_ends(
            self, call, account, settings, django_capture_on_commit_callbacks):
        settings.REMOVEBG_WAIT_SECONDS = 0
        credits(account, 5)
        data = png(size=(80, 80), colour=(10, 10, 250))
        for _ in range(3):  # A client retrying while the job runs holds one charge.
            response = call({"image_file": io.BytesIO(data), "size": "full"})
            assert code(response) == "result_pending"
        assert balance(account) == 4
        held = Call.objects.get()
        assert held.held and held.credits == 1 and held.error_code == "result_pending"
        # The job done, the same call again is answered and takes the held charge's place.
        assert bg_remove_job_process(job_id=BgRemoveJob.objects.get().id).status == "done"
        response = call({"image_file": io.BytesIO(data), "size": "full"})
        assert response.status_code in (200, 400), response.content  # 400: no subject found, charged too.
        assert response["X-Credits-Charged"] == "1" and balance(account) == 4
        assert list(Call.objects.values_list("held", flat=True)) == [False]
        # Another image whose job fails (its upload lost before the worker reads it): given back.
        other = png(size=(80, 80), colour=(250, 10, 10))
        assert code(call({"image_file": io.BytesIO(other), "size": "full"})) == "result_pending"
        assert balance(account) == 3
        job = BgRemoveJob.objects.get(status="queued")
        default_storage.delete(f"uploads/{job.source_id}/{job.path}")
        with django_capture_on_commit_callbacks(execute=True):
            assert bg_remove_job_process(job_id=job.id).status == "failed"
        assert balance(account) == 4 and not Call.objects.filter(held=True).exists()

    def test_an_unmetered_hold_given_back_after_metering_began_gives_nothing(
            self, call, account, settings, django_capture_on_commit_callbacks):
        # Held while the account was unmetered (nothing taken); the operator then meters it; the
        # job fails: giving back what was never taken would hand out a free credit.
        settings.REMOVEBG_WAIT_SECONDS = 0
        data = png(size=(80, 80), colour=(10, 250, 10))
        assert code(call({"image_file": io.BytesIO(data), "size": "full"})) == "result_pending"
        held = Call.objects.get()
        assert held.held and not held.metered and held.credits == 1
        CreditAccount.objects.filter(account=account).update(credits=2)
        job = BgRemoveJob.objects.get()
        default_storage.delete(f"uploads/{job.source_id}/{job.path}")
        with django_capture_on_commit_callbacks(execute=True):
            assert bg_remove_job_process(job_id=job.id).status == "failed"
        assert not Call.objects.exists() and balance(account) == 2

    def test_a_call_sent_again_with_nothing_left_is_answered_on_its_held_charge(self, call, account, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        credits(account, 1)
        data = png(size=(80, 80), colour=(10, 10, 250))
        assert code(call({"image_file": io.BytesIO(data), "size": "full"})) == "result_pending"
        assert balance(account) == 0
        # Another image cannot ride on that hold; nothing of it is kept.
        response = call({"image_file": io.BytesIO(png(colour=(1, 1, 1))), "size": "full"})
        assert response.status_code == 402 and Upload.objects.count() == 1
        assert bg_remove_job_process(job_id=BgRemoveJob.objects.get().id).status == "done"
        response = call({"image_file": io.BytesIO(data), "size": "full"})
        assert response.status_code in (200, 400) and response["X-Credits-Charged"] == "1"
        assert balance(account) == 0
        assert list(Call.objects.values_list("held", "credits")) == [(False, 1)]
        # The hold paid once.
        assert call({"image_file": io.BytesIO(data), "size": "full"}).status_code == 402


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_never_take_credits_below_zero(live_server, made, account, removebg_key, settings,
                                                        photo_jpg):
    """Eight full-size calls at once, over a real server and eight database connections, on a
    balance of three: three are answered and charged, five are 402, and the balance is zero."""
    settings.RENDER_MAX_CONCURRENT = 16
    settings.REMOVEBG_MAX_WAITING = 16
    credits(account, 3)
    data = photo_jpg
    made({"image_file": io.BytesIO(data), "size": "full"})
    # A balance of three, and no charge held by the call that made the job.
    Call.objects.all().delete()
    CreditAccount.objects.filter(account=account).update(charged=0)
    barrier = threading.Barrier(8)
    statuses = []

    def one():
        barrier.wait()
        response = requests.post(f"{live_server.url}/v1.0/removebg", headers={"X-Api-Key": removebg_key},
                                 files={"image_file": ("a.jpg", data)}, data={"size": "full"}, timeout=60)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200, 200, 402, 402, 402, 402, 402], statuses
    assert balance(account) == 0
    assert Call.objects.filter(credits=1).count() == 3


class TestGrantsAudited:
    def test_a_grant_in_the_admin_is_in_the_history_and_calls_are_not(self, call, made, account, photo_jpg):
        user = get_user_model().objects.create_superuser("manager", password="pw")
        admin = Client()
        admin.login(username="manager", password="pw")
        credit = credits(account, 2)
        response = admin.post(f"/admin/removebg_api/creditaccount/{credit.pk}/change/",
                              {"account": account.pk, "credits": "25", "free_calls": "0"})
        assert response.status_code == 302, response.content[:500]
        latest, before = credit.history.all()[:2]
        assert (before.credits, latest.credits) == (2, 25)
        assert latest.history_user == user and latest.history_type == "~"
        assert admin.get(f"/admin/removebg_api/creditaccount/{credit.pk}/history/").status_code == 200
        # A charged call changes the balance, not the history.
        made({"image_file": io.BytesIO(photo_jpg), "size": "full"})
        assert call({"image_file": io.BytesIO(photo_jpg), "size": "full"}).status_code == 200
        assert balance(account) == 24 and credit.history.count() == 2


class TestImprove:
    def test_the_same_image_twice_is_one_submission(self, call):
        data = png()
        first = call({"image_file": io.BytesIO(data), "tag": "a"}, path="/v1.0/improve").json()
        again = call({"image_file_b64": base64.b64encode(data).decode()}, path="/v1.0/improve").json()
        assert first == again and Improvement.objects.count() == 1
        folder = Improvement.objects.get().storage_name.rsplit("/", 1)[0]
        assert len(default_storage.listdir(folder)[1]) == 1

    def test_a_ceiling_on_the_number_kept(self, call, settings):
        settings.REMOVEBG_IMPROVE_MAX_PER_ACCOUNT = 1
        assert call({"image_file": io.BytesIO(png(colour=(1, 1, 1)))}, path="/v1.0/improve").status_code == 200
        response = call({"image_file": io.BytesIO(png(colour=(2, 2, 2)))}, path="/v1.0/improve")
        assert response.status_code == 429 and code(response) == "improve_storage_full"
        assert int(response["Retry-After"]) > 0 and Improvement.objects.count() == 1

    def test_a_ceiling_on_the_bytes_kept(self, call, settings):
        data = png(size=(300, 300))
        settings.REMOVEBG_IMPROVE_MAX_BYTES_PER_ACCOUNT = len(data) + 10
        assert call({"image_file": io.BytesIO(data)}, path="/v1.0/improve").status_code == 200
        response = call({"image_file": io.BytesIO(png(size=(300, 300), colour=(0, 0, 9)))}, path="/v1.0/improve")
        assert response.status_code == 429 and code(response) == "improve_storage_full"


class TestUploadsCeiling:
    def test_old_uploads_are_expired_first_and_those_in_use_never(self, call, settings, account):
        settings.REMOVEBG_WAIT_SECONDS = 0
        settings.REMOVEBG_UPLOADS_MAX_PER_ACCOUNT = 1
        first = png(colour=(1, 2, 3))
        assert code(call({"image_file": io.BytesIO(first)})) == "result_pending"
        # The first upload's job is queued: it cannot go, so the second image has no room.
        response = call({"image_file": io.BytesIO(png(colour=(4, 5, 6)))})
        assert response.status_code == 429 and code(response) == "uploads_storage_full"
        assert int(response["Retry-After"]) > 0 and Upload.objects.count() == 1
        # Once its job is done, the first upload is the least recently used and makes room.
        job = bg_remove_job_process(job_id=BgRemoveJob.objects.get().id)
        assert job.status == "done"
        old_path = Upload.objects.get().path
        assert code(call({"image_file": io.BytesIO(png(colour=(4, 5, 6)))})) == "result_pending"
        upload = Upload.objects.get()
        assert upload.path != old_path
        assert not BgRemoveJob.objects.filter(path=old_path).exists()
        assert default_storage.listdir(f"uploads/{upload.source_id}")[1] == [upload.path]

    def test_a_ceiling_on_bytes(self, call, settings):
        settings.REMOVEBG_WAIT_SECONDS = 0
        data = png(size=(200, 200))
        settings.REMOVEBG_UPLOADS_MAX_BYTES_PER_ACCOUNT = len(data) - 1
        response = call({"image_file": io.BytesIO(data)})
        assert response.status_code == 429 and code(response) == "uploads_storage_full"
        assert not Upload.objects.exists()
