"""core/redis_cache.py on the real Redis: incr is one atomic round trip that keeps the key's expiry."""

import pytest
import redis
from django.conf import settings

from core.redis_cache import AtomicIncrRedisCache

pytestmark = pytest.mark.redis


@pytest.fixture
def cache():
    backend = AtomicIncrRedisCache(settings.REDIS_URL, {"KEY_PREFIX": "cache-test"})
    backend.clear()
    yield backend
    backend.clear()


def command_calls(client, name: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))


def test_incr_is_one_script_call_and_keeps_the_expiry(cache):
    raw = redis.Redis.from_url(settings.REDIS_URL)
    assert cache.add("hits", 0, 60)
    before = command_calls(raw, "eval")
    assert [cache.incr("hits") for _ in range(5)] == [1, 2, 3, 4, 5]
    # Five increments, five commands sent: each one EVAL (Django's sends EXISTS, then INCRBY).
    assert command_calls(raw, "eval") - before >= 5  # (>=: another client may eval meanwhile)
    assert cache.incr("hits", 10) == 15 and cache.get("hits") == 15
    assert 0 < raw.ttl(cache.make_key("hits")) <= 60


def test_incr_of_a_missing_key_raises_and_creates_nothing(cache):
    raw = redis.Redis.from_url(settings.REDIS_URL)
    with pytest.raises(ValueError):
        cache.incr("never-added")
    assert not raw.exists(cache.make_key("never-added"))


def test_the_configured_cache_is_this_one():
    from django.core.cache import caches

    assert isinstance(caches["default"], AtomicIncrRedisCache)


def test_incr_window_is_one_script_call_that_creates_the_key_with_its_expiry(cache):
    raw = redis.Redis.from_url(settings.REDIS_URL)
    before = command_calls(raw, "eval")
    assert [cache.incr_window("window", 1, 30) for _ in range(3)] == [1, 2, 3]
    assert command_calls(raw, "eval") - before >= 3
    assert 0 < raw.ttl(cache.make_key("window")) <= 30
    assert cache.get("window") == 3


def test_incr_window_gives_a_key_without_expiry_one(cache):
    raw = redis.Redis.from_url(settings.REDIS_URL)
    raw.set(cache.make_key("forever"), 5)
    assert cache.incr_window("forever", 1, 30) == 6
    assert 0 < raw.ttl(cache.make_key("forever")) <= 30
