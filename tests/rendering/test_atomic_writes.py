"""A write that fails half-way leaves nothing for the next request to take: on a local folder that
fills up mid-write (a real, small tmpfs) and on S3 (moto) behind a connection that breaks off
mid-upload. A render row is recorded only for a complete object."""

import hashlib
import io
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from core.storage import storage_holds, storage_put
from cutouts import services as jobs
from cutouts.models import BgRemoveJob
from rendering.models import Render
from sources.origins.uploads import UploadsOrigin, upload_store, upload_stored
from tests.conftest import IN_CI

pytestmark = pytest.mark.django_db

URL = "/render/acme-photos/astronaut.jpg?w=400&q=95"


def _fill(root: Path, leave: int) -> Path:
    """Fills the tmpfs at `root` with one file until `leave` bytes are free."""
    stat = os.statvfs(root)
    filler = root / "filler"
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - leave))
    return filler


@pytest.fixture
def small_disk(media_storage):
    """The test's media folder on a 1 MiB tmpfs of its own, unmounted afterwards."""
    media_storage.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(media_storage)],
                             check=False, capture_output=True, text=True)
    if mounted.returncode:
        message = f"mounting a tmpfs needs root: {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield media_storage
    finally:
        subprocess.run(["umount", "-l", str(media_storage)], check=True)


def _objects(root: Path, folder: str) -> list[Path]:
    return sorted(p for p in (root / folder).rglob("*") if p.is_file()) if (root / folder).exists() else []


def test_a_render_written_on_a_disk_that_fills_up_half_way_is_not_served_short(client, source, small_disk):
    full = client.get(URL)  # How long the render is, on a disk with room.
    assert full.status_code == 200
    size = len(full.content)
    assert size > 20_000
    Render.objects.all().delete()
    for path in _objects(small_disk, "renders"):
        path.unlink()

    filler = _fill(small_disk, leave=size // 2)  # Room for half of it.
    failed = client.get(URL)
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "storage_unavailable"
    assert not Render.objects.exists()  # No row for an object that is not whole…
    assert _objects(small_disk, "renders") == []  # …and no part of it left under any name.

    filler.unlink()  # Room again: the next request renders and stores it whole.
    served = client.get(URL)
    assert served.status_code == 200
    assert served.content == full.content and int(served.get("Content-Length", size)) == size
    render = Render.objects.get()
    assert render.size == size and (small_disk / render.storage_name).read_bytes() == full.content


def test_a_short_object_left_under_a_content_name_is_replaced_not_reused(client, source):
    first = client.get(URL)
    render = Render.objects.get()
    path = Path(default_storage.path(render.storage_name))
    path.write_bytes(first.content[: len(first.content) // 3])  # What an older writer left on a full disk.
    Render.objects.all().delete()  # Its row never written (the write failed), the object there.

    again = client.get(URL)
    assert again.status_code == 200 and again.content == first.content
    assert path.read_bytes() == first.content
    assert Render.objects.get().size == len(first.content)


def test_a_replacement_that_fails_half_way_leaves_the_old_object_whole(small_disk):
    old, new = os.urandom(50_000), os.urandom(600_000)
    storage_put("marks/1/url-abc", old)
    filler = _fill(small_disk, leave=300_000)
    with pytest.raises(OSError):
        storage_put("marks/1/url-abc", new)
    assert (small_disk / "marks/1/url-abc").read_bytes() == old
    assert [p.name for p in (small_disk / "marks/1").iterdir()] == ["url-abc"]  # No temporary left.
    filler.unlink()
    assert storage_put("marks/1/url-abc", new) == "marks/1/url-abc"
    assert storage_holds("marks/1/url-abc", new) and not storage_holds("marks/1/url-abc", old)


def test_an_upload_on_a_full_disk_is_not_kept_short(small_disk):
    data = os.urandom(400_000)
    path = hashlib.sha256(data).hexdigest() + ".png"
    filler = _fill(small_disk, leave=200_000)
    with pytest.raises(OSError):
        upload_store(source_id=7, path=path, data=data)
    assert not upload_stored(source_id=7, path=path, size=len(data))
    assert _objects(small_disk, "uploads") == []
    filler.unlink()
    upload_store(source_id=7, path=path, data=data)
    assert upload_stored(source_id=7, path=path, size=len(data))
    assert UploadsOrigin(7).fetch(path, max_bytes=10**6).data == data


def test_a_cutout_written_on_a_full_disk_leaves_nothing_under_the_jobs_name(source, small_disk):
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp")
    filler = _fill(small_disk, leave=40_000)  # The cutout PNG is several hundred KB.
    with pytest.raises(jobs.TransientJobError):
        jobs.bg_remove_job_process(job_id=job.id)
    job.refresh_from_db()
    assert job.status != BgRemoveJob.Status.DONE and not job.cutout_name
    assert _objects(small_disk, "cutouts") == []
    filler.unlink()
    BgRemoveJob.objects.filter(pk=job.pk).update(run_after=None)
    done = jobs.bg_remove_job_process(job_id=job.id)
    assert done.status == BgRemoveJob.Status.DONE
    with default_storage.open(done.cutout_name, "rb") as fh:
        image = Image.open(io.BytesIO(fh.read()))
        image.load()  # Whole: a short PNG fails here.
    assert image.mode == "RGBA"


class _BreakingProxy:
    """A TCP forwarder to the S3 server that, while `cut` is set, passes on only the first
    `cut` bytes a client sends on each connection and then drops it: an upload broken off
    mid-body, as a network or a store failing half-way would."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.cut: int | None = None
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        budget = self.cut

        def back():
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            finally:
                client.close()

        threading.Thread(target=back, daemon=True).start()
        try:
            while data := client.recv(65536):
                if budget is not None:
                    if len(data) >= budget:
                        upstream.sendall(data[:budget])
                        break
                    budget -= len(data)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            client.close()

    def close(self):
        self.sock.close()


def test_on_s3_an_upload_broken_off_mid_body_records_nothing_and_the_next_request_stores_it_whole(
        client, source, s3_bucket, moto_server, settings):
    s3, bucket = s3_bucket
    proxy = _BreakingProxy(int(moto_server.rsplit(":", 1)[1]))
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket, "endpoint_url": f"http://127.0.0.1:{proxy.port}", "access_key": "testing",
                    "secret_key": "testing", "region_name": "us-east-1", "file_overwrite": True,
                    "default_acl": None, "querystring_auth": False},
    }}
    try:
        proxy.cut = 20_000  # Headers and the first few KB of each PUT's body, then the connection drops.
        failed = client.get(URL)
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "storage_unavailable"
        assert not Render.objects.exists()
        # Whatever S3 kept under the name is never shorter than a whole object.
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            assert obj["Size"] > 20_000, obj

        proxy.cut = None
        served = client.get(URL)
        assert served.status_code == 200
        render = Render.objects.get()
        stored = s3.get_object(Bucket=bucket, Key=render.storage_name)["Body"].read()
        assert stored == served.content and render.size == len(stored)
        Image.open(io.BytesIO(stored)).load()
    finally:
        proxy.close()
