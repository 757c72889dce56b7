"""Rendering app configuration."""

from django.apps import AppConfig


class RenderingConfig(AppConfig):
    name = "rendering"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from rendering import receivers  # noqa: F401  Connects the signal receivers.
