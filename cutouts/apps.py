"""Background-removal app configuration."""

from django.apps import AppConfig


class CutoutsConfig(AppConfig):
    name = "cutouts"
    verbose_name = "Background removal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from core import health, metrics
        from core.model_files import model_path
        from cutouts.metrics import QueueCollector
        from cutouts.workers import bg_remove_workers_check

        metrics.SCRAPE_COLLECTORS.append(QueueCollector())

        def models_check():
            # The files being there, not their checksums: /readyz answers within half a second
            # and hashing reads every byte. A worker checks them before it takes a job.
            missing = [name for name in settings.BG_REMOVE_MODELS if not model_path(name).is_file()]
            if missing:
                raise RuntimeError(f"not provisioned: {', '.join(missing)}")

        health.CHECKS["models"] = models_check
        health.CHECKS["workers"] = bg_remove_workers_check
