"""Schemathesis against the live OpenAPI schema: no 5xx, and every answer matches the schema.

A bounded number of examples per operation, derandomised (a fixed seed), so CI is repeatable.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from accounts.services import api_key_create
from tests.factories import SourceFactory

EXAMPLES_PER_OPERATION = 20
# What the API promises: no server error, and answers (status, headers, body) as the schema says.
# Not "every schema-valid request is accepted": an opaque cursor or a made-up slug is valid by
# type yet rightly refused.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def api_schema(db):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    # As Django's test client does: the WSGI handler must not close the test's DB connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_api_conforms_to_its_schema(api_schema, account, origin_root):
    SourceFactory(account=account, slug="fuzz-photos", kind="local", local_path="photos")
    _, key = api_key_create(account=account, scopes=["read", "write", "purge", "keys"])
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
