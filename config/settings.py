"""Settings, read from the environment in one place; every default runs on a laptop."""

import os
from collections.abc import MutableMapping
from pathlib import Path

import environ
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


class _Environ(MutableMapping):
    """os.environ as these settings read it: an empty variable is unset, and every value is literal."""

    def __getitem__(self, name):
        value = os.environ[name]
        if value == "":
            # Compose passes a variable it has no value for as empty: the default applies.
            raise KeyError(name)
        # django-environ reads a leading `$NAME` as another variable's value; escaped here and
        # unescaped by escape_proxy, `$` stays literal (a Django-made secret key may start with it).
        return value.replace("$", r"\$")

    def __setitem__(self, name, value):
        os.environ[name] = value

    def __delitem__(self, name):
        del os.environ[name]

    def __iter__(self):
        return (name for name, value in os.environ.items() if value != "")

    def __len__(self):
        return sum(1 for _ in self)


class Env(environ.Env):
    ENVIRON = _Environ()

    @classmethod
    def parse_value(cls, value, cast):
        # django-environ drops every character of a float it does not expect ("1e3" would read
        # as 13) and keeps blank list items: a setting is what it says, or start-up stops.
        if cast is float:
            try:
                return float(value)
            except ValueError:
                raise ImproperlyConfigured(f"Not a number: {value!r}") from None
        if cast is list:
            return [item.strip() for item in value.split(",") if item.strip()]
        return super().parse_value(value, cast)


# https://django-environ.readthedocs.io/ — every setting is read once below, with its type and default.
env = Env()
# Undoes _Environ's escaping. It would call a Path default's own `replace`: paths are read as str.
env.escape_proxy = True

# The file of KEY=value lines read into the environment: BASE_DIR/.env when it exists (`make run`
# writes one for development), or the file CUTOUT_ENV_FILE names (/dev/null: none, as in the tests).
# A variable the environment sets (not empty) wins over the file.
ENV_FILE = Path(env.str("CUTOUT_ENV_FILE", default=str(BASE_DIR / ".env")))
if "CUTOUT_ENV_FILE" in env and not ENV_FILE.exists():
    raise ImproperlyConfigured(f"CUTOUT_ENV_FILE names no file: {ENV_FILE}")
if ENV_FILE.exists():
    Env.read_env(ENV_FILE)


def _env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


# A production start in a checkout where `make run` once wrote its development .env (a secret key
# and DJANGO_DEBUG=true) would silently run in DEBUG with that key: the settings reading the file
# by default, or honcho and docker compose, which read a .env by themselves, putting its values in
# the environment. Either way it stops, unless CUTOUT_ENV_FILE names that file on purpose (as
# `make run` does).
PRODUCTION_SERVICES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME")
DEVELOPMENT_ENV_FILE = BASE_DIR / ".env"
if DEVELOPMENT_ENV_FILE.is_file() and any(os.environ.get(name) for name in PRODUCTION_SERVICES) \
        and env.bool("DJANGO_DEBUG", default=False):
    development = _env_file_values(DEVELOPMENT_ENV_FILE)
    named = "CUTOUT_ENV_FILE" in env and ENV_FILE.resolve() == DEVELOPMENT_ENV_FILE.resolve()
    read_by_default = "CUTOUT_ENV_FILE" not in env
    read_by_another = bool(development.get("DJANGO_SECRET_KEY")) \
        and os.environ.get("DJANGO_SECRET_KEY") == development["DJANGO_SECRET_KEY"]
    if development.get("DJANGO_DEBUG", "").lower() in ("true", "1", "yes", "on", "y") and not named \
            and (read_by_default or read_by_another):
        services = ", ".join(name for name in PRODUCTION_SERVICES if os.environ.get(name))
        raise ImproperlyConfigured(
            f"The development settings file {DEVELOPMENT_ENV_FILE} (DJANGO_DEBUG=true and its own secret key, "
            f"written by `make run`) is in use, but production services are configured ({services}). For a "
            "production start move that file away (honcho and docker compose read a .env by themselves: give "
            "them `-e` with the production file), or set CUTOUT_ENV_FILE to it to use it on purpose.")

# Where local state lives when no service is configured: SQLite, files, the broker folder.
VAR_DIR = Path(env.str("CUTOUT_VAR_DIR", default=str(BASE_DIR / "var")))

# --- Core -------------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug — development mode; never in production.
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
# A production secret has no default: without DEBUG, a missing key stops start-up.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=None)
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=true for development: "
                                   "`make run` writes both into a new .env).")
    SECRET_KEY = "insecure-development-key-never-use-in-production"

# The rendering host: `{source}.{RENDER_DOMAIN}` serves that source's images at the root.
RENDER_DOMAIN = env.str("RENDER_DOMAIN", default=None)

# Host names served. No `testserver` (Django's test client): tests/settings.py adds it for the tests only.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
if RENDER_DOMAIN:
    ALLOWED_HOSTS.append("." + RENDER_DOMAIN)
# Origins trusted for the admin's forms (https://cutout.example.com), needed behind an HTTPS proxy.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Behind a proxy that terminates HTTPS and sets X-Forwarded-Proto (status URLs then say https).
if env.bool("DJANGO_BEHIND_HTTPS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "simple_history",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files: the API docs work offline.
    # The project's apps, in their dependency order (each imports only those below it; api/ and
    # imaging/ are packages without models; tests/test_import_graph.py keeps it so).
    "accounts",
    "sources",
    "cutouts",
    "usage",
    "webhooks",
    "rendering",
    "removebg_api",
    "playground",
]

MIDDLEWARE = [
    "core.middleware.HealthCheckMiddleware",
    "core.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.JsonErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "rendering.hosts.RenderHostMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

# Rendering requests skip what they do not use (sessions, CSRF, auth, messages): rendering/wsgi.py.
RENDER_MIDDLEWARE = [
    "core.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "rendering.hosts.RenderHostMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url — the database;
# postgres://… selects psycopg 3.
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Seconds a connection is reused (checked before reuse); 0 closes it after each request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Bounded waits on PostgreSQL, which every request may need: seconds to connect (libpq's
# connect_timeout, whole seconds, at least 2 as libpq counts it; 0: none; a new connection is a new
# server process and authentication, over 2 s on a loaded 2-core machine), seconds a statement may
# run in the server before it cancels it (0: none), and seconds any wait for the server may last,
# so a server that stops answering (a frozen host, a held connection) costs a request this and
# not forever (core/postgresql/base.py; 0: none). The read bound is above the statement's, so a
# slow query is cancelled by the server, keeping its connection, before the client gives up.
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=5)
DATABASE_READ_TIMEOUT = env.float("DATABASE_READ_TIMEOUT", default=DATABASE_STATEMENT_TIMEOUT + 1)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if DATABASE_CONNECT_TIMEOUT == 1 or DATABASE_CONNECT_TIMEOUT < 0:
        raise ImproperlyConfigured("DATABASE_CONNECT_TIMEOUT is whole seconds, 0 (none) or at least 2 "
                                   "(libpq would wait 2 for 1).")
    if DATABASE_STATEMENT_TIMEOUT < 0 or DATABASE_READ_TIMEOUT < 0:
        raise ImproperlyConfigured("DATABASE_STATEMENT_TIMEOUT and DATABASE_READ_TIMEOUT are seconds, 0 for none.")
    DATABASES["default"]["ENGINE"] = "core.postgresql"  # Django's, with the read bound.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    if DATABASE_STATEMENT_TIMEOUT:
        options.setdefault("options", f"-c statement_timeout={round(DATABASE_STATEMENT_TIMEOUT * 1000)}")
    options.setdefault("read_timeout", DATABASE_READ_TIMEOUT)
    # A peer that vanished (a host down, a dropped route) is noticed by the kernel too: keepalives
    # after 10 s idle, and data left unacknowledged for the read bound ends the connection.
    options.update({"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 2, "keepalives_count": 3})
    if DATABASE_READ_TIMEOUT:
        options.setdefault("tcp_user_timeout", round(DATABASE_READ_TIMEOUT * 1000))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker share the file: wait for the other's write lock instead of failing.
    # WAL lets readers and the one writer proceed together, and with synchronous=NORMAL a commit
    # no longer waits on fsync: it survives a killed process, only an OS crash can lose the last.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20, "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
    # Connections are kept (DATABASE_CONN_MAX_AGE) as for Postgres: a new one costs a worker
    # ~4 ms per job (connect, pragmas, reading the schema), and an idle one holds no lock.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (and rate-limit counters) and broker ----------------------------------------
# Redis for the cache (rate-limit counters), the usage counters and, by default, the broker.
REDIS_URL = env.str("REDIS_URL", default=None)
# The cache is on every request's path (the rate count, the cache generation): a Redis that
# hangs costs a request at most these two waits, never redis-py's defaults (5 s each, retried 3
# times), and nothing is retried blindly (core/redis_cache.py); the rate limit then fails open and the per-process
# caches are not trusted (accounts/limits.py, core/generation.py).
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.05)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.2)
if REDIS_URL:
    # Django's RedisCache, with an atomic one-round-trip incr (core/redis_cache.py).
    CACHES = {"default": {"BACKEND": "core.redis_cache.AtomicIncrRedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                                      "socket_timeout": REDIS_SOCKET_TIMEOUT}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The rate limits (accounts/limits.py) count in the default cache. Without Redis that is per
# process (embedded development only); with Redis, one atomic round trip per event.

# --- Celery -----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
BROKER_DIR = VAR_DIR / "broker"
# The job queue; filesystem:// works on one machine only.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The folder is polled; a short interval keeps the first cutout from waiting on it.
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # A message whose worker died is delivered again after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
        # A Redis that stops answering holds a publishing request this long per attempt, not for
        # ever (the worker's BRPOP waits 1 s on the server, under this).
        "socket_connect_timeout": env.float("CELERY_BROKER_CONNECT_TIMEOUT", default=0.5),
        "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=2),
        # A worker looks for messages past their visibility timeout every 10 s. kombu 5.7 scans
        # only every 10th time by default (100 s); each scan is one indexed ZRANGE, so every time.
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge after the task ran, so a killed worker's job is delivered again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A new pool process loads the models before it reports up; Celery's default of 4 s is shorter
# than that on a busy machine, and the pool would kill and restart its processes without end.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 60
# The queue web publishes jobs to and workers consume: the same on every machine.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="cutout")
# Queues per concern, named after the job queue (so per-run test queues keep apart): a slow or
# silent webhook receiver, or a usage run, never waits behind cutouts or holds a cutout worker.
# The `worker` process consumes only the job queue; the `webhooks` process the other two.
CELERY_WEBHOOK_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-webhooks"
CELERY_USAGE_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-usage"
# By the tasks' wire names (webhooks/tasks.py, usage/tasks.py), kept from before the app split.
CELERY_TASK_ROUTES = {
    "rendering.tasks.webhook_deliver": {"queue": CELERY_WEBHOOK_QUEUE},
    "rendering.tasks.usage_persist_run": {"queue": CELERY_USAGE_QUEUE},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Publishing must fail fast when the broker is down, so the request can answer 503: one retry (a
# pooled connection the broker closed is found broken on first use), so at most two attempts.
CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("max_retries", 1)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html — run by `celery beat`.
# Usage counted in Redis is moved into the database this often.
USAGE_PERSIST_SECONDS = env.int("USAGE_PERSIST_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "usage-persist": {
        "task": "rendering.tasks.usage_persist_run",
        "schedule": float(USAGE_PERSIST_SECONDS),
        # Its own queue (CELERY_USAGE_QUEUE) keeps it from waiting behind cutouts; a run still late
        # (the webhooks process down) is dropped: the next one moves the same counts.
        "options": {"expires": USAGE_PERSIST_SECONDS},
    },
}

# --- Storage ----------------------------------------------------------------------------------
# https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
# Where renders are stored when no bucket is set.
MEDIA_ROOT = Path(env.str("CUTOUT_MEDIA_ROOT", default=str(VAR_DIR / "media")))
# The bucket for cutouts and renders; set, it selects S3 storage.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default=None)
# Bounded waits on the bucket, which a render's first hit on a node and every new render need:
# seconds to connect, seconds to wait for each read of an answer, and attempts per call (1: none
# repeated; botocore's default tries 5 times, so a store that hangs would cost a request five
# read timeouts). A failed call is a 503 the client may retry; a job's write is retried by the
# job's own backoff (cutouts/tasks.py).
AWS_S3_CONNECT_TIMEOUT = env.float("AWS_S3_CONNECT_TIMEOUT", default=1)
AWS_S3_READ_TIMEOUT = env.float("AWS_S3_READ_TIMEOUT", default=5)
AWS_S3_MAX_ATTEMPTS = env.int("AWS_S3_MAX_ATTEMPTS", default=1)
if AWS_S3_CONNECT_TIMEOUT <= 0 or AWS_S3_READ_TIMEOUT <= 0 or AWS_S3_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured("AWS_S3_CONNECT_TIMEOUT and AWS_S3_READ_TIMEOUT are seconds above 0, "
                               "AWS_S3_MAX_ATTEMPTS at least 1.")
if AWS_STORAGE_BUCKET_NAME:
    RENDER_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            # An S3-compatible store's endpoint (none: AWS), and the bucket's region.
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default="us-east-1"),
            # The bucket's credentials (none: boto3's own chain); never used for tenants' S3 origins.
            "access_key": env.str("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default=None),
            # A key prefix inside the bucket, so deployments can share one.
            "location": env.str("AWS_LOCATION", default=""),
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": False,
            "client_config": Config(connect_timeout=AWS_S3_CONNECT_TIMEOUT, read_timeout=AWS_S3_READ_TIMEOUT,
                                    retries={"total_max_attempts": AWS_S3_MAX_ATTEMPTS, "mode": "standard"}),
        },
    }
else:
    RENDER_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "allow_overwrite": True},
    }
STORAGES = {
    "default": RENDER_STORAGE,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "/static/"
# Where collectstatic puts the admin's files.
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# --- Origins ----------------------------------------------------------------------------------
# Local-folder sources must lie below this root (like imgproxy's IMGPROXY_LOCAL_FILESYSTEM_ROOT).
ORIGIN_LOCAL_ROOT = Path(env.str("ORIGIN_LOCAL_ROOT", default=str(BASE_DIR / "demo")))
# Largest origin file, counted while streaming (413), and image, read from its header (422).
ORIGIN_MAX_BYTES = env.int("ORIGIN_MAX_BYTES", default=12 * 1024 * 1024)
ORIGIN_MAX_PIXELS = env.int("ORIGIN_MAX_PIXELS", default=50_000_000)
# Scans in a progressive JPEG (decode cost is pixels × scans); libjpeg and mozjpeg write about 10.
ORIGIN_MAX_JPEG_SCANS = env.int("ORIGIN_MAX_JPEG_SCANS", default=32)
# Seconds to connect to an origin, and for a whole fetch, redirects included.
ORIGIN_CONNECT_TIMEOUT = env.float("ORIGIN_CONNECT_TIMEOUT", default=5)
ORIGIN_TOTAL_TIMEOUT = env.float("ORIGIN_TOTAL_TIMEOUT", default=30)
ORIGIN_MAX_REDIRECTS = 5
# Development only: lets a web-folder source or an S3 endpoint be on 127.0.0.1. Production never sets it.
ORIGIN_ALLOW_LOOPBACK = env.bool("ORIGIN_ALLOW_LOOPBACK", default=False)

# --- Rendering --------------------------------------------------------------------------------
# `Cache-Control: max-age` of a rendered image, in seconds.
RENDER_CACHE_MAX_AGE = env.int("RENDER_CACHE_MAX_AGE", default=31536000)
RENDER_DEFAULT_QUALITY = 75
RENDER_MAX_URL_LENGTH = 8000
# Seconds a web process keeps a source (and its account's entitlement) after reading it.
SOURCE_CACHE_SECONDS = env.float("SOURCE_CACHE_SECONDS", default=2)
# Seconds a web process remembers where a finished render is stored (a purge elsewhere shows within it).
RENDER_LOOKUP_CACHE_SECONDS = env.float("RENDER_LOOKUP_CACHE_SECONDS", default=2)
# Bytes of small finished renders a web process keeps in memory for as long (0: read every time).
RENDER_MEMORY_CACHE_BYTES = env.int("RENDER_MEMORY_CACHE_BYTES", default=32 * 1024 * 1024)
# With a bucket (AWS_STORAGE_BUCKET_NAME), finished renders are also kept on each machine's disk,
# shared by its web processes, so a hit reads no S3 and is served while the store is down
# (rendering/node_cache.py): this many bytes at most (0: none), in this folder.
RENDER_NODE_CACHE_BYTES = env.int("RENDER_NODE_CACHE_BYTES", default=1024**3)
RENDER_NODE_CACHE_DIR = Path(env.str("RENDER_NODE_CACHE_DIR", default=str(VAR_DIR / "node-cache")))
# While the database is down, a web process still serves the hits its machine kept (and the node
# cache holds), with each source as the process read it at most this many seconds before, when
# nothing was purged or changed since (0: none; rendering/node_cache.py).
RENDER_STALE_IF_ERROR_SECONDS = env.int("RENDER_STALE_IF_ERROR_SECONDS", default=86400)
# Per account, derived renders kept in object storage: at most this many, and this many bytes
# (0: no ceiling). Past either, the least recently used are evicted; cutouts never are.
RENDER_MAX_STORED_PER_ACCOUNT = env.int("RENDER_MAX_STORED_PER_ACCOUNT", default=1_000_000)
RENDER_MAX_STORED_BYTES_PER_ACCOUNT = env.int("RENDER_MAX_STORED_BYTES_PER_ACCOUNT", default=50 * 1024**3)
# A render's "last used" time is written at most once per this many seconds (when a web
# process looks it up again), so a cached hit costs no database write.
RENDER_LAST_USED_SECONDS = env.int("RENDER_LAST_USED_SECONDS", default=600)
# Per-account request limit (a count per period: 600/m, 10/s, 100/5m); an account may set its own in the admin.
RENDER_RATE_LIMIT = env.str("RENDER_RATE_LIMIT", default="1200/m")
# The output budget (rendering/budget.py, docs/rendering.md "Limits"), checked before the work starts.
# Each default keeps one render of a tiny origin or a hostile file under 3 CPU-s and 600 MB on a
# 2-core machine (bench/hostile.py). Output pixels are clamped (scaled down, as imgix does at
# 8192×8192); the rest answer 422.
RENDER_MAX_OUTPUT_PIXELS = env.int("RENDER_MAX_OUTPUT_PIXELS", default=12_000_000)
# Per-encoder ceilings on output pixels: PNG/PNG32, palette (PNG8, GIF), lossy WebP, lossless WebP, AVIF.
RENDER_MAX_PNG_PIXELS = env.int("RENDER_MAX_PNG_PIXELS", default=6_000_000)
RENDER_MAX_PALETTE_PIXELS = env.int("RENDER_MAX_PALETTE_PIXELS", default=1_000_000)
RENDER_MAX_WEBP_PIXELS = env.int("RENDER_MAX_WEBP_PIXELS", default=8_300_000)
RENDER_MAX_LOSSLESS_PIXELS = env.int("RENDER_MAX_LOSSLESS_PIXELS", default=2_000_000)
RENDER_MAX_AVIF_PIXELS = env.int("RENDER_MAX_AVIF_PIXELS", default=2_100_000)
# The watermark as drawn (after mark-w/mark-h/mark-scale and mark-rot), and its tile count.
RENDER_MAX_MARK_PIXELS = env.int("RENDER_MAX_MARK_PIXELS", default=8_000_000)
RENDER_MAX_MARK_TILES = env.int("RENDER_MAX_MARK_TILES", default=10_000)
# Animated GIF and WebP origins (docs/rendering.md "Animation"): the frames an origin may have
# (imgix refuses over 900), the pixels decoded (every frame up to the last served, on the whole
# canvas), and the pixels written (frames × output size: every stage runs on each frame, so this
# is what a still's RENDER_MAX_OUTPUT_PIXELS is to its stages). WebP's encoder costs five times GIF's.
RENDER_MAX_FRAMES = env.int("RENDER_MAX_FRAMES", default=300)
RENDER_MAX_ANIMATION_DECODE_PIXELS = env.int("RENDER_MAX_ANIMATION_DECODE_PIXELS", default=24_000_000)
RENDER_MAX_ANIMATION_PIXELS = env.int("RENDER_MAX_ANIMATION_PIXELS", default=16_000_000)
RENDER_MAX_WEBP_ANIMATION_PIXELS = env.int("RENDER_MAX_WEBP_ANIMATION_PIXELS", default=6_000_000)
# Uncached renders (origin fetch, decode, render, encode) at once per web process; beyond, a render
# waits for a slot (RENDER_SLOT_WAIT_SECONDS, RENDER_SLOT_MAX_WAITERS below, beside WEB_THREADS).
RENDER_MAX_CONCURRENT = env.int("RENDER_MAX_CONCURRENT", default=2)

# --- Usage metering ---------------------------------------------------------------------------
# Counts in Redis not persisted within this many seconds (beat stopped) expire rather than pile up.
USAGE_REDIS_TTL = env.int("USAGE_REDIS_TTL", default=3 * 86400)
# Without Redis, each process buffers counts and writes them after this many seconds or records.
USAGE_BUFFER_SECONDS = env.float("USAGE_BUFFER_SECONDS", default=5)
USAGE_BUFFER_MAX_RECORDS = env.int("USAGE_BUFFER_MAX_RECORDS", default=500)

# --- Background removal -----------------------------------------------------------------------
# Where provision_models puts the model files and workers load them.
BG_REMOVE_MODEL_HOME = Path(env.str("BG_REMOVE_MODEL_HOME", default=str(VAR_DIR / "models")))
# The model used when a request names none.
BG_REMOVE_DEFAULT_MODEL = env.str("BG_REMOVE_DEFAULT_MODEL", default="u2netp")
# The models provision_models installs by default and each worker loads at start (it refuses to
# start without them). Any other provisioned model is served too, loaded on its first job.
BG_REMOVE_MODELS = env.list("BG_REMOVE_MODELS", default=[BG_REMOVE_DEFAULT_MODEL])
if BG_REMOVE_DEFAULT_MODEL not in BG_REMOVE_MODELS:
    raise ImproperlyConfigured("BG_REMOVE_DEFAULT_MODEL must be one of BG_REMOVE_MODELS.")
# A job claimed by a worker that then vanished may be claimed again after this many seconds (the
# worker renews it every third of it while the job runs: one UPDATE per 20 s per running job).
BG_REMOVE_JOB_LEASE = env.int("BG_REMOVE_JOB_LEASE", default=60)
# Every this many seconds (by beat) running jobs whose worker is gone go back to the queue, and
# queued jobs outnumbering the queue's messages get one (cutouts/tasks.py): after a fault, every
# job ends within about one lease plus one sweep.
BG_REMOVE_SWEEP_SECONDS = env.float("BG_REMOVE_SWEEP_SECONDS", default=15)
# /readyz says no worker consumes the job queue when none has reported for this many seconds
# (each reports every third of it: cutouts/workers.py).
BG_REMOVE_WORKER_STALE_SECONDS = env.float("BG_REMOVE_WORKER_STALE_SECONDS", default=30)
# A job that failed because of its origin is tried again on a request after this many seconds,
# so a fixed origin file recovers without a purge.
BG_REMOVE_FAILED_RETRY_AFTER = env.int("BG_REMOVE_FAILED_RETRY_AFTER", default=60)
# Worker retries of a job after a transient error (backoff 2, 4, 8 … s) before it fails.
BG_REMOVE_MAX_RETRIES = env.int("BG_REMOVE_MAX_RETRIES", default=5)
# A job whose worker died this many times while running it (killed, out of memory) fails with
# 422 instead of being run again: a poison image must not take workers down forever.
BG_REMOVE_MAX_ATTEMPTS = env.int("BG_REMOVE_MAX_ATTEMPTS", default=3)
# New background-removal jobs per account (lower than the request limit).
BG_REMOVE_RATE_LIMIT = env.str("BG_REMOVE_RATE_LIMIT", default="60/m")
# Admission: unfinished jobs allowed platform-wide and per account before new work gets 429.
BG_REMOVE_MAX_PENDING = env.int("BG_REMOVE_MAX_PENDING", default=500)
BG_REMOVE_MAX_PENDING_PER_ACCOUNT = env.int("BG_REMOVE_MAX_PENDING_PER_ACCOUNT", default=100)
# For Retry-After estimates: worker processes running jobs, and a job's time before any is measured.
BG_REMOVE_WORKER_SLOTS = env.int("BG_REMOVE_WORKER_SLOTS", default=1)
BG_REMOVE_EXPECTED_JOB_SECONDS = env.float("BG_REMOVE_EXPECTED_JOB_SECONDS", default=2)
# Alpha matting is bounded: past this many seconds the plain mask is used and the job says so.
BG_REMOVE_MATTING_SECONDS = env.float("BG_REMOVE_MATTING_SECONDS", default=20)
# It runs in a child process killed at that budget, which may allocate this many bytes at most.
BG_REMOVE_MATTING_MAX_BYTES = env.int("BG_REMOVE_MATTING_MAX_BYTES", default=2 * 1024**3)
# ONNX Runtime execution providers for the model, in order (e.g. CUDAExecutionProvider,
# CPUExecutionProvider, or OpenVINOExecutionProvider): passed to rembg explicitly, and a worker
# asked for one ONNX Runtime lacks exits at start rather than running on the CPU unnoticed.
BG_REMOVE_PROVIDERS = env.list("BG_REMOVE_PROVIDERS", default=["CPUExecutionProvider"])
# Threads one inference uses: 1, with one worker process per core, made the most cutouts per
# minute on a 2-core machine (ONNX Runtime's default, every core per process, oversubscribes).
BG_REMOVE_INTRA_OP_THREADS = env.int("BG_REMOVE_INTRA_OP_THREADS", default=1)
# Origins over this many pixels are scaled down (aspect kept) before the model, as imgix caps
# bg-remove output at 10 MP: the stored cutout is that size, and renders resize from it.
BG_REMOVE_MAX_PIXELS = env.int("BG_REMOVE_MAX_PIXELS", default=10_000_000)
# Webhook deliveries: attempts in all (backoff 10 s, 20 s, 40 s, …) before one is marked failed.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)

# --- The remove.bg-compatible API (removebg_api/, docs/removebg.md) ----------------------------
# Seconds a call waits for its cutout job before answering 429 with Retry-After (the job goes on:
# the same call again finds it, done or further along).
REMOVEBG_WAIT_SECONDS = env.float("REMOVEBG_WAIT_SECONDS", default=30)
# Calls waiting for a job at once per web process; one more gets 429 at once, so waiting calls
# never hold every thread (WEB_THREADS, 8 by default; cached renders need the others).
REMOVEBG_MAX_WAITING = env.int("REMOVEBG_MAX_WAITING", default=2)
# Largest request body, refused from its Content-Length before it is read: two images (the
# image and a background) base64-encoded, and the other fields.
REMOVEBG_MAX_REQUEST_BYTES = env.int("REMOVEBG_MAX_REQUEST_BYTES",
                                     default=2 * (ORIGIN_MAX_BYTES * 4 // 3 + 4) + 64 * 1024)
# A JSON body is one flat object (remove.bg's fields are strings, numbers, booleans), refused at
# the first nested value, at the field past this count, or at a string over this size (the two
# base64 images excepted, bounded by ORIGIN_MAX_BYTES): its cost is bounded by structure, not bytes.
REMOVEBG_JSON_MAX_FIELDS = env.int("REMOVEBG_JSON_MAX_FIELDS", default=64)
REMOVEBG_JSON_MAX_STRING = env.int("REMOVEBG_JSON_MAX_STRING", default=64 * 1024)
# Stored uploads per account (their count and bytes; 0: none): a new image past either expires
# the account's least recently used uploads that no unfinished job needs, or is refused (429).
REMOVEBG_UPLOADS_MAX_PER_ACCOUNT = env.int("REMOVEBG_UPLOADS_MAX_PER_ACCOUNT", default=10_000)
REMOVEBG_UPLOADS_MAX_BYTES_PER_ACCOUNT = env.int("REMOVEBG_UPLOADS_MAX_BYTES_PER_ACCOUNT", default=5 * 1024 ** 3)
# Kept /v1.0/improve submissions per account (count and bytes; 0: none); past either, 429 until
# old ones expire (REMOVEBG_IMPROVE_RETENTION_DAYS).
REMOVEBG_IMPROVE_MAX_PER_ACCOUNT = env.int("REMOVEBG_IMPROVE_MAX_PER_ACCOUNT", default=1000)
REMOVEBG_IMPROVE_MAX_BYTES_PER_ACCOUNT = env.int("REMOVEBG_IMPROVE_MAX_BYTES_PER_ACCOUNT", default=1024 ** 3)
# Uploaded images (and their cutouts and renders) are deleted this many days after their last use.
REMOVEBG_UPLOAD_RETENTION_DAYS = env.float("REMOVEBG_UPLOAD_RETENTION_DAYS", default=7)
# /v1.0/improve submissions are deleted this many days after they were made (by the same task).
REMOVEBG_IMPROVE_RETENTION_DAYS = env.float("REMOVEBG_IMPROVE_RETENTION_DAYS", default=30)
# Unset (the default): a new account's remove.bg calls are unmetered, every size served. A number:
# new accounts are metered, starting with that many credits (an operator sets each account's in
# the admin, remove.bg credits). The free preview-size calls a metered account has per calendar
# month (UTC), as remove.bg's free calls.
REMOVEBG_DEFAULT_CREDITS = env.float("REMOVEBG_DEFAULT_CREDITS", default=None)
REMOVEBG_FREE_CALLS = env.int("REMOVEBG_FREE_CALLS", default=50)
# /v1.0/improve submissions per account and day (remove.bg: 100).
REMOVEBG_IMPROVE_RATE_LIMIT = env.str("REMOVEBG_IMPROVE_RATE_LIMIT", default="100/d")
# The expiry of old uploads runs this often (seconds), by `celery beat`.
REMOVEBG_EXPIRE_SECONDS = env.int("REMOVEBG_EXPIRE_SECONDS", default=3600)
CELERY_BEAT_SCHEDULE["removebg-uploads-expire"] = {
    "task": "removebg_api.tasks.removebg_uploads_expire_run",
    "schedule": float(REMOVEBG_EXPIRE_SECONDS),
    "options": {"expires": REMOVEBG_EXPIRE_SECONDS},
}
# Housekeeping, on the usage queue (the `webhooks` process): never behind cutouts.
CELERY_TASK_ROUTES["removebg_api.tasks.removebg_uploads_expire_run"] = {"queue": CELERY_USAGE_QUEUE}
CELERY_BEAT_SCHEDULE["bg-remove-jobs-sweep"] = {
    "task": "cutouts.tasks.bg_remove_jobs_sweep_run",
    "schedule": BG_REMOVE_SWEEP_SECONDS,
    "options": {"expires": BG_REMOVE_SWEEP_SECONDS},  # A late one is dropped: the next does the same.
}
CELERY_TASK_ROUTES["cutouts.tasks.bg_remove_jobs_sweep_run"] = {"queue": CELERY_USAGE_QUEUE}

# --- The web server's front (config/rsgi.py, core/front.py) ----------------------------------
# Threads per web process that run requests (core/front.py hands each request to one of them).
WEB_THREADS = env.int("WEB_THREADS", default=8)
# An uncached render with no free slot waits this many seconds for one, first come first served,
# then answers 503 render_busy; with RENDER_SLOT_MAX_WAITERS already waiting it answers at once.
RENDER_SLOT_WAIT_SECONDS = env.float("RENDER_SLOT_WAIT_SECONDS", default=1.5)
# Each waiter holds a thread, as does each render and each remove.bg call waiting for its job:
# two threads are never theirs, so cached hits (and the API) always find one. The default is all
# the room WEB_THREADS leaves (8 threads: 2 waiters); more is refused here.
_threads_for_hits = 2
_waiters_room = max(0, WEB_THREADS - RENDER_MAX_CONCURRENT - REMOVEBG_MAX_WAITING - _threads_for_hits)
RENDER_SLOT_MAX_WAITERS = env.int("RENDER_SLOT_MAX_WAITERS", default=_waiters_room)
if not 0 <= RENDER_SLOT_MAX_WAITERS <= _waiters_room:
    raise ImproperlyConfigured(
        f"RENDER_SLOT_MAX_WAITERS={RENDER_SLOT_MAX_WAITERS} is over {_waiters_room}: WEB_THREADS ({WEB_THREADS}) "
        f"less RENDER_MAX_CONCURRENT ({RENDER_MAX_CONCURRENT}), REMOVEBG_MAX_WAITING ({REMOVEBG_MAX_WAITING}) and "
        f"the {_threads_for_hits} threads kept for cached hits; raise WEB_THREADS or lower it.")
# Seconds a request's whole body may take to arrive after its headers: a later one gets 408. Bodies
# are received by the event loop, so a slow client never holds a thread, only this long a connection.
WEB_BODY_TIMEOUT = env.float("WEB_BODY_TIMEOUT", default=30)
# Largest request body, refused (413) from its Content-Length before a byte is read: the largest any
# endpoint takes (the remove.bg API's; uploads of a 12 MB image fit well within it).
WEB_MAX_BODY_BYTES = env.int("WEB_MAX_BODY_BYTES", default=REMOVEBG_MAX_REQUEST_BYTES)
# Bytes of request bodies a web process holds while receiving them; past it a request gets 503.
WEB_BODY_BUFFER_BYTES = env.int("WEB_BODY_BUFFER_BYTES", default=268_435_456)  # 256 MiB
# granian closes a keep-alive connection idle this long (its header read timeout, milliseconds,
# 30 s by default and at most 60 s; granian reads the same variable itself). Each response tells
# the client with `Keep-Alive: timeout=N`, a second under it, so a pool that reads the hint (Node's
# http.Agent, undici) drops the connection first instead of sending a request on one being
# closed (docs/deploy.md, "Keep-alive"). Under 2 s: no hint.
_idle_seconds = env.int("GRANIAN_HTTP1_HEADER_READ_TIMEOUT", default=30000) // 1000
WEB_KEEPALIVE_HINT = _idle_seconds - 1 if _idle_seconds >= 2 else None

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "core.handlers.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.AccountRateThrottle"],
    # Management API requests per account.
    "DEFAULT_THROTTLE_RATES": {"account": env.str("API_RATE_LIMIT", default="600/m")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cutout management API",
    "DESCRIPTION": "Keys, sources, purge, pre-warm, jobs, usage and webhooks. Authenticate with "
                   "`Authorization: Bearer <key>`, or, signed in to the admin as an account manager, with that "
                   "session and the account's slug (Authorize → `account`). "
                   "Errors are `{\"error\": {\"code\", \"message\", \"fields\"}}`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages load Swagger UI and ReDoc from our static files (drf-spectacular-sidecar),
    # never from a CDN; anyone may read them and the schema (no data in either), so no
    # authentication runs there: a staff session without an account is no 401 on the docs.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_AUTHENTICATION": [],
    # No validator badge: it would send the schema's URL to swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",
    ],
}

# Every error answered under these paths is JSON in that API's shape (core/middleware.py): a
# 404 for an unknown route, a 405, a 500, even with DEBUG on. The rest of the site keeps HTML.
JSON_ERROR_SHAPES = {"/api/": "core.handlers.error_json", "/v1.0/": "removebg_api.views.error_json"}

# /readyz checks these; a web-only machine without model files may drop "models", and "workers"
# (a worker consuming the job queue: cutouts/workers.py) needs Redis, or one machine (embedded).
READYZ_CHECKS = env.list("READYZ_CHECKS", default=["database", "broker", "storage", "models", "workers"])

# --- Misc -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# `plain` (readable, the default) or `json`: one JSON object per line, with the request's or the
# job's fields (job id, account, status, durations).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"class": "core.logging.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    # Lines are written in batches, at most LOG_FLUSH_SECONDS after they are logged (a WARNING or
    # worse at once); 0 writes each line at once.
    "handlers": {"console": {"class": "core.logging.BufferedStreamHandler",
                             "flush_seconds": env.float("LOG_FLUSH_SECONDS", default=0.2),
                             "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    # The root logger's level (to standard error).
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per request (plain or JSON): the web server's own access log stays off.
        "cutout.requests": {"level": "INFO"},
    },
}
