"""Job lifecycle: claims and leases, duplicates, transient and permanent failures."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cutouts import services as jobs
from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_retry
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


# --- Fairness and poison jobs (issue 11) ----------------------------------------------------------

def test_each_message_runs_the_oldest_job_of_the_least_recently_served_account(account, origin_root):
    """A message names a job, but the worker runs the fairest one: round-robin across accounts,
    oldest first within one. Whichever message comes, each job runs once."""
    from tests.factories import AccountFactory

    b_source = SourceFactory(account=AccountFactory(slug="b"), kind="local", local_path="photos")
    c_source = SourceFactory(account=AccountFactory(slug="c"), kind="local", local_path="photos")
    a_source = SourceFactory(account=account, kind="local", local_path="photos")
    made = {}
    for name, src in (("a1", a_source), ("a2", a_source), ("a3", a_source), ("b1", b_source), ("c1", c_source)):
        made[name] = BgRemoveJob.objects.create(source=src, path=f"{name}.jpg", model="u2netp")
    order = []
    for _ in made:
        # Always the message of a3, the newest job of the busiest account.
        claimed = jobs.bg_remove_job_claim(job_id=made["a3"].id)
        order.append(claimed.path.removesuffix(".jpg"))
        BgRemoveJob.objects.filter(pk=claimed.pk).update(status="done", finished_at=timezone.now())
    assert order == ["a1", "b1", "c1", "a2", "a3"]
    assert jobs.bg_remove_job_claim(job_id=made["a3"].id) is None  # A duplicate message: nothing left.


def test_a_job_backing_off_is_not_run_early_by_another_message(source):
    backing_off = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp",
                                             run_after=timezone.now() + timedelta(seconds=30))
    with pytest.raises(jobs.JobLeaseHeldError) as err:
        jobs.bg_remove_job_claim(job_id=backing_off.id)
    assert 25 < err.value.wait <= 30
    BgRemoveJob.objects.filter(pk=backing_off.pk).update(run_after=timezone.now() - timedelta(seconds=1))
    assert jobs.bg_remove_job_claim(job_id=backing_off.id).pk == backing_off.pk


def test_a_job_whose_worker_keeps_dying_fails_with_a_reason_after_max_attempts(source, settings, client):
    """Each takeover from a dead holder counts a crash; at BG_REMOVE_MAX_ATTEMPTS the job fails
    (422, not retried on later requests) instead of being handed to the next worker."""
    settings.BG_REMOVE_MAX_ATTEMPTS = 3
    settings.BG_REMOVE_FAILED_RETRY_AFTER = 0
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp")

    def die():
        # What a killed pool process leaves: the job running, held by a process that is gone.
        BgRemoveJob.objects.filter(pk=job.pk).update(claimed_by="vanished-host:1",
                                                     lease_expires_at=timezone.now() - timedelta(seconds=1))

    assert jobs.bg_remove_job_claim(job_id=job.id).attempts == 1
    for crashes in (1, 2):
        die()
        again = jobs.bg_remove_job_claim(job_id=job.id)
        assert (again.status, again.attempts, again.crashes) == ("running", crashes + 1, crashes)
    die()
    assert jobs.bg_remove_job_claim(job_id=job.id) is None
    job.refresh_from_db()
    assert (job.status, job.error_status, job.error_code, job.crashes, job.attempts) == (
        "failed", 422, "bg_remove_worker_died", 3, 3)
    assert "made the worker die 3 times" in job.error_message
    response = client.get(f"/render/{source.slug}/astronaut.jpg?bg-remove=true")
    assert response.status_code == 422 and response.json()["error"]["code"] == "bg_remove_worker_died"
    job.refresh_from_db()
    assert job.status == "failed"  # Not queued again by the request.
    # A manager's retry starts afresh.
    assert bg_remove_job_retry(job=job)
    job.refresh_from_db()
    assert (job.status, job.crashes, job.retries) == ("queued", 0, 0)


def test_a_large_jpeg_is_decoded_in_draft_mode_and_scaled_to_the_inference_ceiling(settings, monkeypatch):
    """7000×7000 → JPEG draft at 1/2 (3500×3500, never below the target) → 3162×3162 ≤ 10 MP."""
    import io

    from PIL import Image, JpegImagePlugin

    from cutouts.remover import inference_size

    settings.BG_REMOVE_MAX_PIXELS = 10_000_000
    buf = io.BytesIO()
    Image.new("RGB", (7000, 7000), (200, 120, 40)).save(buf, "JPEG", quality=70)
    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self, mode, size):
        result = original(self, mode, size)
        drafts.append((size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    image = jobs._decode_for_inference(buf.getvalue())
    assert drafts == [((3162, 3162), (3500, 3500))]
    assert image.size == (3162, 3162) == inference_size(7000, 7000)
    assert inference_size(3000, 3000) is None and inference_size(8000, 5000) == (4000, 2500)


# --- The sweep (issue 21) -------------------------------------------------------------------------

def test_the_sweep_puts_abandoned_jobs_back_counting_a_crash_only_for_a_holder_not_known_alive(source, settings):
    import os
    import socket

    settings.BG_REMOVE_MAX_ATTEMPTS = 3
    expired = timezone.now() - timedelta(seconds=1)
    held = timezone.now() + timedelta(seconds=60)

    def running(path, holder, lease, crashes=0):
        return BgRemoveJob.objects.create(source=source, path=path, model="u2netp", status="running",
                                          claimed_by=holder, lease_expires_at=lease, crashes=crashes,
                                          enqueued_at=timezone.now())

    here = socket.gethostname()
    other_host = running("a.jpg", "other-host:1", expired)  # Its machine is gone, or not: unknown.
    stalled = running("b.jpg", f"{here}:{os.getpid()}", expired)  # Alive here: the database stalled it.
    dead_here = running("c.jpg", f"{here}:999999999", held)  # Its lease runs on, its process is gone.
    alive = running("d.jpg", "other-host:2", held)  # Held, renewing: left alone.
    poison = running("e.jpg", "other-host:3", expired, crashes=2)
    assert jobs.bg_remove_jobs_reclaim() == 3  # The poison job fails instead.
    state = {j.path: (j.status, j.crashes, j.enqueued_at) for j in BgRemoveJob.objects.all()}
    assert state["a.jpg"] == ("queued", 1, None) and state["c.jpg"] == ("queued", 1, None)
    assert state["b.jpg"] == ("queued", 0, None)
    assert state["d.jpg"][:2] == ("running", 0)
    assert state["e.jpg"][:2] == ("failed", 3)
    assert jobs.bg_remove_jobs_reclaim() == 0  # Nothing left to do: the sweep is idempotent.
    del other_host, stalled, dead_here, alive, poison


def test_the_sweep_sends_only_the_messages_the_queue_lacks(source, settings):
    settings.BG_REMOVE_SWEEP_SECONDS = 15
    now = timezone.now()

    def queued(path, **fields):
        return BgRemoveJob.objects.create(source=source, path=path, model="u2netp", **fields)

    unsent = queued("a.jpg", enqueued_at=None)  # Its publish failed.
    old = queued("b.jpg", enqueued_at=now - timedelta(minutes=5))
    fresh = queued("c.jpg", enqueued_at=now)  # Sent a moment ago: its message may be on its way.
    queued("d.jpg", enqueued_at=None, run_after=now + timedelta(seconds=60))  # Backing off: its message waits.
    queued("e.jpg", status="done")
    # Three runnable jobs: the queue holding three messages lacks none, whichever job they name.
    assert jobs.bg_remove_jobs_unsent(waiting=3) == []
    assert jobs.bg_remove_jobs_unsent(waiting=2) == [unsent.pk]
    assert BgRemoveJob.objects.get(pk=unsent.pk).enqueued_at is not None
    # Marked sent: asked again at once it is not sent twice; only the old one is left to send.
    assert jobs.bg_remove_jobs_unsent(waiting=0) == [old.pk]
    assert jobs.bg_remove_jobs_unsent(waiting=0) == []
    del fresh
