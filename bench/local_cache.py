"""core.local_cache.ExpiringCache (cachetools TTLCache behind a lock) vs the old hand-written one: get() hits.

Usage: .venv/bin/python bench/local_cache.py [--runs 7] [--number 200000]

Both caches hold the same 10,000 keys; each run times `number` get() hits of each, interleaved.
Prints the median ns per get and the ratio new / old.
"""

import argparse
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.local_cache import ExpiringCache  # noqa: E402

_MISSING = object()


class OldExpiringCache:
    """The peer: core/local_cache.py before cachetools (no lock, dropped whole when full)."""

    def __init__(self, max_entries: int, max_weight: int | None = None):
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weight = 0
        self._entries: dict = {}

    def get(self, key, default=_MISSING):
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return default

    def set(self, key, value, ttl: float, weight: int = 0) -> None:
        if ttl <= 0:
            return
        if self.max_weight is not None and weight > self.max_weight:
            return
        if len(self._entries) >= self.max_entries or (
                self.max_weight is not None and self._weight + weight > self.max_weight):
            self._entries.clear()
            self._weight = 0
        self._weight += weight
        self._entries[key] = (time.monotonic() + ttl, value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    keys = [f"{i:064x}" for i in range(10_000)]  # Like render keys: sha256 hex digests.
    caches = {"new": ExpiringCache(max_entries=50_000), "old": OldExpiringCache(max_entries=50_000)}
    for cache in caches.values():
        for key in keys:
            cache.set(key, object(), 3600)
    ns = {name: [] for name in caches}
    for _ in range(args.runs):
        for name, cache in caches.items():
            env = {"get": cache.get, "key": keys[5_000]}
            seconds = timeit.timeit("get(key, None)", globals=env, number=args.number)
            ns[name].append(seconds / args.number * 1e9)
    new, old = statistics.median(ns["new"]), statistics.median(ns["old"])
    print(f"Python {sys.version.split()[0]}, {args.runs} runs × {args.number} hits, median")
    print(f"old (dict, no lock):              {old:6.0f} ns per get")
    print(f"new (cachetools TTLCache + lock): {new:6.0f} ns per get")
    print(f"new / old: {new / old:.2f}")


if __name__ == "__main__":
    main()
