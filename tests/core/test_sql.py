"""core/sql.py: a lookup's SQL compiled once gives what the queryset gives, converters and all."""

import pytest

from core.sql import CompiledLookup
from rendering.models import Render

pytestmark = pytest.mark.django_db


def test_the_same_instance_as_the_queryset(source):
    made = Render.objects.create(key="a" * 64, source=source, path="p.jpg", storage_name="renders/x.png",
                                 content_type="image/png", size=12, etag='"e"')
    lookup = CompiledLookup(lambda key: Render.objects.filter(key=key)[:1])
    for _ in range(2):  # Compiled on the first call, reused on the second.
        got = lookup.get("a" * 64)
        expected = Render.objects.get(key="a" * 64)
        assert got == made and {f.attname: getattr(got, f.attname) for f in Render._meta.concrete_fields} == {
            f.attname: getattr(expected, f.attname) for f in Render._meta.concrete_fields}
        assert got.created_at.tzinfo is not None and got._state.adding is False and got._state.db == "default"
    assert lookup.get("b" * 64) is None


def test_a_lookup_that_rewrites_its_value_is_refused(source):
    lookup = CompiledLookup(lambda path: Render.objects.filter(path__contains=path)[:1])
    with pytest.raises(ValueError, match="parameters are not its arguments"):
        lookup.get("p")


def test_partial_instances_are_refused(source):
    lookup = CompiledLookup(lambda key: Render.objects.filter(key=key).only("key")[:1])
    with pytest.raises(ValueError, match="whole instances"):
        lookup.get("k")
