"""The remove.bg-compatible API app."""

from django.apps import AppConfig


class RemoveBgConfig(AppConfig):
    name = "removebg_api"
    verbose_name = "remove.bg API"
    default_auto_field = "django.db.models.BigAutoField"
