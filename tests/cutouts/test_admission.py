"""Rate limits (fixed windows on real Redis, shared by several web processes) and queue admission."""

import subprocess
import threading

import pytest
import requests

from accounts.models import Account
from cutouts.admission import job_retry_after, queue_wait_seconds
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fresh_counters():
    from django.core.cache import cache

    cache.clear()


def set_limits(account, **limits):
    Account.objects.filter(pk=account.pk).update(**limits)
    account.refresh_from_db()


def test_request_limit_counts_every_render_and_answers_429(client, source):
    set_limits(source.account, render_rate_limit="4/m")
    statuses = [client.get("/render/acme-photos/astronaut.jpg?w=20").status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    response = client.get("/render/acme-photos/astronaut.jpg?w=20")
    assert response.json()["error"]["code"] == "request_rate_limited"
    assert "request rate limit of 4/m" in response.json()["error"]["message"]
    assert 0 < int(response["Retry-After"]) <= 60 and response["Cache-Control"] == "no-store"


def test_bg_remove_limit_counts_new_jobs_only(client, source, origin_root):
    set_limits(source.account, bg_remove_rate_limit="2/h")  # An hour's window: a slow run does not see it reset.
    for name in ["b.jpg", "c.jpg", "d.jpg"]:
        (origin_root / "photos" / name).write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    first = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true")
    bg_remove_job_process(job_id=first.json()["job"])
    # Cached cutouts and repeated requests for an existing job never count.
    for _ in range(5):
        assert client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").status_code == 200
        assert client.get("/render/acme-photos/b.jpg?bg-remove=true").status_code == 202
    over = client.get("/render/acme-photos/c.jpg?bg-remove=true")
    assert over.status_code == 429 and over.json()["error"]["code"] == "bg_remove_rate_limited"
    assert int(over["Retry-After"]) > 0
    assert not BgRemoveJob.objects.filter(path="c.jpg").exists()
    assert client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").status_code == 200
    assert client.get("/render/acme-photos/d.jpg").status_code == 200  # Plain renders are not bg-remove.


def test_queue_ceilings(client, source, origin_root, settings):
    for name in ["b.jpg", "c.jpg"]:
        (origin_root / "photos" / name).write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    done = client.get("/render/acme-photos/chelsea.png?bg-remove=true")
    bg_remove_job_process(job_id=done.json()["job"])
    set_limits(source.account, bg_remove_max_pending=2)
    assert client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").status_code == 202
    assert client.get("/render/acme-photos/b.jpg?bg-remove=true").status_code == 202
    full = client.get("/render/acme-photos/c.jpg?bg-remove=true")
    assert full.status_code == 429 and full.json()["error"]["code"] == "bg_remove_account_queue_full"
    assert int(full["Retry-After"]) >= 1
    # Cached results are still served, and the waiting jobs still answer 202.
    assert client.get("/render/acme-photos/chelsea.png?bg-remove=true").status_code == 200
    assert client.get("/render/acme-photos/b.jpg?bg-remove=true").status_code == 202

    set_limits(source.account, bg_remove_max_pending=None)
    settings.BG_REMOVE_MAX_PENDING = 2
    platform = client.get("/render/acme-photos/c.jpg?bg-remove=true")
    assert platform.status_code == 429 and platform.json()["error"]["code"] == "bg_remove_queue_full"


def test_retry_after_grows_with_the_queue(source, settings):
    settings.BG_REMOVE_EXPECTED_JOB_SECONDS = 4
    settings.BG_REMOVE_WORKER_SLOTS = 1
    jobs = [BgRemoveJob.objects.create(source=source, path=f"{i}.jpg", model="u2netp") for i in range(5)]
    waits = [job_retry_after(job) for job in jobs]
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert waits[-1] == queue_wait_seconds(4) == 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_limit_is_shared_by_two_web_processes(source, worker_env, settings):
    """Two web server processes count against one Redis counter: the account gets its limit, not twice it."""
    set_limits(source.account, render_rate_limit="6/m")
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    ports, procs = [free_port(), free_port()], []
    try:
        for port in ports:
            procs.append(subprocess.Popen(
                web_command(port),
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
        for port, proc in zip(ports, procs):
            wait_for_port(port, proc=proc)
        statuses = [
            requests.get(f"http://127.0.0.1:{ports[i % 2]}/render/acme-photos/astronaut.jpg?w=30", timeout=30).status_code
            for i in range(10)
        ]
    finally:
        for proc in procs:
            stop_process(proc)
    assert statuses.count(200) == 6 and statuses.count(429) == 4


PARALLEL = 24


def parallel_first_requests(urls: list[str]) -> list[int]:
    """Every URL requested at the same moment, each from its own thread and connection."""
    barrier = threading.Barrier(len(urls))
    statuses = [None] * len(urls)

    def request(i):
        with requests.Session() as http:
            barrier.wait()
            statuses[i] = http.get(urls[i], timeout=60).status_code

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_account_ceiling_admits_exactly_its_number_under_parallel_first_requests(live_server, source,
                                                                                    origin_root):
    """24 first requests for 24 different images, all at once, against a ceiling of 3: the count
    and the insert are one step, so 3 jobs exist and 21 requests get 429 (without: 7 or more)."""
    set_limits(source.account, bg_remove_max_pending=3, bg_remove_rate_limit="1000/m")
    names = [f"p{i:02d}.jpg" for i in range(PARALLEL)]
    for name in names:
        (origin_root / "photos" / name).write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    statuses = parallel_first_requests(
        [f"{live_server.url}/render/{source.slug}/{name}?bg-remove=true" for name in names])
    assert (statuses.count(202), statuses.count(429)) == (3, PARALLEL - 3), statuses
    assert BgRemoveJob.objects.filter(source__account=source.account).count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_platform_ceiling_is_atomic_across_accounts(live_server, source, origin_root, settings):
    from tests.factories import AccountFactory, SourceFactory

    settings.BG_REMOVE_MAX_PENDING = 3
    other = SourceFactory(account=AccountFactory(slug="other", bg_remove_enabled=True), slug="other-photos",
                          kind="local", local_path="photos")
    for acct in (source.account, other.account):
        set_limits(acct, bg_remove_rate_limit="1000/m")
    names = [f"q{i:02d}.jpg" for i in range(PARALLEL // 2)]
    for name in names:
        (origin_root / "photos" / name).write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    urls = [f"{live_server.url}/render/{s.slug}/{name}?bg-remove=true" for name in names for s in (source, other)]
    statuses = parallel_first_requests(urls)
    assert (statuses.count(202), statuses.count(429)) == (3, PARALLEL - 3), statuses
    assert BgRemoveJob.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_parallel_first_requests_for_one_image_make_one_job_and_no_429(live_server, source):
    """The lock also decides the race for one image: everyone gets the one job, and it counts once."""
    set_limits(source.account, bg_remove_max_pending=1, bg_remove_rate_limit="1/m")
    statuses = parallel_first_requests([f"{live_server.url}/render/{source.slug}/astronaut.jpg?bg-remove=true"]
                                       * PARALLEL)
    assert statuses == [202] * PARALLEL
    assert BgRemoveJob.objects.count() == 1
