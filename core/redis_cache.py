"""Django's Redis cache with counters that are atomic and one round trip each.

Django's own `incr` does EXISTS then INCRBY: two round trips on every rate-limited request, and a
key that expires between them is re-created by INCRBY with no expiry, a counter that never goes
away. Here each counter operation is one server-side script (hand-written: django-redis and
Django's backend have no atomic incr that keeps or sets the key's expiry).
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

# A missing key answers nil (-> ValueError, as Django's incr); an existing one keeps its TTL.
_INCR = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end"

# A fixed window's counter: created with its expiry on the first event, counted on the others.
# A key left without an expiry (written by something else) is given one, so none outlives its window.
_INCR_WINDOW = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count
"""


class AtomicIncrRedisCacheClient(RedisCacheClient):
    def incr(self, key, delta):
        value = self.get_client(key, write=True).eval(_INCR, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def incr_window(self, key, delta, timeout):
        return self.get_client(key, write=True).eval(_INCR_WINDOW, 1, key, delta, int(timeout))


class AtomicIncrRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = AtomicIncrRedisCacheClient

    def incr_window(self, key, delta=1, timeout=60, version=None) -> int:
        """Adds `delta` to the counter `key`, creating it (expiring in `timeout` seconds) when it
        does not exist: the count after this event, in one round trip."""
        key = self.make_and_validate_key(key, version=version)
        return self._cache.incr_window(key, delta, timeout)
