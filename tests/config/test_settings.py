"""Settings smoke test: the settings module under minimal and production-like environments."""

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, config.settings as s
print(json.dumps({
    "db": s.DATABASES["default"]["ENGINE"], "db_name": str(s.DATABASES["default"]["NAME"]),
    "broker": s.CELERY_BROKER_URL, "cache": s.CACHES["default"]["BACKEND"],
    "storage": s.STORAGES["default"]["BACKEND"], "hosts": s.ALLOWED_HOSTS,
}))
"""
VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME", "DJANGO_DEBUG",
             "DJANGO_SECRET_KEY", "RENDER_DOMAIN", "DJANGO_SETTINGS_MODULE")


def load(tmp_path, probe=PROBE, **variables):
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(CUTOUT_VAR_DIR=str(tmp_path), **variables)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    return result


def test_no_variables_but_debug_gives_the_embedded_defaults(tmp_path):
    result = load(tmp_path, DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db"] == "django.db.backends.sqlite3" and values["db_name"] == str(tmp_path / "db.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["storage"] == "django.core.files.storage.FileSystemStorage"
    assert values["cache"].endswith("LocMemCache")
    assert values["hosts"] == ["localhost", "127.0.0.1", "[::1]"]  # `testserver` only in tests/settings.py.


def test_production_variables_select_postgres_redis_and_s3(tmp_path):
    result = load(tmp_path, DJANGO_SECRET_KEY="s3cret", DATABASE_URL="postgres://u@db:5432/cutout",
                  REDIS_URL="redis://cache:6379/0", AWS_STORAGE_BUCKET_NAME="renders",
                  RENDER_DOMAIN="img.example.com")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db"] == "core.postgresql"
    assert values["broker"] == "redis://cache:6379/0" and values["cache"].endswith("RedisCache")
    assert values["storage"] == "storages.backends.s3.S3Storage"
    assert ".img.example.com" in values["hosts"]


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = load(tmp_path, DATABASE_URL="postgres://u@db:5432/cutout")
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


ENV_FILE_PROBE = """
import json, config.settings as s
print(json.dumps({"env_file": str(s.ENV_FILE), "debug": s.DEBUG, "key": s.SECRET_KEY,
                  "queue": s.CELERY_TASK_DEFAULT_QUEUE, "hosts": s.ALLOWED_HOSTS, "max_age": s.RENDER_CACHE_MAX_AGE}))
"""


def test_the_env_file_fills_in_what_the_environment_leaves_unset_or_empty(tmp_path):
    env_file = tmp_path / "dev.env"
    env_file.write_text("DJANGO_SECRET_KEY=$from-the-file\nDJANGO_DEBUG=true\nCELERY_QUEUE=file-queue\n"
                        "DJANGO_ALLOWED_HOSTS=a.example, b.example\nRENDER_CACHE_MAX_AGE=\n")
    result = load(tmp_path, ENV_FILE_PROBE, CUTOUT_ENV_FILE=str(env_file), CELERY_QUEUE="env-queue",
                  DJANGO_ALLOWED_HOSTS="")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["debug"] is True
    assert values["key"] == "$from-the-file"  # Literal: not django-environ's reference to a variable.
    assert values["queue"] == "env-queue"  # The environment wins.
    assert values["hosts"] == ["a.example", "b.example"]  # Empty in the environment: unset.
    assert values["max_age"] == 31536000  # Empty in the file: the default.


def test_without_cutout_env_file_the_file_read_is_dot_env_at_the_project_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "CUTOUT_ENV_FILE"}
    env.update(CUTOUT_VAR_DIR=str(tmp_path), DJANGO_SECRET_KEY="s3cret")
    result = subprocess.run([sys.executable, "-c", ENV_FILE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["env_file"] == str(ROOT / ".env")


def test_an_env_file_that_is_not_there_stops_start_up(tmp_path):
    result = load(tmp_path, CUTOUT_ENV_FILE=str(tmp_path / "missing.env"), DJANGO_DEBUG="true")
    assert result.returncode != 0
    assert "CUTOUT_ENV_FILE names no file" in result.stderr


NUMBER_PROBE = """
import json, config.settings as s
print(json.dumps({"seconds": s.BG_REMOVE_JOB_LEASE, "hosts": s.ALLOWED_HOSTS, "float": s.ORIGIN_TOTAL_TIMEOUT}))
"""


def test_numbers_and_lists_read_as_written(tmp_path):
    result = load(tmp_path, probe=NUMBER_PROBE, DJANGO_DEBUG="true", ORIGIN_TOTAL_TIMEOUT="1e1",
                  DJANGO_ALLOWED_HOSTS="a.example.com, ,b.example.com,")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["float"] == 10.0
    assert values["hosts"] == ["a.example.com", "b.example.com"]


def test_a_malformed_number_stops_start_up(tmp_path):
    result = load(tmp_path, probe=NUMBER_PROBE, DJANGO_DEBUG="true", ORIGIN_TOTAL_TIMEOUT="2,5s")
    assert result.returncode != 0
    assert "Not a number: '2,5s'" in result.stderr


SLOTS_PROBE = """
import json, config.settings as s
print(json.dumps({"threads": s.WEB_THREADS, "waiters": s.RENDER_SLOT_MAX_WAITERS, "wait": s.RENDER_SLOT_WAIT_SECONDS}))
"""


def test_render_slot_waiters_leave_threads_for_cached_hits(tmp_path):
    # Slots (2) + waiters + remove.bg calls waiting (2) leave 2 threads: 8 threads → 2 waiters.
    result = load(tmp_path, SLOTS_PROBE, DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"threads": 8, "waiters": 2, "wait": 1.5}
    result = load(tmp_path, SLOTS_PROBE, DJANGO_DEBUG="true", WEB_THREADS="12")
    assert json.loads(result.stdout)["waiters"] == 6
    result = load(tmp_path, SLOTS_PROBE, DJANGO_DEBUG="true", WEB_THREADS="4")
    assert json.loads(result.stdout)["waiters"] == 0  # No room: renders beyond the slots are refused at once.
    result = load(tmp_path, SLOTS_PROBE, DJANGO_DEBUG="true", RENDER_SLOT_MAX_WAITERS="3")
    assert result.returncode != 0
    assert "RENDER_SLOT_MAX_WAITERS=3 is over 2" in result.stderr and "raise WEB_THREADS" in result.stderr
    result = load(tmp_path, SLOTS_PROBE, DJANGO_DEBUG="true", RENDER_SLOT_MAX_WAITERS="1")
    assert json.loads(result.stdout)["waiters"] == 1


def test_the_keep_alive_hint_is_a_second_under_granians_idle_timeout(tmp_path):
    probe = "import config.settings as s; print(s.WEB_KEEPALIVE_HINT)"
    assert load(tmp_path, probe, DJANGO_DEBUG="true").stdout.strip() == "29"  # granian's default, 30 s.
    assert load(tmp_path, probe, DJANGO_DEBUG="true", GRANIAN_HTTP1_HEADER_READ_TIMEOUT="60000").stdout.strip() == "59"
    assert load(tmp_path, probe, DJANGO_DEBUG="true", GRANIAN_HTTP1_HEADER_READ_TIMEOUT="1500").stdout.strip() == "None"


DEBUG_PROBE = "import config.settings as s; print(s.DEBUG, s.SECRET_KEY)"
DEVELOPMENT_ENV = "DJANGO_SECRET_KEY=dev-key-written-by-make-run\nDJANGO_DEBUG=true\n"


def checkout_with_development_env(tmp_path):
    """A checkout where `make run` wrote its .env: config/ copied (its location is BASE_DIR), the
    rest linked."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copytree(ROOT / "config", checkout / "config", ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ROOT.iterdir():
        if entry.name not in ("config", ".env", ".git"):
            (checkout / entry.name).symlink_to(entry)
    (checkout / ".env").write_text(DEVELOPMENT_ENV)
    return checkout


def start(checkout, tmp_path, **variables):
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "CUTOUT_ENV_FILE"}
    env.update(CUTOUT_VAR_DIR=str(tmp_path / "var"), **variables)
    return subprocess.run([sys.executable, "-c", DEBUG_PROBE], cwd=checkout, env=env, capture_output=True, text=True)


def test_a_production_start_refuses_the_development_env_file_unless_told_to(tmp_path):
    checkout = checkout_with_development_env(tmp_path)
    production = {"DATABASE_URL": "postgres://u@db:5432/cutout", "DJANGO_SECRET_KEY": "production-key"}

    # Development: the file is read, DEBUG on.
    assert start(checkout, tmp_path).stdout.split() == ["True", "dev-key-written-by-make-run"]
    # A production start (a service named) in that checkout stops and says why and what to do.
    refused = start(checkout, tmp_path, **production)
    assert refused.returncode != 0
    assert f"The development settings file {checkout / '.env'}" in refused.stderr
    assert "(DATABASE_URL)" in refused.stderr and "CUTOUT_ENV_FILE" in refused.stderr
    # honcho or compose read .env themselves and put its values in the environment: still refused.
    by_honcho = start(checkout, tmp_path, DATABASE_URL="postgres://u@db:5432/cutout",
                      DJANGO_SECRET_KEY="dev-key-written-by-make-run", DJANGO_DEBUG="true",
                      CUTOUT_ENV_FILE=os.devnull)
    assert by_honcho.returncode != 0 and "development settings file" in by_honcho.stderr
    # Told to (the file named), as `make run` does with a service of its own: allowed.
    told = start(checkout, tmp_path, CUTOUT_ENV_FILE=str(checkout / ".env"), REDIS_URL="redis://cache:6379/0")
    assert told.returncode == 0, told.stderr
    assert told.stdout.split() == ["True", "dev-key-written-by-make-run"]
    # The production file named instead: the development file is not read and nothing stops.
    production_file = tmp_path / "production.env"
    production_file.write_text("DATABASE_URL=postgres://u@db:5432/cutout\nDJANGO_SECRET_KEY=production-key\n")
    served = start(checkout, tmp_path, CUTOUT_ENV_FILE=str(production_file))
    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["False", "production-key"]
    # Debug asked for explicitly with a key of its own (not the file's values): allowed.
    explicit = start(checkout, tmp_path, CUTOUT_ENV_FILE=os.devnull, DJANGO_DEBUG="true", **production)
    assert explicit.returncode == 0, explicit.stderr
