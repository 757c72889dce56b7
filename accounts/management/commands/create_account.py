"""Creates an account (a tenant) as an operator: the first step after `createsuperuser`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services import account_create


class Command(BaseCommand):
    help = "Creates account SLUG and prints its slug; sources and API keys are then made for it."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Letters, digits, hyphens and underscores; unique.")
        parser.add_argument("--name", default="", help="Shown in the admin (default: the slug).")
        parser.add_argument("--bg-remove", action="store_true",
                            help="Turn background removal on for the account's sources that inherit.")

    def handle(self, *args, slug, name, bg_remove, **options):
        try:
            account = account_create(slug=slug, name=name, bg_remove_enabled=bg_remove)
        except ValidationError as exc:
            details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
            raise CommandError(f"Account {slug!r} not created: {details}") from None
        self.stdout.write(account.slug)
