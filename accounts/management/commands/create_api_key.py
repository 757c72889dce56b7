"""Prints a new API key for an account, once, and nothing else on stdout."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account, ApiKey
from accounts.services import ApiKeyScopeError, api_key_create


class Command(BaseCommand):
    help = "Creates an API key for ACCOUNT_SLUG and prints it (the only time it can be seen)."

    def add_arguments(self, parser):
        parser.add_argument("account_slug")
        parser.add_argument("--scopes", default="read", help=f"Comma list of {','.join(ApiKey.Scope.values)}.")
        parser.add_argument("--name", default="")

    def handle(self, *args, account_slug, scopes, name, **options):
        account = Account.objects.filter(slug=account_slug).first()
        if account is None:
            raise CommandError(f"No account {account_slug!r}.")
        try:
            _, key = api_key_create(account=account, scopes=[s.strip() for s in scopes.split(",") if s.strip()], name=name)
        except ApiKeyScopeError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(key)
