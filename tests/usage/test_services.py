"""Usage metering: counted through the rendering endpoint, persisted into UsageDaily, reported by the API."""

import threading
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from tests.conftest import free_port
from tests.factories import AccountFactory, SourceFactory
from usage import services as usage
from usage.models import UsageDaily
from usage.services import usage_persist, usage_record

pytestmark = pytest.mark.django_db

URL = "/render/acme-photos/astronaut.jpg?w=50"


@pytest.fixture(autouse=True)
def clean_usage(settings):
    """No counts from other tests: Redis usage keys, this process's buffer, Redis back-off."""
    url = settings.REDIS_URL  # Captured: a test may point REDIS_URL at a dead port.

    def clean():
        if url:
            client = redis.Redis.from_url(url)
            for key in client.scan_iter(match="cutout:usage*"):
                client.delete(key)
        usage._buffer.take()
        usage._redis_down_until.clear()

    clean()
    yield
    clean()


@pytest.fixture
def redis_client(settings):
    return redis.Redis.from_url(settings.REDIS_URL)


def today():
    return timezone.now().date()


def body_length(response) -> int:
    return len(b"".join(response.streaming_content) if response.streaming else response.content)


def row_of(source, day=None):
    row = UsageDaily.objects.get(source=source, day=day or today())
    return row.renders, row.bytes_served, row.cache_hits


def bearer(account):
    _, key = api_key_create(account=account, scopes=["read"])
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


# --- Counting in the request path ----------------------------------------------------------------

@pytest.mark.redis
def test_renders_bytes_and_hits_are_counted_in_redis(client, source, redis_client):
    first = client.get(URL)
    second = client.get(URL)
    other = client.get("/render/acme-photos/chelsea.png?w=40&fm=png")
    for response in (first, second, other):
        assert response.status_code == 200
    sizes = [int(r["Content-Length"]) for r in (first, second, other)]
    assert sizes == [body_length(first), body_length(second), body_length(other)]

    counts = redis_client.hgetall(f"cutout:usage:{today().isoformat()}")
    assert counts == {f"{source.id}:renders".encode(): b"3", f"{source.id}:bytes".encode(): str(sum(sizes)).encode(),
                      f"{source.id}:hits".encode(): b"1"}
    assert 0 < redis_client.ttl(f"cutout:usage:{today().isoformat()}") <= 3 * 86400
    assert not UsageDaily.objects.exists(), "counted in Redis, not yet in the database"


@pytest.mark.redis
def test_not_modified_and_head_count_renders_without_bytes(client, source):
    first = client.get(URL)
    not_modified = client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])
    head = client.head(URL)
    assert (first.status_code, not_modified.status_code, head.status_code) == (200, 304, 200)
    usage_persist()
    assert row_of(source) == (3, int(first["Content-Length"]), 2)


@pytest.mark.redis
def test_202s_and_errors_are_not_renders(client, source):
    assert client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").status_code == 202
    assert client.get("/render/acme-photos/missing.jpg?w=50").status_code == 404
    assert client.get("/render/no-such-source/astronaut.jpg?w=50").status_code == 404
    assert usage_persist() == 0
    assert not UsageDaily.objects.exists()


# --- Persisting -----------------------------------------------------------------------------------

@pytest.mark.redis
def test_persist_moves_counts_once(client, source, redis_client):
    sizes = [int(client.get(URL)["Content-Length"]) for _ in range(2)]
    assert usage_persist() == 1
    assert row_of(source) == (2, sum(sizes), 1)
    assert not redis_client.exists(f"cutout:usage:{today().isoformat()}")
    assert usage_persist() == 0
    assert row_of(source) == (2, sum(sizes), 1)

    # Later counts add onto the same row.
    client.get(URL)
    assert usage_persist() == 1
    assert row_of(source) == (3, sum(sizes) + sizes[1], 2)
    assert not redis_client.keys("cutout:usage-claims:*")


@pytest.mark.redis
def test_counts_of_several_days_and_sources(source):
    other = SourceFactory(account=source.account, slug="acme-other")
    yesterday = today() - timedelta(days=1)
    usage_record(source_id=source.id, day=yesterday, served_bytes=100, hit=False)
    usage_record(source_id=source.id, day=today(), served_bytes=10, hit=True)
    usage_record(source_id=other.id, day=today(), served_bytes=7, hit=False)
    assert usage_persist() == 3
    assert row_of(source, yesterday) == (1, 100, 0)
    assert row_of(source) == (1, 10, 1)
    assert row_of(other) == (1, 7, 0)


@pytest.mark.redis
def test_counts_of_a_deleted_source_are_dropped(source):
    gone = SourceFactory(account=source.account, slug="acme-gone")
    usage_record(source_id=gone.id, day=today(), served_bytes=5, hit=False)
    usage_record(source_id=source.id, day=today(), served_bytes=5, hit=False)
    gone.delete()
    assert usage_persist() == 1
    assert list(UsageDaily.objects.values_list("source_id", flat=True)) == [source.id]


@pytest.mark.redis
def test_a_claim_left_by_a_dead_persister_is_recovered(source, redis_client, monkeypatch):
    usage_record(source_id=source.id, day=today(), served_bytes=42, hit=True)
    # A persister claims the day's hash, then dies before writing the database.
    claim = redis_client.register_script(usage._CLAIM)
    temp = usage._claim_name(today().isoformat())
    assert claim(keys=[f"cutout:usage:{today().isoformat()}", temp, usage.CLAIMS_KEY], args=[3600])
    assert usage_persist() == 0, "a fresh claim belongs to a live persister: not taken over"
    assert not UsageDaily.objects.exists()

    monkeypatch.setattr(usage, "STALE_CLAIM_SECONDS", -1)  # Time passes.
    assert usage_persist() == 1
    assert row_of(source) == (1, 42, 1)
    assert not redis_client.exists(temp) and redis_client.zcard(usage.CLAIMS_KEY) == 0
    assert usage_persist() == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_racing_persisters_neither_lose_nor_double_count(source):
    recorders, per_recorder, persisters = 4, 300, 4
    done = threading.Event()
    errors = []

    def record(n):
        try:
            for i in range(per_recorder):
                usage_record(source_id=source.id, day=today(), served_bytes=n + 1, hit=i % 2 == 0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def persist():
        try:
            while not done.is_set():
                usage_persist()
            usage_persist()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    persisting = [threading.Thread(target=persist) for _ in range(persisters)]
    recording = [threading.Thread(target=record, args=(n,)) for n in range(recorders)]
    for thread in persisting + recording:
        thread.start()
    for thread in recording:
        thread.join()
    done.set()
    for thread in persisting:
        thread.join()
    usage_persist()

    assert not errors
    expected_bytes = sum((n + 1) * per_recorder for n in range(recorders))
    assert row_of(source) == (recorders * per_recorder, expected_bytes, recorders * per_recorder // 2)


@pytest.mark.redis
def test_the_beat_schedule_runs_the_persisting_task(source, settings):
    from usage.tasks import usage_persist_run

    entry = settings.CELERY_BEAT_SCHEDULE["usage-persist"]
    assert entry["task"] == usage_persist_run.name and entry["schedule"] == settings.USAGE_PERSIST_SECONDS
    usage_record(source_id=source.id, day=today(), served_bytes=3, hit=False)
    usage_persist_run.apply().get()
    assert row_of(source) == (1, 3, 0)


# --- Without Redis ----------------------------------------------------------------------------------

def test_without_redis_the_in_process_buffer_ends_in_the_database(client, source, settings):
    settings.REDIS_URL = None
    settings.USAGE_BUFFER_SECONDS = 3600
    settings.USAGE_BUFFER_MAX_RECORDS = 1000
    first = client.get(URL)
    client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])
    assert not UsageDaily.objects.exists(), "buffered: the request path did not write"
    assert usage_persist() == 1
    assert row_of(source) == (2, int(first["Content-Length"]), 1)
    assert usage_persist() == 0


def test_without_redis_the_buffer_is_written_after_enough_records(client, source, settings):
    settings.REDIS_URL = None
    settings.USAGE_BUFFER_SECONDS = 3600
    settings.USAGE_BUFFER_MAX_RECORDS = 3
    sizes = [int(client.get(URL)["Content-Length"]) for _ in range(3)]
    assert row_of(source) == (3, sum(sizes), 2), "the third request wrote the buffer"


def test_without_redis_the_buffer_is_written_after_a_few_seconds(source, settings):
    settings.REDIS_URL = None
    settings.USAGE_BUFFER_SECONDS = 0
    usage_record(source_id=source.id, day=today(), served_bytes=9, hit=False)
    assert row_of(source) == (1, 9, 0)


def test_redis_down_still_serves_and_counts_in_process(client, source, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # Nothing listens there.
    settings.USAGE_BUFFER_SECONDS = 3600
    first = client.get(URL)
    second = client.get(URL)
    assert (first.status_code, second.status_code) == (200, 200)
    assert body_length(first) == int(first["Content-Length"])
    with pytest.raises(redis.ConnectionError):
        usage_persist()  # The buffer is written first; then Redis fails, as the periodic task should see.
    assert row_of(source) == (2, 2 * int(first["Content-Length"]), 1)


# --- The API ----------------------------------------------------------------------------------------

def api_get(client, account, **params):
    return client.get("/api/v1/usage", params, **bearer(account))


def finished_job(source, path, *, status="done", seconds=2.5, finished=None, started=True):
    finished = finished or timezone.now()
    return BgRemoveJob.objects.create(
        source=source, path=path, model="u2netp", status=status,
        started_at=finished - timedelta(seconds=seconds) if started else None, finished_at=finished,
    )


@pytest.mark.redis
def test_usage_api_reports_rows_and_totals_including_unpersisted_counts(client, source, account):
    first = client.get(URL)
    client.get(URL)
    response = api_get(client, account)
    assert response.status_code == 200, response.content
    body = response.json()
    size = int(first["Content-Length"])
    assert body == {
        "since": (today() - timedelta(days=29)).isoformat(),
        "until": today().isoformat(),
        "source": None,
        "rows": [{"day": today().isoformat(), "source": "acme-photos", "renders": 2, "bytes_served": 2 * size,
                  "cache_hits": 1, "bg_remove_jobs": 0, "compute_seconds": 0.0}],
        "totals": {"renders": 2, "bytes_served": 2 * size, "cache_hits": 1, "bg_remove_jobs": 0,
                   "compute_seconds": 0.0},
    }


def test_usage_api_counts_finished_bg_remove_jobs_and_their_compute_seconds(client, source, account):
    now = timezone.now()
    yesterday = now - timedelta(days=1)
    finished_job(source, "a.jpg", seconds=2.5, finished=now)
    finished_job(source, "b.jpg", status="failed", seconds=1.25, finished=now)  # Failed after running.
    finished_job(source, "c.jpg", status="failed", started=False, finished=now)  # Never ran.
    finished_job(source, "d.jpg", seconds=4, finished=yesterday)
    BgRemoveJob.objects.create(source=source, path="e.jpg", model="u2netp", status="running", started_at=now)
    BgRemoveJob.objects.create(source=source, path="f.jpg", model="u2netp")
    UsageDaily.objects.create(source=source, day=now.date(), renders=5, bytes_served=500, cache_hits=3)

    body = api_get(client, account).json()
    assert body["rows"] == [
        {"day": yesterday.date().isoformat(), "source": "acme-photos", "renders": 0, "bytes_served": 0,
         "cache_hits": 0, "bg_remove_jobs": 1, "compute_seconds": 4.0},
        {"day": now.date().isoformat(), "source": "acme-photos", "renders": 5, "bytes_served": 500,
         "cache_hits": 3, "bg_remove_jobs": 2, "compute_seconds": 3.75},
    ]
    assert body["totals"] == {"renders": 5, "bytes_served": 500, "cache_hits": 3, "bg_remove_jobs": 3,
                              "compute_seconds": 7.75}


@pytest.mark.redis
def test_a_real_bg_remove_job_is_reported_with_its_compute_time(client, source, account):
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true"
    queued = client.get(url)
    assert queued.status_code == 202
    job = bg_remove_job_process(job_id=queued.json()["job"])
    done = client.get(url)
    assert done.status_code == 200

    body = api_get(client, account).json()
    assert body["rows"] == [{
        "day": today().isoformat(), "source": "acme-photos", "renders": 1, "bytes_served": int(done["Content-Length"]),
        "cache_hits": 0, "bg_remove_jobs": 1, "compute_seconds": round(job.duration_seconds, 3),
    }]
    assert job.duration_seconds >= job.inference_seconds > 0


def test_usage_api_filters_by_dates_and_source(client, source, account):
    other = SourceFactory(account=account, slug="acme-other")
    day = today()
    for days_ago in (0, 3, 40):
        UsageDaily.objects.create(source=source, day=day - timedelta(days=days_ago), renders=1, bytes_served=10)
    UsageDaily.objects.create(source=other, day=day, renders=7, bytes_served=70)

    default = api_get(client, account).json()
    assert [(r["day"], r["source"]) for r in default["rows"]] == [
        ((day - timedelta(days=3)).isoformat(), "acme-photos"),
        (day.isoformat(), "acme-other"),
        (day.isoformat(), "acme-photos"),
    ]
    assert default["totals"]["renders"] == 9

    window = api_get(client, account, since=(day - timedelta(days=50)).isoformat(),
                     until=(day - timedelta(days=1)).isoformat()).json()
    assert [r["day"] for r in window["rows"]] == [(day - timedelta(days=40)).isoformat(),
                                                   (day - timedelta(days=3)).isoformat()]

    only_other = api_get(client, account, source="acme-other").json()
    assert only_other["source"] == "acme-other"
    assert [(r["source"], r["renders"]) for r in only_other["rows"]] == [("acme-other", 7)]
    assert only_other["totals"]["bytes_served"] == 70


def test_usage_api_is_scoped_to_the_callers_account(client, source, account):
    UsageDaily.objects.create(source=source, day=today(), renders=3, bytes_served=30)
    finished_job(source, "a.jpg")
    intruder = AccountFactory(slug="intruder")
    SourceFactory(account=intruder, slug="intruder-photos")

    theirs = api_get(client, intruder).json()
    assert theirs["rows"] == [] and theirs["totals"]["renders"] == 0 and theirs["totals"]["bg_remove_jobs"] == 0

    probe = api_get(client, intruder, source="acme-photos")
    assert probe.status_code == 404
    assert probe.json()["error"]["code"] == "not_found"
    assert api_get(client, account, source="intruder-photos").status_code == 404
    assert api_get(client, account, source="no-such-source").status_code == 404


def test_usage_api_rejects_bad_ranges_and_needs_a_key(client, account):
    assert client.get("/api/v1/usage").status_code == 401
    reversed_range = api_get(client, account, since="2025-02-01", until="2025-01-01")
    assert reversed_range.status_code == 400
    assert "since" in reversed_range.json()["error"]["fields"]
    assert api_get(client, account, since="2020-01-01", until="2025-01-01").status_code == 400
    assert api_get(client, account, since="yesterday").status_code == 400


def test_usage_api_is_in_the_schema(client, account):
    schema = client.get("/api/v1/schema/", {"format": "json"}, **bearer(account))
    assert schema.status_code == 200
    operation = schema.json()["paths"]["/api/v1/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"since", "until", "source"}
