"""Every outbound fetch refuses private networks, whatever the spelling or the redirect."""

import ipaddress

import pytest

from sources.origins.base import OriginAddressError, OriginNotFoundError
from sources.origins.net import address_allowed, fetch_url

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


# Each IPv6 form that embeds an IPv4 address, refused when the embedded address is private and
# allowed when it is global; then the IPv6 ranges that are never a destination.
EMBEDDED_FORMS = [
    # IPv4-mapped (::ffff:a.b.c.d).
    ("::ffff:192.168.0.1", False), ("::ffff:8.8.8.8", True),
    # IPv4-compatible (::a.b.c.d, deprecated).
    ("::10.0.0.1", False), ("::127.0.0.1", False), ("::169.254.169.254", False), ("::8.8.8.8", True),
    # IPv4-translated (::ffff:0:a.b.c.d, SIIT).
    ("::ffff:0:10.0.0.1", False), ("::ffff:0:169.254.169.254", False), ("::ffff:0:8.8.8.8", True),
    # NAT64, well-known prefix 64:ff9b::/96: the last 32 bits.
    ("64:ff9b::10.0.0.1", False), ("64:ff9b::127.0.0.1", False), ("64:ff9b::8.8.8.8", True),
    # NAT64, local-use 64:ff9b:1::/48 (RFC 8215): a /48 prefix puts 192.168.0.1 in bits 48–63
    # and 72–87; the last 32 bits are zero.
    ("64:ff9b:1:c0a8:0:100::", False),
    # ... and 10.0.0.1 as a /64 reading whose last 32 bits (1.0.0.0) look global.
    ("64:ff9b:1:0:a:0:100:0", False),
    # 8.8.8.8 as a /48 reading (last 32 bits zero): allowed.
    ("64:ff9b:1:808:8:800::", True),
    # The same address as a /96 reading.
    ("64:ff9b:1::a00:1", False), ("64:ff9b:1::808:808", True),
    # 6to4 (2002:a.b.c.d::/48).
    ("2002:a00:1::1", False), ("2002:7f00:1::1", False), ("2002:c0a8:1:2::3", False), ("2002:808:808::1", True),
    # Teredo (2001:0:server:flags:port:~client): server 65.54.227.120, client 8.8.4.4 is fine;
    # a private server, or a client of 127.0.0.1 or 192.0.2.45, is not.
    ("2001:0:4136:e378:8000:63bf:f7f7:fbfb", True),
    ("2001:0:a00:1:8000:63bf:f7f7:fbfb", False),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    # ISATAP interface ids (…:0000:5efe:a.b.c.d and …:0200:5efe:a.b.c.d), under a global prefix.
    ("2606:4700::5efe:a00:1", False), ("2606:4700::200:5efe:a9fe:a9fe", False),
    ("2606:4700::5efe:808:808", True), ("2606:4700::200:5efe:808:808", True),
    # ... and under a link-local prefix, refused whatever it embeds.
    ("fe80::5efe:808:808", False),
    # Never destinations: site-local, discard-only, documentation; a global address is fine.
    ("fec0::1", False), ("fec0:0:0:1::5", False), ("100::1", False), ("100::ffff:1", False),
    ("2001:db8::1", False), ("3fff::1", False), ("2606:4700::1111", True), ("2a00:1450:4001::200e", True),
]


@pytest.mark.parametrize("address, allowed", EMBEDDED_FORMS)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_carry(no_loopback, address, allowed):
    assert address_allowed(ipaddress.ip_address(address)) is allowed


@pytest.mark.parametrize("host", [
    "::ffff:0:7f00:1", "::7f00:1", "64:ff9b:1:7f00:0:100::", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "2606:4700::5efe:7f00:1",
])
def test_embedded_loopback_is_refused_before_connecting(httpserver, no_loopback, host):
    """Each form, as a URL literal: refused before any connection (none could reach loopback)."""
    httpserver.expect_request("/a.jpg").respond_with_data(b"\xff\xd8\xff")
    with pytest.raises(OriginAddressError):
        fetch_url(f"http://[{host}]:{httpserver.port}/a.jpg", max_bytes=MB)
    assert len(httpserver.log) == 0


@pytest.mark.parametrize("target", [
    "http://[::ffff:0:a00:1]/x", "http://[2002:a9fe:a9fe::1]/x", "http://[64:ff9b:1:a9fe:a9:fe00::]/x",
    "http://[fec0::1]/x",
])
def test_redirects_to_embedded_private_addresses_are_refused(httpserver, settings, target):
    settings.ORIGIN_ALLOW_LOOPBACK = True
    httpserver.expect_request("/hop").respond_with_data("", status=302, headers={"Location": target})
    with pytest.raises(OriginAddressError):
        fetch_url(httpserver.url_for("/hop"), max_bytes=MB)
