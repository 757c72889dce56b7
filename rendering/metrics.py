"""Prometheus metrics: declared once here, recorded where things happen, exposed at /metrics.

With PROMETHEUS_MULTIPROC_DIR set (as `make run` and the deployment do), every process on a
machine — web server workers and Celery pool processes — writes to that folder and /metrics adds
them up, so worker-side metrics appear beside the web's.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("cutout_http_requests", "HTTP requests by route and status.", ["route", "method", "status"])
RENDER_SECONDS = Histogram(
    "cutout_render_seconds", "Time to answer a rendering request, by render-cache outcome.", ["cache"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS = Counter("cutout_bg_remove_jobs", "Background-removal jobs that ended, by state.", ["state"])
JOB_SECONDS = Histogram(
    "cutout_bg_remove_job_seconds", "Background-removal job time (claim to stored), on workers.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
INFERENCES = Counter("cutout_bg_remove_inferences", "Model runs, by model.", ["model"])
ORIGIN_ERRORS = Counter("cutout_origin_fetch_errors", "Origin fetch failures, by kind.", ["kind"])


class QueueCollector:
    """Read at scrape time from the database, so every process agrees: jobs by state."""

    def collect(self):
        from django.db.models import Count

        from .models import BgRemoveJob

        gauge = GaugeMetricFamily("cutout_bg_remove_queue", "Background-removal jobs by current state.",
                                  labels=["state"])
        counts = dict(BgRemoveJob.objects.values_list("status").annotate(n=Count("id")))
        for state in BgRemoveJob.Status.values:
            gauge.add_metric([state], counts.get(state, 0))
        yield gauge


def metrics_text() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    text = generate_latest(registry)
    queue = CollectorRegistry()
    queue.register(QueueCollector())
    return text + generate_latest(queue)
