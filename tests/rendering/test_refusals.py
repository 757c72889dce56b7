"""Side effects only after validation: a refused rendering request starts no job, writes no
render and uses none of the account's request budget."""

import subprocess

import pytest
import requests

from accounts.models import Account
from cutouts.models import BgRemoveJob
from rendering.models import Render
from sources.models import Source
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command

pytestmark = pytest.mark.django_db


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refused_host_starts_no_job_on_the_real_server(source, worker_env, settings):
    """Through granian and the rendering handler (its short middleware chain checks no host)."""
    port = free_port()
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL or "", "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/render/{source.slug}/astronaut.jpg"
    try:
        wait_for_port(port, proc=proc)
        refused = [requests.get(f"{base}?{query}", headers={"Host": "evil.example"}, timeout=30)
                   for query in ("bg-remove=true", "w=20")]
        assert BgRemoveJob.objects.count() == 0 and Render.objects.count() == 0
        accepted = requests.get(f"{base}?bg-remove=true", timeout=30)
    finally:
        stop_process(proc)
    for response in refused:
        assert response.status_code == 400 and response.headers["Cache-Control"] == "no-store"
        assert response.json()["error"]["code"] == "host_not_allowed"
    assert accepted.status_code == 202
    assert accepted.json()["status_url"].startswith(f"http://127.0.0.1:{port}/_/jobs/")
    assert BgRemoveJob.objects.count() == 1


@pytest.mark.parametrize("query, status, code", [
    ("bg-remove=true&mark=ftp://mark.example/logo.png", 400, "bad_mark"),
    ("bg-remove=true&mark=../../secret.png", 400, "bad_path"),
])
def test_a_bad_mark_is_refused_before_the_job(client, source, query, status, code):
    response = client.get(f"/render/{source.slug}/astronaut.jpg?{query}")
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert BgRemoveJob.objects.count() == 0


def test_refused_requests_use_none_of_the_request_budget(client, source):
    from django.core.cache import cache

    cache.clear()
    Account.objects.filter(pk=source.account_id).update(render_rate_limit="2/m")
    off = Source.objects.create(account=source.account, slug="acme-off", kind="local", local_path="photos",
                                bg_remove="off")
    refused = [
        client.get(f"/render/{source.slug}/..%2fsecret.jpg?w=20"),  # Path escape: 400.
        client.get(f"/render/{source.slug}/a/../../secret.jpg"),
        client.get(f"/render/{off.slug}/astronaut.jpg?bg-remove=true"),  # Not enabled: 403.
        client.get(f"/render/{source.slug}/astronaut.jpg?w=20&mark=gopher://x/y.png"),  # Bad mark: 400.
    ]
    assert [r.status_code for r in refused] == [400, 400, 403, 400]
    statuses = [client.get(f"/render/{source.slug}/astronaut.jpg?w=20").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    cache.clear()


def test_host_check_follows_allowed_hosts(source, settings):
    """The view's own check (kept per process for valid hosts) still refuses a host once it is
    no longer allowed, and never lets an unknown one through."""
    from django.test import RequestFactory

    from rendering.views import render_view

    def status(host):
        request = RequestFactory().get(f"/render/{source.slug}/astronaut.jpg", {"w": "20"}, HTTP_HOST=host)
        return render_view(request, source=source.slug, path="astronaut.jpg").status_code

    settings.ALLOWED_HOSTS = ["img.shop.example"]
    assert [status("img.shop.example"), status("img.shop.example"), status("evil.example")] == [200, 200, 400]
    settings.ALLOWED_HOSTS = ["other.example"]
    assert status("img.shop.example") == 400
