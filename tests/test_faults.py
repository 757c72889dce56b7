"""The load-and-fault suite: the production stack (tests/stack.py: platform/Procfile's web, worker
and beat on Postgres, Redis and S3) under a mixed load, one fault at a time, made by forwarders
the test owns. After each: no answer was a server error (500, 502, 504, a dropped connection), a
503 only ever said what was unavailable and when to retry, every job is final, no stored render
is broken, and new cutouts are served at the speed they were before.

Sizes come from the environment so CI can run a shortened version: FAULT_SECONDS (default 20),
RECOVERY_SECONDS (default 30) and LOAD_RATE (requests a second, default 15). bench/README.md
records a full run (`FAULT_SECONDS=25 RECOVERY_SECONDS=60 make test-load`).
"""

import io
import os
import statistics
import time
from collections import Counter

import pytest
import requests
from PIL import Image

from accounts.models import Account
from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from removebg_api.credits import credit_account_ensure
from rendering.models import Render
from tests.stack import Load, stack_start

pytestmark = [pytest.mark.load, pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3,
              pytest.mark.django_db(transaction=True)]

FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "20"))
RECOVERY_SECONDS = float(os.environ.get("RECOVERY_SECONDS", "30"))
LOAD_RATE = float(os.environ.get("LOAD_RATE", "15"))
BEFORE_SECONDS = 10
# What a 503 may say: the service that is down, or the work it cannot take now.
UNAVAILABLE = {"queue_unavailable", "storage_unavailable", "database_unavailable", "render_busy", "purge_not_announced",
               "service_unavailable", "cache_unavailable", "server_busy"}


@pytest.fixture
def production(source, account, origin_root, moto_server, s3_bucket, tmp_path):
    Account.objects.filter(pk=account.pk).update(bg_remove_max_pending=100_000, bg_remove_rate_limit="100000/m")
    credit = credit_account_ensure(account=account)
    credit.credits = 100_000
    credit.save()
    _, api_key = api_key_create(account=account, scopes=["read", "write", "purge"])
    _, removebg_key = api_key_create(account=account, scopes=["removebg"])
    _, bucket = s3_bucket
    stack = stack_start(tmp=tmp_path, moto_url=moto_server, bucket=bucket, origin_root=origin_root)
    hits = [f"/render/{source.slug}/astronaut.jpg?w={w}&fm=webp" for w in (64, 128, 256, 320)]
    try:
        for path in hits:
            assert requests.get(stack.url(path), timeout=60).status_code == 200
        load = Load(stack, source=source.slug, api_key=api_key, removebg_key=removebg_key, hits=hits,
                    photos=origin_root / "photos", rate=LOAD_RATE)
        yield stack, load, s3_bucket
    finally:
        stack.stop()


def _run(stack, load, fault, restore):
    """BEFORE_SECONDS of load, the fault for FAULT_SECONDS, then RECOVERY_SECONDS; the cutouts
    still pending are followed to the end. Returns when the fault ended, in seconds of the load."""
    load.start()
    time.sleep(BEFORE_SECONDS)
    fault()
    time.sleep(FAULT_SECONDS)
    restore()
    ended = time.monotonic() - load.began
    time.sleep(RECOVERY_SECONDS)
    load.stop()
    # Every job ends within one lease plus one sweep of the fault's end (a minute of margin for a
    # backlog on this small machine).
    load.follow_until(time.monotonic() + stack.lease_and_sweep() + 60)
    return ended


def _check(load, stack, s3_bucket, *, ended, name):
    answers = load.answers
    by_status = {}
    for answer in answers:
        by_status.setdefault(answer.status, []).append(answer)
    errors = [a for a in answers if a.status in (0, 500, 502, 504)]
    unexplained = [a for a in by_status.get(503, []) if a.code not in UNAVAILABLE]
    late_503 = [a for a in by_status.get(503, []) if a.started > ended + 10]
    before = load.cutout_seconds(since=0)
    before = [s for s in before if s < 60] or [0]
    after = load.cutout_seconds(since=ended + 10)
    hits = sorted(a.seconds for a in answers if a.kind == "hit" and a.status == 200)
    kinds = {}
    for answer in answers:
        if answer.status != 200:
            kinds.setdefault(answer.kind, Counter())[answer.status] += 1
    print(f"\n{name}: not 200, by kind: {({k: dict(v) for k, v in sorted(kinds.items())})}")
    print(f"{name}: {len(answers)} answers, statuses {sorted((k, len(v)) for k, v in by_status.items())}; "
          f"503 codes {sorted({str(a.code) for a in by_status.get(503, [])})}; "
          f"hits p50 {statistics.median(hits) * 1000:.0f} ms; cutouts served {len(load.cutout_seconds())} of "
          f"{len(load.cutouts)}, p50 after recovery "
          f"{statistics.median(after) if after else float('nan'):.1f} s")
    assert not errors, [(a.kind, a.status, round(a.started, 1)) for a in errors[:20]]
    # A hit is served whatever is down (the processes' memory, the node cache or storage), except
    # while the database is: a kept hit is then served only from the node cache's index, which
    # every purge or change ends on every machine (the cache generation), and this load purges
    # about once a second, so the index is rarely current when the outage begins.
    if name != "Postgres refused":
        failed_hits = [a for a in answers if a.kind == "hit" and a.status != 200]
        assert not failed_hits, [(a.status, a.code, round(a.started, 1)) for a in failed_hits[:20]]
    assert not unexplained, [(a.kind, a.code) for a in unexplained[:20]]
    assert not late_503, [(a.kind, a.code, round(a.started, 1)) for a in late_503[:20]]
    assert not load.pending(), f"cutouts never served: {load.pending()[:5]}"
    # Every job is final (remove.bg's calls made at the end included) within a lease and a sweep.
    deadline = time.monotonic() + stack.lease_and_sweep() + 30
    while BgRemoveJob.objects.exclude(status__in=["done", "failed"]).exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert not BgRemoveJob.objects.exclude(status__in=["done", "failed"]).exists(), list(
        BgRemoveJob.objects.exclude(status__in=["done", "failed"]).values_list("id", "status"))
    # No stored render is broken: each row's object is whole, and an image decodes. A row whose
    # object a racing purge deleted is allowed: a request finds it gone, forgets it and renders
    # again (rendering/views.py), so nothing broken is ever served from it.
    client, bucket = s3_bucket
    for render in Render.objects.all():
        try:
            data = client.get_object(Bucket=bucket, Key=render.storage_name)["Body"].read()
        except client.exceptions.NoSuchKey:
            continue
        assert len(data) == render.size, render.storage_name
        if not render.content_type.startswith("image/"):
            continue  # A remove.bg result's container: whole by its size.
        try:
            Image.open(io.BytesIO(data)).load()
        except Exception as exc:
            raise AssertionError(f"{render.storage_name} ({render.content_type}, {len(data)} bytes, "
                                 f"{data[:32]!r}) does not decode") from exc
    # New cutouts are back to their speed within a minute of recovery.
    if after:
        assert statistics.median(after) <= max(3 * statistics.median(before), 10), (before, after)


def test_redis_refused(production):
    stack, load, s3_bucket = production
    ended = _run(stack, load, stack.redis.refuse, stack.redis.up)
    _check(load, stack, s3_bucket, ended=ended, name="Redis refused")


def test_redis_hung(production):
    stack, load, s3_bucket = production
    ended = _run(stack, load, stack.redis.hang, stack.redis.up)
    _check(load, stack, s3_bucket, ended=ended, name="Redis hung")


def test_postgres_refused(production):
    stack, load, s3_bucket = production
    ended = _run(stack, load, stack.postgres.refuse, stack.postgres.up)
    _check(load, stack, s3_bucket, ended=ended, name="Postgres refused")


def _running_job(timeout=30) -> None:
    """Waits until a worker is running a job (a fault is then mid-job)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if BgRemoveJob.objects.filter(status="running").exists():
            return
        time.sleep(0.05)


def test_a_pool_process_killed_mid_job(production):
    stack, load, s3_bucket = production

    def kill():
        _running_job()
        stack.kill_pool_process()

    ended = _run(stack, load, kill, lambda: None)
    _check(load, stack, s3_bucket, ended=ended, name="pool process SIGKILLed")


def test_the_workers_main_process_killed_mid_job(production):
    stack, load, s3_bucket = production

    def kill():
        _running_job()
        stack.kill("worker")  # Its pool processes are left behind, as after an OOM kill.

    def supervisor_restarts():
        stack.start("worker")

    ended = _run(stack, load, kill, supervisor_restarts)
    _check(load, stack, s3_bucket, ended=ended, name="worker's main process SIGKILLed")


def test_s3_refused(production):
    stack, load, s3_bucket = production
    ended = _run(stack, load, stack.s3.refuse, stack.s3.up)
    _check(load, stack, s3_bucket, ended=ended, name="S3 refused")
