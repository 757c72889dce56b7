"""The remove.bg API's admin pages: credits edited, records shown, deletions through the services."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from cutouts.models import BgRemoveJob
from removebg_api.models import CreditAccount, Improvement
from sources.models import Upload

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def admin_client(db):
    get_user_model().objects.create_superuser("root", password="pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


def test_every_page_shows(admin_client, call, account, settings):
    settings.REMOVEBG_WAIT_SECONDS = 0
    call({"image_file": io.BytesIO(png())})
    call({"image_file": io.BytesIO(png())}, path="/v1.0/improve")
    assert CreditAccount.objects.filter(account=account).exists()  # Made by the first call.
    for model in ("creditaccount", "call", "improvement"):
        assert admin_client.get(f"/admin/removebg_api/{model}/").status_code == 200, model
    assert admin_client.get("/admin/sources/upload/").status_code == 200
    credit = CreditAccount.objects.get()
    assert admin_client.get(f"/admin/removebg_api/creditaccount/{credit.pk}/change/").status_code == 200
    # The job is an ordinary job in the jobs' admin.
    assert str(BgRemoveJob.objects.get().id) in admin_client.get("/admin/cutouts/bgremovejob/").text


def test_deleting_in_the_admin_removes_stored_files(admin_client, call, settings, media_storage):
    settings.REMOVEBG_WAIT_SECONDS = 0
    call({"image_file": io.BytesIO(png())})
    call({"image_file": io.BytesIO(png())}, path="/v1.0/improve")
    improvement, upload = Improvement.objects.get(), Upload.objects.get()
    response = admin_client.post(f"/admin/removebg_api/improvement/{improvement.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Improvement.objects.exists()
    assert not default_storage.exists(improvement.storage_name)
    response = admin_client.post(f"/admin/sources/upload/{upload.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Upload.objects.exists() and not BgRemoveJob.objects.exists()
    assert not any(p.is_file() for p in media_storage.rglob("*"))


def test_an_account_manager_sets_credits_and_reads_calls(account):
    from accounts.services import account_manager_create

    account_manager_create(username="manager", password="pw")
    credit = CreditAccount.objects.create(account=account, credits=1, free_calls=50)
    client = Client()
    client.login(username="manager", password="pw")
    assert client.get("/admin/removebg_api/call/").status_code == 200
    response = client.post(f"/admin/removebg_api/creditaccount/{credit.pk}/change/",
                           {"account": account.pk, "credits": "25.50", "free_calls": "10"})
    assert response.status_code == 302, response.content[:500]
    credit.refresh_from_db()
    assert (str(credit.credits), credit.free_calls) == ("25.50", 10)
    assert client.get("/admin/removebg_api/improvement/").status_code == 403


def test_metering_is_switched_in_the_admin_and_audited(admin_client, account):
    credit = CreditAccount.objects.create(account=account)  # The default: unmetered.
    assert not credit.metered
    page = f"/admin/removebg_api/creditaccount/{credit.pk}/change/"
    assert "unmetered" in admin_client.get("/admin/removebg_api/creditaccount/").text
    response = admin_client.post(page, {"account": account.pk, "credits": "5", "free_calls": "50"})
    assert response.status_code == 302, response.content[:500]
    credit.refresh_from_db()
    assert credit.metered and str(credit.credits) == "5.00"
    response = admin_client.post(page, {"account": account.pk, "credits": "", "free_calls": "50"})
    assert response.status_code == 302
    credit.refresh_from_db()
    assert not credit.metered
    # Who, when, old → new: each switch is on the History page.
    records = credit.history.order_by("history_id")[1:]  # After its creation.
    changes = [(None if h.credits is None else str(h.credits), h.history_user.username) for h in records]
    assert changes == [("5.00", "root"), (None, "root")]
    assert admin_client.get(f"/admin/removebg_api/creditaccount/{credit.pk}/history/").status_code == 200
