"""Fixtures for the remove.bg API: a key with its scope, calls, and a cutout made by the real model."""

import pytest
from django.test import Client

from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process


@pytest.fixture
def removebg_key(account):
    _, key = api_key_create(account=account, scopes=["removebg"])
    return key


@pytest.fixture
def call(removebg_key):
    """POST /v1.0/removebg (or another path) as a remove.bg client does, with our key."""
    http = Client()

    def send(data=None, *, path="/v1.0/removebg", method="post", key=removebg_key, **kwargs):
        headers = {"X-Api-Key": key} if key is not None else {}
        headers.update(kwargs.pop("headers", {}))
        return getattr(http, method)(path, data, headers=headers, **kwargs)

    return send


@pytest.fixture
def made(settings, call):
    """A call that leaves its job queued (nothing waits), then the job run in this process by the
    real model, as a worker runs it: the next identical call finds the cutout."""
    settings.REMOVEBG_WAIT_SECONDS = 0

    def make(data, **kwargs):
        first = call(data, **kwargs)
        assert first.status_code == 429, first.content
        assert first.json()["errors"][0]["code"] == "result_pending"
        job = BgRemoveJob.objects.get(status="queued")
        job = bg_remove_job_process(job_id=job.id)
        assert job.status == "done", job.error_message
        return job

    return make
