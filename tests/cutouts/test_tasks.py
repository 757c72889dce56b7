"""A real Celery worker process with the real model, against the production services."""

import io
import os
import subprocess
import sys
import threading
import time

import pytest
import requests
from PIL import Image

from cutouts.models import BgRemoveJob
from tests.conftest import ROOT, start_worker, stop_process

CONCURRENT_REQUESTS = 50


def test_worker_without_model_fails_fast_naming_the_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SECRET_KEY="x", CUTOUT_VAR_DIR=str(tmp_path / "var"),
               BG_REMOVE_MODEL_HOME=str(tmp_path / "no-models"), DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--without-mingle"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "python manage.py provision_models u2netp" in result.stderr


def worker_metric(folder, name, **labels):
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return sum(
        sample.value for family in registry.collect() for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def wait_until(predicate, timeout=90, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_make_one_job_and_one_inference(
    live_server, source, s3_storage, worker_env, tmp_path
):
    """Postgres decides the race, Redis carries the job, the cutout lands in S3."""
    s3, bucket = s3_storage
    url = f"{live_server.url}/render/{source.slug}/astronaut.jpg?bg-remove=true"
    barrier = threading.Barrier(CONCURRENT_REQUESTS)
    answers = [None] * CONCURRENT_REQUESTS

    def first_request(i):
        with requests.Session() as http:
            barrier.wait()
            answers[i] = http.get(url, timeout=30)

    threads = [threading.Thread(target=first_request, args=(i,)) for i in range(CONCURRENT_REQUESTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert {a.status_code for a in answers} == {202}, [a.text for a in answers if a.status_code != 202]
    assert len({a.json()["job"] for a in answers}) == 1
    assert BgRemoveJob.objects.count() == 1

    # The job waits in Redis until a worker appears; then exactly one inference runs.
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # A web process writes its log lines in batches; a worker writes each at once, or its pool
    # process, which ends with os._exit, would drop the job's lines (LOG_FLUSH_SECONDS is long here).
    worker = start_worker(
        {**worker_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "LOG_FLUSH_SECONDS": "60"},
        tmp_path / "worker.log",
    )
    try:
        done = wait_until(lambda: (r := requests.get(url, timeout=30)).status_code == 200 and r)
    finally:
        stop_process(worker.proc)
    image = Image.open(io.BytesIO(done.content))
    assert done.headers["Content-Type"] == "image/png" and image.mode == "RGBA"
    assert image.getchannel("A").getextrema() == (0, 255)

    job = BgRemoveJob.objects.get()
    assert (job.status, job.inferences, job.attempts) == ("done", 1, 1)
    assert worker.log().count(f"bg-remove job {job.id} done") == 1
    # Counted by the worker's own metrics, too.
    assert worker_metric(metrics_dir, "cutout_bg_remove_inferences_total", model="u2netp") == 1
    assert worker_metric(metrics_dir, "cutout_bg_remove_jobs_total", state="done") == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="cutouts/").get("Contents", [])]
    assert keys == [f"cutouts/{source.id}/{job.id}.png"]


@pytest.fixture
def web_source(account, httpserver, settings):
    from tests.factories import SourceFactory

    settings.ORIGIN_ALLOW_LOOPBACK = True
    return SourceFactory(account=account, slug="acme-web", kind="web", base_url=httpserver.url_for("/"),
                         local_path="")


def web_worker(worker_env, tmp_path, **extra):
    return start_worker({**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true", **extra}, tmp_path / "worker.log")


def job_when(predicate, timeout=90):
    return wait_until(lambda: (job := BgRemoveJob.objects.first()) and predicate(job) and job, timeout=timeout)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_transient_origin_failure_is_retried_with_backoff(client, web_source, httpserver, photo_jpg,
                                                          worker_env, tmp_path):
    httpserver.expect_ordered_request("/a.jpg").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/a.jpg").respond_with_data(photo_jpg, content_type="image/jpeg")
    assert client.get("/render/acme-web/a.jpg?bg-remove=true").status_code == 202
    worker = web_worker(worker_env, tmp_path)
    try:
        job = job_when(lambda j: j.status in ("done", "failed"))
    finally:
        stop_process(worker.proc)
    assert (job.status, job.attempts, job.inferences) == ("done", 2, 1)
    assert "retry: Retry in 2s" in worker.log()
    assert client.get("/render/acme-web/a.jpg?bg-remove=true").status_code == 200


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_job_that_keeps_failing_is_not_retried_forever(client, web_source, httpserver, worker_env, tmp_path):
    httpserver.expect_request("/a.jpg").respond_with_data("down", status=503)
    assert client.get("/render/acme-web/a.jpg?bg-remove=true").status_code == 202
    worker = web_worker(worker_env, tmp_path, BG_REMOVE_MAX_RETRIES="1")
    try:
        job = job_when(lambda j: j.status == "failed")
        time.sleep(1)
    finally:
        stop_process(worker.proc)
    job.refresh_from_db()
    assert (job.attempts, job.inferences, job.error_status) == (2, 0, 503)
    assert "HTTP 503" in job.error_message
    assert len(httpserver.log) == 2
    response = client.get("/render/acme-web/a.jpg?bg-remove=true")
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert "HTTP 503" in response.json()["error"]["message"]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_killed_worker_process_job_runs_again(client, web_source, httpserver, photo_jpg, worker_env,
                                              tmp_path, media_storage):
    import signal
    from threading import Event

    fetching = Event()

    def slow_then_fast(request):
        from werkzeug.wrappers import Response

        if not fetching.is_set():
            fetching.set()
            time.sleep(5)
        return Response(photo_jpg, content_type="image/jpeg")

    httpserver.expect_request("/a.jpg").respond_with_handler(slow_then_fast)
    assert client.get("/render/acme-web/a.jpg?bg-remove=true").status_code == 202
    worker = web_worker(worker_env, tmp_path)
    try:
        assert fetching.wait(60), worker.log()
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(worker.proc.pid)],
                                  capture_output=True, text=True).stdout.split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        job = job_when(lambda j: j.status in ("done", "failed"))
    finally:
        stop_process(worker.proc)
    assert (job.status, job.attempts, job.inferences) == ("done", 2, 1), worker.log()
    assert "taken over from dead worker" in worker.log()
    assert [p.name for p in (media_storage / "cutouts").rglob("*.png")] == [f"{job.id}.png"]
    assert client.get("/render/acme-web/a.jpg?bg-remove=true").status_code == 200


def png_bomb(width=100_000, height=100_000) -> bytes:
    """A PNG whose header claims 10 gigapixels, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_bad_origins_fail_cleanly_and_the_worker_stays_alive(client, web_source, httpserver, photo_jpg,
                                                              worker_env, tmp_path):
    bad = {
        "bomb.png": (png_bomb(), 422, "too_many_pixels"),
        "truncated.jpg": (photo_jpg[: len(photo_jpg) // 3], 422, "not_an_image"),
        "page.jpg": (b"<html>hello</html>", 422, "not_an_image"),
        "empty.png": (b"", 422, "not_an_image"),
        "huge.jpg": (b"\xff\xd8\xff" + b"\0" * (12 * 1024 * 1024), 413, "origin_too_large"),
    }
    for name, (data, _, _) in bad.items():
        httpserver.expect_request(f"/{name}").respond_with_data(data, content_type="image/jpeg")
    httpserver.expect_request("/good.jpg").respond_with_data(photo_jpg, content_type="image/jpeg")
    for name in [*bad, "good.jpg"]:
        assert client.get(f"/render/acme-web/{name}?bg-remove=true").status_code == 202
    worker = web_worker(worker_env, tmp_path)
    try:
        wait_until(lambda: not BgRemoveJob.objects.filter(status__in=["queued", "running"]).exists(), timeout=120)
        assert worker.proc.poll() is None, "the worker died"
    finally:
        stop_process(worker.proc)
    for name, (_, status, code) in bad.items():
        job = BgRemoveJob.objects.get(path=name)
        assert (job.status, job.error_status, job.error_code, job.inferences) == ("failed", status, code, 0), name
        response = client.get(f"/render/acme-web/{name}?bg-remove=true")
        assert response.status_code == status and response.json()["error"]["code"] == code
    assert BgRemoveJob.objects.get(path="good.jpg").status == "done"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_whole_worker_killed_mid_job_hands_it_to_another(live_server, web_source, httpserver, photo_jpg,
                                                           worker_env, tmp_path, media_storage):
    """SIGKILL to the worker and its pool: another worker finishes the job, once, and no request
    sees a 5xx meanwhile."""
    import signal
    from threading import Event

    fetching = Event()

    def slow_once(request):
        from werkzeug.wrappers import Response

        if not fetching.is_set():
            fetching.set()
            time.sleep(8)  # The first worker never gets past this: it is killed.
        return Response(photo_jpg, content_type="image/jpeg")

    httpserver.expect_request("/a.jpg").respond_with_handler(slow_once)
    url = f"{live_server.url}/render/acme-web/a.jpg?bg-remove=true"
    assert requests.get(url, timeout=30).status_code == 202
    # Short lease and visibility timeout so the test need not wait minutes (production: 300/600 s).
    env = {**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true", "BG_REMOVE_JOB_LEASE": "3",
           "CELERY_VISIBILITY_TIMEOUT": "5"}
    first = start_worker(env, tmp_path / "first.log")
    try:
        assert fetching.wait(60), first.log()
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
        second = start_worker(env, tmp_path / "second.log")
        try:
            statuses = []

            def served():
                response = requests.get(url, timeout=30)
                statuses.append(response.status_code)
                return response.status_code == 200

            wait_until(served, timeout=90, interval=0.5)
        finally:
            stop_process(second.proc)
    finally:
        stop_process(first.proc)
    assert all(s in (200, 202) for s in statuses), statuses
    job = BgRemoveJob.objects.get()
    assert (job.status, job.inferences) == ("done", 1) and job.attempts == 2
    assert [p.name for p in (media_storage / "cutouts").rglob("*.png")] == [f"{job.id}.png"]


def test_worker_without_its_execution_provider_fails_fast_naming_it(tmp_path, settings):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SECRET_KEY="x", CUTOUT_VAR_DIR=str(tmp_path / "var"), CUTOUT_ENV_FILE=os.devnull,
               BG_REMOVE_MODEL_HOME=str(settings.BG_REMOVE_MODEL_HOME), DJANGO_SETTINGS_MODULE="config.settings",
               BG_REMOVE_PROVIDERS="CUDAExecutionProvider,CPUExecutionProvider")
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--without-mingle"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "ONNX Runtime has no CUDAExecutionProvider (BG_REMOVE_PROVIDERS)" in result.stderr
    assert "onnxruntime-gpu" in result.stderr
