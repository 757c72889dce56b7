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
