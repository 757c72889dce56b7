"""Schemathesis against remove.bg's own OpenAPI description (removebg_api/openapi/remove.bg.json),
pointed at our server: no 5xx, and every answer (status, content type, headers, body) as the
spec says. Generated requests first (a bounded, derandomised number per operation and media
type), then requests with a real photograph, whose 200s are checked against the spec too."""

import base64
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from removebg_api.models import CreditAccount
from tests.api.test_schemathesis import CHECKS

SPEC = Path(__file__).resolve().parents[2] / "removebg_api" / "openapi" / "remove.bg.json"
EXAMPLES_PER_OPERATION = 25
# Generated URLs are replaced by one no request can leave this machine for: a loopback address,
# which the origins' network rules refuse before connecting (ORIGIN_ALLOW_LOOPBACK is off).
LOCAL_URL = "http://127.0.0.1:9/image.jpg"
URL_FIELDS = ("image_url", "bg_image_url")

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def spec(db, settings):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    settings.ORIGIN_ALLOW_LOOPBACK = False
    # As Django's test client does: the WSGI handler must not close the test's DB connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    schema = schemathesis.openapi.from_path(SPEC)
    schema.app = application
    yield schema
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _local_only(case):
    if isinstance(case.body, dict):
        for field in URL_FIELDS:
            if field in case.body:
                case.body[field] = LOCAL_URL
    return case


def test_generated_requests_conform(spec, removebg_key, settings):
    settings.REMOVEBG_WAIT_SECONDS = 0
    headers = {"X-Api-Key": removebg_key}
    operations = [result.ok() for result in spec.get_all_operations()]
    assert {op.path for op in operations} == {"/removebg", "/account", "/improve"}
    statuses = set()
    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = _local_only(case).call_and_validate(headers=headers, checks=CHECKS)
            statuses.add((case.operation.path, response.status_code))

        check()
    # The generated calls reached the answers that matter, not just one refusal.
    assert ("/account", 200) in statuses and ("/removebg", 400) in statuses and ("/improve", 400) in statuses


def test_wrong_keys_conform(spec):
    for operation in (result.ok() for result in spec.get_all_operations()):
        post = operation.method == "post"
        case = operation.Case(media_type="application/json", body={}) if post else operation.Case()
        for headers in ({}, {"X-Api-Key": "wrong"}):
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            assert response.status_code == 403


def test_results_conform(spec, removebg_key, photo_jpg, account, settings):
    """Real 200s: images, JSON, and each media type of the request."""
    CreditAccount.objects.create(account=account, credits=10, free_calls=50)
    operation = spec["/removebg"]["POST"]
    b64 = base64.b64encode(photo_jpg).decode()
    # The first call leaves the job queued (nothing waits); the real model runs it here, as a worker would.
    settings.REMOVEBG_WAIT_SECONDS = 0
    first = operation.Case(media_type="application/json", body={"image_file_b64": b64})
    assert first.call_and_validate(headers={"X-Api-Key": removebg_key}, checks=CHECKS).status_code == 429
    assert bg_remove_job_process(job_id=BgRemoveJob.objects.get().id).status == "done"
    cases = [
        operation.Case(media_type="application/json", body={"image_file_b64": b64}),
        operation.Case(media_type="application/json", body={"image_file_b64": b64, "size": "full", "crop": True,
                                                             "format": "jpg", "bg_color": "81d4fa"}),
        operation.Case(media_type="application/x-www-form-urlencoded", body={"image_file_b64": b64,
                                                                             "channels": "alpha"}),
        operation.Case(media_type="multipart/form-data", body={"image_file": photo_jpg, "type": "person",
                                                               "scale": "80%", "format": "png"}),
    ]
    headers = {"X-Api-Key": removebg_key}
    for case in cases:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == 200, response.text[:300]
        assert {k.lower(): v for k, v in response.headers.items()}["content-type"][0].startswith("image/")
    as_json = cases[0].call_and_validate(headers={**headers, "Accept": "application/json"}, checks=CHECKS)
    assert as_json.status_code == 200 and "result_b64" in as_json.json()["data"]
    account_case = spec["/account"]["GET"].Case()
    assert account_case.call_and_validate(headers=headers, checks=CHECKS).json()["data"]["attributes"]["credits"]
