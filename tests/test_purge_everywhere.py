"""Once a purge or a source change has answered, no web process serves what it removed: the
default two granian processes, with Redis and without it (`make run`), their caches kept long
enough that only the cache generation (core/generation.py) can make them forget."""

import http.client
import subprocess

import pytest
from PIL import Image, ImageOps

from accounts.services import api_key_create
from tests.conftest import FIXTURES, ROOT, free_port, stop_process, wait_for_port, web_command
from tests.factories import SourceFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

URL = "/render/acme-photos/astronaut.jpg?w=64"
# Each request on a connection of its own, so both processes answer some of them.
REQUESTS = 60


def get(port, url=URL, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", url, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_json(port, url, body, key, method="POST"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, url, body=body, headers={"Authorization": f"Bearer {key}",
                                                      "Content-Type": "application/json", "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(params=["redis", "no-redis"])
def web(request, origin_root, account, settings, tmp_path, worker_env):
    """`make run`'s web server: two granian processes, with (or without) Redis, caches kept 60 s."""
    with_redis = request.param == "redis"
    if with_redis and not settings.REDIS_URL:
        pytest.skip("Redis is not configured")
    port = free_port()
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL if with_redis else "",
           "CELERY_BROKER_URL": settings.CELERY_BROKER_URL if with_redis else "filesystem://",
           "CUTOUT_VAR_DIR": str(tmp_path / "web-var"), "RENDER_LOOKUP_CACHE_SECONDS": "60",
           "SOURCE_CACHE_SECONDS": "60", "RENDER_RATE_LIMIT": "100000/m", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    if with_redis:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    SourceFactory(account=account, slug="acme-photos", kind="local", local_path="photos")
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(web_command(port, workers=2), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


def warm(port) -> bytes:
    """The render made and kept by both processes (many connections, many repeats)."""
    answers = {get(port) for _ in range(REQUESTS)}
    assert len(answers) == 1
    status, body = answers.pop()
    assert status == 200
    return body


def test_after_a_purge_no_process_serves_the_old_image(web, account, origin_root):
    port = web
    old = warm(port)
    # The origin changes (mirrored), and the image is purged through the API.
    photo = origin_root / "photos" / "astronaut.jpg"
    ImageOps.mirror(Image.open(FIXTURES / "astronaut.jpg")).save(photo, quality=90)
    _, key = api_key_create(account=account, scopes=["purge"])
    status, body = post_json(port, "/api/v1/purge", b'{"source": "acme-photos"}', key)
    assert status == 200, body
    statuses, bodies = [], []
    for _ in range(REQUESTS):
        status, body = get(port)
        statuses.append(status)
        bodies.append(body)
    assert statuses == [200] * REQUESTS
    assert sum(body == old for body in bodies) == 0  # Never the old bytes, from either process.
    assert len(set(bodies)) == 1


def test_after_a_purge_of_a_deleted_origin_no_process_serves_it(web, account, origin_root):
    port = web
    warm(port)
    (origin_root / "photos" / "astronaut.jpg").unlink()
    _, key = api_key_create(account=account, scopes=["purge"])
    status, body = post_json(port, "/api/v1/purge", b'{"url": "http://127.0.0.1/render/acme-photos/astronaut.jpg"}',
                             key)
    assert status == 200, body
    assert [get(port)[0] for _ in range(REQUESTS)] == [404] * REQUESTS


def test_after_a_source_requires_signatures_no_process_serves_unsigned(web, account):
    port = web
    warm(port)
    _, key = api_key_create(account=account, scopes=["write"])
    status, body = post_json(port, "/api/v1/sources/acme-photos", b'{"require_signature": true}', key,
                             method="PATCH")
    assert status == 200, body
    assert [get(port)[0] for _ in range(REQUESTS)] == [403] * REQUESTS


def test_with_redis_unreachable_a_purge_does_not_answer_done_and_no_cached_entry_is_trusted(
        source, settings, client):
    from core.local_cache import ExpiringCache
    from rendering.store import PurgeNotAnnouncedError, render_purge

    cache = ExpiringCache(max_entries=10)
    cache.set("a", 1, 60)
    settings.CACHES = {"default": {"BACKEND": "core.redis_cache.AtomicIncrRedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with pytest.raises(PurgeNotAnnouncedError):
        render_purge(source=source)
    # A request's count cannot read the generation: what was cached before is not used.
    assert client.get("/render/acme-photos/astronaut.jpg?w=20").status_code == 200
    assert cache.get("a", None) is None
