"""Usage metering: counted cheaply per request, persisted in batches into UsageDaily, reported per day."""

import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_start
from datetime import timezone as dt_timezone

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from accounts.models import Account
from cutouts.models import BgRemoveJob
from sources.models import Source
from usage.models import UsageDaily

logger = logging.getLogger(__name__)

# Live counters: one hash per UTC day, fields `<source_id>:renders|bytes|hits`.
KEY_PREFIX = "cutout:usage:"
# Hashes a persister has claimed (renamed away from the live key), scored by the claim's time on
# the Redis server's clock (not the hosts'), so a claim whose persister died can be found and
# finished by another one.
CLAIMS_KEY = "cutout:usage-claims"
FIELDS = {"renders": 0, "bytes": 1, "hits": 2}

# The request path waits at most this long on Redis; a render is worth more than its count.
RECORD_TIMEOUT = 0.25
PERSIST_TIMEOUT = 5.0
# After a Redis error, requests count in-process for this long instead of waiting on Redis again.
REDIS_RETRY_SECONDS = 5.0
# A claim this old belongs to a persister that died (or whose database write failed); far longer
# than a persist takes, so a live persister's claim is never taken over and counted twice.
STALE_CLAIM_SECONDS = 600

# Atomic "take this day's hash if there is one": a concurrent persister finds nothing to take,
# and a request arriving meanwhile starts a fresh live hash, so no count is read twice or lost.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[3], redis.call('TIME')[1], KEYS[2])
redis.call('EXPIRE', KEYS[3], ARGV[1])
if KEYS[4] then redis.call('ZREM', KEYS[3], KEYS[4]) end
return 1
"""

Counts = dict[tuple[int, date], list[int]]  # (source id, day) -> [renders, bytes, hits]


# --- Recording (the request path) -------------------------------------------------------------

def usage_record(*, source_id: int, day: date, served_bytes: int, hit: bool) -> None:
    """Counts one served image. Never raises: a metering fault must not cost a render."""
    try:
        url = settings.REDIS_URL
        if url and time.monotonic() >= _redis_down_until.get(url, 0.0):
            try:
                _redis_record(_redis(url, RECORD_TIMEOUT), source_id=source_id, day=day,
                              served_bytes=served_bytes, hit=hit)
                return
            except redis.RedisError as exc:
                _redis_down_until[url] = time.monotonic() + REDIS_RETRY_SECONDS
                logger.warning("usage: Redis unavailable (%s); counting in-process for %ss", exc, REDIS_RETRY_SECONDS)
        # Embedded development, or Redis just failed: the in-process buffer, written to the
        # database by whichever request finds it due.
        if _buffer.add(source_id=source_id, day=day, served_bytes=served_bytes, hit=hit):
            _buffer_flush()
    except Exception:
        logger.exception("usage: a render was not counted")


def usage_record_waits() -> bool:
    """Whether usage_record may wait on another process: Redis, or the database when the
    in-process buffer is due to be written (the next record writes it)."""
    return bool(settings.REDIS_URL) or _buffer.due()


def _redis_record(client: redis.Redis, *, source_id: int, day: date, served_bytes: int, hit: bool) -> None:
    key = KEY_PREFIX + day.isoformat()
    # MULTI/EXEC in one round trip: a persister's RENAME lands before or after all of it, so the
    # renamed hash always carries its expiry and a request's fields stay together.
    pipe = client.pipeline(transaction=True)
    pipe.hincrby(key, f"{source_id}:renders", 1)
    if served_bytes:
        pipe.hincrby(key, f"{source_id}:bytes", served_bytes)
    if hit:
        pipe.hincrby(key, f"{source_id}:hits", 1)
    # Counts left unpersisted this long (no beat running) expire instead of piling up.
    pipe.expire(key, settings.USAGE_REDIS_TTL)
    pipe.execute()


_redis_down_until: dict[str, float] = {}
_clients: dict[tuple[str, float], redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis(url: str, timeout: float) -> redis.Redis:
    # One client (and connection pool) per URL and timeout; redis-py pools are thread-safe and
    # reset themselves in a forked child.
    client = _clients.get((url, timeout))
    if client is None:
        with _clients_lock:
            client = _clients.get((url, timeout))
            if client is None:
                # No retries: a request gives up at once, and a persist runs again within a minute.
                client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                              retry=Retry(NoBackoff(), 0))
                _clients[(url, timeout)] = client
    return client


class _Buffer:
    """Per-process counts, handed out whole to one flusher at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counts = defaultdict(lambda: [0, 0, 0])
        self._records = 0
        self._since = time.monotonic()

    def add(self, *, source_id: int, day: date, served_bytes: int, hit: bool) -> bool:
        """Adds one render; True when the buffer is due to be written."""
        with self._lock:
            counts = self._counts[(source_id, day)]
            counts[0] += 1
            counts[1] += served_bytes
            counts[2] += int(hit)
            self._records += 1
            return self.due()

    def due(self) -> bool:
        return (self._records >= settings.USAGE_BUFFER_MAX_RECORDS
                or time.monotonic() - self._since >= settings.USAGE_BUFFER_SECONDS)

    def take(self) -> Counts:
        # Swapped under the lock, so concurrent flushers each get disjoint counts.
        with self._lock:
            counts, self._counts = self._counts, defaultdict(lambda: [0, 0, 0])
            self._records = 0
            self._since = time.monotonic()
        return dict(counts)

    def give_back(self, counts: Counts) -> None:
        with self._lock:
            for key, values in counts.items():
                mine = self._counts[key]
                for i, value in enumerate(values):
                    mine[i] += value


_buffer = _Buffer()


def _buffer_flush() -> int:
    counts = _buffer.take()
    if not counts:
        return 0
    try:
        return _db_add(counts)
    except Exception:
        _buffer.give_back(counts)  # Tried again at the next flush.
        raise


# --- Persisting ---------------------------------------------------------------------------------

def usage_persist() -> int:
    """Moves counted usage into UsageDaily; returns the (source, day) rows written.

    Safe to run from several processes at once (beat, API reads): every count is taken by
    exactly one of them. This process's in-process buffer is written first, then Redis.
    """
    written = _buffer_flush()
    url = settings.REDIS_URL
    if url:
        written += _redis_persist(_redis(url, PERSIST_TIMEOUT))
    return written


def _redis_persist(client: redis.Redis) -> int:
    claim = client.register_script(_CLAIM)
    written = 0
    stale = client.zrangebyscore(CLAIMS_KEY, "-inf", client.time()[0] - STALE_CLAIM_SECONDS)
    for old in stale:
        # Re-claimed under a new name, atomically, so two recovering persisters cannot both take it.
        old = old.decode()
        temp = _claim_name(old.rsplit(":", 2)[-2])
        if claim(keys=[old, temp, CLAIMS_KEY, old], args=[settings.USAGE_REDIS_TTL]):
            logger.warning("usage: persisting %s, left behind by a persister", old)
            written += _redis_persist_claimed(client, temp)
        else:
            client.zrem(CLAIMS_KEY, old)  # Expired or already recovered.
    for day in _live_days():
        temp = _claim_name(day.isoformat())
        if claim(keys=[KEY_PREFIX + day.isoformat(), temp, CLAIMS_KEY], args=[settings.USAGE_REDIS_TTL]):
            written += _redis_persist_claimed(client, temp)
    return written


def _live_days() -> list[date]:
    # Hashes live at most USAGE_REDIS_TTL after their day's last request, so these are all the
    # days that can still have one; one day ahead covers a web server whose clock runs fast.
    today = timezone.now().date()
    keep = -(-settings.USAGE_REDIS_TTL // 86400) + 1
    return [today + timedelta(days=1 - i) for i in range(keep + 2)]


def _claim_name(day: str) -> str:
    return f"{CLAIMS_KEY}:{day}:{uuid.uuid4().hex}"


def _redis_persist_claimed(client: redis.Redis, temp: str) -> int:
    day = date.fromisoformat(temp.rsplit(":", 2)[-2])
    counts: Counts = defaultdict(lambda: [0, 0, 0])
    for name, value in client.hgetall(temp).items():
        source_id, _, kind = name.decode().partition(":")
        if kind in FIELDS and source_id.isdigit():
            counts[(int(source_id), day)][FIELDS[kind]] += int(value)
    # If this write fails the claim stays, and a later persist finishes it once it is stale.
    written = _db_add(dict(counts))
    client.pipeline(transaction=True).delete(temp).zrem(CLAIMS_KEY, temp).execute()
    return written


def _db_add(counts: Counts) -> int:
    """Adds the counts onto UsageDaily in one transaction (insert, or add to the existing row)."""
    known = set(Source.objects.filter(pk__in={source_id for source_id, _ in counts}).values_list("pk", flat=True))
    # Sorted, so concurrent persisters lock rows in the same order and cannot deadlock.
    rows = sorted(
        (source_id, day, *values) for (source_id, day), values in counts.items()
        if source_id in known and any(values)
    )
    dropped = {source_id for source_id, _ in counts} - known
    if dropped:
        logger.info("usage: dropped counts of deleted sources %s", sorted(dropped))
    if not rows:
        return 0
    quote = connection.ops.quote_name
    table = quote(UsageDaily._meta.db_table)
    columns = [UsageDaily._meta.get_field(name).column for name in
               ("source", "day", "renders", "bytes_served", "cache_hits")]
    added = ", ".join(f"{quote(c)} = {table}.{quote(c)} + EXCLUDED.{quote(c)}" for c in columns[2:])
    # An upsert that adds (F()-style) in SQL: the ORM's bulk_create(update_conflicts=True) can only
    # overwrite. PostgreSQL and SQLite both speak this ON CONFLICT form.
    sql = (f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES (%s, %s, %s, %s, %s) "
           f"ON CONFLICT ({quote(columns[0])}, {quote(columns[1])}) DO UPDATE SET {added}")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(rows)


# --- Reading ------------------------------------------------------------------------------------

@dataclass
class UsageRow:
    day: date
    source: str
    renders: int = 0
    bytes_served: int = 0
    cache_hits: int = 0
    bg_remove_jobs: int = 0
    compute_seconds: float = 0.0


@dataclass
class UsageReport:
    since: date
    until: date
    source: str | None
    rows: list[UsageRow]
    totals: dict = field(default_factory=dict)


def usage_report(*, account: Account, since: date, until: date, source: Source | None = None) -> UsageReport:
    """Per day and source of one account: what was served (UsageDaily) and the bg-remove work done."""
    served = UsageDaily.objects.filter(source__account=account, day__gte=since, day__lte=until)
    utc = dt_timezone.utc
    # Jobs count on the day they finished, having run: done, or failed after a worker started them.
    jobs = BgRemoveJob.objects.filter(
        source__account=account,
        status__in=[BgRemoveJob.Status.DONE, BgRemoveJob.Status.FAILED],
        started_at__isnull=False,
        finished_at__gte=datetime.combine(since, day_start.min, tzinfo=utc),
        finished_at__lt=datetime.combine(until + timedelta(days=1), day_start.min, tzinfo=utc),
    )
    if source is not None:
        served, jobs = served.filter(source=source), jobs.filter(source=source)

    rows: dict[tuple[date, str], UsageRow] = {}
    for item in served.values("day", "source__slug", "renders", "bytes_served", "cache_hits"):
        row = rows.setdefault((item["day"], item["source__slug"]), UsageRow(item["day"], item["source__slug"]))
        row.renders, row.bytes_served, row.cache_hits = item["renders"], item["bytes_served"], item["cache_hits"]
    grouped = (
        jobs.annotate(finished_day=TruncDate("finished_at", tzinfo=utc))
        .values("finished_day", "source__slug")
        .annotate(jobs=Count("id"),
                  compute=Sum(ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())))
        .order_by()
    )
    for item in grouped:
        key = (item["finished_day"], item["source__slug"])
        row = rows.setdefault(key, UsageRow(*key))
        row.bg_remove_jobs = item["jobs"]
        row.compute_seconds = round(item["compute"].total_seconds(), 3) if item["compute"] else 0.0

    ordered = [rows[key] for key in sorted(rows)]
    totals = {name: sum(getattr(row, name) for row in ordered)
              for name in ("renders", "bytes_served", "cache_hits", "bg_remove_jobs")}
    totals["compute_seconds"] = round(sum(row.compute_seconds for row in ordered), 3)
    return UsageReport(since=since, until=until, source=source.slug if source else None, rows=ordered, totals=totals)
