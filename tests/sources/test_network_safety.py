"""Every outbound fetch refuses private networks, whatever the spelling or the redirect."""

import pytest

from sources.origins.base import OriginAddressError, OriginNotFoundError
from sources.origins.net import fetch_url

MB = 1024 * 1024


@pytest.fixture
def no_loopback(settings):
    settings.ORIGIN_ALLOW_LOOPBACK = False


@pytest.mark.parametrize("host", [
    "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost", "[::1]", "[::ffff:127.0.0.1]",
])
def test_loopback_in_any_spelling_is_refused_before_connecting(httpserver, no_loopback, host):
    httpserver.expect_request("/a.jpg").respond_with_data(b"\xff\xd8\xff")
    port = httpserver.port
    with pytest.raises((OriginAddressError, OriginNotFoundError)) as err:
        fetch_url(f"http://{host}:{port}/a.jpg", max_bytes=MB)
    if isinstance(err.value, OriginNotFoundError):
        # A spelling the resolver does not accept is simply not a host.
        assert "does not resolve" in err.value.message
    assert len(httpserver.log) == 0


@pytest.mark.parametrize("target", [
    "http://10.0.0.1/x.jpg", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/x",
    "http://[fd00::1]/x", "http://[64:ff9b::a00:1]/x", "http://0.0.0.0/x",
])
def test_redirects_to_private_networks_are_refused(httpserver, settings, target):
    # The first hop is allowed (loopback, for this test only); where it points is checked again.
    settings.ORIGIN_ALLOW_LOOPBACK = True
    httpserver.expect_request("/hop").respond_with_data("", status=302, headers={"Location": target})
    with pytest.raises(OriginAddressError) as err:
        fetch_url(httpserver.url_for("/hop"), max_bytes=MB)
    assert err.value.status_code == 403 and "not allowed" in err.value.message


def test_only_http_and_https(no_loopback):
    from sources.origins.base import OriginForbiddenError

    for url in ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://x/", "http:///nohost"]:
        with pytest.raises(OriginForbiddenError):
            fetch_url(url, max_bytes=MB)
