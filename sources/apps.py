"""Sources app configuration."""

from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "sources"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from accounts.models import Account
        from sources.models import Source
        from sources.selectors import source_cache_clear

        for model in (Source, Account):
            post_save.connect(source_cache_clear, sender=model, dispatch_uid=f"source_cache_{model.__name__}_save")
            post_delete.connect(source_cache_clear, sender=model, dispatch_uid=f"source_cache_{model.__name__}_del")
