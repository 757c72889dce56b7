"""Settings, read from the environment in one place; every default runs on a laptop."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name, default=False):
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    value = env(name)
    return int(value) if value is not None else default


def env_list(name, default=()):
    value = env(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


# Where local state lives when no service is configured: SQLite, files, the broker folder.
VAR_DIR = Path(env("CUTOUT_VAR_DIR", BASE_DIR / "var"))

# --- Core -------------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env_bool("DJANGO_DEBUG", False)

# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
# A production secret has no default: without DEBUG, a missing key stops start-up.
SECRET_KEY = env("DJANGO_SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=true for development).")
    SECRET_KEY = "insecure-development-key-never-use-in-production"

# The rendering host: `{source}.{RENDER_DOMAIN}` serves that source's images at the root.
RENDER_DOMAIN = env("RENDER_DOMAIN")

# No `testserver` (Django's test client): tests/settings.py adds it for the tests only.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if RENDER_DOMAIN:
    ALLOWED_HOSTS.append("." + RENDER_DOMAIN)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# Behind a proxy that terminates HTTPS and sets X-Forwarded-Proto (status URLs then say https).
if env_bool("DJANGO_BEHIND_HTTPS_PROXY", False):
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
    "django_ratelimit",
    "drf_spectacular",
    # The project's apps, in their dependency order (each imports only those below it; api/ and
    # imaging/ are packages without models; tests/test_import_graph.py keeps it so).
    "accounts",
    "sources",
    "cutouts",
    "usage",
    "webhooks",
    "rendering",
]

MIDDLEWARE = [
    "core.middleware.HealthCheckMiddleware",
    "core.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
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

# Rendering requests skip what they do not use (sessions, CSRF, auth, messages): config/wsgi.py.
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
# https://github.com/jazzband/dj-database-url — postgres://… selects psycopg 3.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
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
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    # Django's RedisCache, with an atomic one-round-trip incr (core/redis_cache.py).
    CACHES = {"default": {"BACKEND": "core.redis_cache.AtomicIncrRedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-ratelimit counts in the default cache. Without Redis that is per process (embedded
# development only); with Redis, core/redis_cache.py increments atomically, so its warning is moot.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"] + ([] if REDIS_URL else ["django_ratelimit.E003"])

# --- Celery -----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
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
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600)}
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
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "cutout")
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
# Publishing must fail fast when the broker is down, so the request can answer 503.
CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("max_retries", 2)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2}
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html — run by `celery beat`.
# Usage counted in Redis is moved into the database this often.
USAGE_PERSIST_SECONDS = env_int("USAGE_PERSIST_SECONDS", 60)
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
MEDIA_ROOT = Path(env("CUTOUT_MEDIA_ROOT", VAR_DIR / "media"))
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    RENDER_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL"),
            "region_name": env("AWS_S3_REGION_NAME", "us-east-1"),
            "access_key": env("AWS_ACCESS_KEY_ID"),
            "secret_key": env("AWS_SECRET_ACCESS_KEY"),
            "location": env("AWS_LOCATION", ""),
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": False,
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
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))

# --- Origins ----------------------------------------------------------------------------------
# Local-folder sources must lie below this root (like imgproxy's IMGPROXY_LOCAL_FILESYSTEM_ROOT).
ORIGIN_LOCAL_ROOT = Path(env("ORIGIN_LOCAL_ROOT", BASE_DIR / "demo"))
ORIGIN_MAX_BYTES = env_int("ORIGIN_MAX_BYTES", 12 * 1024 * 1024)
ORIGIN_MAX_PIXELS = env_int("ORIGIN_MAX_PIXELS", 50_000_000)
# Scans in a progressive JPEG (decode cost is pixels × scans); libjpeg and mozjpeg write about 10.
ORIGIN_MAX_JPEG_SCANS = env_int("ORIGIN_MAX_JPEG_SCANS", 32)
ORIGIN_CONNECT_TIMEOUT = float(env("ORIGIN_CONNECT_TIMEOUT", 5))
ORIGIN_TOTAL_TIMEOUT = float(env("ORIGIN_TOTAL_TIMEOUT", 30))
ORIGIN_MAX_REDIRECTS = 5
# Development only: lets a web-folder source or an S3 endpoint be on 127.0.0.1. Production never sets it.
ORIGIN_ALLOW_LOOPBACK = env_bool("ORIGIN_ALLOW_LOOPBACK", False)

# --- Rendering --------------------------------------------------------------------------------
RENDER_CACHE_MAX_AGE = env_int("RENDER_CACHE_MAX_AGE", 31536000)
RENDER_DEFAULT_QUALITY = 75
RENDER_MAX_URL_LENGTH = 8000
# Seconds a web process keeps a source (and its account's entitlement) after reading it.
SOURCE_CACHE_SECONDS = float(env("SOURCE_CACHE_SECONDS", 2))
# Seconds a web process remembers where a finished render is stored (a purge elsewhere shows within it).
RENDER_LOOKUP_CACHE_SECONDS = float(env("RENDER_LOOKUP_CACHE_SECONDS", 2))
# Bytes of small finished renders a web process keeps in memory for as long (0: read every time).
RENDER_MEMORY_CACHE_BYTES = env_int("RENDER_MEMORY_CACHE_BYTES", 32 * 1024 * 1024)
# Per account, derived renders kept in object storage: at most this many, and this many bytes
# (0: no ceiling). Past either, the least recently used are evicted; cutouts never are.
RENDER_MAX_STORED_PER_ACCOUNT = env_int("RENDER_MAX_STORED_PER_ACCOUNT", 1_000_000)
RENDER_MAX_STORED_BYTES_PER_ACCOUNT = env_int("RENDER_MAX_STORED_BYTES_PER_ACCOUNT", 50 * 1024**3)
# A render's "last used" time is written at most once per this many seconds (when a web
# process looks it up again), so a cached hit costs no database write.
RENDER_LAST_USED_SECONDS = env_int("RENDER_LAST_USED_SECONDS", 600)
# Per-account request limit (django-ratelimit syntax); an account may set its own in the admin.
RENDER_RATE_LIMIT = env("RENDER_RATE_LIMIT", "1200/m")
# The output budget (rendering/budget.py, docs/rendering.md "Limits"), checked before the work starts.
# Each default keeps one render of a tiny origin or a hostile file under 3 CPU-s and 600 MB on a
# 2-core machine (bench/hostile.py). Output pixels are clamped (scaled down, as imgix does at
# 8192×8192); the rest answer 422.
RENDER_MAX_OUTPUT_PIXELS = env_int("RENDER_MAX_OUTPUT_PIXELS", 12_000_000)
# Per-encoder ceilings on output pixels: PNG/PNG32, palette (PNG8, GIF), lossy WebP, lossless WebP, AVIF.
RENDER_MAX_PNG_PIXELS = env_int("RENDER_MAX_PNG_PIXELS", 6_000_000)
RENDER_MAX_PALETTE_PIXELS = env_int("RENDER_MAX_PALETTE_PIXELS", 1_000_000)
RENDER_MAX_WEBP_PIXELS = env_int("RENDER_MAX_WEBP_PIXELS", 8_300_000)
RENDER_MAX_LOSSLESS_PIXELS = env_int("RENDER_MAX_LOSSLESS_PIXELS", 2_000_000)
RENDER_MAX_AVIF_PIXELS = env_int("RENDER_MAX_AVIF_PIXELS", 2_100_000)
# The watermark as drawn (after mark-w/mark-h/mark-scale and mark-rot), and its tile count.
RENDER_MAX_MARK_PIXELS = env_int("RENDER_MAX_MARK_PIXELS", 8_000_000)
RENDER_MAX_MARK_TILES = env_int("RENDER_MAX_MARK_TILES", 10_000)
# Uncached renders (origin fetch, decode, render, encode) at once per web process; beyond: 503.
# 2 of the Procfile's 4 threads per process, so cached hits always find a free thread.
RENDER_MAX_CONCURRENT = env_int("RENDER_MAX_CONCURRENT", 2)

# --- Usage metering ---------------------------------------------------------------------------
# Counts in Redis not persisted within this many seconds (beat stopped) expire rather than pile up.
USAGE_REDIS_TTL = env_int("USAGE_REDIS_TTL", 3 * 86400)
# Without Redis, each process buffers counts and writes them after this many seconds or records.
USAGE_BUFFER_SECONDS = float(env("USAGE_BUFFER_SECONDS", 5))
USAGE_BUFFER_MAX_RECORDS = env_int("USAGE_BUFFER_MAX_RECORDS", 500)

# --- Background removal -----------------------------------------------------------------------
BG_REMOVE_MODEL_HOME = Path(env("BG_REMOVE_MODEL_HOME", VAR_DIR / "models"))
BG_REMOVE_DEFAULT_MODEL = env("BG_REMOVE_DEFAULT_MODEL", "u2netp")
# The models this deployment provisions and serves; a worker refuses to start without them.
BG_REMOVE_MODELS = env_list("BG_REMOVE_MODELS", [BG_REMOVE_DEFAULT_MODEL])
if BG_REMOVE_DEFAULT_MODEL not in BG_REMOVE_MODELS:
    raise ImproperlyConfigured("BG_REMOVE_DEFAULT_MODEL must be one of BG_REMOVE_MODELS.")
# A job claimed by a worker that then vanished may be claimed again after this many seconds.
BG_REMOVE_JOB_LEASE = env_int("BG_REMOVE_JOB_LEASE", 300)
# A job that failed because of its origin is tried again on a request after this many seconds,
# so a fixed origin file recovers without a purge.
BG_REMOVE_FAILED_RETRY_AFTER = env_int("BG_REMOVE_FAILED_RETRY_AFTER", 60)
BG_REMOVE_MAX_RETRIES = env_int("BG_REMOVE_MAX_RETRIES", 5)
# A job whose worker died this many times while running it (killed, out of memory) fails with
# 422 instead of being run again: a poison image must not take workers down forever.
BG_REMOVE_MAX_ATTEMPTS = env_int("BG_REMOVE_MAX_ATTEMPTS", 3)
# New background-removal jobs per account (lower than the request limit).
BG_REMOVE_RATE_LIMIT = env("BG_REMOVE_RATE_LIMIT", "60/m")
# Admission: unfinished jobs allowed platform-wide and per account before new work gets 429.
BG_REMOVE_MAX_PENDING = env_int("BG_REMOVE_MAX_PENDING", 500)
BG_REMOVE_MAX_PENDING_PER_ACCOUNT = env_int("BG_REMOVE_MAX_PENDING_PER_ACCOUNT", 100)
# For Retry-After estimates: worker processes running jobs, and a job's time before any is measured.
BG_REMOVE_WORKER_SLOTS = env_int("BG_REMOVE_WORKER_SLOTS", 1)
BG_REMOVE_EXPECTED_JOB_SECONDS = float(env("BG_REMOVE_EXPECTED_JOB_SECONDS", 2))
# Alpha matting is bounded: past this many seconds the plain mask is used and the job says so.
BG_REMOVE_MATTING_SECONDS = float(env("BG_REMOVE_MATTING_SECONDS", 20))
# It runs in a child process killed at that budget, which may allocate this many bytes at most.
BG_REMOVE_MATTING_MAX_BYTES = env_int("BG_REMOVE_MATTING_MAX_BYTES", 2 * 1024**3)
# Origins over this many pixels are scaled down (aspect kept) before the model, as imgix caps
# bg-remove output at 10 MP: the stored cutout is that size, and renders resize from it.
BG_REMOVE_MAX_PIXELS = env_int("BG_REMOVE_MAX_PIXELS", 10_000_000)
# Webhook deliveries: attempts in all (backoff 10 s, 20 s, 40 s, …) before one is marked failed.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6)

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "core.handlers.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.AccountRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"account": env("API_RATE_LIMIT", "600/m")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cutout management API",
    "DESCRIPTION": "Keys, sources, purge, pre-warm, jobs, usage and webhooks. Authenticate with "
                   "`Authorization: Bearer <key>`. Errors are `{\"error\": {\"code\", \"message\", \"fields\"}}`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"bearer": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",
    ],
}

# /readyz checks these; a web-only machine without model files may drop "models".
READYZ_CHECKS = env_list("READYZ_CHECKS", ["database", "broker", "storage", "models"])

# --- Misc -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# `plain` (readable, the default) or `json`: one JSON object per line, with the request's or the
# job's fields (job id, account, status, durations).
LOG_FORMAT = env("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per request (plain or JSON): the web server's own access log stays off.
        "cutout.requests": {"level": "INFO"},
    },
}
