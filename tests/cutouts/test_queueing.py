"""The broker goes away: new bg-remove work answers 503 quickly, and recovers without a restart."""

import shutil
import subprocess
import time

import pytest
import requests

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from tests.conftest import ROOT, free_port, require, stop_process, wait_for_port, web_command


def start_redis(port, tmp_path):
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_broker_down_gives_503_then_recovers(source, worker_env, tmp_path):
    require("redis", shutil.which("redis-server") is not None)
    redis_port, web_port = free_port(), free_port()
    redis = start_redis(redis_port, tmp_path)
    wait_for_port(redis_port, proc=redis)
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = {**worker_env, "REDIS_URL": broker, "CELERY_BROKER_URL": broker}
    web = subprocess.Popen(
        web_command(web_port),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{web_port}/render/{source.slug}"
    try:
        wait_for_port(web_port, proc=web)
        first = requests.get(f"{base}/astronaut.jpg?bg-remove=true", timeout=30)
        assert first.status_code == 202
        bg_remove_job_process(job_id=first.json()["job"])
        assert requests.get(f"{base}/astronaut.jpg?bg-remove=true", timeout=30).status_code == 200

        stop_process(redis)
        # A cached cutout needs neither the broker nor the cache: still served.
        cached = requests.get(f"{base}/astronaut.jpg?bg-remove=true", timeout=30)
        assert cached.status_code == 200 and cached.headers["Content-Type"] == "image/png"
        started = time.monotonic()
        down = requests.get(f"{base}/chelsea.png?bg-remove=true", timeout=60)
        assert time.monotonic() - started < 20, "a broker outage must not hang the request"
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "queue_unavailable"
        assert int(down.headers["Retry-After"]) > 0 and down.headers["Cache-Control"] == "no-store"
        # The job row stays, marked as not queued, so the next request sends it again.
        assert BgRemoveJob.objects.get(path="chelsea.png").enqueued_at is None

        redis = start_redis(redis_port, tmp_path)
        wait_for_port(redis_port, proc=redis)
        again = requests.get(f"{base}/chelsea.png?bg-remove=true", timeout=30)
        assert again.status_code == 202, again.text
        assert again.json()["job"] == str(BgRemoveJob.objects.get(path="chelsea.png").id)
        assert BgRemoveJob.objects.get(path="chelsea.png").enqueued_at is not None
    finally:
        stop_process(web)
        stop_process(redis)
