"""The object store goes away and comes back: 503s meanwhile, nothing half-stored, no restart."""

import subprocess
import sys

import boto3
import pytest

from rendering.models import Render
from tests.conftest import free_port, stop_process, wait_for_port

pytestmark = pytest.mark.django_db


def start_moto(port):
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, proc=proc)
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id="k", aws_secret_access_key="s").create_bucket(Bucket="renders")
    return proc


def test_storage_outage_is_503_and_recovers(client, source, settings):
    port = free_port()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "renders", "endpoint_url": f"http://127.0.0.1:{port}", "access_key": "k",
                    "secret_key": "s", "region_name": "us-east-1", "file_overwrite": True,
                    "default_acl": None, "querystring_auth": False},
    }}
    moto = start_moto(port)
    try:
        kept = client.get("/render/acme-photos/astronaut.jpg?w=40")
        assert kept.status_code == 200
        stop_process(moto)

        response = client.get("/render/acme-photos/astronaut.jpg?w=41")
        assert response.status_code == 503, response.content
        assert response.json()["error"]["code"] == "storage_unavailable"
        assert int(response["Retry-After"]) > 0 and response["Cache-Control"] == "no-store"
        # The render made before the outage is still served, from this machine's node cache.
        assert client.get("/render/acme-photos/astronaut.jpg?w=40").content == kept.content
        settings.RENDER_NODE_CACHE_BYTES = 0  # Without it, the store's outage is the hit's too.
        response = client.get("/render/acme-photos/astronaut.jpg?w=40")
        assert response.status_code == 503 and response.json()["error"]["code"] == "storage_unavailable"
        assert Render.objects.count() == 1  # Only the render stored before the outage; nothing half-stored.

        moto = start_moto(port)  # Back, but empty: the old object is gone too.
        fresh = client.get("/render/acme-photos/astronaut.jpg?w=41")
        assert fresh.status_code == 200 and fresh["Content-Type"] == "image/jpeg"
        again = client.get("/render/acme-photos/astronaut.jpg?w=40")
        assert again.status_code == 200, again.content  # Its lost object was rendered again.
        assert Render.objects.count() == 2
    finally:
        stop_process(moto)
