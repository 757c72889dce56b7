"""factory_boy factories for the models."""

import factory

from accounts.models import Account
from sources.models import Source


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Account {n}")
    slug = factory.Sequence(lambda n: f"account-{n}")


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    account = factory.SubFactory(AccountFactory)
    slug = factory.Sequence(lambda n: f"source-{n}")
    kind = Source.Kind.LOCAL_FOLDER
    local_path = "photos"
