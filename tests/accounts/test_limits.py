"""accounts/limits.py: fixed-window rate counters, one Redis round trip per counted event."""

import time

import pytest
import redis
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache

from accounts import limits
from accounts.limits import RateLimitedError, rate_count, rate_limit, rate_parse
from accounts.models import Account
from core.redis_cache import AtomicIncrRedisCache

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return Account.objects.create(name="Limits", slug="limits")


@pytest.fixture
def redis_cache(monkeypatch):
    backend = AtomicIncrRedisCache(settings.REDIS_URL, {"KEY_PREFIX": "limits-test"})
    backend.clear()
    monkeypatch.setattr(limits, "_cache", lambda: backend)
    yield backend
    backend.clear()


def test_rate_parse():
    assert rate_parse("600/m") == (600, 60)
    assert rate_parse("10/s") == (10, 1)
    assert rate_parse("100/5m") == (100, 300)
    assert rate_parse("5000/h") == (5000, 3600)
    assert rate_parse("1/d") == (1, 86400)


@pytest.mark.redis
def test_counting_is_one_round_trip_and_refuses_past_the_limit(redis_cache, account):
    raw = redis.Redis.from_url(settings.REDIS_URL)
    before = raw.info("commandstats")
    usages = [rate_limit(group="request rate", code="over", account=account, rate="3/m") for _ in range(3)]
    after = raw.info("commandstats")
    assert [u.count for u in usages] == [1, 2, 3] and [u.remaining for u in usages] == [2, 1, 0]
    assert all(u.limit == 3 and 1 <= u.reset_seconds <= 60 for u in usages)

    def calls(stats, name):
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    # Three events, three scripts; no separate SET/INCRBY/EXISTS from the client (another client
    # may use the server meanwhile, hence >=/ranges rather than equality on a shared Redis).
    assert calls(after, "eval") - calls(before, "eval") >= 3
    with pytest.raises(RateLimitedError) as refused:
        rate_limit(group="request rate", code="over", account=account, rate="3/m")
    assert refused.value.code == "over" and 1 <= refused.value.retry_after <= 60
    # The counter expires with its window (a minute and a second at most), so none piles up.
    keys = raw.keys("limits-test:*")
    assert len(keys) == 1 and 0 < raw.ttl(keys[0]) <= 61


@pytest.mark.redis
def test_a_look_does_not_count_and_refuses_at_the_limit(redis_cache, account):
    rate_count(group="bg", account=account, rate="2/m")
    assert rate_limit(group="bg", code="over", account=account, rate="2/m", increment=False).count == 1
    assert rate_limit(group="bg", code="over", account=account, rate="2/m", increment=False).count == 1
    rate_count(group="bg", account=account, rate="2/m")
    with pytest.raises(RateLimitedError):
        rate_limit(group="bg", code="over", account=account, rate="2/m", increment=False)


@pytest.mark.redis
def test_accounts_and_groups_count_apart(redis_cache, account):
    other = Account.objects.create(name="Other", slug="other")
    for _ in range(2):
        rate_limit(group="a", code="over", account=account, rate="2/m")
    assert rate_limit(group="a", code="over", account=other, rate="2/m").count == 1
    assert rate_limit(group="b", code="over", account=account, rate="2/m").count == 1
    with pytest.raises(RateLimitedError):
        rate_limit(group="a", code="over", account=account, rate="2/m")


@pytest.mark.redis
def test_a_new_window_starts_from_zero(redis_cache, account):
    while True:
        try:
            rate_limit(group="s", code="over", account=account, rate="2/s")
        except RateLimitedError:
            break
    time.sleep(1.1)
    assert rate_limit(group="s", code="over", account=account, rate="2/s").count == 1


def test_the_embedded_per_process_cache_counts_in_process(monkeypatch, account):
    monkeypatch.setattr(limits, "_cache", lambda: LocMemCache("limits-locmem", {}))
    limits._process_windows.clear()
    counts = [rate_limit(group="g", code="over", account=account, rate="3/m").count for _ in range(3)]
    assert counts == [1, 2, 3]
    with pytest.raises(RateLimitedError):
        rate_limit(group="g", code="over", account=account, rate="3/m")


def test_fails_open_when_the_cache_is_down(monkeypatch, account, caplog):
    dead = AtomicIncrRedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})
    monkeypatch.setattr(limits, "_cache", lambda: dead)
    for _ in range(3):
        assert rate_limit(group="g", code="over", account=account, rate="1/m") is None
    assert "not checked, cache unavailable" in caplog.text


def test_process_counters_stay_bounded_whatever_the_keys():
    windows = limits._ProcessWindows(max_keys=100)
    for i in range(1000):
        assert windows.incr(f"k{i}", 60) == 1
    assert len(windows._counts) <= 100
    assert windows.incr("k999", 60) == 2  # The newest keep counting.
    expired = limits._ProcessWindows()
    expired.incr("gone", 0)
    assert expired.get("gone") == 0 and expired.incr("gone", 60) == 1
