"""Accounts app configuration."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import schema  # noqa: F401  Registers the OpenAPI authentication extensions.
        from accounts.services import account_managers_group_sync

        # Permissions exist only after migrate has run, so the group is synced then.
        post_migrate.connect(lambda **kwargs: account_managers_group_sync(), weak=False,
                             dispatch_uid="account_managers_group_sync")
