"""Every job reaches a final state whatever fails, on real processes (the Procfile's worker,
webhooks and beat, granian), with outages made by forwarders the test owns: Redis refused while
jobs are enqueued, a pool process and the worker's main process SIGKILLed mid-job, Postgres
refused mid-job (issue 21, parts 1 and 5). Lease and sweep are shortened here (production: 60 s
and 15 s); bench/job_faults.py runs the same scenarios at the production settings."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from threading import Event

import pytest
import requests
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.models import Account
from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_request
from tests.conftest import ROOT, free_port, require, stop_process, wait_for_port, web_command
from tests.factories import AccountFactory, SourceFactory
from tests.faults import Forwarder
from tests.processes import start_procfile_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# The bench (bench/job_faults.py) runs these at the production settings and collects the timings.
LEASE = os.environ.get("JOB_FAULTS_LEASE", "4")
SWEEP = os.environ.get("JOB_FAULTS_SWEEP", "1")
STALE = os.environ.get("JOB_FAULTS_STALE", "3")
# Generous: CI machines are shared. The bound the design gives is lease + sweep + a job.
FINAL_WITHIN = float(os.environ.get("JOB_FAULTS_FINAL_WITHIN", float(LEASE) + float(SWEEP) + 40))
FINAL = ("done", "failed")


def record(scenario: str, seconds: float) -> None:
    report = os.environ.get("JOB_FAULTS_REPORT")
    if report:
        with open(report, "a") as fh:
            test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].rsplit(" ", 1)[0]
            fh.write(json.dumps({"test": test, "scenario": scenario, "seconds": round(seconds, 1)}) + "\n")


def seconds_until(predicate, timeout, interval=0.2, log=None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"not within {timeout:.0f}s" + (f":\n{log()}" if log else ""))


def all_final() -> bool:
    return not BgRemoveJob.objects.exclude(status__in=FINAL).exists()


@pytest.fixture(autouse=True)
def _no_stale_messages():
    from tests.processes import purge_queues

    purge_queues(django_settings.CELERY_TASK_DEFAULT_QUEUE, django_settings.CELERY_USAGE_QUEUE)


@pytest.fixture
def env(worker_env):
    return {**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true", "BG_REMOVE_JOB_LEASE": LEASE,
            "BG_REMOVE_SWEEP_SECONDS": SWEEP, "WORKER_CONCURRENCY": "1", "BG_REMOVE_WORKER_STALE_SECONDS": STALE}


@pytest.fixture
def processes(tmp_path):
    """Procfile processes started by the test, stopped at its end."""
    started = []

    def start(name, env, log=None, **kwargs):
        marker = "Starting..." if name == "beat" else " ready."
        process = start_procfile_process(name, env, tmp_path / f"{log or name}.log", ready_marker=marker, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process.proc)


@pytest.fixture
def slow_origin(account, httpserver, settings, photo_jpg):
    """A web source whose first fetch of each path is held until the test lets it go (or 30 s):
    the job is mid-run meanwhile. Later fetches answer at once."""
    from werkzeug.wrappers import Response

    settings.ORIGIN_ALLOW_LOOPBACK = True
    other = AccountFactory(slug="other", bg_remove_enabled=True)
    source = SourceFactory(account=other, slug="other-web", kind="web", base_url=httpserver.url_for("/"), local_path="")
    fetching, release, seen = Event(), Event(), set()

    def handler(request):
        if request.path not in seen:
            seen.add(request.path)
            fetching.set()
            release.wait(30)
        return Response(photo_jpg, content_type="image/jpeg")

    httpserver.expect_request("/slow.jpg").respond_with_handler(handler)
    source.fetching, source.release = fetching, release
    yield source
    release.set()


def unlimited(*accounts):
    Account.objects.filter(pk__in=[a.pk for a in accounts]).update(bg_remove_max_pending=100_000,
                                                                    bg_remove_rate_limit="100000/m")


def test_jobs_whose_messages_were_refused_by_redis_run_after_it_returns(source, env, processes, tmp_path):
    """Redis refuses connections (every process reaches it through the test's forwarder) while
    two cutouts are asked: both answer 503 queue_unavailable and their rows stay queued without a
    message. Once Redis is back, with no further request, the sweep (beat) sends their messages
    and both jobs end done."""
    redis_port = int(django_settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    forwarder = Forwarder("127.0.0.1", redis_port)
    through = django_settings.REDIS_URL.replace(f":{redis_port}/", f":{forwarder.port}/")
    env = {**env, "REDIS_URL": through, "CELERY_BROKER_URL": through}
    processes("worker", env)
    processes("webhooks", env)
    processes("beat", env)
    web_port = free_port()
    web = subprocess.Popen(web_command(web_port), cwd=ROOT, env=env, stdout=(tmp_path / "web.log").open("wb"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(web_port, proc=web)
        base = f"http://127.0.0.1:{web_port}/render/{source.slug}"
        forwarder.refuse()
        for name in ("astronaut.jpg", "chelsea.png"):
            down = requests.get(f"{base}/{name}?bg-remove=true", timeout=30)
            assert down.status_code == 503 and down.json()["error"]["code"] == "queue_unavailable", down.text
        assert list(BgRemoveJob.objects.values_list("status", "enqueued_at")) == [("queued", None)] * 2
        time.sleep(float(SWEEP) * 2)  # Sweeps come and fail meanwhile.
        forwarder.up()
        seconds = seconds_until(all_final, FINAL_WITHIN)
        record("redis refused while enqueueing (after it returns)", seconds)
    finally:
        stop_process(web)
        forwarder.close()
    assert sorted(BgRemoveJob.objects.values_list("path", "status", "inferences")) == [
        ("astronaut.jpg", "done", 1), ("chelsea.png", "done", 1)]


def test_a_pool_process_killed_mid_job_leaves_no_job_running(source, slow_origin, env, processes):
    """The killed process ran another job than its message named (the fair pick), and the job
    that message named is done by then: its redelivered message must still find the killed job,
    not leave it running until its lease and a request for it."""
    unlimited(source.account, slow_origin.account)
    # The local source's account was served a moment ago, so the fair pick prefers the other's job.
    BgRemoveJob.objects.create(source=source, path="served.jpg", model="u2netp", status="done",
                               started_at=timezone.now(), finished_at=timezone.now())
    worker = processes("worker", {**env, "WORKER_CONCURRENCY": "2"})
    slow = BgRemoveJob.objects.create(source=slow_origin, path="slow.jpg", model="u2netp")  # Its message: later.
    named_a = bg_remove_job_request(source=source, path="astronaut.jpg", model="u2netp")
    assert slow_origin.fetching.wait(60), worker.log()  # Message A runs the slow job.
    holder = BgRemoveJob.objects.get(pk=slow.pk).claimed_by
    # The slow job's own message, and one more job: the other pool process runs A and C with them.
    from cutouts.queueing import bg_remove_job_enqueue

    bg_remove_job_enqueue(slow)
    bg_remove_job_request(source=source, path="chelsea.png", model="u2netp")
    seconds_until(lambda: BgRemoveJob.objects.filter(status="done").count() == 3, 60, log=worker.log)
    assert BgRemoveJob.objects.get(pk=named_a.pk).status == "done"
    os.kill(int(holder.rpartition(":")[2]), signal.SIGKILL)
    slow_origin.release.set()  # The origin (one thread) stops waiting for the dead process.
    seconds = seconds_until(all_final, FINAL_WITHIN, log=worker.log)
    record("pool process SIGKILLed mid-job", seconds)
    job = BgRemoveJob.objects.get(pk=slow.pk)
    assert (job.status, job.inferences, job.crashes, job.attempts) == ("done", 1, 1, 2), worker.log()


# The killed worker ran on another machine (its own host name, in a UTS namespace): nobody can see
# its processes, so only its lease running out says it is gone.
ELSEWHERE = ("unshare", "--uts", "/bin/sh", "-c", 'hostname cutout-elsewhere && exec "$@"', "sh")


@pytest.mark.parametrize("where", ["same host", "another host"])
def test_a_worker_killed_whole_mid_job_leaves_no_job_running_after_it_restarts(source, slow_origin, env, processes,
                                                                               where):
    """SIGKILL to the worker's main process (its pool dies with it) while a job runs and another
    waits: once a worker runs again, both end within a lease and a sweep, not after Redis's
    visibility timeout (600 s). On the same host the dead process is seen at once; from another,
    its lease runs out and the sweep puts the job back."""
    if where == "another host":
        require("unshare --uts (root)", subprocess.run([*ELSEWHERE, "true"], capture_output=True).returncode == 0)
    unlimited(source.account, slow_origin.account)
    processes("webhooks", env)
    processes("beat", env)
    first = processes("worker", env, log="first", argv_prefix=ELSEWHERE if where == "another host" else ())
    slow = bg_remove_job_request(source=slow_origin, path="slow.jpg", model="u2netp")
    assert slow_origin.fetching.wait(60), first.log()
    bg_remove_job_request(source=source, path="astronaut.jpg", model="u2netp")
    os.kill(first.proc.pid, signal.SIGKILL)  # The Procfile line is exec'd: this is celery's main process.
    first.proc.wait()
    killed = time.monotonic()
    slow_origin.release.set()  # The origin (one thread) stops waiting for the dead process.
    second = processes("worker", env, log="second")
    seconds_until(all_final, FINAL_WITHIN, log=second.log)
    record(f"worker main process SIGKILLed mid-job, restarted on {where} (until final, restart included)",
           time.monotonic() - killed)
    job = BgRemoveJob.objects.get(pk=slow.pk)
    assert (job.status, job.inferences, job.crashes, job.attempts) == ("done", 1, 1, 2), second.log()
    assert BgRemoveJob.objects.get(path="astronaut.jpg").status == "done"


def test_postgres_refused_mid_job_puts_the_job_back_without_counting_a_crash(slow_origin, env, processes):
    """The worker's database goes away while it fetches the origin: its next write fails. The
    job goes back to the queue once the database answers, and ends done; no crash, no retry
    counted against it (a database outage says nothing about the image)."""
    unlimited(slow_origin.account)
    db = django_settings.DATABASES["default"]
    forwarder = Forwarder(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    worker_db = f"postgres://{db['USER']}@127.0.0.1:{forwarder.port}/{db['NAME']}"
    try:
        worker = processes("worker", {**env, "DATABASE_URL": worker_db})
        job = bg_remove_job_request(source=slow_origin, path="slow.jpg", model="u2netp")
        assert slow_origin.fetching.wait(60), worker.log()
        forwarder.refuse()
        slow_origin.release.set()  # The fetch ends; the job's next write finds no database.
        time.sleep(4)
        assert BgRemoveJob.objects.get(pk=job.pk).status == "running"  # Nobody could write since.
        forwarder.up()
        seconds = seconds_until(all_final, FINAL_WITHIN, log=worker.log)
        record("postgres refused mid-job (after it returns)", seconds)
    finally:
        forwarder.close()
    job.refresh_from_db()
    assert (job.status, job.crashes, job.retries, job.inferences) == ("done", 0, 0, 1), worker.log()
    assert "database unavailable" in worker.log()


def test_readyz_says_when_no_worker_consumes_the_job_queue(client, env, processes, settings):
    settings.BG_REMOVE_WORKER_STALE_SECONDS = float(STALE)
    worker = processes("worker", env)
    seconds_until(lambda: client.get("/readyz").status_code == 200, 10, log=worker.log)
    assert client.get("/readyz").json()["checks"]["workers"] == "ok"
    os.kill(worker.proc.pid, signal.SIGKILL)
    seconds = seconds_until(lambda: client.get("/readyz").status_code == 503, float(STALE) + 5)
    record("readyz not ready after the worker was killed", seconds)
    body = client.get("/readyz").json()
    assert body["status"] == "unavailable"
    queue = django_settings.CELERY_TASK_DEFAULT_QUEUE
    assert body["checks"]["workers"] == (
        f"not ready: no worker has consumed the queue {queue!r} in the last {float(STALE):g} s")
    assert {k: v for k, v in body["checks"].items() if k != "workers"} == {
        "database": "ok", "broker": "ok", "storage": "ok", "models": "ok"}


def test_readyz_workers_check_without_redis_reads_the_shared_file(client, settings, tmp_path):
    """Embedded (`make run`: no Redis, the filesystem broker): workers report in a file under the
    var folder that the web reads."""
    from cutouts.workers import bg_remove_worker_report

    settings.REDIS_URL = None
    settings.VAR_DIR = tmp_path
    settings.READYZ_CHECKS = ["workers"]
    assert client.get("/readyz").json()["checks"]["workers"].startswith("not ready: no worker")
    bg_remove_worker_report()
    assert client.get("/readyz").json() | {"seconds": 0} == {"status": "ok", "checks": {"workers": "ok"}, "seconds": 0}
    stale = time.time() - settings.BG_REMOVE_WORKER_STALE_SECONDS - 1
    os.utime(Path(tmp_path) / f"worker-seen-{settings.CELERY_TASK_DEFAULT_QUEUE}", (stale, stale))
    assert client.get("/readyz").status_code == 503


def test_readyz_stays_quick_when_redis_hangs(client, settings):
    """A Redis that accepts and never answers: the workers check gives up within the probe's
    bound instead of stalling /readyz."""
    import socket

    silent = socket.create_server(("127.0.0.1", 0))
    try:
        settings.CACHES = {"default": {**settings.CACHES["default"],
                                       "LOCATION": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"}}
        settings.READYZ_CHECKS = ["workers"]
        started = time.monotonic()
        response = client.get("/readyz")
        assert time.monotonic() - started < 1.5
        assert response.status_code == 503 and response.json()["checks"]["workers"] in ("timeout", "error: TimeoutError")
    finally:
        silent.close()
