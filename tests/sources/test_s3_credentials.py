"""A tenant's S3 origin signs with the source's own keys or with none: never with the platform's.

The platform's credentials are everywhere a default AWS client looks: AWS_* variables, ~/.aws
files named by AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE, AWS_ENDPOINT_URL*
(which would send the tenant's requests to the platform's own store), and container or
instance roles. Each is set here, pointing at a listener of the platform's that records what
reaches it; the tenant's endpoint is another recording listener, and the real S3 server (moto).
"""

import io
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PIL import Image
from rest_framework.test import APIClient

from accounts.services import api_key_create
from sources.models import Source
from sources.origins import origin_for
from sources.origins.base import OriginNotFoundError
from sources.origins.s3 import S3Origin
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.factories import SourceFactory

MB = 1024 * 1024
TENANT_KEY_ID = "AKIATENANTOWNKEY0001"
PLATFORM_KEY_IDS = ["AKIAPLATFORMENV00001", "AKIAPLATFORMFILE0001", "AKIAPLATFORMCONF0001", "AKIAPLATFORMSTOR0001"]


class RecordingServer:
    """A loopback HTTP listener answering every request with `body`; records paths and headers."""

    def __init__(self, body: bytes):
        self.requests: list[tuple[str, str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tenant_store(photo_png):
    server = RecordingServer(photo_png)
    yield server
    server.close()


@pytest.fixture
def platform_store(photo_png):
    """Stands for the platform's own store, container-credentials and instance-metadata endpoints."""
    server = RecordingServer(photo_png)
    yield server
    server.close()


def platform_aws_env(tmp_path, platform_url: str) -> dict:
    """Every place a default AWS client finds credentials or an endpoint, filled with the platform's."""
    config = tmp_path / "aws-config"
    config.write_text(
        f"[default]\naws_access_key_id = AKIAPLATFORMCONF0001\naws_secret_access_key = p\nendpoint_url = {platform_url}\n"
        f"[profile platform]\naws_access_key_id = AKIAPLATFORMCONF0001\naws_secret_access_key = p\n"
        f"endpoint_url = {platform_url}\n"
    )
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIAPLATFORMFILE0001\naws_secret_access_key = p\n"
        "[platform]\naws_access_key_id = AKIAPLATFORMFILE0001\naws_secret_access_key = p\n"
    )
    return {
        "AWS_ACCESS_KEY_ID": "AKIAPLATFORMENV00001",
        "AWS_SECRET_ACCESS_KEY": "platform-secret",
        "AWS_SESSION_TOKEN": "platform-session-token",
        "AWS_PROFILE": "platform",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_ENDPOINT_URL": platform_url,
        "AWS_ENDPOINT_URL_S3": platform_url,
        "AWS_DEFAULTS_MODE": "auto",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{platform_url}/container-credentials",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"{platform_url}/",
    }


def assert_unsigned(recorded):
    assert recorded, "the tenant's endpoint got no request"
    for method, path, headers in recorded:
        assert "authorization" not in headers, (path, headers["authorization"])
        assert "x-amz-security-token" not in headers and "X-Amz-Signature" not in path, (path, headers)


def assert_signed_with_tenant_key(recorded):
    assert recorded, "the tenant's endpoint got no request"
    for method, path, headers in recorded:
        assert f"Credential={TENANT_KEY_ID}/" in headers.get("authorization", ""), headers
        assert "x-amz-security-token" not in headers, headers
        assert not any(k in str(headers) for k in PLATFORM_KEY_IDS), headers


def test_in_process_with_the_platforms_credentials_everywhere(monkeypatch, tmp_path, settings, tenant_store,
                                                              platform_store, photo_png):
    settings.ORIGIN_ALLOW_LOOPBACK = True
    # The storage backend's own keys, as config/settings.py reads them.
    settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY = "AKIAPLATFORMSTOR0001", "storage-secret"
    for name, value in platform_aws_env(tmp_path, platform_store.url).items():
        monkeypatch.setenv(name, value)

    anonymous = S3Origin(bucket="tenant-bucket", endpoint_url=tenant_store.url, region="us-east-1")
    assert anonymous.fetch("cat.png", max_bytes=12 * MB).data == photo_png
    assert_unsigned(tenant_store.requests)
    assert tenant_store.requests[0][1] == "/tenant-bucket/cat.png"

    tenant_store.requests.clear()
    own = S3Origin(bucket="tenant-bucket", endpoint_url=tenant_store.url, region="us-east-1",
                   access_key_id=TENANT_KEY_ID, secret_access_key="tenant-secret")
    assert own.fetch("cat.png", max_bytes=12 * MB).data == photo_png
    assert_signed_with_tenant_key(tenant_store.requests)

    # No endpoint of its own: AWS itself, never AWS_ENDPOINT_URL (here there is no network, so the
    # AWS host does not resolve: a 404, and nothing reached the platform's store).
    aws = S3Origin(bucket="tenant-bucket", region="eu-west-1")
    assert aws.client.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    with pytest.raises(OriginNotFoundError):
        aws.fetch("cat.png", max_bytes=MB)
    assert platform_store.requests == []  # Nor the container or instance-metadata endpoints.


def test_without_keys_no_container_or_instance_role_is_asked(monkeypatch, tmp_path, settings, tenant_store,
                                                             platform_store):
    """With no AWS keys in the environment a default client would ask the container or instance
    endpoint for the platform's role; the tenant's client asks nothing."""
    settings.ORIGIN_ALLOW_LOOPBACK = True
    env = platform_aws_env(tmp_path, platform_store.url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path))  # No ~/.aws of the machine's either.
    S3Origin(bucket="b", endpoint_url=tenant_store.url).fetch("cat.png", max_bytes=12 * MB)
    S3Origin(bucket="b", endpoint_url=tenant_store.url, access_key_id=TENANT_KEY_ID,
             secret_access_key="tenant-secret").fetch("cat.png", max_bytes=12 * MB)
    assert platform_store.requests == []
    assert_unsigned(tenant_store.requests[:1])
    assert_signed_with_tenant_key(tenant_store.requests[1:])


@pytest.mark.parametrize("given, missing", [({"s3_access_key_id": TENANT_KEY_ID}, "s3_secret_access_key"),
                                            ({"s3_secret_access_key": "tenant-secret"}, "s3_access_key_id")])
def test_half_a_key_pair_is_an_invalid_source(account, given, missing):
    _, key = api_key_create(account=account, scopes=["read", "write"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    created = api.post("/api/v1/sources", {"slug": "half", "kind": "s3", "s3_bucket": "b", **given}, format="json")
    assert created.status_code == 400 and created.json()["error"]["code"] == "invalid"
    assert list(created.json()["error"]["fields"]) == [missing]
    assert not Source.objects.filter(slug="half").exists()
    whole = api.post("/api/v1/sources", {"slug": "whole", "kind": "s3", "s3_bucket": "b",
                                         "s3_access_key_id": TENANT_KEY_ID, "s3_secret_access_key": "s"}, format="json")
    assert whole.status_code == 201 and "s3_secret_access_key" not in whole.json()
    dropped = api.patch("/api/v1/sources/whole", {"s3_access_key_id": ""}, format="json")
    assert dropped.status_code == 400 and list(dropped.json()["error"]["fields"]) == ["s3_access_key_id"]
    cleared = api.patch("/api/v1/sources/whole", {"s3_access_key_id": "", "s3_secret_access_key": ""}, format="json")
    assert cleared.status_code == 200 and cleared.json()["s3_access_key_id"] == ""


def test_moto_serves_a_credential_less_source_unsigned_and_a_keyed_one_signed(s3_bucket, settings, photo_png):
    """The real S3 server answers both kinds of source (a public object; the source's own keys)."""
    settings.ORIGIN_ALLOW_LOOPBACK = True
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="public/cat.png", Body=photo_png, ACL="public-read")
    endpoint = client.meta.endpoint_url
    anonymous = origin_for(Source(kind="s3", s3_bucket=bucket, s3_prefix="public", s3_endpoint_url=endpoint))
    assert anonymous.fetch("cat.png", max_bytes=12 * MB).data == photo_png
    keyed = origin_for(Source(kind="s3", s3_bucket=bucket, s3_prefix="public", s3_endpoint_url=endpoint,
                              s3_access_key_id="testing", s3_secret_access_key="testing"))
    assert keyed.fetch("cat.png", max_bytes=12 * MB).data == photo_png


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_web_process_with_the_platforms_aws_environment(account, worker_env, s3_bucket, moto_server,
                                                                tenant_store, platform_store, tmp_path, photo_png):
    """granian, started with the platform's AWS_* (its render storage on the S3 server with its own
    keys): tenants' S3 sources fetch unsigned or with their own key, and renders are right."""
    client, platform_bucket = s3_bucket
    tenant_bucket = f"{platform_bucket[:50]}-t"
    client.create_bucket(Bucket=tenant_bucket)
    client.put_object(Bucket=tenant_bucket, Key="cat.png", Body=photo_png, ACL="public-read")
    SourceFactory(account=account, slug="t-anon", kind="s3", s3_bucket="tb", s3_endpoint_url=tenant_store.url,
                  local_path="")
    SourceFactory(account=account, slug="t-keyed", kind="s3", s3_bucket="tb", s3_endpoint_url=tenant_store.url,
                  s3_access_key_id=TENANT_KEY_ID, s3_secret_access_key="tenant-secret", local_path="")
    SourceFactory(account=account, slug="t-moto", kind="s3", s3_bucket=tenant_bucket, s3_endpoint_url=moto_server,
                  local_path="")
    SourceFactory(account=account, slug="t-aws", kind="s3", s3_bucket=tenant_bucket, local_path="")
    platform_env = platform_aws_env(tmp_path, platform_store.url)
    # `auto` makes the platform's own storage client ask the instance metadata for its region:
    # that is the platform's business (the in-process test above keeps it for the tenant's).
    platform_env.pop("AWS_DEFAULTS_MODE")
    env = {**worker_env, **platform_env, "HOME": str(tmp_path),
           "ORIGIN_ALLOW_LOOPBACK": "true", "CUTOUT_MEDIA_ROOT": "",
           # The platform's render storage: the S3 server, with the platform's own key.
           "AWS_STORAGE_BUCKET_NAME": platform_bucket, "AWS_S3_ENDPOINT_URL": moto_server,
           "AWS_ACCESS_KEY_ID": "AKIAPLATFORMSTOR0001"}
    port = free_port()
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        answers = {slug: requests.get(f"http://127.0.0.1:{port}/render/{slug}/cat.png?w=40", timeout=30)
                   for slug in ("t-anon", "t-keyed", "t-moto", "t-aws")}
    finally:
        stop_process(proc)
    for slug in ("t-anon", "t-keyed", "t-moto"):
        assert answers[slug].status_code == 200, (slug, answers[slug].content[:300])
        assert Image.open(io.BytesIO(answers[slug].content)).width == 40
    anon_requests = [r for r in tenant_store.requests if r[2].get("authorization") is None]
    keyed_requests = [r for r in tenant_store.requests if r[2].get("authorization") is not None]
    assert anon_requests and keyed_requests and len(anon_requests) + len(keyed_requests) == len(tenant_store.requests)
    assert_signed_with_tenant_key(keyed_requests)
    assert all("x-amz-security-token" not in h for _, _, h in tenant_store.requests)
    # AWS itself (no endpoint of its own): not the platform's AWS_ENDPOINT_URL; no network here.
    assert answers["t-aws"].status_code == 404 and answers["t-aws"].json()["error"]["code"] == "origin_not_found"
    assert platform_store.requests == []
    # The platform's storage still works with its own keys: the renders are stored there.
    assert client.list_objects_v2(Bucket=platform_bucket).get("KeyCount", 0) >= 3
