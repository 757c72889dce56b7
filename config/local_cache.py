"""A small per-process cache whose entries expire: for lookups every request repeats."""

import time

_MISSING = object()


class ExpiringCache:
    """Entries live `ttl` seconds (0 turns the cache off); the whole cache is dropped when full."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: dict = {}

    def get(self, key, default=_MISSING):
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return default

    def set(self, key, value, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + ttl, value)

    def pop(self, key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


MISSING = _MISSING
