"""The remove.bg-compatible API app."""

from django.apps import AppConfig


class RemoveBgConfig(AppConfig):
    name = "removebg_api"
    verbose_name = "remove.bg API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from removebg_api import receivers  # noqa: F401  Gives back charges held on failed jobs.
