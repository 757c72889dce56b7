"""tests/faults.py's forwarder against the real Redis: what each mode looks like to a client."""

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.faults import Forwarder

pytestmark = pytest.mark.redis


def test_up_refuse_hang_and_up_again(settings):
    url = redis.connection.parse_url(settings.REDIS_URL)
    forwarder = Forwarder(url.get("host", "127.0.0.1"), url.get("port", 6379))

    def client():  # One attempt each: redis-py's own retries would hide what the peer did.
        return redis.Redis(host="127.0.0.1", port=forwarder.port, socket_connect_timeout=0.5, socket_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))

    try:
        open_before = client()
        assert open_before.ping()
        forwarder.hang()
        with pytest.raises(redis.TimeoutError):
            open_before.ping()  # An open connection goes silent…
        with pytest.raises(redis.TimeoutError):
            client().ping()  # …and so does a new one.
        forwarder.refuse()
        with pytest.raises(redis.ConnectionError, match="refused"):
            client().ping()
        forwarder.up()
        assert client().ping()
    finally:
        forwarder.close()
