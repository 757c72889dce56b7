"""Prometheus metrics: declared once here, recorded where things happen, exposed at /metrics.

With PROMETHEUS_MULTIPROC_DIR set (as `make run` and the deployment do), every process on a
machine — web server workers and Celery pool processes — writes to that folder and /metrics adds
them up, so worker-side metrics appear beside the web's.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUESTS = Counter("cutout_http_requests", "HTTP requests by route and status.", ["route", "method", "status"])
RENDER_SECONDS = Histogram(
    "cutout_render_seconds", "Time to answer a rendering request, by render-cache outcome.", ["cache"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RENDER_SLOT_WAITS = Histogram(
    "cutout_render_slot_wait_seconds",
    "Uncached renders that found no free render slot, and how long they waited, by outcome: slot (one "
    "came in time), timed_out (none came: 503 render_busy), refused (too many waiting: 503 at once).",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5),
)
ORIGIN_ERRORS = Counter("cutout_origin_fetch_errors", "Origin fetch failures, by kind.", ["kind"])


# Collectors read at scrape time (e.g. from the database), registered by the apps that own them.
SCRAPE_COLLECTORS: list = []


def metrics_text() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    scraped = CollectorRegistry()
    for collector in SCRAPE_COLLECTORS:
        scraped.register(collector)
    return text + generate_latest(scraped)
