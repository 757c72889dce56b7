"""What account managers see and do on account, source and job pages."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import account_manager_create
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.models import Render
from sources.models import Source
from usage.models import UsageDaily

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client):
    client.force_login(account_manager_create(username="mia", password="pw"))


def test_account_page_shows_recent_jobs_and_usage(client, manager, source):
    BgRemoveJob.objects.create(source=source, path="gone.jpg", model="u2netp", status="failed",
                               error_status=404, error_message="The image was not found at the origin.")
    today = timezone.now().date()
    UsageDaily.objects.create(source=source, day=today, renders=7, bytes_served=700)
    UsageDaily.objects.create(source=source, day=today - timedelta(days=3), renders=2)
    page = client.get(f"/admin/accounts/account/{source.account.pk}/change/").content.decode()
    assert "gone.jpg" in page and "The image was not found at the origin." in page and "failed" in page
    assert "<svg" in page and "9 renders in 30 days" in page


def test_source_page_previews_origin_and_cutout_with_a_url_to_copy(client, manager, source):
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true"
    bg_remove_job_process(job_id=client.get(url).json()["job"])
    page = client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()
    images = re.findall(r'<img src="([^"]+)" alt="(origin|cutout)"', page)
    assert [alt for _, alt in images] == ["origin", "cutout"]
    for src, _ in images:
        response = client.get(src.replace("&amp;", "&"))
        assert response.status_code == 200 and response["Content-Type"].startswith("image/")
    assert 'value="/render/acme-photos/astronaut.jpg?bg-remove=true"' in page


def test_preview_urls_are_signed_for_signed_sources(client, manager, source):
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true"
    bg_remove_job_process(job_id=client.get(url).json()["job"])
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=["t0k"])
    page = client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()
    src = re.search(r'<img src="([^"]+)" alt="cutout"', page).group(1).replace("&amp;", "&")
    assert "&s=" in src and client.get(src).status_code == 200


def test_manager_purges_a_source_and_retries_a_failed_job(client, manager, source, origin_root):
    assert client.get("/render/acme-photos/astronaut.jpg?w=30").status_code == 200
    response = client.post("/admin/sources/source/", {"action": "purge_cache", "_selected_action": [source.pk]},
                           follow=True)
    assert "removed 1 renders" in response.content.decode() and not Render.objects.exists()

    failed = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp", status="failed",
                                        error_status=503, error_message="gave up", finished_at=timezone.now())
    client.post("/admin/cutouts/bgremovejob/", {"action": "retry", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == "queued" and failed.error_message == ""
    assert bg_remove_job_process(job_id=failed.pk).status == "done"
