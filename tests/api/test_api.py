"""The management API, endpoint by endpoint, with real keys."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from imgix import UrlBuilder
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import account_manager_create, api_key_create
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.models import Render
from sources.models import Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(account):
    _, key = api_key_create(account=account, scopes=["read", "write", "purge", "keys"], name="all")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def key_client(account, scopes, **kwargs):
    _, key = api_key_create(account=account, scopes=scopes, **kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


class TestKeys:
    def test_create_api_key_command_prints_only_the_key(self, account):
        out = io.StringIO()
        call_command("create_api_key", account.slug, "--scopes", "read,purge", stdout=out)
        key = out.getvalue().strip()
        assert key.startswith("ck_") and "\n" not in key
        stored = ApiKey.objects.get(account=account)
        assert stored.scopes == ["read", "purge"] and key not in (stored.key_hash, stored.prefix)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert client.get("/api/v1/account").json()["slug"] == account.slug

    def test_scopes_are_enforced(self, account):
        reader = key_client(account, ["read"])
        assert reader.get("/api/v1/sources").status_code == 200
        denied = reader.post("/api/v1/purge", {"source": "acme-photos"}, format="json")
        assert denied.status_code == 403 and "`purge` scope" in denied.json()["error"]["message"]
        assert reader.get("/api/v1/keys").status_code == 403

    def test_key_shown_once_then_revoked_and_expired(self, api, account):
        created = api.post("/api/v1/keys", {"name": "ci", "scopes": ["read"]}, format="json")
        assert created.status_code == 201
        secret = created.json()["key"]
        listed = api.get("/api/v1/keys").json()
        assert secret not in str(listed) and any(k["name"] == "ci" for k in listed)
        new = APIClient()
        new.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert new.get("/api/v1/account").status_code == 200
        assert api.delete(f"/api/v1/keys/{created.json()['id']}").json()["revoked"] is True
        revoked = new.get("/api/v1/account")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]

        expired = key_client(account, ["read"], expires_at=timezone.now() - timedelta(seconds=1))
        assert expired.get("/api/v1/account").status_code == 401

    def test_bad_scope_is_a_field_error(self, api):
        response = api.post("/api/v1/keys", {"scopes": ["admin"]}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["fields"]["scopes"]


class TestSources:
    def test_account(self, api, account):
        body = api.get("/api/v1/account").json()
        assert body["slug"] == "acme" and body["bg_remove_enabled"] is True
        assert body["render_rate_limit"] and body["bg_remove_rate_limit"]

    def test_create_read_update_delete(self, api, account):
        created = api.post("/api/v1/sources", {"slug": "shop", "kind": "web", "base_url": "https://img.shop.example/"},
                           format="json")
        assert created.status_code == 201, created.content
        assert created.json()["bg_remove"] == "inherit" and created.json()["bg_remove_effective"] is True
        again = api.post("/api/v1/sources", {"slug": "shop", "kind": "web", "base_url": "https://x.example/"},
                         format="json")
        assert again.status_code == 409 and again.json()["error"]["code"] == "slug_taken"
        invalid = api.post("/api/v1/sources", {"slug": "bucket", "kind": "s3"}, format="json")
        assert invalid.status_code == 400 and "s3_bucket" in invalid.json()["error"]["fields"]
        # Background removal is switched by an account manager, not by a key.
        patched = api.patch("/api/v1/sources/shop", {"cache_max_age": 60, "bg_remove": "off"}, format="json")
        assert patched.json()["cache_max_age"] == 60 and patched.json()["bg_remove"] == "inherit"
        assert api.delete("/api/v1/sources/shop").status_code == 204
        assert api.get("/api/v1/sources/shop").status_code == 404

    def test_a_field_of_another_kind_is_refused_by_name_not_kept_unused(self, api, account):
        stray = api.post("/api/v1/sources", {"slug": "shop", "kind": "web", "base_url": "https://img.shop.example/",
                                             "s3_bucket": "photos", "s3_prefix": "a/"}, format="json")
        assert stray.status_code == 400
        assert stray.json()["error"]["message"] == "s3_bucket, s3_prefix are not used by a source of kind web: leave them out."
        assert set(stray.json()["error"]["fields"]) == {"s3_bucket", "s3_prefix"}
        assert api.get("/api/v1/sources/shop").status_code == 404
        # Empty values are what a client that sends every field gives: accepted.
        created = api.post("/api/v1/sources", {"slug": "shop", "kind": "web", "base_url": "https://img.shop.example/",
                                               "s3_bucket": "", "s3_endpoint_url": ""}, format="json")
        assert created.status_code == 201, created.content
        # Switching kind: the new kind's fields, and a field of the old kind set again, refused.
        switched = api.patch("/api/v1/sources/shop", {"kind": "s3", "s3_bucket": "photos",
                                                      "base_url": "https://other.example/"}, format="json")
        assert switched.status_code == 400 and list(switched.json()["error"]["fields"]) == ["base_url"]
        switched = api.patch("/api/v1/sources/shop", {"kind": "s3", "s3_bucket": "photos"}, format="json")
        assert switched.status_code == 200 and switched.json()["kind"] == "s3", switched.content
        # What it held of its old kind is not what this call sets: a later change is not refused for it.
        assert api.patch("/api/v1/sources/shop", {"cache_max_age": 60}, format="json").status_code == 200

    def test_token_rotation_keeps_the_previous_token(self, api, source, client):
        api.patch(f"/api/v1/sources/{source.slug}", {"require_signature": True}, format="json")
        first = api.post(f"/api/v1/sources/{source.slug}/tokens").json()["token"]
        second = api.post(f"/api/v1/sources/{source.slug}/tokens").json()["token"]
        assert Source.objects.get(pk=source.pk).secure_tokens == [second, first]

        def signed(token):
            url = UrlBuilder("placeholder.example", sign_key=token, use_https=False).create_url(
                f"/render/{source.slug}/astronaut.jpg", {"w": 20})
            return url.split("placeholder.example", 1)[1]

        assert client.get(signed(second)).status_code == 200
        assert client.get(signed(first)).status_code == 200
        assert client.get(signed("guess")).status_code == 403


class TestJobsPurgePrewarm:
    def test_prewarm_starts_jobs_once(self, api, source):
        body = {"source": source.slug, "paths": ["astronaut.jpg", "chelsea.png"]}
        first = api.post("/api/v1/prewarm", body, format="json")
        assert first.status_code == 202
        jobs = first.json()["jobs"]
        assert [j["status"] for j in jobs] == ["queued", "queued"] and all(j["status_url"] for j in jobs)
        again = api.post("/api/v1/prewarm", {"urls": [f"https://cdn.example/render/{source.slug}/astronaut.jpg?w=5"]},
                         format="json")
        assert again.json()["jobs"][0]["job"] == jobs[0]["job"]
        assert BgRemoveJob.objects.count() == 2

    def test_prewarm_limits(self, api, source):
        too_many = api.post("/api/v1/prewarm", {"source": source.slug, "paths": [f"{i}.jpg" for i in range(101)]},
                            format="json")
        assert too_many.status_code == 400
        Source.objects.filter(pk=source.pk).update(bg_remove="off")
        refused = api.post("/api/v1/prewarm", {"source": source.slug, "paths": ["astronaut.jpg"]}, format="json")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "bg_remove_not_enabled"

    def test_a_refused_prewarm_starts_no_job(self, api, source, settings):
        """Every item is checked before any job exists: a 4xx answer has started nothing."""
        off = Source.objects.create(account=source.account, slug="acme-off", kind="local", local_path="photos",
                                    bg_remove="off")
        ok_url = f"https://cdn.example/render/{source.slug}/astronaut.jpg?bg-remove=true"
        cases = [
            ({"urls": [ok_url, f"https://cdn.example/render/{off.slug}/astronaut.jpg"]}, 403, "bg_remove_not_enabled"),
            ({"urls": [ok_url, "https://cdn.example/render/nobody/astronaut.jpg"]}, 404, "source_not_found"),
            ({"urls": [ok_url, "https://cdn.example/elsewhere/astronaut.jpg"]}, 400, "bad_url"),
            ({"source": source.slug, "paths": ["astronaut.jpg", "../outside.jpg"]}, 400, "bad_path"),
        ]
        for body, status, code in cases:
            response = api.post("/api/v1/prewarm", body, format="json")
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
        assert BgRemoveJob.objects.count() == 0
        # Admission refusing every item: its 429, and still no job.
        settings.BG_REMOVE_MAX_PENDING = 0
        full = api.post("/api/v1/prewarm", {"source": source.slug, "paths": ["astronaut.jpg", "chelsea.png"]},
                        format="json")
        assert full.status_code == 429 and full["Retry-After"] and BgRemoveJob.objects.count() == 0
        settings.BG_REMOVE_MAX_PENDING = 500
        assert api.post("/api/v1/prewarm", {"urls": [ok_url]}, format="json").status_code == 202
        assert BgRemoveJob.objects.count() == 1

    def test_jobs_list_filters_and_cursor(self, api, source):
        for i in range(5):
            BgRemoveJob.objects.create(source=source, path=f"{i}.jpg", model="u2netp",
                                       status="done" if i % 2 else "queued")
        page = api.get("/api/v1/jobs", {"page_size": 2}).json()
        assert len(page["results"]) == 2 and page["next"]
        rest = api.get(page["next"]).json()
        assert len(rest["results"]) == 2
        done = api.get("/api/v1/jobs", {"status": "done"}).json()["results"]
        assert {j["path"] for j in done} == {"1.jpg", "3.jpg"}
        assert api.get("/api/v1/jobs", {"source": "other"}).json()["results"] == []
        assert api.get("/api/v1/jobs", {"status": "bogus"}).status_code == 400
        detail = api.get(f"/api/v1/jobs/{done[0]['id']}").json()
        assert detail["source"] == source.slug and detail["error"] is None

    def test_purge_by_url_recomputes_and_is_idempotent(self, api, client, source):
        url = f"/render/{source.slug}/astronaut.jpg?bg-remove=true"
        bg_remove_job_process(job_id=client.get(url).json()["job"])
        assert client.get(url).status_code == 200 and client.get(url + "&fm=webp").status_code == 200
        assert client.get(f"/render/{source.slug}/chelsea.png?w=10").status_code == 200
        result = api.post("/api/v1/purge", {"url": f"http://testserver{url}&w=300"}, format="json").json()
        assert result == {"source": source.slug, "path": "astronaut.jpg", "renders": 2, "cutouts": 1, "files": 2}
        assert api.post("/api/v1/purge", {"url": f"http://testserver{url}"}, format="json").json()["renders"] == 0
        assert client.get(url).status_code == 202  # Recomputed on the next request.
        assert Render.objects.filter(path="chelsea.png").exists()
        whole = api.post("/api/v1/purge", {"source": source.slug}, format="json").json()
        assert whole["renders"] == 1 and whole["path"] is None

    def test_purge_needs_exactly_one_target(self, api):
        response = api.post("/api/v1/purge", {}, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
        bad = api.post("/api/v1/purge", {"url": "https://cdn.example/not-render/x.jpg"}, format="json")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_url"


def test_api_throttle_answers_429(account, settings):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"account": "3/m"}}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    client = key_client(account, ["read"])
    try:
        statuses = [client.get("/api/v1/account").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = client.get("/api/v1/account")
        assert int(response["Retry-After"]) > 0 and response.json()["error"]["code"] == "throttled"
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
        cache.clear()


def test_browsable_api_with_a_staff_session(client, account):
    client.force_login(account_manager_create(username="staffer", password="pw"))
    page = client.get("/api/v1/sources?account=acme", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and "Source List" in page.content.decode()
    assert client.get("/api/v1/sources", HTTP_ACCEPT="application/json").status_code == 401


def test_schema_and_docs(client, db):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/sources", "/api/v1/purge", "/api/v1/prewarm", "/api/v1/jobs"} <= set(paths)
    assert not any(p.startswith("/render") for p in paths)
    assert client.get("/api/v1/docs/").status_code == 200


def test_unknown_api_url_is_a_json_404(client, db):
    response = client.get("/api/v1/keys/-5")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get("/render/").json()["error"]["code"] == "not_found"
