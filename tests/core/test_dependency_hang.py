"""PostgreSQL or the object store hangs (accepts, never answers): a request answers a clean 503
within a bound (the settings' connect and read timeouts, no retry), never waits for ever, and
answers again once the service does."""

import subprocess
import time

import psycopg
import pytest
import requests
from django.db import connection

from core.postgresql.base import BoundedConnection, ServerSilentError
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.faults import Forwarder

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def pg_forwarder(_needs_postgres):
    forwarder = Forwarder("127.0.0.1", int(connection.settings_dict["PORT"] or 5432))
    yield forwarder
    forwarder.close()


@pytest.mark.django_db
def test_a_silent_server_ends_a_query_within_the_read_timeout_and_the_connection_is_dropped(pg_forwarder):
    db = connection.settings_dict
    conn = BoundedConnection.connect(host="127.0.0.1", port=pg_forwarder.port, user=db["USER"], dbname=db["NAME"],
                                     connect_timeout=2, autocommit=True)
    conn.read_timeout = 0.5
    assert conn.execute("SELECT 1").fetchone() == (1,)
    pg_forwarder.hang()
    started = time.monotonic()
    with pytest.raises(ServerSilentError):
        conn.execute("SELECT 2")
    assert time.monotonic() - started < 2
    assert conn.closed  # Its protocol state is unknown: never used again.
    # A new connection to the silent server ends at connect_timeout, with psycopg's own error.
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        BoundedConnection.connect(host="127.0.0.1", port=pg_forwarder.port, user=db["USER"], dbname=db["NAME"],
                                  connect_timeout=2)
    assert time.monotonic() - started < 4


def _web(env, tmp_path):
    port = free_port()
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(web_command(port, threads=2), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for_port(port, proc=proc)
    return proc, port


def _get(port, url):
    started = time.monotonic()
    response = requests.get(f"http://127.0.0.1:{port}{url}", timeout=30)
    return response, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_the_server_answers_503_within_the_bound_while_postgres_hangs(source, worker_env, pg_forwarder, tmp_path):
    db = connection.settings_dict
    env = {**worker_env, "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{pg_forwarder.port}/{db['NAME']}",
           "CELERY_BROKER_URL": "memory://", "RENDER_LOOKUP_CACHE_SECONDS": "0", "SOURCE_CACHE_SECONDS": "0",
           "DATABASE_STATEMENT_TIMEOUT": "0.5", "DATABASE_READ_TIMEOUT": "1", "DATABASE_CONNECT_TIMEOUT": "2"}
    proc, port = _web(env, tmp_path)
    try:
        ok, _ = _get(port, "/render/acme-photos/astronaut.jpg?w=40")
        assert ok.status_code == 200
        pg_forwarder.hang()
        for url in ("/render/acme-photos/astronaut.jpg?w=41", "/render/acme-photos/astronaut.jpg?w=42"):
            response, seconds = _get(port, url)
            assert response.status_code == 503, response.content
            assert response.json()["error"]["code"] == "database_unavailable"
            # The open connection's read bound (1 s), then a new one's connect bound (2 s).
            assert seconds < 6, seconds
        pg_forwarder.up()
        again, _ = _get(port, "/render/acme-photos/astronaut.jpg?w=40")
        assert again.status_code == 200 and again.content == ok.content
    finally:
        stop_process(proc)


@pytest.mark.django_db(transaction=True)
def test_the_server_answers_503_within_the_bound_while_the_store_hangs(source, worker_env, s3_bucket, moto_server,
                                                                       tmp_path):
    _, bucket = s3_bucket
    s3 = Forwarder("127.0.0.1", int(moto_server.rsplit(":", 1)[1]))
    env = {**worker_env, "CELERY_BROKER_URL": "memory://", "AWS_STORAGE_BUCKET_NAME": bucket,
           "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3.port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_READ_TIMEOUT": "1", "RENDER_NODE_CACHE_BYTES": "0"}
    env.pop("CUTOUT_MEDIA_ROOT", None)
    proc, port = _web(env, tmp_path)
    try:
        ok, _ = _get(port, "/render/acme-photos/astronaut.jpg?w=40")
        assert ok.status_code == 200
        s3.hang()
        # A new render (its write) and a hit (its read), with no node cache: each waits once.
        for url in ("/render/acme-photos/astronaut.jpg?w=41", "/render/acme-photos/astronaut.jpg?w=40"):
            response, seconds = _get(port, url)
            assert response.status_code == 503, response.content
            assert response.json()["error"]["code"] == "storage_unavailable"
            assert seconds < 4, seconds  # One read timeout (1 s), no retry.
        s3.up()
        # A connection a thread opened while the store hung stays silent behind the forwarder: it
        # costs that thread one more bounded wait, and is dropped.
        answers = [_get(port, "/render/acme-photos/astronaut.jpg?w=40")[0] for _ in range(4)]
        assert answers[-1].status_code == 200 and answers[-1].content == ok.content, answers
        assert sum(a.status_code != 200 for a in answers) <= 2, answers  # At most once per thread.
    finally:
        stop_process(proc)
        s3.close()
