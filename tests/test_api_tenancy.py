"""Every management API route, tried with another account's key: nothing of account A leaks to B.

The routes are read from the URL conf, so an endpoint added later without a tenancy check makes
this test fail: it must either answer 404 for A's objects or be taught A's object here.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create
from rendering.models import BgRemoveJob, Webhook
from tests.factories import AccountFactory, SourceFactory

pytestmark = pytest.mark.django_db

PUBLIC = {"api:schema", "api:docs"}
ALL_SCOPES = list(ApiKey.Scope.values)
METHODS = ["get", "post", "put", "patch", "delete"]


def api_routes():
    """(name, route with <converters>, view class) for every route under the `api` namespace."""

    def walk(patterns, prefix, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
            elif isinstance(p, URLPattern) and namespace == "api":
                yield f"api:{p.name}", prefix + str(p.pattern), p.callback.view_class

    return list(walk(get_resolver().url_patterns, "/", None))


@pytest.fixture
def tenants(origin_root):
    a = AccountFactory(slug="tenant-a", bg_remove_enabled=True)
    b = AccountFactory(slug="tenant-b", bg_remove_enabled=True)
    source = SourceFactory(account=a, slug="a-photos", kind="local", local_path="photos")
    SourceFactory(account=b, slug="b-photos", kind="local", local_path="photos")
    a_key, _ = api_key_create(account=a, scopes=ALL_SCOPES, name="a-key")
    _, b_secret = api_key_create(account=b, scopes=ALL_SCOPES, name="b-key")
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp", status="done")
    webhook = Webhook.objects.create(account=a, url="https://hooks.a.example/x", secret="s", events=["job.done"])
    objects = {"slug": source.slug, "key_id": a_key.pk, "job_id": job.pk, "webhook_id": webhook.pk}
    # Strings of A's that must never appear in an answer to B.
    secrets_of_a = [source.slug, str(job.pk), a_key.prefix, "hooks.a.example", "tenant-a"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {b_secret}")
    return client, objects, secrets_of_a, source


# Collection routes whose writes name A's objects in the body; they must answer 404 to B.
WRITES_NAMING_A = {
    "api:purge": {"url": "http://testserver/render/a-photos/astronaut.jpg"},
    "api:prewarm": {"source": "a-photos", "paths": ["astronaut.jpg"]},
}
# Collection routes whose writes create B's own objects (checked not to touch A's).
WRITES_OF_OWN = {
    "api:sources": {"slug": "b-new", "kind": "local", "local_path": "photos"},
    "api:keys": {"name": "another", "scopes": ["read"]},
    "api:webhooks": {"url": "https://hooks.b.example/y"},
}


def implemented(view_class):
    return [m for m in METHODS if hasattr(view_class, m)]


def test_every_route_is_tenant_scoped(tenants):
    client, objects, secrets_of_a, source = tenants
    routes = [r for r in api_routes() if r[0] not in PUBLIC]
    assert len(routes) >= 10, routes
    for name, route, view_class in routes:
        kwargs = re.findall(r"<(?:\w+:)?(\w+)>", route)
        missing = [k for k in kwargs if k not in objects]
        assert not missing, f"{name} takes {missing}: add account A's object for it to this test"
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(objects[m.group(1)]), route)
        for method in implemented(view_class):
            if kwargs:
                response = getattr(client, method)(url, {}, format="json")
                assert response.status_code == 404, f"{method.upper()} {url} answered {response.status_code}"
                assert response.json()["error"]["code"] in ("not_found",), (name, response.json())
            elif method == "get":
                response = client.get(url)
                assert response.status_code == 200, (name, response.content[:300])
                leaked = [s for s in secrets_of_a if s in response.content.decode()]
                assert not leaked, f"GET {url} shows account A's {leaked}"
            elif name in WRITES_NAMING_A:
                response = getattr(client, method)(url, WRITES_NAMING_A[name], format="json")
                assert response.status_code == 404, f"{method.upper()} {url} answered {response.status_code}"
            elif name in WRITES_OF_OWN:
                response = getattr(client, method)(url, WRITES_OF_OWN[name], format="json")
                assert response.status_code in (200, 201, 202), (name, response.content[:300])
                leaked = [s for s in secrets_of_a if s in response.content.decode()]
                assert not leaked, f"{method.upper()} {url} shows account A's {leaked}"
            else:
                pytest.fail(f"{method.upper()} {name} is new: add it to WRITES_NAMING_A or WRITES_OF_OWN")
    # Nothing of A's was changed or removed on the way.
    source.refresh_from_db()
    assert BgRemoveJob.objects.filter(pk=objects["job_id"]).exists()
    assert ApiKey.objects.get(pk=objects["key_id"]).revoked_at is None
    assert Webhook.objects.filter(pk=objects["webhook_id"]).exists()


def test_every_route_needs_a_key(tenants):
    anonymous = APIClient()
    _, objects, _, _ = tenants
    for name, route, view_class in api_routes():
        if name in PUBLIC:
            continue
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(objects[m.group(1)]), route)
        for method in implemented(view_class):
            response = getattr(anonymous, method)(url, {}, format="json")
            assert response.status_code == 401, f"{method.upper()} {url} answered {response.status_code}"
            assert response["WWW-Authenticate"].startswith("Bearer")
            assert response.json()["error"]["code"] == "not_authenticated"
