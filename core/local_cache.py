"""A small per-process cache whose entries expire: for lookups every request repeats."""

import time

_MISSING = object()


class ExpiringCache:
    """Entries live `ttl` seconds (0 turns the cache off); the whole cache is dropped when full:
    past `max_entries` entries, or past `max_weight` when entries are given a weight (bytes)."""

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
            self.clear()
        # Weights are only added (a replaced or popped entry still counts until the next clear).
        self._weight += weight
        self._entries[key] = (time.monotonic() + ttl, value)

    def pop(self, key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._weight = 0


MISSING = _MISSING
