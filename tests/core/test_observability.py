"""Health, readiness, metrics and structured logs."""

import io
import json
import logging
import time

import pytest

from core.logging import JsonFormatter
from cutouts.services import bg_remove_job_process

pytestmark = pytest.mark.django_db


def test_healthz_is_fast_and_plain(client):
    started = time.monotonic()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert time.monotonic() - started < 0.5 and response["Cache-Control"] == "no-store"


def test_readyz_checks_every_dependency_without_leaking(client, settings):
    from cutouts.workers import bg_remove_worker_report

    bg_remove_worker_report()  # What a worker consuming the job queue writes (tests/cutouts/test_job_faults.py).
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok", "models": "ok", "workers": "ok"}
    assert body["seconds"] < 1
    text = response.content.decode()
    assert "redis://" not in text and "postgres" not in text and settings.SECRET_KEY not in text


@pytest.mark.parametrize("bucket_exists", [True, False])
def test_readyz_checks_s3_for_real(client, settings, s3_storage, bucket_exists):
    if not bucket_exists:
        settings.STORAGES = {**settings.STORAGES, "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "no-such-bucket",
                        "secret_key": "very-secret"},
        }}
    from django.core.files.storage import default_storage

    default_storage.bucket  # A process makes its S3 client once; do it before the timed check.
    response = client.get("/readyz")
    assert response.json()["checks"]["storage"] == ("ok" if bucket_exists else "error: ClientError")
    assert response.status_code == (200 if bucket_exists else 503)
    assert "very-secret" not in response.content.decode()


def test_readyz_answers_quickly_when_storage_is_unreachable(client, settings):
    from tests.conftest import free_port

    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        # Nothing listens there: the check must fail fast, not hang the probe.
        "OPTIONS": {"bucket_name": "x", "endpoint_url": f"http://127.0.0.1:{free_port()}", "access_key": "a",
                    "secret_key": "very-secret", "region_name": "us-east-1"},
    }}
    started = time.monotonic()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"] == "timeout" or response.json()["checks"]["storage"].startswith("error")
    assert time.monotonic() - started < 1.5
    assert "very-secret" not in response.content.decode()


def metric(text, name):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_metrics_count_requests_renders_jobs_and_origin_errors(client, source):
    before = client.get("/metrics").content.decode()
    client.get("/render/acme-photos/astronaut.jpg?w=10")
    client.get("/render/acme-photos/astronaut.jpg?w=10")
    client.get("/render/acme-photos/missing.jpg")
    job = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").json()["job"]
    bg_remove_job_process(job_id=job)
    after = client.get("/metrics").content.decode()

    def delta(name):
        return metric(after, name) - metric(before, name)

    assert delta('cutout_render_seconds_count{cache="miss"}') == 1
    assert delta('cutout_render_seconds_count{cache="hit"}') == 1
    assert delta('cutout_render_seconds_count{cache="processing"}') == 1
    assert delta('cutout_http_requests_total{method="GET",route="render/<str:source>/<path:path>",status="404"}') == 1
    assert delta('cutout_origin_fetch_errors_total{kind="origin_not_found"}') == 1
    assert delta('cutout_bg_remove_jobs_total{state="done"}') == 1
    assert delta('cutout_bg_remove_inferences_total{model="u2netp"}') == 1
    assert 'cutout_bg_remove_queue{state="done"} 1.0' in after


def test_json_logs_one_line_per_request_with_the_account(client, source):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cutout.requests")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.get("/render/acme-photos/astronaut.jpg?w=12")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["status"] == 200 and entry["account"] == "acme" and entry["cache"] == "miss"
    assert entry["path"] == "/render/acme-photos/astronaut.jpg" and entry["duration_ms"] >= 0


def test_json_logs_one_line_per_job_with_its_id(client, source, caplog):
    job = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").json()["job"]
    with caplog.at_level(logging.INFO, logger="cutouts.services"):
        bg_remove_job_process(job_id=job)
    record = next(r for r in caplog.records if r.name == "cutouts.services")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["job"] == job and entry["account"] == "acme" and entry["status"] == "done"


def test_probes_answer_whatever_the_host_header(client):
    # A load balancer probing by IP address is not in ALLOWED_HOSTS.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_an_invented_method_is_counted_as_other(client, source):
    before = client.get("/metrics").content.decode()
    for name in ("FOOBAR", "BAZ1", "QUUX2"):
        client.generic(name, "/render/acme-photos/astronaut.jpg")
    after = client.get("/metrics").content.decode()
    assert 'method="FOOBAR"' not in after and 'method="BAZ1"' not in after
    label = 'cutout_http_requests_total{method="other",route="render/<str:source>/<path:path>",status="405"}'
    assert metric(after, label) - metric(before, label) == 3
