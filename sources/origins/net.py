"""Network-safe HTTP fetches: the address checked is the one actually connected to.

Hand-written on purpose: the libraries that filter addresses (e.g. advocate) check a name's
resolution before urllib3 resolves it again to connect, which a DNS rebinding slips between, or
do not follow urllib3 2 and botocore's pools; here the check runs on the connected socket.
"""

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

import urllib3
from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from sources.origins.base import (
    OriginAddressError,
    OriginError,
    OriginForbiddenError,
    OriginNotFoundError,
    OriginObject,
    OriginTimeoutError,
    OriginUnavailableError,
    read_capped,
)

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Never a destination, whatever Python's `is_global` says: site-local (deprecated, RFC 3879),
# discard-only (RFC 6666), documentation (RFC 3849, RFC 9637).
_REFUSED_V6 = [ipaddress.ip_network(net) for net in ("fec0::/10", "100::/64", "2001:db8::/32", "3fff::/20")]
# IPv6 forms that carry an IPv4 address; each is judged by the address it carries.
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (RFC 4291 §2.5.5.1, deprecated)
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765 SIIT)
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 bits are the last 32.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: any RFC 6052 prefix length below it.
# 6to4 (2002::/16, RFC 3056) and Teredo (2001::/32, RFC 4380: server and obfuscated client) are
# decoded by the ipaddress module itself (`sixtofour`, `teredo`).
# RFC 6052 §2.2: where the 32 IPv4 bits sit for each prefix length (byte 8, bits 64–71, is
# always skipped). A /48 prefix puts them in bytes 6–7 and 9–10, not in the last 32 bits.
# Only the lengths a prefix inside 64:ff9b:1::/48 can have are listed.
_RFC6052_V4_BYTES = {48: (6, 7, 9, 10), 56: (7, 9, 10, 11), 64: (9, 10, 11, 12), 96: (12, 13, 14, 15)}


def _rfc6052_v4(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    packed = ip.packed
    return ipaddress.IPv4Address(bytes(packed[i] for i in _RFC6052_V4_BYTES[prefix_length]))


def _nat64_local_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """64:ff9b:1::/48 takes any RFC 6052 prefix length from 48 to 96, chosen by its operator:
    every reading the address is well formed for (octet 8 zero, suffix zero) is judged; the /96
    reading always is, unless it is 0.0.0.0 behind a shorter well-formed one."""
    packed = ip.packed
    lengths = [length for length, suffix in ((48, 11), (56, 12), (64, 13))
               if packed[8] == 0 and not any(packed[suffix:])]
    if not lengths or any(packed[12:]):
        lengths.append(96)
    return [_rfc6052_v4(ip, length) for length in lengths]


def _isatap_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address of an ISATAP interface id (RFC 5214: `[02]00:5efe:a.b.c.d`), any prefix."""
    packed = ip.packed
    if packed[8] & 0xFC == 0 and packed[9:12] == b"\x00\x5e\xfe":
        return ipaddress.IPv4Address(packed[12:])
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address of a transition prefix stands for (all must be
    allowed), or None when its prefix is not one of those."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _V4_TRANSLATED or ip in _NAT64_WELL_KNOWN:
        return [_rfc6052_v4(ip, 96)]
    if ip in _NAT64_LOCAL:
        return _nat64_local_v4(ip)
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if ip in _V4_COMPATIBLE and int(ip) > 1:  # Not :: (unspecified) nor ::1 (loopback).
        return [_rfc6052_v4(ip, 96)]
    return None


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            # Judged by what it reaches: the transition prefix itself says nothing.
            return all(address_allowed(v4) for v4 in embedded)
        if any(ip in net for net in _REFUSED_V6):
            return False
        # An ISATAP interface id may sit under any prefix: both must be allowed.
        isatap = _isatap_v4(ip)
        if isatap is not None and not address_allowed(isatap):
            return False
    if ip.is_loopback:
        return bool(settings.ORIGIN_ALLOW_LOOPBACK)
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global and not ip.is_multicast


class _SafeConnectMixin:
    """Resolves the host itself and connects only to an allowed address (no rebinding window)."""

    def _new_conn(self):
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise OriginNotFoundError("The origin's host name does not resolve.") from None
        refused, last_error = False, None
        for family, socktype, proto, _, sockaddr in infos:
            if not address_allowed(ipaddress.ip_address(sockaddr[0].split("%")[0])):
                refused = True
                continue
            sock = socket.socket(family, socktype, proto)
            sock.settimeout(self.timeout if isinstance(self.timeout, (int, float)) else None)
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last_error = exc
        if refused and last_error is None:
            raise OriginAddressError()
        if isinstance(last_error, TimeoutError):
            raise OriginTimeoutError("Connecting to the origin timed out.")
        raise OriginUnavailableError("The origin refused the connection.")


def _safe_pool(pool_cls, connection_cls):
    """`pool_cls` whose connections make the address check of _SafeConnectMixin."""
    connection = type(f"Safe{connection_cls.__name__}", (_SafeConnectMixin, connection_cls), {})
    return type(f"Safe{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": connection})


_SafeHTTPPool = _safe_pool(HTTPConnectionPool, HTTPConnection)
_SafeHTTPSPool = _safe_pool(HTTPSConnectionPool, HTTPSConnection)
# botocore's own pools and connections (its request and SSL handling), with the same check.
_SafeAWSHTTPPool = _safe_pool(AWSHTTPConnectionPool, AWSHTTPConnection)
_SafeAWSHTTPSPool = _safe_pool(AWSHTTPSConnectionPool, AWSHTTPSConnection)


def botocore_network_safe(client) -> None:
    """Makes a boto3 client connect like every other fetch: the address it actually connects to
    is checked (an S3 origin's endpoint URL is the tenant's to choose).

    botocore builds its connection pools from its session's `pool_classes_by_scheme`, proxies
    included; they are swapped for subclasses with the same check. tests/sources/test_origins.py
    proves it against a real S3 server on loopback, so a botocore change that defeats it fails."""
    session = client._endpoint.http_session
    session._pool_classes_by_scheme = {"http": _SafeAWSHTTPPool, "https": _SafeAWSHTTPSPool}
    session._manager.pool_classes_by_scheme = session._pool_classes_by_scheme


def _pool_for(url: str, timeout: urllib3.Timeout):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginForbiddenError("Only http and https origins are allowed.")
    pool_cls = _SafeHTTPSPool if parts.scheme == "https" else _SafeHTTPPool
    # Always an explicit port: without one, an IPv6 literal's last group is read as the port.
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return pool_cls(parts.hostname, port=port, timeout=timeout, retries=False, maxsize=1)


def fetch_url(url: str, *, max_bytes: int) -> OriginObject:
    """GETs `url` with redirects re-checked hop by hop, capped in bytes and in total time."""
    deadline = time.monotonic() + settings.ORIGIN_TOTAL_TIMEOUT
    for _ in range(settings.ORIGIN_MAX_REDIRECTS + 1):
        remaining = max(deadline - time.monotonic(), 0.1)
        timeout = urllib3.Timeout(connect=min(settings.ORIGIN_CONNECT_TIMEOUT, remaining), read=remaining)
        pool = _pool_for(url, timeout)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            response = pool.urlopen("GET", target, redirect=False, preload_content=False,
                                    headers={"User-Agent": "cutout/0.1", "Accept": "image/*"})
        except OriginError:
            raise
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise OriginTimeoutError() from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise OriginUnavailableError() from None
        try:
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status in (404, 410):
                raise OriginNotFoundError()
            if response.status in (401, 403):
                raise OriginForbiddenError()
            if response.status != 200:
                raise OriginUnavailableError(f"The origin answered HTTP {response.status}.")
            chunks = _deadline_chunks(response, deadline)
            data = read_capped(chunks, max_bytes)
            version = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
            return OriginObject(data=data, version=version, content_type=response.headers.get("Content-Type", ""))
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise OriginTimeoutError() from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise OriginUnavailableError("The origin's answer broke off.") from None
        finally:
            response.release_conn()
            pool.close()
    raise OriginUnavailableError("The origin redirected too many times.")


def _deadline_chunks(response, deadline):
    for chunk in response.stream(256 * 1024):
        if time.monotonic() > deadline:
            raise OriginTimeoutError()
        yield chunk


def post_url(url: str, *, body: bytes, headers: dict, connect_timeout: float, total_timeout: float) -> int:
    """POSTs `body` once through the same address checks; redirects are not followed. The status."""
    timeout = urllib3.Timeout(connect=min(connect_timeout, total_timeout), total=total_timeout)
    pool = _pool_for(url, timeout)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        # The answer's body is never read: only its status counts, and a huge body costs nothing.
        response = pool.urlopen("POST", target, body=body, headers=headers, redirect=False, preload_content=False)
    except OriginError:
        raise
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise OriginTimeoutError() from None
    except urllib3.exceptions.SSLError:
        raise OriginUnavailableError("The TLS handshake failed.", code="origin_tls_failed") from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise OriginUnavailableError() from None
    else:
        response.close()
        return response.status
    finally:
        pool.close()
