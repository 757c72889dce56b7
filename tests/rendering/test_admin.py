"""What account managers see and do on account, source and job pages."""

import io
import re
import uuid
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.utils import timezone
from PIL import Image

from accounts.services import account_manager_create
from cutouts.admin import seconds_readable
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.models import Render
from sources.models import Source
from usage.models import UsageDaily

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client):
    client.force_login(account_manager_create(username="mia", password="pw"))


def _usage_chart(page: str) -> ElementTree.Element:
    svg = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart".*?</svg>', page, re.S).group(0)
    return ElementTree.fromstring(svg)


def test_account_page_shows_recent_jobs_and_a_labelled_usage_chart(client, manager, source):
    BgRemoveJob.objects.create(source=source, path="gone.jpg", model="u2netp", status="failed",
                               error_status=404, error_message="The image was not found at the origin.")
    today = timezone.now().date()
    UsageDaily.objects.create(source=source, day=today, renders=7, bytes_served=2_500_000)
    UsageDaily.objects.create(source=source, day=today - timedelta(days=3), renders=2, bytes_served=400_000)
    UsageDaily.objects.create(source=source, day=today - timedelta(days=40), renders=1000)  # Outside the 30 days.
    for n in range(3):
        BgRemoveJob.objects.create(source=source, path=f"p{n}.jpg", model="u2netp", status="done",
                                   finished_at=timezone.now() - timedelta(days=3 if n else 0))
    page = client.get(f"/admin/accounts/account/{source.account.pk}/change/").content.decode()
    assert "gone.jpg" in page and "The image was not found at the origin." in page and "failed" in page

    svg = _usage_chart(page)
    ns = {"s": "http://www.w3.org/2000/svg"}
    title = svg.find("s:title", ns).text
    assert title.startswith("Usage per day") and svg.get("role") == "img"
    description = svg.find("s:desc", ns).text
    assert "9 renders" in description and "3 cutouts" in description and "2.9 MB served" in description
    legend = [g.get("data-series") for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "legend-item"]
    assert legend == ["renders", "cutouts", "bytes_served"]
    labels = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"renders, cutouts per day", "bytes per day", today.strftime("%b %d")} <= labels and "0 B" in labels

    bars = {}
    for panel in svg.iter("{http://www.w3.org/2000/svg}g"):
        if panel.get("class") != "panel":
            continue
        axis_max, height = float(panel.get("data-axis-max")), float(panel.get("data-height"))
        for rect in panel.iter("{http://www.w3.org/2000/svg}rect"):
            value = int(rect.get("data-value"))
            # Values become bar heights on the panel's own scale, bottoms on the baseline.
            assert float(rect.get("height")) == pytest.approx(value / axis_max * height, abs=0.01)
            assert float(rect.get("y")) + float(rect.get("height")) == pytest.approx(
                float(panel.get("data-top")) + height, abs=0.01)
            assert axis_max >= value
            bars[(rect.get("data-series"), rect.get("data-day"))] = value
    assert len(bars) == 3 * 30
    assert bars[("renders", today.isoformat())] == 7 and bars[("bytes_served", today.isoformat())] == 2_500_000
    three_days_ago = (today - timedelta(days=3)).isoformat()
    assert bars[("renders", three_days_ago)] == 2 and bars[("cutouts", three_days_ago)] == 2
    assert bars[("cutouts", today.isoformat())] == 1
    assert sum(v for (series, _), v in bars.items() if series == "renders") == 9
    # The tallest bar of a panel is at most its axis (round steps: 7 renders on a 0–8 axis).
    counts = next(g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "panel")
    assert float(counts.get("data-axis-max")) == 8


def test_usage_chart_of_an_account_with_no_usage_draws_empty_bars(client, manager, source):
    page = client.get(f"/admin/accounts/account/{source.account.pk}/change/").content.decode()
    svg = _usage_chart(page)
    heights = [float(r.get("height")) for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "bar"]
    assert len(heights) == 90 and set(heights) == {0.0}


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


def _done_job(client, source):
    return bg_remove_job_process(job_id=client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").json()["job"])


def test_job_page_shows_origin_and_cutout_readable_timings_and_render_url(client, manager, source):
    job = _done_job(client, source)
    BgRemoveJob.objects.filter(pk=job.pk).update(fetch_seconds=0.0123, inference_seconds=2.3456)
    page = client.get(f"/admin/cutouts/bgremovejob/{job.pk}/change/").content.decode()
    origin = re.search(r'<img src="([^"]+)" alt="origin: astronaut.jpg"', page).group(1).replace("&amp;", "&")
    cutout = re.search(r'<img src="([^"]+)" alt="cutout: astronaut.jpg"[^>]*style="background:repeating-conic',
                       page).group(1)
    response = client.get(origin)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    response = client.get(cutout)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
        assert image.mode == "RGBA" and image.size == (job.width, job.height)
    link = re.search(r'<a class="job-render-url" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert link == "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp"
    assert client.get(link)["Content-Type"] == "image/png"
    assert "12 ms" in page and "2.35 s" in page and "0.0123" not in page and "2.3456" not in page


def test_job_page_signs_render_urls_of_a_signed_source(client, manager, source):
    job = _done_job(client, source)
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=["t0k-newest", "t0k-old"])
    page = client.get(f"/admin/cutouts/bgremovejob/{job.pk}/change/").content.decode()
    origin = re.search(r'<img src="([^"]+)" alt="origin', page).group(1).replace("&amp;", "&")
    link = re.search(r'<a class="job-render-url" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    for url in (origin, link):
        assert "&s=" in url and client.get(url).status_code == 200
        assert client.get(url.split("&s=")[0]).status_code == 403
    assert "t0k" not in page


def test_cutout_is_served_only_to_staff_who_may_view_jobs(client, source, django_user_model):
    job = _done_job(client, source)
    url = f"/admin/cutouts/bgremovejob/{job.pk}/cutout.png"
    assert client.get(url).status_code == 302  # Anonymous: to the login page.
    client.force_login(django_user_model.objects.create_user("staff", password="pw", is_staff=True))
    assert client.get(url).status_code == 403  # Staff without the job's view permission.
    client.force_login(django_user_model.objects.create_user("plain", password="pw"))
    assert client.get(url).status_code == 302  # Not staff: never into the admin.
    client.force_login(account_manager_create(username="mia", password="pw"))
    assert client.get(url).status_code == 200
    assert client.get(f"/admin/cutouts/bgremovejob/{uuid.uuid4()}/cutout.png").status_code == 404
    queued = BgRemoveJob.objects.create(source=source, path="other.jpg", model="u2netp")
    assert client.get(f"/admin/cutouts/bgremovejob/{queued.pk}/cutout.png").status_code == 404


def test_jobs_list_columns(client, manager, source):
    BgRemoveJob.objects.create(source=source, path="a/" * 40 + "long.jpg", model="u2netp", status="failed",
                               error_status=415, error_code="unsupported_media_type")
    page = client.get("/admin/cutouts/bgremovejob/").content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page)
    assert headers == ["short_path", "source", "status_label", "model", "created", "took"]
    assert "failed 415" in page and "…" in page


@pytest.mark.parametrize("seconds, shown", [
    (None, "–"), (0.0004, "< 1 ms"), (0.0123, "12 ms"), (0.999, "999 ms"), (2.3456, "2.35 s"), (59.994, "59.99 s"),
    (185.2, "3 min 05 s"),
])
def test_durations_read_in_ms_s_and_minutes(seconds, shown):
    assert seconds_readable(seconds) == shown
