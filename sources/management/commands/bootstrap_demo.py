"""Creates the demo account, its local-folder source and an admin login, once."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import Account
from sources.models import Source


class Command(BaseCommand):
    help = "Creates the demo account and source (demo/origin/) and prints an admin login the first time."

    def handle(self, *args, **options):
        account, _ = Account.objects.get_or_create(slug="demo", defaults={"name": "Demo", "bg_remove_enabled": True})
        Source.objects.get_or_create(
            slug="demo",
            defaults={"account": account, "kind": Source.Kind.LOCAL_FOLDER, "local_path": "origin",
                      "bg_remove": Source.BgRemove.ON},
        )
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@example.com", password)
            self.stdout.write(self.style.SUCCESS(f"Admin login (shown once): admin / {password}"))
        self.stdout.write("Demo source 'demo' serves demo/origin/: /render/demo/<file>?bg-remove=true")
