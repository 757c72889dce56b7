"""Every management API route, tried by every kind of caller: nothing of account A leaks to B,
and each caller gets exactly what its scopes or Django permissions allow.

The routes are read from the URL conf, so an endpoint added later without a tenancy check or a
permission rule (accounts/api_rules.py) makes this test fail: it must answer 404 for A's objects
to B, have its rule, and be taught here what each caller gets.
"""

import io
import re
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, include, path
from PIL import Image
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from accounts.api_rules import ROUTE_RULES
from accounts.models import ApiKey
from accounts.services import account_manager_create, api_key_create
from cutouts.models import BgRemoveJob
from sources.models import Source
from tests.factories import AccountFactory, SourceFactory
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db

PUBLIC = {"api:index", "api:schema", "api:docs", "api:redoc"}
# Secrets of account A that no session may ever read (the admin hides them from managers).
WEBHOOK_SECRET = "whsec_of_tenant_a_0123456789"
SIGNING_TOKEN = "signing-token-of-tenant-a-0123"
S3_SECRET = "s3-secret-of-tenant-a-0123"
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
    webhook = Webhook.objects.create(account=a, url="https://hooks.a.example/x", secret=WEBHOOK_SECRET,
                                     events=["job.done"])
    Source.objects.filter(pk=source.pk).update(secure_tokens=[SIGNING_TOKEN], s3_secret_access_key=S3_SECRET)
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
    "api:sources": {"slug": "b-new", "kind": "web", "base_url": "https://images.b.example/"},
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


def test_a_key_cannot_create_or_make_a_local_folder_source(tenants):
    """Local folders are the operator's: B cannot point a source at A's folder, nor turn one into it."""
    client, _, _, _ = tenants
    created = client.post("/api/v1/sources", {"slug": "b-local", "kind": "local", "local_path": "photos"},
                          format="json")
    assert created.status_code == 403 and created.json()["error"]["code"] == "local_folder_forbidden"
    assert "operator" in created.json()["error"]["message"]
    assert not Source.objects.filter(slug="b-local").exists()
    assert client.post("/api/v1/sources", {"slug": "b-web", "kind": "web", "base_url": "https://b.example/"},
                       format="json").status_code == 201
    for slug, change in [("b-web", {"kind": "local"}), ("b-web", {"kind": "local", "local_path": "photos"}),
                         ("b-photos", {"local_path": "elsewhere"}), ("b-photos", {"local_path": "/"})]:
        patched = client.patch(f"/api/v1/sources/{slug}", change, format="json")
        assert patched.status_code == 403 and patched.json()["error"]["code"] == "local_folder_forbidden", change
    assert Source.objects.get(slug="b-web").kind == "web" and Source.objects.get(slug="b-photos").local_path == "photos"
    # A field sent back with its current value changes nothing and is accepted.
    same = client.patch("/api/v1/sources/b-photos", {"kind": "local", "local_path": "photos", "cache_max_age": 5},
                        format="json")
    assert same.status_code == 200 and same.json()["cache_max_age"] == 5


# What each staff caller may do: (route, method) → expected status; every other pair is 403.
MANAGER_ALLOWED = {
    ("api:account", "get"): 200, ("api:keys", "get"): 200, ("api:keys", "post"): 201,
    ("api:key-detail", "get"): 200, ("api:key-detail", "delete"): 200,
    ("api:sources", "get"): 200, ("api:source-detail", "get"): 200, ("api:source-detail", "patch"): 200,
    ("api:jobs", "get"): 200, ("api:job-detail", "get"): 200,
}
SUPERUSER_ALLOWED = {
    **MANAGER_ALLOWED,
    ("api:sources", "post"): 201, ("api:source-detail", "delete"): 204, ("api:source-tokens", "post"): 201,
    ("api:purge", "post"): 200, ("api:prewarm", "post"): 202, ("api:usage", "get"): 200,
    ("api:webhooks", "get"): 200, ("api:webhook-detail", "get"): 200, ("api:webhook-detail", "delete"): 204,
    ("api:webhook-deliveries", "get"): 200,
}
KEYS_ONLY_ALLOWED = {("api:keys", "get"): 200, ("api:keys", "post"): 201, ("api:key-detail", "get"): 200,
                     ("api:key-detail", "delete"): 200}
# Bodies for writes made as account A (the walk's caller acts on A).
BODIES = {
    ("api:keys", "post"): {"name": "minted", "scopes": ["keys"]},
    ("api:sources", "post"): {"slug": "a-new", "kind": "web", "base_url": "https://images.a.example/"},
    ("api:source-detail", "patch"): {"cache_max_age": 60, "bg_remove": "off"},
    ("api:purge", "post"): {"source": "a-photos"},
    ("api:prewarm", "post"): {"source": "a-photos", "paths": ["astronaut.jpg"]},
    ("api:webhooks", "post"): {"url": "https://hooks.a.example/new"},
}


def walk_as_account_a(client, objects, query=""):
    """Every (route, method) of the API, called for account A; deletions last. → {(name, method): response}"""
    calls = []
    for name, route, view_class in api_routes():
        if name in PUBLIC:
            continue
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(objects[m.group(1)]), route) + query
        calls += [(name, method, url) for method in implemented(view_class)]
    calls.sort(key=lambda c: (c[1] == "delete", c[0] == "api:source-detail"))
    return {(name, method): getattr(client, method)(url, BODIES.get((name, method), {}), format="json")
            for name, method, url in calls}


def assert_exactly(responses, allowed):
    for (name, method), response in responses.items():
        expected = allowed.get((name, method), 403)
        assert response.status_code == expected, (name, method, response.status_code, response.content[:300])
        if expected == 403:
            assert response.json()["error"]["code"] in ("permission_denied", "api_key_required"), (name, method)
        body = response.content.decode()
        leaked = [s for s in (WEBHOOK_SECRET, S3_SECRET) if s in body]
        assert not leaked, f"{method.upper()} {name} shows {leaked}"


@pytest.fixture
def session(db):
    def login(user):
        client = APIClient()
        client.force_login(user)
        return client
    return login


def test_staff_without_permissions_gets_403_everywhere(tenants, session):
    _, objects, _, source = tenants
    user = get_user_model().objects.create_user("nobody", password="pw", is_staff=True)
    responses = walk_as_account_a(session(user), objects, "?account=tenant-a")
    assert_exactly(responses, {})
    assert all("permission" in r.json()["error"]["message"] for r in responses.values())
    assert Source.objects.filter(pk=source.pk).exists() and not Source.objects.filter(slug="a-new").exists()


def test_a_logged_in_non_staff_user_is_not_authenticated(tenants, session):
    _, objects, _, _ = tenants
    user = get_user_model().objects.create_user("customer", password="pw")
    assert session(user).get("/api/v1/sources?account=tenant-a").status_code == 401


def test_account_manager_gets_exactly_what_the_admin_allows(tenants, session):
    _, objects, _, source = tenants
    manager = account_manager_create(username="maria", password="pw")
    responses = walk_as_account_a(session(manager), objects, "?account=tenant-a")
    assert_exactly(responses, MANAGER_ALLOWED)
    # The signing token is a secret the admin hides from managers: rotating it by session is refused.
    assert responses[("api:source-tokens", "post")].json()["error"]["code"] == "api_key_required"
    assert SIGNING_TOKEN not in str(responses[("api:source-detail", "get")].content)
    # The fields the admin lets a manager change, and no others.
    source.refresh_from_db()
    assert (source.cache_max_age, source.bg_remove, source.secure_tokens) == (60, "off", [SIGNING_TOKEN])
    client = session(manager)
    for change in ({"base_url": "https://elsewhere.example/"}, {"require_signature": True},
                   {"s3_secret_access_key": "x"}, {"kind": "web"}):
        refused = client.patch("/api/v1/sources/a-photos?account=tenant-a", change, format="json")
        assert refused.status_code == 403, (change, refused.content)
        assert refused.json()["error"]["code"] in ("fields_forbidden", "local_folder_forbidden")
        assert set(change) <= set(refused.json()["error"].get("fields", change)), refused.json()
    # A manager holds only the `keys` scope (usage and webhooks are not theirs): no read or write key.
    minted = client.post("/api/v1/keys?account=tenant-a", {"scopes": ["read", "write"]}, format="json")
    assert minted.status_code == 403 and minted.json()["error"]["code"] == "scope_not_held"
    assert "read, write" in minted.json()["error"]["message"]
    assert Source.objects.filter(pk=source.pk).exists() and Webhook.objects.filter(pk=objects["webhook_id"]).exists()


def test_superuser_gets_everything_but_secrets_the_admin_never_shows(tenants, session):
    _, objects, _, source = tenants
    admin = get_user_model().objects.create_superuser("root", password="pw")
    responses = walk_as_account_a(session(admin), objects, "?account=tenant-a")
    assert_exactly(responses, SUPERUSER_ALLOWED)
    # Webhook secrets are never shown by the admin: creating one takes an API key.
    assert responses[("api:webhooks", "post")].json()["error"]["code"] == "api_key_required"
    # The admin shows signing tokens to superusers, so the rotation answers them.
    assert len(responses[("api:source-tokens", "post")].json()["token"]) == 32
    assert not Source.objects.filter(pk=source.pk).exists()
    # An operator may make a local-folder source; a superuser holds every scope.
    client = session(admin)
    local = client.post("/api/v1/sources?account=tenant-a", {"slug": "a-local", "kind": "local", "local_path": "photos"},
                        format="json")
    assert local.status_code == 201, local.content
    assert client.post("/api/v1/keys?account=tenant-a", {"scopes": ALL_SCOPES}, format="json").status_code == 201


def test_keys_only_key_reaches_keys_and_mints_only_keys(tenants):
    _, objects, _, source = tenants
    _, secret = api_key_create(account=source.account, scopes=["keys"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    responses = walk_as_account_a(client, objects)
    for (name, method), response in responses.items():
        expected = KEYS_ONLY_ALLOWED.get((name, method), 403)
        assert response.status_code == expected, (name, method, response.content[:300])
        if expected == 403:
            assert "lacks the `" in response.json()["error"]["message"]
    minted = client.post("/api/v1/keys", {"scopes": ["read", "write", "keys"]}, format="json")
    assert minted.status_code == 403 and minted.json()["error"]["code"] == "scope_not_held"
    assert "read, write" in minted.json()["error"]["message"] and minted.json()["error"]["fields"]["scopes"]
    assert ApiKey.objects.filter(account=source.account).count() == 3  # a-key, this one, the `keys` one minted


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(tenants, scheme):
    _, _, _, source = tenants
    _, secret = api_key_create(account=source.account, scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {secret}")
    assert client.get("/api/v1/account").json()["slug"] == "tenant-a"
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} ck_0000_wrong")
    assert client.get("/api/v1/account").status_code == 401


def test_every_route_and_method_has_a_permission_rule():
    missing = [(name, method.upper()) for name, _, view_class in api_routes() if name not in PUBLIC
               for method in implemented(view_class) if method.upper() not in ROUTE_RULES.get(name, {})]
    assert not missing, f"add these to accounts/api_rules.py: {missing}"
    names = {name for name, _, _ in api_routes()}
    assert not set(ROUTE_RULES) - names, "rules for routes that no longer exist"


class UnmappedApi(APIView):
    def get(self, request):
        return Response({"ok": True})


# A URL conf with a route that has no rule (used by the test below through pytest.mark.urls).
urlpatterns = [path("api/v1/", include(([path("unmapped", UnmappedApi.as_view(), name="unmapped")], "api")))]


@pytest.mark.urls(__name__)
def test_a_route_without_a_rule_is_refused_to_everyone(tenants, session):
    _, _, _, source = tenants
    _, secret = api_key_create(account=source.account, scopes=ALL_SCOPES)
    key = APIClient()
    key.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    superuser = session(get_user_model().objects.create_superuser("root", password="pw"))
    for response in (key.get("/api/v1/unmapped"), superuser.get("/api/v1/unmapped?account=tenant-a")):
        assert response.status_code == 403 and "no permission rule" in response.json()["error"]["message"]


def test_no_tenant_reads_another_tenants_files_by_any_source_kind(tenants, s3_bucket, monkeypatch, settings,
                                                                   origin_root, photo_png, client):
    """B tries A's files through each kind of source it can make, and through one an operator made."""
    api, _, _, _ = tenants  # B's key, every scope.

    def render(url, status, width=None):
        response = client.get(url)
        assert response.status_code == status, (url, response.content[:300])
        if width:
            assert Image.open(io.BytesIO(response.content)).width == width
        return response

    # S3: A's private object in a bucket the platform's keys (in the environment) can read.
    s3, bucket = s3_bucket
    s3.put_object(Bucket=bucket, Key="a/private.png", Body=photo_png)
    s3.put_object(Bucket=bucket, Key="b/public.png", Body=photo_png, ACL="public-read")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.ORIGIN_ALLOW_LOOPBACK = True  # The S3 server listens on loopback.
    created = api.post("/api/v1/sources", {"slug": "b-s3", "kind": "s3", "s3_bucket": bucket,
                                           "s3_endpoint_url": s3.meta.endpoint_url}, format="json")
    assert created.status_code == 201, created.content
    render("/render/b-s3/b/public.png?w=30", 200, width=30)
    assert render("/render/b-s3/a/private.png?w=30", 403).json()["error"]["code"] == "origin_forbidden"

    # Web folder: the platform's own addresses and other schemes are not origins.
    settings.ORIGIN_ALLOW_LOOPBACK = False
    for n, base_url in enumerate(["http://127.0.0.1:8000/render/a-photos/", "http://169.254.169.254/latest/",
                                  "http://[::ffff:127.0.0.1]/", "ftp://127.0.0.1/photos/"]):
        assert api.post("/api/v1/sources", {"slug": f"b-web-{n}", "kind": "web", "base_url": base_url},
                        format="json").status_code == 201
        assert render(f"/render/b-web-{n}/astronaut.jpg", 403).json()["error"]["code"] in (
            "origin_address_refused", "origin_forbidden")
    assert api.post("/api/v1/sources", {"slug": "b-file", "kind": "web", "base_url": "file:///etc/"},
                    format="json").status_code == 400

    # Local folder: B cannot make one on A's folder (test above); through a folder an operator gave
    # B, a symlink into A's folder and a `..` path lead nowhere.
    folder = origin_root / "b-files"
    folder.mkdir()
    (folder / "own.png").write_bytes(photo_png)
    (folder / "a-link.jpg").symlink_to(origin_root / "photos" / "astronaut.jpg")
    (folder / "a-dir").symlink_to(origin_root / "photos", target_is_directory=True)
    SourceFactory(account=AccountFactory(slug="tenant-b"), slug="b-local", kind="local", local_path="b-files")
    render("/render/b-local/own.png?w=20", 200, width=20)
    render("/render/b-local/a-link.jpg", 404)
    render("/render/b-local/a-dir/astronaut.jpg", 404)
    for escape in ("../photos/astronaut.jpg", "%2E%2E/photos/astronaut.jpg", "a-dir/../../photos/astronaut.jpg"):
        assert render(f"/render/b-local/{escape}", 400).json()["error"]["code"] == "bad_path"


def test_browsable_api_pages_for_sessions(tenants, session):
    """The HTML pages ask permissions to decide which forms to show; a refused form is left out."""
    admin = session(get_user_model().objects.create_superuser("root", password="pw"))
    manager = session(account_manager_create(username="maria", password="pw"))
    for client, url, status in [(admin, "/api/v1/webhooks", 200), (admin, "/api/v1/sources/a-photos", 200),
                                (manager, "/api/v1/sources/a-photos", 200), (manager, "/api/v1/webhooks", 403)]:
        page = client.get(f"{url}?account=tenant-a", HTTP_ACCEPT="text/html")
        assert page.status_code == status, (url, page.content[:300])
        assert WEBHOOK_SECRET not in page.content.decode() and S3_SECRET not in page.content.decode()


# --- Marks: a rendering URL inside another account's URL reaches nothing of A's -------------------

@pytest.mark.parametrize("form", ["host", "render", "nested"])
def test_a_mark_never_reaches_another_accounts_source(tenants, client, settings, form):
    """B's image with A's source as its mark (on a source host, on the /render/ form, or nested in
    B's own mark) answers exactly as a source that does not exist: no bytes, no job, no probe."""
    settings.RENDER_DOMAIN = "img.example"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".img.example"]

    def mark_of(slug):
        inner = {"host": f"https://{slug}.img.example/astronaut.jpg?w=20&bg-remove=true",
                 "render": f"http://testserver/render/{slug}/astronaut.jpg?w=20&bg-remove=true"}
        if form == "nested":
            middle = f"https://b-photos.img.example/astronaut.jpg?w=60&mark={quote(inner['host'], safe='')}"
            return quote(middle, safe="")
        return quote(inner[form], safe="")

    answers = []
    for slug in ("a-photos", "no-such-source"):
        response = client.get(f"/render/b-photos/chelsea.png?fm=png&mark={mark_of(slug)}")
        answers.append((response.status_code, response.json()["error"]))
    assert answers[0][0] == 400 and answers[0] == answers[1]
    assert not BgRemoveJob.objects.exclude(path="astronaut.jpg", source__slug="a-photos").exists()
