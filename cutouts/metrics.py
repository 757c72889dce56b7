"""Background-removal metrics: jobs, inferences, and the queue read at scrape time."""

from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from cutouts.models import BgRemoveJob

JOBS = Counter("cutout_bg_remove_jobs", "Background-removal jobs that ended, by state.", ["state"])
JOB_SECONDS = Histogram(
    "cutout_bg_remove_job_seconds", "Background-removal job time (claim to stored), on workers.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
INFERENCES = Counter("cutout_bg_remove_inferences", "Model runs, by model.", ["model"])


class QueueCollector:
    """Read at scrape time from the database, so every process agrees: jobs by state."""

    def collect(self):
        gauge = GaugeMetricFamily("cutout_bg_remove_queue", "Background-removal jobs by current state.",
                                  labels=["state"])
        counts = dict(BgRemoveJob.objects.values_list("status").annotate(n=Count("id")))
        for state in BgRemoveJob.Status.values:
            gauge.add_metric([state], counts.get(state, 0))
        yield gauge
