"""Background-removal app configuration."""

from django.apps import AppConfig


class CutoutsConfig(AppConfig):
    name = "cutouts"
    verbose_name = "Background removal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from core import health, metrics
        from cutouts.metrics import QueueCollector
        from cutouts.remover import models_missing

        metrics.SCRAPE_COLLECTORS.append(QueueCollector())

        def models_check():
            missing = models_missing(settings.BG_REMOVE_MODELS)
            if missing:
                raise RuntimeError(f"not provisioned: {', '.join(missing)}")

        health.CHECKS["models"] = models_check
