"""Per-account limits: each one's effective value, and the rate counters.

A rate is django-ratelimit's syntax (`600/m`, `10/s`, `5000/h`, `100/5m`), counted in fixed
windows in the default cache (Redis in production, so every web process shares them), as
django-ratelimit counts: each account's windows end at an offset of their own, so the accounts'
windows do not all reset at once. Counting one event is one Redis round trip (a script that
increments and sets the window's expiry, core/redis_cache.py); django-ratelimit's `get_usage`
takes two (`add`, then `incr`) and hashes its key on every call, which was 7 % of a cached hit.
"""

import functools
import logging
import threading
import time
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from accounts.models import Account
from core.errors import ServiceError
from core.generation import generation_counted, generation_observe, generation_restart_if_moved

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountLimits:
    render_rate: str
    bg_remove_rate: str
    bg_remove_max_pending: int


def account_limits(account: Account) -> AccountLimits:
    """The account's own limits where set, else the platform's (read at call time)."""
    return AccountLimits(
        render_rate=account.render_rate_limit or settings.RENDER_RATE_LIMIT,
        bg_remove_rate=account.bg_remove_rate_limit or settings.BG_REMOVE_RATE_LIMIT,
        bg_remove_max_pending=account.bg_remove_max_pending or settings.BG_REMOVE_MAX_PENDING_PER_ACCOUNT,
    )


class RateLimitedError(ServiceError):
    status_code = 429
    code = "rate_limited"


@dataclass(frozen=True)
class RateUsage:
    """An account's count in the current window of one rate."""

    count: int
    limit: int
    # Seconds until the window ends and the count starts again from zero.
    reset_seconds: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=1024)
def rate_parse(rate: str) -> tuple[int, int]:
    """`600/m` → (600, 60), `100/5m` → (100, 300): the count and the window in seconds."""
    count, _, per = rate.partition("/")
    return int(count), int(per[:-1] or 1) * _UNITS[per[-1]]


@functools.lru_cache(maxsize=4096)
def _offset(value: str, period: int) -> int:
    return zlib.crc32(value.encode()) % period


def _window(*, group: str, account: Account, rate: str) -> tuple[str, int, int, int]:
    """(cache key, limit, seconds until the window ends, the key's lifetime) of the current window."""
    limit, period = rate_parse(rate)
    now = int(time.time())
    value = str(account.pk)
    # django-ratelimit's windows: aligned on the epoch, shifted by a per-key offset.
    end = now - now % period + _offset(value, period) if period > 1 else now
    if end < now:
        end += period
    key = f"rl:{group.replace(' ', '-')}:{value}:{limit}/{period}s:{end}"
    return key, limit, end - now, period + 1


class _ProcessWindows:
    """Counters kept in this process, for the embedded default's per-process cache (LocMem):
    the same counts as it would keep, without its pickling and key checks on every event."""

    def __init__(self, max_keys: int = 10_000):
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def incr(self, key: str, lifetime: int) -> int:
        now = time.monotonic()
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + lifetime
                if len(self._counts) >= self.max_keys:
                    self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
                    if len(self._counts) >= self.max_keys:
                        self._counts.clear()  # Bounded, whatever the keys: an account's count restarts.
            self._counts[key] = (count + 1, expires)
            return count + 1

    def get(self, key: str) -> int:
        count, expires = self._counts.get(key, (0, 0.0))
        return count if expires > time.monotonic() else 0

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


_process_windows = _ProcessWindows()


class _Backend(threading.local):
    settings_id: int | None = None
    cache = None


_backend = _Backend()


def _cache():
    # The backend itself, not django.core.cache.cache (a proxy that costs a lookup per attribute),
    # kept per thread (as `caches` keeps it) while the settings stay: `caches[...]` goes through
    # asgiref's Local on every call, a tenth of a cached hit's count.
    key = id(settings.CACHES)
    if _backend.settings_id != key:
        _backend.cache, _backend.settings_id = caches["default"], key
    return _backend.cache


def _count(*, group: str, account: Account, rate: str, increment: bool,
           generation: bool = False) -> RateUsage | None:
    """The count after this event (or a look only); with `generation`, the cache generation read
    in the same round trip is recorded (core/generation.py; None when the cache is down)."""
    try:
        key, limit, left, lifetime = _window(group=group, account=account, rate=rate)
        cache = _cache()
        if isinstance(cache, LocMemCache):
            count = _process_windows.incr(key, lifetime) if increment else _process_windows.get(key)
        elif not increment:
            count = cache.get(key, 0)
        elif generation and hasattr(cache, "incr_window_generation"):
            count, value = cache.incr_window_generation(key, 1, lifetime)  # Redis: one round trip for both.
            generation_observe(value)
        elif hasattr(cache, "incr_window"):
            count = cache.incr_window(key, 1, lifetime)  # Redis: one round trip.
        elif cache.add(key, 1, lifetime):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # Expired between add and incr: this event starts a new window.
                cache.set(key, 1, lifetime)
                count = 1
    except Exception as exc:  # The cache's client raises its own types.
        # Fail open: with the cache down, cached images are still served; new bg-remove work
        # is stopped by the broker being down too, or by the queue ceilings (in the database).
        logger.warning("rate limit %r not checked, cache unavailable: %s", group, exc)
        if generation:
            generation_observe(None)  # Nothing cached so far is trusted once the cache is back.
        return None
    return RateUsage(count=count, limit=limit, reset_seconds=max(1, left))


def rate_count_waits() -> bool:
    """Whether counting an event may wait on another process (Redis), or only takes this
    process's lock (the embedded default's counters, _ProcessWindows)."""
    return not isinstance(_cache(), LocMemCache)


def rate_limit(*, group: str, code: str, account: Account, rate: str, increment: bool = True) -> RateUsage | None:
    """Counts one event (unless `increment` is false, a look only) and refuses it with 429 when
    it is over `rate`. The usage it found (None when the cache is down)."""
    usage = _count(group=group, account=account, rate=rate, increment=increment)
    _refuse_over(usage, group=group, code=code, rate=rate, increment=increment)
    return usage


def _refuse_over(usage: RateUsage | None, *, group: str, code: str, rate: str, increment: bool = True) -> None:
    if usage is not None and (usage.count > usage.limit if increment else usage.count >= usage.limit):
        raise RateLimitedError(
            f"Over the account's {group} limit of {rate}; retry later.",
            code=code, retry_after=usage.reset_seconds,
        )


def rate_count(*, group: str, account: Account, rate: str) -> RateUsage | None:
    """Counts one event against the account's `rate` for `group`, without refusing anything."""
    return _count(group=group, account=account, rate=rate, increment=True)


def render_admit(*, account: Account) -> RateUsage | None:
    """Every rendering request, cached or not, counts against the account's request limit. With
    Redis, the same round trip reads the cache generation: when it moved since the request began
    and the request can start again (views.py), GenerationMovedError, and the attempt that starts
    again is not counted twice. The usage found (None when the cache is down)."""
    rate = account.render_rate_limit or settings.RENDER_RATE_LIMIT  # account_limits(), for this one.
    counted, usage = generation_counted(account_id=account.pk)
    if not counted:
        usage = _count(group=RENDER_GROUP, account=account, rate=rate, increment=True, generation=True)
    _refuse_over(usage, group=RENDER_GROUP, code="request_rate_limited", rate=rate)
    generation_restart_if_moved(account_id=account.pk, usage=usage)
    return usage


RENDER_GROUP = "request rate"


def rate_status(*, group: str, account: Account, rate: str) -> RateUsage | None:
    """The account's count in the current window of `rate`, without counting: for X-RateLimit-*
    headers (the remove.bg API). None when the cache is unavailable."""
    return _count(group=group, account=account, rate=rate, increment=False)
