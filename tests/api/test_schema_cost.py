"""The public schema is built once per process and language, not on every anonymous request."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from api.apis import SchemaApi


@pytest.fixture
def builds(monkeypatch):
    SchemaApi._built.clear()
    calls = []
    real = SchemaGenerator.get_schema

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    yield calls
    SchemaApi._built.clear()


@pytest.mark.django_db
def test_the_schema_is_built_once_and_served_the_same(client, builds):
    first = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert first.status_code == 200 and "/api/v1/sources" in first.json()["paths"]
    for _ in range(3):
        again = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
        assert again.json() == first.json()
    yaml = client.get("/api/v1/schema/")
    assert yaml.status_code == 200 and b"/api/v1/sources" in yaml.content
    assert len(builds) == 1
    # A caller varying `lang` gets the default language's schema and no new build.
    for lang in ("xx", "zz-top", "en-us"):
        assert client.get(f"/api/v1/schema/?lang={lang}", HTTP_ACCEPT="application/json").json() == first.json()
    assert len(builds) == 1 and len(SchemaApi._built) == 1
