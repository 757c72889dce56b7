"""core/local_cache.py: entries expire, the least recently used go when full, threads may share it."""

import random
import sys
import threading
import time

from core import generation
from core.local_cache import MISSING, ExpiringCache


def test_entries_expire_and_ttl_zero_keeps_nothing():
    cache = ExpiringCache(max_entries=10)
    cache.set("a", 1, 0.05)
    cache.set("b", 2, 0)
    assert cache.get("a") == 1 and cache.get("b") is MISSING
    time.sleep(0.06)
    assert cache.get("a") is MISSING


def test_least_recently_used_goes_past_max_entries():
    cache = ExpiringCache(max_entries=2)
    cache.set("a", 1, 60)
    cache.set("b", 2, 60)
    assert cache.get("a") == 1  # Now "b" is the least recently used.
    cache.set("c", 3, 60)
    assert cache.get("a") == 1 and cache.get("b") is MISSING and cache.get("c") == 3


def test_weights_bound_the_total():
    cache = ExpiringCache(max_entries=100, max_weight=10)
    cache.set("a", b"x" * 4, 60, weight=4)
    cache.set("b", b"x" * 5, 60, weight=5)
    assert cache.get("a") and cache.get("b")
    cache.set("c", b"x" * 3, 60, weight=3)  # 12 > 10: "a", the least recently used, goes.
    assert cache.get("a") is MISSING and cache.get("b") == b"x" * 5 and cache.get("c") == b"xxx"
    cache.set("huge", b"x" * 11, 60, weight=11)  # Never fits: not kept, nothing evicted for it.
    assert cache.get("huge") is MISSING and cache.get("b") and cache.get("c") == b"xxx"
    cache.clear()
    for i in range(10):
        cache.set(i, i, 60, weight=1)
    assert all(cache.get(i) == i for i in range(10))


def test_entries_bound_a_weighted_cache_too():
    cache = ExpiringCache(max_entries=3, max_weight=1000)
    for i in range(5):
        cache.set(i, i, 60, weight=1)
    assert [cache.get(i) for i in range(5)] == [MISSING, MISSING, 2, 3, 4]


def test_a_new_budget_applies_from_the_next_set():
    cache = ExpiringCache(max_entries=100, max_weight=0)
    cache.set("a", b"xx", 60, weight=2)
    assert cache.get("a") is MISSING
    cache.max_weight = 4
    cache.set("a", b"xx", 60, weight=2)
    cache.set("b", b"xx", 60, weight=2)
    cache.set("c", b"xx", 60, weight=2)
    assert cache.get("a") is MISSING and cache.get("b") == b"xx" and cache.get("c") == b"xx"


def test_threads_sharing_it_keep_it_consistent():
    cache = ExpiringCache(max_entries=50, max_weight=200)
    errors = []

    def hammer(seed):
        rng = random.Random(seed)
        try:
            for _ in range(20_000):
                key = rng.randrange(80)
                op = rng.random()
                if op < 0.5:
                    cache.set(key, key, 60, weight=rng.randrange(1, 20))
                elif op < 0.95:
                    cache.get(key)
                else:
                    cache.pop(key)
        except Exception as exc:  # Any error in a thread fails the test below.
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # Switch threads often, so unlocked updates would interleave.
    try:
        threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    entries = cache._entries  # The weights it counts are the weights it holds.
    assert len(entries) <= 50
    assert entries.currsize == sum(entry[1] for entry in entries.values()) <= 200


def test_an_entry_stored_under_an_older_cache_generation_is_not_returned():
    cache = ExpiringCache(max_entries=10)
    cache.set("a", 1, 60)
    assert cache.get("a") == 1
    generation.generation_observe(object())  # Another process's purge, read by this one.
    assert cache.get("a", None) is None
    cache.set("a", 2, 60)
    assert cache.get("a") == 2


def test_an_entry_read_before_a_change_and_stored_after_it_is_not_taken_for_a_new_one():
    cache = ExpiringCache(max_entries=10)
    generation.generation_begin()  # A request begins, and reads the database…
    generation.generation_observe(object())  # …while another thread reads a new generation…
    cache.set("a", "read before the change", 60)  # …and only then stores what it read.
    generation.generation_end()
    assert cache.get("a", None) is None
