"""Bounded, fair workers on real Celery worker processes: poison jobs, fairness across accounts,
large origins and alpha matting within their budgets (issue 11, section 3)."""

import io
import os
import signal
import statistics
import time

import numpy as np
import pytest
from PIL import Image

from accounts.models import Account
from cutouts import services as jobs
from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_request
from tests.conftest import FIXTURES, start_worker, stop_process
from tests.factories import AccountFactory, SourceFactory
from tests.processes import pool_children, purge_queues

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def wait_until(predicate, timeout=90, interval=0.1, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time" + (f":\n{log()}" if log else ""))


def unlimited(account):
    Account.objects.filter(pk=account.pk).update(bg_remove_max_pending=100_000, bg_remove_rate_limit="100000/m")
    account.refresh_from_db()


@pytest.fixture(autouse=True)
def _no_stale_messages():
    purge_queues()


@pytest.fixture
def web_source(account, httpserver, settings):
    settings.ORIGIN_ALLOW_LOOPBACK = True
    return SourceFactory(account=account, slug="acme-web", kind="web", base_url=httpserver.url_for("/"),
                         local_path="")


def test_a_job_that_kills_its_worker_each_time_is_given_up_after_max_attempts(web_source, httpserver, worker_env,
                                                                              tmp_path, photo_jpg):
    """The test kills the pool process (SIGKILL, as the OOM killer would) each time it starts
    the job. After BG_REMOVE_MAX_ATTEMPTS deaths the job fails with a reason, instead of looping;
    the worker lives on and runs the next job."""
    from werkzeug.wrappers import Response

    def slow(request):
        time.sleep(2)  # Long enough for the test to kill the process that asked.
        return Response(photo_jpg, content_type="image/jpeg")

    httpserver.expect_request("/poison.jpg").respond_with_handler(slow)
    httpserver.expect_request("/good.jpg").respond_with_data(photo_jpg, content_type="image/jpeg")
    unlimited(web_source.account)
    poison = bg_remove_job_request(source=web_source, path="poison.jpg", model="u2netp")
    worker = start_worker({**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true", "BG_REMOVE_MAX_ATTEMPTS": "3"},
                          tmp_path / "worker.log")
    kills = []
    try:
        while True:
            job = wait_until(lambda: (j := BgRemoveJob.objects.get(pk=poison.pk)) and (
                j.status == "failed" or (j.status == "running" and j.attempts > len(kills))) and j,
                timeout=60, log=worker.log)
            if job.status == "failed":
                break
            pid = int(job.claimed_by.rpartition(":")[2])
            assert pid in pool_children(worker.proc.pid), worker.log()
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
            assert len(kills) <= 3, "the job is still being run after its last attempt"
        good = bg_remove_job_request(source=web_source, path="good.jpg", model="u2netp")
        wait_until(lambda: BgRemoveJob.objects.get(pk=good.pk).status == "done", timeout=60)
        assert worker.proc.poll() is None
    finally:
        stop_process(worker.proc)
    job.refresh_from_db()
    assert len(kills) == len(set(kills)) == 3
    assert (job.status, job.error_status, job.error_code, job.attempts, job.crashes, job.inferences) == (
        "failed", 422, "bg_remove_worker_died", 3, 3, 0)
    assert "made the worker die 3 times" in job.error_message
    assert "given up: its worker died 3 times" in worker.log()


def tiny_jpeg(i: int) -> bytes:
    image = Image.open(FIXTURES / "astronaut.jpg").convert("RGB").resize((48, 48))
    image.putpixel((0, 0), (i % 256, 0, 0))  # A different image each time.
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_one_accounts_backlog_does_not_hold_up_another_account(source, origin_root, worker_env, tmp_path, settings):
    """Tenant A holds 100 pending jobs (one message each, queued first); tenant B's new job, whose
    message is behind all of A's, starts after at most the job then running plus one. Every job
    still runs exactly once: one message per job, whichever job a message ends up running."""
    settings.BG_REMOVE_MAX_PENDING = 100_000
    unlimited(source.account)
    names = []
    for i in range(100):
        name = f"a-{i:03d}.jpg"
        (origin_root / "photos" / name).write_bytes(tiny_jpeg(i))
        names.append(name)
    other = SourceFactory(account=AccountFactory(slug="tenant-b", bg_remove_enabled=True), slug="b-photos",
                          kind="local", local_path="photos")
    for name in names:
        bg_remove_job_request(source=source, path=name, model="u2netp")
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        wait_until(lambda: BgRemoveJob.objects.filter(source=source, status="done").count() >= 3, timeout=120,
                   log=worker.log)
        b_job = bg_remove_job_request(source=other, path="astronaut.jpg", model="u2netp")
        b_job = wait_until(lambda: (j := BgRemoveJob.objects.get(pk=b_job.pk)).status == "done" and j, timeout=120,
                           log=worker.log)
        # One more of A's, so the message B's job used up is seen to leave A's jobs running on.
        a_done = BgRemoveJob.objects.filter(source=source, status="done").count()
        wait_until(lambda: BgRemoveJob.objects.filter(source=source, status="done").count() > a_done, timeout=60)
    finally:
        stop_process(worker.proc)
    a_started = list(BgRemoveJob.objects.filter(source=source, started_at__isnull=False).order_by("started_at"))
    ahead = [j for j in a_started if b_job.created_at < j.started_at < b_job.started_at]
    assert len(ahead) <= 1, f"{len(ahead)} of A's jobs started while B's waited"
    a_duration = statistics.median((j.finished_at - j.started_at).total_seconds()
                                   for j in a_started if j.finished_at)
    waited = (b_job.started_at - b_job.created_at).total_seconds()
    assert waited < 3 * a_duration + 1, (waited, a_duration)
    assert len(a_started) < 60  # B did not wait for A's backlog (FIFO would have run all 100 first).
    # Nothing run twice, nothing lost: the rest of A's jobs wait, each with its message.
    finished = BgRemoveJob.objects.filter(status="done")
    assert {(j.inferences, j.attempts) for j in finished} == {(1, 1)}
    assert BgRemoveJob.objects.filter(status="queued").count() == 101 - finished.count() - \
        BgRemoveJob.objects.filter(status="running").count()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def the_pool_process(worker) -> int:
    (pid,) = wait_until(lambda: (found := pool_children(worker.proc.pid)) and len(found) == 1 and found)
    return pid


def smooth_jpeg(width: int, height: int) -> bytes:
    """A photograph blown up to width × height: smooth, so a 49 MP JPEG stays under 12 MB."""
    image = Image.open(FIXTURES / "astronaut.jpg").convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return buf.getvalue()


# Peak resident set (VmHWM) of the pool process through a 49 MP job, measured with this test on
# the 2-core development machine: 830 MiB with the downscale to 10 MP (the pool process starts at
# 130–180 MiB; the model's arena, the 3162² image, its mask and the RGBA cutout are the rest), and
# 1760 MiB without it (BG_REMOVE_MAX_PIXELS=100000000 in the environment). 1.2 GB leaves ~40 %
# for allocator differences and still fails clearly if the full-size image reaches the model.
PEAK_RSS_BOUND_KIB = 1200 * 1024


def test_a_49_megapixel_origin_is_scaled_to_10_megapixels_before_the_model(client, source, origin_root, worker_env,
                                                                           tmp_path, media_storage, settings):
    from cutouts.remover import inference_size
    from tests.processes import peak_rss_kib

    data = smooth_jpeg(7000, 7000)
    assert len(data) < settings.ORIGIN_MAX_BYTES
    (origin_root / "photos" / "huge.jpg").write_bytes(data)
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        pool = the_pool_process(worker)
        before = peak_rss_kib(pool)
        job = bg_remove_job_request(source=source, path="huge.jpg", model="u2netp")
        job = wait_until(lambda: (j := BgRemoveJob.objects.get(pk=job.pk)).status in ("done", "failed") and j,
                         timeout=180, log=worker.log)
        peak = peak_rss_kib(pool)
        assert pool_children(worker.proc.pid) == [pool]  # The same process ran it: its peak is the job's.
    finally:
        stop_process(worker.proc)
    print(f"pool process peak RSS: {before / 1024:.0f} MiB before the job, {peak / 1024:.0f} MiB after")
    assert job.status == "done", job.error_message
    assert peak < PEAK_RSS_BOUND_KIB, f"peak RSS {peak / 1024:.0f} MiB"
    assert (job.width, job.height) == inference_size(7000, 7000) == (3162, 3162)
    stored = Image.open(media_storage / job.cutout_name)
    assert stored.size == (3162, 3162) and stored.width * stored.height <= 10_000_000
    assert stored.mode == "RGBA" and stored.getchannel("A").getextrema() == (0, 255)
    # Renders of it still honour sizes and ratios.
    sized = client.get(f"/render/{source.slug}/huge.jpg?bg-remove=true&w=500")
    assert Image.open(io.BytesIO(b"".join(sized.streaming_content) if sized.streaming else sized.content)).size == (
        500, 500)
    cropped = client.get(f"/render/{source.slug}/huge.jpg?bg-remove=true&w=600&ar=3:1&fit=crop")
    image = Image.open(io.BytesIO(b"".join(cropped.streaming_content) if cropped.streaming else cropped.content))
    assert image.size == (600, 200)


# Issue 23: a worker process through 10 MP jobs, after another (ONNX Runtime grew its memory on a
# model's second run before its memory pattern was turned off): 741 MiB measured with this test on
# the 2-core development machine, 1096 MiB before issue 23's changes; 741-801 MiB across runs on
# the AVX2-only machine of 2026-12-06. The bound is issue 23's 0.8 GB, read as 0.8 GiB (819 MiB).
STEADY_RSS_BOUND_KIB = int(0.8 * 1024 * 1024)


def test_a_worker_stays_under_800_mib_through_10_megapixel_jobs(source, origin_root, worker_env, tmp_path):
    from tests.processes import peak_rss_kib

    (origin_root / "photos" / "ten.jpg").write_bytes(smooth_jpeg(3162, 3162))
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        pool = the_pool_process(worker)
        for path in ("astronaut.jpg", "ten.jpg", "ten.jpg"):
            job = bg_remove_job_request(source=source, path=path, model="u2netp")
            job = wait_until(lambda: (j := BgRemoveJob.objects.get(pk=job.pk)).status in ("done", "failed") and j,
                             timeout=120, log=worker.log)
            assert job.status == "done", job.error_message
            BgRemoveJob.objects.filter(pk=job.pk).delete()  # The next one is a new job, run again.
        peak = peak_rss_kib(pool)
        assert pool_children(worker.proc.pid) == [pool]  # The same process ran them all.
    finally:
        stop_process(worker.proc)
    print(f"pool process peak RSS through 10 MP jobs: {peak / 1024:.0f} MiB")
    assert peak < STEADY_RSS_BOUND_KIB, f"peak RSS {peak / 1024:.0f} MiB"


def test_alpha_matting_past_its_budget_leaves_no_work_running_and_gives_its_memory_back(
        source, origin_root, worker_env, tmp_path, settings):
    """The matting runs in a child process killed at the budget: once the job is done, nothing
    of it burns CPU in the pool process, no child is left, and the resident set is back down."""
    from sources.models import Source
    from tests.processes import rss_kib

    Source.objects.filter(pk=source.pk).update(bg_remove_refinement="alpha-matting")
    # 1 MP: matting it takes far longer than the budget of 1 s and the window measured after it.
    big = Image.open(FIXTURES / "astronaut.jpg").convert("RGB").resize((1000, 1000), Image.Resampling.BICUBIC)
    big.save(origin_root / "photos" / "big.jpg", quality=90)
    worker = start_worker({**worker_env, "BG_REMOVE_MATTING_SECONDS": "1"}, tmp_path / "worker.log")
    try:
        pool = the_pool_process(worker)
        # Plain jobs on the same image first, so the model's own first-run allocations (its
        # arena grows over the first inferences) are not counted below.
        for refinement in ("none", "post-process"):
            warm = bg_remove_job_request(source=source, path="big.jpg", model="u2netp", refinement=refinement)
            wait_until(lambda: BgRemoveJob.objects.get(pk=warm.pk).status == "done", timeout=120, log=worker.log)
        rss_before, threads_before = rss_kib(pool), threads(pool)
        job = bg_remove_job_request(source=source, path="big.jpg", model="u2netp", refinement="alpha-matting")
        job = wait_until(lambda: (j := BgRemoveJob.objects.get(pk=job.pk)).status in ("done", "failed") and j,
                         timeout=120, log=worker.log)
        time.sleep(3)  # What the job itself still does after its row says done (ack, logs) is over.
        cpu_then = cpu_seconds(pool)
        time.sleep(3)
        burnt = cpu_seconds(pool) - cpu_then
        grandchildren = pool_children(pool)
        rss_after, threads_after = rss_kib(pool), threads(pool)
    finally:
        stop_process(worker.proc)
    print(f"after the job: {burnt:.2f} CPU-s in 3 s, RSS {rss_before / 1024:.0f} → {rss_after / 1024:.0f} MiB")
    assert job.status == "done" and "longer than its budget of 1 s" in job.note
    assert burnt < 0.3, f"the pool process still burns CPU: {burnt:.2f} s in 3 s"
    assert grandchildren == []
    assert threads_after <= threads_before + 1  # The lease keeper's thread has ended; no matting thread.
    assert rss_after < rss_before + 100 * 1024, (rss_before, rss_after)


def test_alpha_matting_over_its_memory_budget_is_stopped_and_the_plain_mask_used(settings):
    from cutouts.remover import cutout
    from imaging.decode import image_decode

    settings.BG_REMOVE_MATTING_SECONDS = 60
    children_before = pool_children(os.getpid())  # The run's own servers (moto, …).
    image = image_decode((FIXTURES / "astronaut.jpg").read_bytes())
    settings.BG_REMOVE_MATTING_MAX_BYTES = 50 * 1024**2
    started = time.monotonic()
    starved, note = cutout(image, model="u2netp", refinement="alpha-matting")
    assert "memory budget of 50 MiB" in note and time.monotonic() - started < 30
    assert starved.mode == "RGBA" and starved.size == image.size
    settings.BG_REMOVE_MATTING_MAX_BYTES = 2 * 1024**3
    refined, note = cutout(image, model="u2netp", refinement="alpha-matting")
    assert note == "" and refined.mode == "RGBA" and refined.size == image.size
    alpha = np.asarray(refined.getchannel("A"))
    assert ((alpha > 0) & (alpha < 255)).mean() > 0.01  # Matting's soft edges, not the plain mask's.
    assert pool_children(os.getpid()) == children_before  # Every matting child is gone.


def test_the_workers_decode_bounds_a_hostile_structure_before_pillow_opens_it():
    # Pillow parses a JPEG's segments when it opens the file: the worker's own header read (for
    # the downscale before inference) must come after the structure check, as image_decode's does.
    from imaging.decode import TooManySegmentsError
    from tests.hostile import jpeg_many_segments

    data = jpeg_many_segments()
    started = time.process_time()
    with pytest.raises(TooManySegmentsError):
        jobs._decode_for_inference(data)
    assert time.process_time() - started < 0.5
    photo = (FIXTURES / "astronaut.jpg").read_bytes()
    assert jobs._decode_for_inference(photo).size == Image.open(io.BytesIO(photo)).size
