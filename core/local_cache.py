"""A small per-process cache whose entries expire: for lookups every request repeats."""

import threading

from cachetools import TTLCache

from core import generation

MISSING = object()


class ExpiringCache:
    """Entries live `ttl` seconds (0 keeps nothing); when full, the least recently used go first:
    past `max_entries` entries, or past `max_weight` when entries are given a weight (bytes).
    An entry heavier than `max_weight` is not kept. A new `max_weight` applies from the next set().

    An entry is also used only while the cache generation it was stored under is current
    (core/generation.py): a purge or a change in any process ends it in every process."""

    def __init__(self, max_entries: int, max_weight: int | None = None):
        self.max_entries = max_entries
        self.max_weight = max_weight
        # granian's threads share it, and TTLCache is not thread-safe: even a get reorders it.
        self._lock = threading.Lock()
        self._entries = self._new(ttl=0)

    def _new(self, ttl: float) -> TTLCache:
        if self.max_weight is None:
            return TTLCache(self.max_entries, ttl)
        return TTLCache(self.max_weight, ttl, getsizeof=lambda entry: entry[1])

    def get(self, key, default=MISSING):
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[2] != generation.version:
            return default
        return entry[0]

    def set(self, key, value, ttl: float, weight: int = 0) -> None:
        if ttl <= 0 or (self.max_weight is not None and weight > self.max_weight):
            return
        stamp = generation.generation_stamp()
        with self._lock:
            entries = self._entries
            # TTLCache has one ttl, and callers read theirs from settings at each call: it only
            # changes with the settings (tests), so a new ttl or budget starts a new cache. Simpler
            # than TLRUCache's per-item ttu, and a new budget needs a new cache anyway (maxsize is
            # fixed at creation).
            if entries.ttl != ttl or entries.maxsize != (
                    self.max_entries if self.max_weight is None else self.max_weight):
                entries = self._entries = self._new(ttl)
            entries[key] = (value, weight, stamp)
            while len(entries) > self.max_entries:  # Weighted: maxsize bounds bytes, not entries.
                entries.popitem()

    def pop(self, key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
