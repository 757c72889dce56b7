"""Daily usage per source."""

from django.db import models

from sources.models import Source


class UsageDaily(models.Model):
    """Per source and day: what was served. Counted in the request path, persisted in batches."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    renders = models.PositiveBigIntegerField(default=0)
    bytes_served = models.PositiveBigIntegerField(default=0)
    cache_hits = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "rendering_usagedaily"  # Kept from before the app split (the rows never moved).
        constraints = [models.UniqueConstraint(fields=["source", "day"], name="one_usage_row_per_source_day")]
        ordering = ["-day"]
