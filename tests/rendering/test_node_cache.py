"""The node cache on the production stack (granian, PostgreSQL, Redis, S3 over HTTP): a hit is served
from the machine's disk, so it is still served while the store (or the database) is refused; a purge
makes it unservable; the cache stays under its bound; a file that is not whole is never served."""

import http.client
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from accounts.services import api_key_create
from rendering.models import Render
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.faults import Forwarder

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

URL = "/render/acme-photos/astronaut.jpg?w=40"


def get(port, url=URL):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", url, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def purge(port, account, body):
    _, key = api_key_create(account=account, scopes=["purge"])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/v1/purge", body=json.dumps(body),
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()


def blobs(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (folder / "blobs").glob("*/*") if not p.name.startswith(".")}


def on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for kind in ("blobs", "index") for p in (folder / kind).glob("*/*")
               if not p.name.startswith("."))


class Stack:
    def __init__(self, port, s3, db, folder):
        self.port, self.s3, self.db, self.folder = port, s3, db, folder


@pytest.fixture
def stack(request, source, worker_env, s3_bucket, moto_server, tmp_path, _needs_postgres):
    """The web server (two granian processes) with the bucket and PostgreSQL each behind a
    forwarder of the test's, and no per-process caching of lookups or bodies: every hit looks its
    render up in the database and reads its bytes from the node cache or the store."""
    _, bucket = s3_bucket
    s3 = Forwarder("127.0.0.1", int(moto_server.rsplit(":", 1)[1]))
    db = Forwarder("127.0.0.1", int(connection.settings_dict["PORT"] or 5432))
    folder = tmp_path / "node-cache"
    settings_db = connection.settings_dict
    env = {**worker_env, "CELERY_BROKER_URL": "memory://", "AWS_STORAGE_BUCKET_NAME": bucket,
           "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3.port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_READ_TIMEOUT": "2",
           "DATABASE_URL": f"postgres://{settings_db['USER']}@127.0.0.1:{db.port}/{settings_db['NAME']}",
           "RENDER_LOOKUP_CACHE_SECONDS": "0", "SOURCE_CACHE_SECONDS": "0", "RENDER_RATE_LIMIT": "100000/m",
           "RENDER_NODE_CACHE_DIR": str(folder), **getattr(request, "param", {})}
    env.pop("CUTOUT_MEDIA_ROOT", None)
    port = free_port()
    log = (tmp_path / "web.log").open("wb")
    workers = int(env.pop("WORKERS", "2"))
    proc = subprocess.Popen(web_command(port, workers=workers), cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        yield Stack(port, s3, db, folder)
    finally:
        stop_process(proc)
        s3.close()
        db.close()


def test_a_hit_is_served_from_the_node_cache_while_the_store_is_refused(stack):
    status, made = get(stack.port)
    assert status == 200
    render = Render.objects.get()
    assert blobs(stack.folder) == {render.etag.strip('"'): render.size}  # Kept by the process that made it.
    stack.s3.refuse()
    # Each on a new connection, so both processes answer: the one that never read it too.
    answers = [get(stack.port) for _ in range(20)]
    assert answers == [(200, made)] * 20
    assert get(stack.port, "/render/acme-photos/astronaut.jpg?w=41")[0] == 503  # Not kept: needs the store.


def test_after_a_purge_a_kept_render_is_not_served(stack, account):
    assert get(stack.port)[0] == 200
    assert get(stack.port)[0] == 200
    purge(stack.port, account, {"source": "acme-photos"})
    stack.s3.refuse()
    status, body = get(stack.port)
    assert status == 503 and json.loads(body)["error"]["code"] == "storage_unavailable"
    # Nor while the database is down too: the purge moved the cache generation.
    stack.db.refuse()
    status, body = get(stack.port)
    assert status == 503, body


@pytest.mark.parametrize("stack", [{"RENDER_NODE_CACHE_BYTES": "40000"}], indirect=True)
def test_the_node_cache_stays_under_its_bound(stack):
    sizes = []
    for width in range(250, 50, -10):  # Largest first: the last, small ones are each kept.
        status, body = get(stack.port, f"/render/acme-photos/astronaut.jpg?w={width}")
        assert status == 200
        sizes.append(len(body))
        assert on_disk(stack.folder) <= 40_000
    assert sum(sizes) > 3 * 40_000  # The bound was passed several times over.
    kept = blobs(stack.folder)
    renders = list(Render.objects.order_by("id"))
    assert renders[-1].etag.strip('"') in kept  # The last ones stay, the first that were kept went.
    assert [r for r in renders if r.size <= 10_000][0].etag.strip('"') not in kept
    assert all(size <= 10_000 for size in kept.values())  # No entry over a quarter of the bound.


def test_an_entry_that_is_not_whole_is_never_served(stack):
    status, made = get(stack.port)
    assert status == 200
    render = Render.objects.get()
    (path,) = (stack.folder / "blobs").glob(f"*/{render.etag.strip(chr(34))}")
    stack.s3.refuse()
    for damage in (lambda data: data[: len(data) // 2], lambda data: data[:-1] + bytes([data[-1] ^ 1])):
        path.write_bytes(damage(made))  # Cut short, or one bit changed (the same size).
        status, body = get(stack.port)
        assert status == 503 and body != made, body[:200]
        assert not path.exists()  # Removed, not served.
        stack.s3.up()
        assert get(stack.port) == (200, made)  # Read from the store, and kept again, whole.
        assert path.read_bytes() == made
        stack.s3.refuse()


@pytest.mark.parametrize("stack", [{"WORKERS": "1"}], indirect=True)
def test_while_the_database_and_the_store_are_refused_kept_hits_are_served_within_their_rules(stack):
    expiring = f"{URL}&expires={int(time.time()) + 4}"
    status, made = get(stack.port)
    assert status == 200
    status, made_expiring = get(stack.port, expiring)
    assert status == 200
    stack.db.refuse()
    stack.s3.refuse()
    assert get(stack.port) == (200, made)
    assert get(stack.port, expiring) == (200, made_expiring)
    status, body = get(stack.port, "/render/acme-photos/astronaut.jpg?w=41")  # Never kept.
    assert status == 503 and json.loads(body)["error"]["code"] == "database_unavailable"
    time.sleep(max(0.0, int(expiring.rsplit("=", 1)[1]) + 1 - time.time()))
    status, body = get(stack.port, expiring)
    assert status == 404 and json.loads(body)["error"]["code"] == "expired"  # Its own rule still holds.
    stack.db.up()
    stack.s3.up()
    assert get(stack.port) == (200, made)


def test_the_ledger_is_shared_and_files_are_written_whole(stack):
    for width in (40, 50, 60):
        assert get(stack.port, f"/render/acme-photos/astronaut.jpg?w={width}")[0] == 200
    ledger = int.from_bytes((stack.folder / ".ledger").read_bytes()[:8], "little")
    assert ledger >= on_disk(stack.folder) > 0
    assert not [p for p in stack.folder.rglob(".*.part")]
    assert all(os.stat(p).st_size > 0 for p in (stack.folder / "blobs").glob("*/*"))
