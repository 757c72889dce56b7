"""core/local_cache.py: entries expire, and the cache is dropped whole when full."""

import time

from core.local_cache import MISSING, ExpiringCache


def test_entries_expire_and_ttl_zero_keeps_nothing():
    cache = ExpiringCache(max_entries=10)
    cache.set("a", 1, 0.05)
    cache.set("b", 2, 0)
    assert cache.get("a") == 1 and cache.get("b") is MISSING
    time.sleep(0.06)
    assert cache.get("a") is MISSING


def test_dropped_whole_past_max_entries():
    cache = ExpiringCache(max_entries=2)
    cache.set("a", 1, 60)
    cache.set("b", 2, 60)
    cache.set("c", 3, 60)
    assert cache.get("a") is MISSING and cache.get("b") is MISSING and cache.get("c") == 3


def test_weights_bound_the_total():
    cache = ExpiringCache(max_entries=100, max_weight=10)
    cache.set("a", b"x" * 4, 60, weight=4)
    cache.set("b", b"x" * 5, 60, weight=5)
    assert cache.get("a") and cache.get("b")
    cache.set("c", b"x" * 3, 60, weight=3)  # 12 > 10: the others go.
    assert cache.get("a") is MISSING and cache.get("b") is MISSING and cache.get("c") == b"xxx"
    cache.set("huge", b"x" * 11, 60, weight=11)  # Never fits: not kept, nothing dropped for it.
    assert cache.get("huge") is MISSING and cache.get("c") == b"xxx"
    cache.clear()
    for i in range(10):
        cache.set(i, i, 60, weight=1)
    assert all(cache.get(i) == i for i in range(10))
