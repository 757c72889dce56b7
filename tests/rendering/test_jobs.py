"""Job lifecycle: claims and leases, duplicates, transient and permanent failures."""

from datetime import timedelta

import pytest
from django.utils import timezone

from rendering import jobs
from rendering.models import BgRemoveJob
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(source):
    return BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp")


def test_a_claimed_job_cannot_be_claimed_again_until_its_lease_ends(job):
    assert jobs.bg_remove_job_claim(job_id=job.id).status == "running"
    with pytest.raises(jobs.JobLeaseHeldError) as err:
        jobs.bg_remove_job_claim(job_id=job.id)
    assert err.value.wait > 0
    # The first worker vanished: once the lease is over, another may take the job.
    BgRemoveJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    again = jobs.bg_remove_job_claim(job_id=job.id)
    assert again.status == "running" and again.attempts == 2


def test_a_duplicate_message_after_completion_runs_nothing(job):
    done = jobs.bg_remove_job_process(job_id=job.id)
    assert done.status == "done" and done.inferences == 1
    assert jobs.bg_remove_job_process(job_id=job.id) is None
    job.refresh_from_db()
    assert job.inferences == 1 and job.attempts == 1


def test_origin_5xx_is_transient_and_puts_the_job_back(db, account, httpserver, settings):
    settings.ORIGIN_ALLOW_LOOPBACK = True
    httpserver.expect_request("/a.jpg").respond_with_data("busy", status=503)
    source = SourceFactory(account=account, kind="web", base_url=httpserver.url_for("/"), local_path="")
    job = BgRemoveJob.objects.create(source=source, path="a.jpg", model="u2netp")
    with pytest.raises(jobs.TransientJobError):
        jobs.bg_remove_job_process(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "queued" and job.lease_expires_at is None and job.inferences == 0


def test_giving_up_after_retries_leaves_a_readable_reason(job):
    jobs.bg_remove_job_fail_transient(job_id=job.id, message="origin answered HTTP 503")
    job.refresh_from_db()
    assert (job.status, job.error_status) == ("failed", 503)
    assert "origin answered HTTP 503" in job.error_message


def test_unknown_model_fails_the_job_with_an_internal_reason(source):
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="no-such-model")
    result = jobs.bg_remove_job_process(job_id=job.id)
    assert result.status == "failed" and result.error_status == 500
    assert result.error_message == "Background removal failed because of an internal error."


@pytest.mark.django_db(transaction=True)
def test_a_job_longer_than_its_lease_keeps_it(account, httpserver, settings, photo_jpg):
    """A slow origin makes the job outlast BG_REMOVE_JOB_LEASE: its worker renews the lease, so
    another claim is refused throughout, and the job ends once, with one inference."""
    import threading
    import time

    settings.ORIGIN_ALLOW_LOOPBACK = True
    settings.BG_REMOVE_JOB_LEASE = 2
    release = threading.Event()

    def slow(request):
        release.wait(10)
        from werkzeug.wrappers import Response

        return Response(photo_jpg, content_type="image/jpeg")

    httpserver.expect_request("/slow.jpg").respond_with_handler(slow)
    source = SourceFactory(account=account, kind="web", base_url=httpserver.url_for("/"), local_path="")
    job = BgRemoveJob.objects.create(source=source, path="slow.jpg", model="u2netp")
    results = []

    def work():
        from django.db import connection

        try:
            results.append(jobs.bg_remove_job_process(job_id=job.id))
        finally:
            connection.close()  # The thread's own connection, as a worker process would at exit.

    worker = threading.Thread(target=work)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while BgRemoveJob.objects.get(pk=job.pk).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        first_lease = BgRemoveJob.objects.get(pk=job.pk).lease_expires_at
        time.sleep(3)  # Past the first lease.
        held = BgRemoveJob.objects.get(pk=job.pk)
        assert held.status == "running" and held.lease_expires_at > first_lease > timezone.now() - timedelta(seconds=2)
        with pytest.raises(jobs.JobLeaseHeldError):
            jobs.bg_remove_job_claim(job_id=job.id)
    finally:
        release.set()
        worker.join(30)
    done = BgRemoveJob.objects.get(pk=job.pk)
    assert results and results[0].status == done.status == "done"
    assert (done.attempts, done.inferences, done.lease_expires_at) == (1, 1, None)
