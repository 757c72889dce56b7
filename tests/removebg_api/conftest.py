"""Fixtures for the remove.bg API: a key with its scope, calls, a cutout made by the real model,
a real server (web and worker processes), and npm's remove.bg client installed."""

import shutil
import subprocess
from dataclasses import dataclass

import pytest
from django.test import Client

from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from tests.conftest import IN_CI, ROOT, WorkerProcess, free_port, start_worker, stop_process, wait_for_port
from tests.processes import purge_queues, start_procfile_process


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


@dataclass
class Server:
    url: str
    web: WorkerProcess
    worker: WorkerProcess


@pytest.fixture
def removebg_server(worker_env, tmp_path):
    """platform/Procfile's `web` (granian) and a Celery worker on this test's database, broker and
    storage: what a self-hosted install runs, reached over HTTP by real clients. Origins on this
    machine are allowed (the tests serve image_url and bg_image_url from it)."""
    port = free_port()
    env = {**worker_env, "PORT": str(port), "WEB_WORKERS": "1", "ORIGIN_ALLOW_LOOPBACK": "true",
           "LOG_FLUSH_SECONDS": "0"}
    purge_queues()
    web = start_procfile_process("web", env, tmp_path / "web.log", ready_marker="Started worker")
    worker = None
    try:
        wait_for_port(port, proc=web.proc)
        worker = start_worker(env, tmp_path / "worker.log")
        yield Server(url=f"http://127.0.0.1:{port}", web=web, worker=worker)
    finally:
        for process in (worker, web):
            if process is not None:
                stop_process(process.proc)


NPM_CLIENT = "remove.bg@1.3.0"


@pytest.fixture(scope="session")
def npm_client_dir():
    """npm's `remove.bg` client installed (once, kept under var/) from the npm registry, as
    `npm install remove.bg@1.3.0` installs it in an application's folder."""
    if not (shutil.which("node") and shutil.which("npm")):
        if IN_CI:
            pytest.fail("node and npm are needed for the npm client's tests (CI=true: they may not skip)")
        pytest.skip("node and npm are not installed")
    folder = ROOT / "var" / "npm-removebg-client"
    if not (folder / "node_modules" / "remove.bg" / "package.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(folder), NPM_CLIENT],
                       check=True, capture_output=True, timeout=300)
    return folder
