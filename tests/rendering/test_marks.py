"""Marks that are rendering URLs (imgix: "watermarks served by imgix can take our parameters
within the mark"): rendered by the same pipeline with their own parameters, entitlement, job and
cache, never fetched from ourselves; loops and deep chains refused; purges reach composites."""

import io
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from imgix import UrlBuilder
from PIL import Image

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.models import Render, RenderInput
from rendering.store import render_purge
from sources.models import Source
from tests.factories import AccountFactory, SourceFactory

pytestmark = pytest.mark.django_db

BASE = "/render/acme-photos/chelsea.png"


def get(client, url, **headers):
    response = client.get(url, **headers)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def pixels(body) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.int16)


def composite(mark: str, extra: str = "&fm=png&mark-pad=0") -> str:
    return f"{BASE}?mark={quote(mark, safe='')}{extra}"


def mark_box(base: np.ndarray, mark_size) -> tuple[slice, slice]:
    """Where a bottom-right mark with no padding lies on the base."""
    height, width = base.shape[:2]
    return slice(height - mark_size[1], height), slice(width - mark_size[0], width)


def test_a_marks_own_parameters_apply_to_it(client, source):
    response, body = get(client, composite("astronaut.jpg?w=60&fm=png"))
    assert response.status_code == 200, body
    drawn = pixels(body)
    _, mark_alone = get(client, "/render/acme-photos/astronaut.jpg?w=60&fm=png")
    mark = pixels(mark_alone)
    assert mark.shape[:2] == (60, 60)  # The mark's w=60 applied (the photo is 512×512).
    rows, cols = mark_box(drawn, (60, 60))
    assert np.abs(drawn[rows, cols] - mark).mean() < 2
    # A rendering of the mark, kept like any other render of its image.
    assert Render.objects.filter(source=source, path="astronaut.jpg").exists()


def test_the_cutout_as_a_mark_202_until_its_job_is_done(client, source):
    url = composite("astronaut.jpg?bg-remove=true&w=100")
    first, body = get(client, url)
    assert first.status_code == 202, body
    job = BgRemoveJob.objects.get(source=source, path="astronaut.jpg")
    assert first.json()["job"] == str(job.id)
    assert not Render.objects.filter(path="chelsea.png").exists()  # Nothing incomplete is kept.

    bg_remove_job_process(job_id=job.id)
    done, body = get(client, url)
    assert done.status_code == 200, body
    drawn = pixels(body)
    _, plain = get(client, composite("astronaut.jpg?w=100"))
    _, base = get(client, f"{BASE}?fm=png")
    rows, cols = mark_box(drawn, (100, 100))
    corner = (rows.start + 2, cols.start + 2)  # Background in the astronaut photo.
    # Without removal the mark's corner is the photo's; with it, the base shows through.
    assert np.abs(pixels(plain)[corner] - pixels(base)[corner]).max() > 20
    assert np.abs(drawn[corner] - pixels(base)[corner]).max() <= 2
    # Its subject is drawn: the middle of the mark is not the base.
    middle = (rows.start + 50, cols.start + 50)
    assert np.abs(drawn[middle] - pixels(base)[middle]).max() > 20


def test_a_marks_fallback_is_served_uncached_while_its_cutout_is_made(client, source):
    response, body = get(client, composite("astronaut.jpg?bg-remove=true&bg-remove-fallback=true&w=100"))
    assert response.status_code == 200, body
    assert response["Cache-Control"] == "no-store"
    assert response["X-Bg-Remove-Status"] == "processing"
    _, plain = get(client, composite("astronaut.jpg?w=100"))
    assert np.abs(pixels(body) - pixels(plain)).mean() < 1  # The mark without removal, for now.


def test_purging_the_mark_purges_the_composites_that_drew_it(client, source):
    url = composite("astronaut.jpg?w=40")
    assert get(client, url)[0].status_code == 200
    stored = Render.objects.get(source=source, path="chelsea.png")
    assert set(RenderInput.objects.filter(render=stored).values_list("path", flat=True)) == {"astronaut.jpg"}

    render_purge(source=source, path="astronaut.jpg")
    assert not Render.objects.filter(pk=stored.pk).exists()
    assert get(client, url)[0].status_code == 200  # Made again on the next request.


def test_a_plain_file_mark_is_an_input_too(client, source):
    assert get(client, composite("astronaut.jpg"))[0].status_code == 200
    render_purge(source=source, path="astronaut.jpg")
    assert not Render.objects.filter(path="chelsea.png").exists()


@pytest.mark.parametrize("mark", [
    "chelsea.png?w=10",  # The base itself.
    "astronaut.jpg?w=50&mark=" + quote("chelsea.png?w=10", safe=""),  # Back to the base, one level down.
])
def test_a_mark_that_refers_back_to_its_base_is_400(client, source, mark):
    response, body = get(client, composite(mark))
    assert response.status_code == 400, body
    assert response.json()["error"]["code"] == "mark_loop"


def test_a_chain_deeper_than_two_marks_is_400(client, source, origin_root):
    for name in ("a.png", "b.png", "c.png"):
        (origin_root / "photos" / name).write_bytes((origin_root / "photos" / "chelsea.png").read_bytes())
    two_deep = "a.png?w=40&mark=" + quote("b.png?w=10", safe="")
    assert get(client, composite(two_deep))[0].status_code == 200
    three_deep = "a.png?w=40&mark=" + quote("b.png?w=20&mark=" + quote("c.png?w=5", safe=""), safe="")
    response, body = get(client, composite(three_deep))
    assert response.status_code == 400, body
    assert response.json()["error"]["code"] == "mark_too_deep"


def test_absolute_rendering_urls_of_the_same_account_are_rendered_not_fetched(client, source, settings):
    other = SourceFactory(account=source.account, slug="acme-other")
    settings.RENDER_DOMAIN = "img.example.com"
    # Neither host resolves, and loopback is refused to fetches: a 200 means no fetch happened.
    for mark in (f"http://testserver/render/{other.slug}/astronaut.jpg?w=30",
                 f"https://{other.slug}.img.example.com/astronaut.jpg?w=30"):
        response, body = get(client, composite(mark))
        assert response.status_code == 200, (mark, body)
    assert Render.objects.filter(source=other, path="astronaut.jpg").count() == 1  # One render, both URLs.


def test_another_accounts_source_is_not_a_mark(client, source):
    stranger = SourceFactory(account=AccountFactory(slug="stranger"), slug="stranger-photos")
    for slug in (stranger.slug, "no-such-source"):
        response, body = get(client, composite(f"http://testserver/render/{slug}/astronaut.jpg?w=30"))
        assert response.status_code == 400, body
        assert "same account" in response.json()["error"]["message"]
    assert not Render.objects.filter(source=stranger).exists()


def test_a_nested_bg_remove_needs_the_marks_source_entitlement(client, source):
    Source.objects.filter(pk=source.pk).update(bg_remove=Source.BgRemove.OFF)
    response, body = get(client, composite("astronaut.jpg?bg-remove=true&w=50"))
    assert response.status_code == 403, body
    assert response.json()["error"]["code"] == "bg_remove_not_enabled"
    assert not BgRemoveJob.objects.exists()


def test_the_outer_signature_covers_the_mark_and_the_inner_url_needs_none(client, source):
    token = "mark-token"
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=[token])
    builder = UrlBuilder("placeholder.imgix.net", sign_key=token, use_https=False)
    parts = urlsplit(builder.create_url(BASE, {"mark": "astronaut.jpg?w=40", "fm": "png"}))
    signed = f"{parts.path}?{parts.query}"
    assert get(client, signed)[0].status_code == 200
    tampered = signed.replace("w%3D40", "w%3D80")
    assert tampered != signed
    assert get(client, tampered)[0].status_code == 403


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_product_texts_composite_through_a_real_worker(client, source, worker_env, tmp_path):
    """The cutout of the woman (astronaut.jpg: Eileen Collins) drawn on another photo, its job run
    by a real Celery worker with the real model."""
    from tests.conftest import start_worker, stop_process
    from tests.cutouts.test_tasks import wait_until

    url = composite("astronaut.jpg?bg-remove=true&w=120", extra="&w=451&fm=png&mark-pad=0&mark-align=bottom,center")
    assert client.get(url).status_code == 202
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        done = wait_until(lambda: (r := client.get(url)).status_code == 200 and r)
    finally:
        stop_process(worker.proc)
    drawn = pixels(body_of(done))
    _, base = get(client, f"{BASE}?w=451&fm=png")
    base = pixels(base)
    height, width = drawn.shape[:2]
    top, left = height - 120, (width - 120) // 2
    # The cutout's transparent corner shows the base; its subject (the middle) covers it.
    assert np.abs(drawn[top + 2, left + 2] - base[top + 2, left + 2]).max() <= 2
    assert np.abs(drawn[top + 60, left + 60] - base[top + 60, left + 60]).max() > 20
    job = BgRemoveJob.objects.get(path="astronaut.jpg")
    assert (job.status, job.inferences) == ("done", 1)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content
