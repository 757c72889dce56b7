"""Two checkouts test at once: a run without DATABASE_URL and REDIS_URL takes its own slot (a
database and a Redis number) for as long as its process lives."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = (
    "import sys, tests.settings as s; "
    "print(s.DATABASES['default']['NAME'], s.REDIS_URL, flush=True); sys.stdin.read()"
)


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return env


def _probe():
    child = subprocess.Popen([sys.executable, "-c", PROBE], cwd=ROOT, env=_env(), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return child, child.stdout.readline().split()


@pytest.mark.postgres
@pytest.mark.redis
def test_runs_at_once_take_different_slots_and_a_finished_run_frees_its_own():
    first, (first_db, first_redis) = _probe()
    second, (second_db, second_redis) = _probe()
    try:
        assert first_db != second_db and first_redis != second_redis
        assert first_db.startswith("cutout_test_") and first_redis.startswith("redis://127.0.0.1:6379/")
        # A killed run (no clean-up at all) frees its slot: the lock dies with the process.
        first.kill()
        first.wait()
        third, (third_db, third_redis) = _probe()
        third.kill()
        third.wait()
        assert (third_db, third_redis) == (first_db, first_redis)
    finally:
        for child in (first, second):
            child.kill()
            child.wait()


@pytest.mark.postgres
@pytest.mark.redis
def test_two_suites_at_once_both_pass():
    """Two real pytest runs of a module that creates its test database and flushes its Redis
    database, started together: with fixed names one would drop or flush the other's."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "tests/core/test_redis_cache.py", "tests/removebg_api/test_tasks.py"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
