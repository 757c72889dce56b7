import ipaddress
import os
import time
from urllib.parse import urlsplit

import pytest
from werkzeug.wrappers import Response

from sources.models import Source
from sources.origins import origin_for, path_clean
from sources.origins.base import (
    OriginAddressError,
    OriginNotFoundError,
    OriginTimeoutError,
    OriginTooLargeError,
    OriginUnavailableError,
    PathError,
)
from sources.origins.local import LocalFolderOrigin
from sources.origins.net import address_allowed, fetch_url
from sources.origins.s3 import S3Origin

MB = 1024 * 1024


@pytest.mark.parametrize("path", ["../etc/passwd", "a/../../b", "/abs.jpg", "a//b.jpg", "./a.jpg", "a\\b", "a\x00.jpg", ""])
def test_path_clean_refuses_escapes(path):
    with pytest.raises(PathError) as err:
        path_clean(path)
    assert err.value.status_code == 400


def test_path_clean_keeps_normal_paths():
    assert path_clean("products/shoe 1.jpg") == "products/shoe 1.jpg"


class TestLocalFolder:
    def test_reads_file_with_version(self, origin_root, photo_jpg):
        obj = LocalFolderOrigin("photos").fetch("astronaut.jpg", max_bytes=12 * MB)
        assert obj.data == photo_jpg
        assert obj.version

    def test_missing_file_is_404(self, origin_root):
        with pytest.raises(OriginNotFoundError):
            LocalFolderOrigin("photos").fetch("nope.jpg", max_bytes=MB)

    def test_symlink_out_of_the_folder_is_404(self, origin_root, tmp_path):
        secret = tmp_path / "secret.jpg"
        secret.write_bytes(b"\xff\xd8\xff secret")
        os.symlink(secret, origin_root / "photos" / "link.jpg")
        with pytest.raises(OriginNotFoundError):
            LocalFolderOrigin("photos").fetch("link.jpg", max_bytes=MB)

    def test_byte_cap(self, origin_root):
        (origin_root / "photos" / "big.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * (2 * MB))
        with pytest.raises(OriginTooLargeError) as err:
            LocalFolderOrigin("photos").fetch("big.jpg", max_bytes=MB)
        assert err.value.status_code == 413 and "1 MB" in err.value.message

    def test_symlink_into_a_sibling_folder_is_404(self, origin_root):
        """Another source's folder below the same root is outside this source's folder."""
        (origin_root / "other").mkdir()
        (origin_root / "other" / "theirs.jpg").symlink_to(origin_root / "photos" / "astronaut.jpg")
        (origin_root / "other" / "dir").symlink_to(origin_root / "photos", target_is_directory=True)
        for path in ("theirs.jpg", "dir/astronaut.jpg"):
            with pytest.raises(OriginNotFoundError):
                LocalFolderOrigin("other").fetch(path, max_bytes=12 * MB)
        assert LocalFolderOrigin("photos").fetch("astronaut.jpg", max_bytes=12 * MB).data

    @pytest.mark.parametrize("local_path", ["..", "../..", "photos/../..", "/", "OUTSIDE", "link-out",
                                            "link-out/sub"])
    def test_folder_outside_the_root_is_refused_on_save_and_on_fetch(self, db, origin_root, tmp_path,
                                                                     photo_jpg, local_path):
        """`..`, an absolute path, and a folder that is a symlink out of the root; the file is there."""
        from django.core.exceptions import ValidationError

        from sources.origins.base import OriginForbiddenError
        from tests.factories import AccountFactory

        outside = tmp_path / "outside"
        (outside / "sub").mkdir(parents=True)
        for folder in (outside, outside / "sub", origin_root.parent):
            (folder / "astronaut.jpg").write_bytes(photo_jpg)
        (origin_root / "link-out").symlink_to(outside, target_is_directory=True)
        local_path = str(outside) if local_path == "OUTSIDE" else local_path
        source = Source(account=AccountFactory(), slug="x", kind="local", local_path=local_path)
        with pytest.raises(ValidationError) as err:
            source.full_clean()
        assert "local root" in err.value.message_dict["local_path"][0]
        # Saved anyway (an old row, or a folder swapped for a symlink since): the fetch refuses too.
        with pytest.raises(OriginForbiddenError) as refused:
            LocalFolderOrigin(local_path).fetch("astronaut.jpg", max_bytes=12 * MB)
        assert refused.value.status_code == 403

    def test_folder_replaced_by_a_symlink_after_saving_is_refused(self, db, origin_root, tmp_path, photo_jpg):
        from sources.origins.base import OriginForbiddenError

        (origin_root / "later").mkdir()
        (origin_root / "later" / "astronaut.jpg").write_bytes(photo_jpg)
        assert LocalFolderOrigin("later").fetch("astronaut.jpg", max_bytes=12 * MB).data == photo_jpg
        (origin_root / "later" / "astronaut.jpg").unlink()
        (origin_root / "later").rmdir()
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "astronaut.jpg").write_bytes(photo_jpg)
        (origin_root / "later").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        with pytest.raises(OriginForbiddenError):
            LocalFolderOrigin("later").fetch("astronaut.jpg", max_bytes=12 * MB)

    def test_source_folder_must_lie_below_the_root(self, db, origin_root):
        from django.core.exceptions import ValidationError

        from tests.factories import AccountFactory

        source = Source(account=AccountFactory(), slug="x", kind="local", local_path="../../etc")
        with pytest.raises(ValidationError) as err:
            source.full_clean()
        assert "local_path" in err.value.message_dict


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::5db8:d822", True),
    ],
)
def test_address_allowed(address, allowed):
    assert address_allowed(ipaddress.ip_address(address)) is allowed


class TestWebFolder:
    def test_loopback_refused_unless_allowed(self, httpserver, settings):
        settings.ORIGIN_ALLOW_LOOPBACK = False
        httpserver.expect_request("/a.jpg").respond_with_data(b"\xff\xd8\xffdata")
        with pytest.raises(OriginAddressError) as err:
            fetch_url(httpserver.url_for("/a.jpg"), max_bytes=MB)
        assert err.value.status_code == 403
        assert len(httpserver.log) == 0  # Refused before connecting.

    @pytest.fixture
    def allow_loopback(self, settings):
        settings.ORIGIN_ALLOW_LOOPBACK = True

    def test_fetches_base_url_plus_path_without_query(self, httpserver, allow_loopback):
        httpserver.expect_request("/img/a b.jpg", query_string="").respond_with_data(
            b"\xff\xd8\xffdata", headers={"ETag": '"v1"'})
        source = Source(kind="web", base_url=httpserver.url_for("/img"))
        obj = origin_for(source).fetch("a b.jpg", max_bytes=MB)
        assert obj.data == b"\xff\xd8\xffdata" and obj.version == '"v1"'

    def test_status_mapping(self, httpserver, allow_loopback):
        httpserver.expect_request("/missing").respond_with_data("no", status=404)
        httpserver.expect_request("/broken").respond_with_data("oops", status=500)
        with pytest.raises(OriginNotFoundError):
            fetch_url(httpserver.url_for("/missing"), max_bytes=MB)
        with pytest.raises(OriginUnavailableError) as err:
            fetch_url(httpserver.url_for("/broken"), max_bytes=MB)
        assert err.value.status_code == 502

    def test_redirects_followed_and_bounded(self, httpserver, allow_loopback):
        httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
        httpserver.expect_request("/new").respond_with_data(b"\x89PNG\r\n\x1a\nxx")
        httpserver.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
        assert fetch_url(httpserver.url_for("/old"), max_bytes=MB).data.startswith(b"\x89PNG")
        with pytest.raises(OriginUnavailableError) as err:
            fetch_url(httpserver.url_for("/loop"), max_bytes=MB)
        assert "redirected too many times" in err.value.message

    def test_byte_cap_counted_while_streaming(self, httpserver, allow_loopback):
        def chunks():
            for _ in range(40):
                yield b"x" * 64 * 1024

        # Chunked, with no Content-Length to trust: the cap must be counted.
        httpserver.expect_request("/huge").respond_with_response(Response(chunks(), mimetype="image/jpeg"))
        with pytest.raises(OriginTooLargeError):
            fetch_url(httpserver.url_for("/huge"), max_bytes=MB)

    def test_slow_origin_times_out(self, httpserver, allow_loopback, settings):
        settings.ORIGIN_TOTAL_TIMEOUT = 1

        def slow(request):
            time.sleep(2)
            return Response(b"late")

        httpserver.expect_request("/slow").respond_with_handler(slow)
        with pytest.raises(OriginTimeoutError) as err:
            fetch_url(httpserver.url_for("/slow"), max_bytes=MB)
        assert err.value.status_code == 504


class TestS3:
    def test_reads_below_prefix(self, s3_bucket, moto_server, photo_png, settings):
        settings.ORIGIN_ALLOW_LOOPBACK = True  # The S3 server of the tests listens on loopback.
        client, bucket = s3_bucket
        client.put_object(Bucket=bucket, Key="shop/items/cat.png", Body=photo_png)
        origin = S3Origin(bucket=bucket, prefix="shop/", endpoint_url=moto_server,
                          access_key_id="testing", secret_access_key="testing", region="us-east-1")
        obj = origin.fetch("items/cat.png", max_bytes=12 * MB)
        assert obj.data == photo_png and obj.version
        with pytest.raises(OriginNotFoundError):
            origin.fetch("cat.png", max_bytes=12 * MB)
        with pytest.raises(OriginTooLargeError):
            origin.fetch("items/cat.png", max_bytes=1000)


    def test_endpoint_on_a_forbidden_address_is_refused_on_connecting(self, s3_bucket, moto_server, photo_png,
                                                                       settings):
        """The endpoint URL is the tenant's: boto3's own connections get the same address check as
        every fetch, made on the address connected to. The real S3 server is there and would answer."""
        from sources.origins import OriginError

        client, bucket = s3_bucket
        client.put_object(Bucket=bucket, Key="cat.png", Body=photo_png)
        settings.ORIGIN_ALLOW_LOOPBACK = False
        port = urlsplit(moto_server).port
        for endpoint in (moto_server, f"http://localhost:{port}", f"http://[::ffff:127.0.0.1]:{port}",
                         f"http://2130706433:{port}"):
            origin = S3Origin(bucket=bucket, endpoint_url=endpoint, access_key_id="testing",
                              secret_access_key="testing", region="us-east-1")
            with pytest.raises(OriginError) as err:
                origin.fetch("cat.png", max_bytes=12 * MB)
            assert err.value.code == "origin_address_refused", (endpoint, err.value.code)
        settings.ORIGIN_ALLOW_LOOPBACK = True
        allowed = S3Origin(bucket=bucket, endpoint_url=moto_server, access_key_id="testing",
                           secret_access_key="testing", region="us-east-1")
        assert allowed.fetch("cat.png", max_bytes=12 * MB).data == photo_png


def test_source_cache_expires_and_clears_on_save(db, settings):
    from sources.selectors import source_cache_clear, source_get
    from tests.factories import AccountFactory, SourceFactory

    settings.SOURCE_CACHE_SECONDS = 60
    source_cache_clear()
    source = SourceFactory(account=AccountFactory(), slug="cached", bg_remove="off")
    assert source_get(slug="cached").bg_remove == "off"
    Source.objects.filter(pk=source.pk).update(bg_remove="on")  # No signal: another process did it.
    assert source_get(slug="cached").bg_remove == "off"
    settings.SOURCE_CACHE_SECONDS = 0
    assert source_get(slug="cached").bg_remove == "on"
    settings.SOURCE_CACHE_SECONDS = 60
    source.bg_remove = "inherit"
    source.save()  # A save in this process clears the cache at once.
    assert source_get(slug="cached").bg_remove == "inherit"
    assert source_get(slug="nope") is None


def test_an_operator_creates_a_local_folder_source_with_the_command(db, origin_root, client, settings):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError
    from PIL import Image

    from tests.factories import AccountFactory

    AccountFactory(slug="ops")
    out = io.StringIO()
    call_command("create_source", "ops", "ops-dev", "--kind", "local", "--local-path", "photos", stdout=out)
    assert out.getvalue().strip() == "ops-dev"
    response = client.get("/render/ops-dev/astronaut.jpg?w=50")
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).width == 50
    for bad in ("../..", "/etc"):
        with pytest.raises(CommandError, match="local_path: The folder must lie below the local root"):
            call_command("create_source", "ops", "ops-bad", "--kind", "local", "--local-path", bad)
    assert not Source.objects.filter(slug="ops-bad").exists()
