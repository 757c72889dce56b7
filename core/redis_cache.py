"""Django's Redis cache with counters that are atomic and one round trip each.

Django's own `incr` does EXISTS then INCRBY: two round trips on every rate-limited request, and a
key that expires between them is re-created by INCRBY with no expiry, a counter that never goes
away. Here each counter operation is one server-side script (hand-written: django-redis and
Django's backend have no atomic incr that keeps or sets the key's expiry).
"""

import hashlib

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

GENERATION_KEY = "cache-generation"

# A missing key answers nil (-> ValueError, as Django's incr); an existing one keeps its TTL.
_INCR = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end"

# A fixed window's counter: created with its expiry on the first event, counted on the others.
# A key left without an expiry (written by something else) is given one, so none outlives its window.
_INCR_WINDOW = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count
"""


# The same, returning also a second key's value (the cache generation, core/generation.py): read in
# the round trip every rendering request makes anyway. As an integer reply, cheaper to parse than a
# string (the generation stays below 2**53, exact as a Lua number); GET's nil is false in Lua.
_INCR_WINDOW_READ = _INCR_WINDOW.replace("return count",
                                         "return {count, tonumber(redis.call('GET', KEYS[2]) or '0')}")
_INCR_WINDOW_READ_SHA = hashlib.sha1(_INCR_WINDOW_READ.encode()).hexdigest()


class AtomicIncrRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, **options):
        # No retry of a command that timed out or lost its connection: the cache is on every
        # request's path, and redis-py's default retries a hung server three times more.
        options.setdefault("retry", Retry(NoBackoff(), 0))
        super().__init__(servers, **options)

    def incr(self, key, delta):
        value = self.get_client(key, write=True).eval(_INCR, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def incr_window(self, key, delta, timeout):
        return self.get_client(key, write=True).eval(_INCR_WINDOW, 1, key, delta, int(timeout))

    def incr_window_read(self, key, delta, timeout, other):
        client = self.get_client(key, write=True)
        try:
            # By its digest: every rendering request runs it, and the script's text is most of
            # what EVAL would send.
            return tuple(client.evalsha(_INCR_WINDOW_READ_SHA, 2, key, other, delta, int(timeout)))
        except NoScriptError:  # Redis restarted, or SCRIPT FLUSH: EVAL loads it again.
            return tuple(client.eval(_INCR_WINDOW_READ, 2, key, other, delta, int(timeout)))


class AtomicIncrRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = AtomicIncrRedisCacheClient

    def incr_window(self, key, delta=1, timeout=60, version=None) -> int:
        """Adds `delta` to the counter `key`, creating it (expiring in `timeout` seconds) when it
        does not exist: the count after this event, in one round trip."""
        key = self.make_and_validate_key(key, version=version)
        return self._cache.incr_window(key, delta, timeout)

    def incr_window_generation(self, key, delta=1, timeout=60, version=None) -> tuple[int, int]:
        """incr_window, and the cache generation (core/generation.py) read in the same round trip:
        (count, generation; 0 when none was ever set)."""
        key = self.make_and_validate_key(key, version=version)
        return self._cache.incr_window_read(key, delta, timeout, self.make_key(GENERATION_KEY))

    def generation_set(self, value: int) -> None:
        self._cache.get_client(write=True).set(self.make_key(GENERATION_KEY), value)
