"""Creates a source as an operator: with the admin, the way to give a tenant a local-folder source."""

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import account_get
from core.errors import ServiceError
from sources.models import Source
from sources.services import source_create


class Command(BaseCommand):
    help = "Creates source SLUG for ACCOUNT_SLUG (local folder, web folder or S3) and prints its slug."

    def add_arguments(self, parser):
        parser.add_argument("account_slug")
        parser.add_argument("slug")
        parser.add_argument("--kind", required=True, choices=Source.Kind.values)
        parser.add_argument("--local-path", default="", help="Local folder: a folder below ORIGIN_LOCAL_ROOT.")
        parser.add_argument("--base-url", default="", help="Web folder: images are base URL + path.")
        parser.add_argument("--s3-bucket", default="")
        parser.add_argument("--s3-prefix", default="")
        parser.add_argument("--s3-endpoint-url", default="", help="Only for S3-compatible stores.")

    def handle(self, *args, account_slug, slug, kind, local_path, base_url, s3_bucket, s3_prefix, s3_endpoint_url,
               **options):
        account = account_get(slug=account_slug)
        if account is None:
            raise CommandError(f"No account {account_slug!r}.")
        try:
            source = source_create(account=account, operator=True, slug=slug, kind=kind, local_path=local_path,
                                   base_url=base_url, s3_bucket=s3_bucket, s3_prefix=s3_prefix,
                                   s3_endpoint_url=s3_endpoint_url)
        except ServiceError as exc:
            fields = getattr(exc, "fields", None) or {}
            details = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
            raise CommandError(f"{exc.message} {details}".strip()) from None
        self.stdout.write(source.slug)
