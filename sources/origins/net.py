"""Network-safe HTTP fetches: the address checked is the one actually connected to.

Hand-written on purpose: the libraries that filter addresses (e.g. advocate) check a name's
resolution before urllib3 resolves it again to connect, which a DNS rebinding slips between, or
do not follow urllib3 2 and botocore's pools; here the check runs on the connected socket.
"""

import functools
import ipaddress
import socket
from http.client import HTTPException
from urllib.parse import urljoin, urlsplit

import psutil
import urllib3
from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
from django.conf import settings
from django.utils.crypto import salted_hmac
from django.utils.http import is_same_domain
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from sources.origins.base import (
    OriginAddressError,
    OriginError,
    OriginForbiddenError,
    OriginLoopError,
    OriginNotFoundError,
    OriginObject,
    OriginTimeoutError,
    OriginUnavailableError,
    read_capped,
)
from sources.origins.deadlines import deadline_cap, deadline_check, deadline_watch, fetch_deadline

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


# Every request of ours carries this header; rendering/wsgi.py refuses one that arrives with our value
# before any work, so a fetch that reaches us by a name or address we do not know (an alias, a
# proxy, a development machine's loopback) ends there instead of rendering again.
FETCH_MARKER_HEADER = "X-Cutout-Fetch"
FETCH_MARKER_ENVIRON = "HTTP_X_CUTOUT_FETCH"


@functools.lru_cache(maxsize=8)
def _marker_for(secret: str) -> str:
    return salted_hmac("sources.origins.net.fetch_marker", "outgoing fetch", secret=secret,
                       algorithm="sha256").hexdigest()[:32]


def fetch_marker() -> str:
    """Derived from SECRET_KEY: another installation's fetches (one that uses ours as its origin)
    carry another value and are served; a peer that learns ours can only refuse its own requests."""
    return _marker_for(settings.SECRET_KEY)


def fetch_markers() -> frozenset[str]:
    """The values our own processes may send, SECRET_KEY_FALLBACKS' included (a rotation)."""
    return frozenset(_marker_for(key) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS])


def _literal(pattern: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(pattern.strip("[]"))
    except ValueError:
        return None


def _loopback_name(pattern: str) -> bool:
    return pattern in ("localhost", ".localhost") or pattern.endswith(".localhost")


def host_is_ours(host: str) -> bool:
    """`host` is one of the names this service answers to: DJANGO_ALLOWED_HOSTS (`.example.com`
    covering its subdomains) and RENDER_DOMAIN with its subdomains. Address literals are judged by
    address (own_addresses), loopback names by ORIGIN_ALLOW_LOOPBACK, and `*` names nothing."""
    host = host.lower().rstrip(".")
    patterns = list(settings.ALLOWED_HOSTS)
    if settings.RENDER_DOMAIN:
        patterns.append("." + settings.RENDER_DOMAIN)
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern in ("", "*", ".") or _literal(pattern) is not None or _loopback_name(pattern):
            continue
        if is_same_domain(host, pattern):
            return True
    return False


def own_addresses() -> frozenset:
    """This machine's interface addresses and the address literals of DJANGO_ALLOWED_HOSTS (a
    public address that NAT maps to us is on no interface), read afresh on each connection (about
    0.15 ms) so a changed address counts at once. Loopback is left to ORIGIN_ALLOW_LOOPBACK."""
    found = {_literal(pattern) for pattern in settings.ALLOWED_HOSTS} - {None}
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(ipaddress.ip_address(address.address.split("%")[0]))
    return frozenset(ip for ip in found if not ip.is_loopback)


def _is_own(ip, own: frozenset) -> bool:
    if ip in own:
        return True
    return isinstance(ip, ipaddress.IPv6Address) and any(v4 in own for v4 in embedded_ipv4(ip) or ())


class _SafeConnectMixin:
    """Resolves the host itself and connects only to an allowed address (no rebinding window),
    never to this service itself; puts every socket under the fetch's deadline (deadlines.py) and
    every request under our marker header."""

    def _new_conn(self):
        deadline_check()  # A retry (botocore's) or a redirect after the deadline opens nothing.
        if host_is_ours(self.host):
            raise OriginLoopError()
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise OriginNotFoundError("The origin's host name does not resolve.") from None
        deadline_check()
        own = own_addresses()
        refused, looped, last_error = False, False, None
        for family, socktype, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if _is_own(ip, own):
                looped = True
                continue
            if not address_allowed(ip):
                refused = True
                continue
            sock = socket.socket(family, socktype, proto)
            deadline_watch(sock)  # Before the TLS handshake, which may trickle too.
            sock.settimeout(deadline_cap(self.timeout if isinstance(self.timeout, (int, float)) else None))
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last_error = exc
        if looped and last_error is None:
            raise OriginLoopError()
        if refused and last_error is None:
            raise OriginAddressError()
        if isinstance(last_error, TimeoutError):
            raise OriginTimeoutError("Connecting to the origin timed out.")
        raise OriginUnavailableError("The origin refused the connection.")

    def putrequest(self, method, url, *args, **kwargs):
        super().putrequest(method, url, *args, **kwargs)
        self.putheader(FETCH_MARKER_HEADER, fetch_marker())

    def connect(self):
        try:
            super().connect()
        except (OSError, HTTPException):
            deadline_check()  # Cut off by the deadline (a trickled handshake): a timeout, never retried.
            raise

    def getresponse(self, *args, **kwargs):
        # A pooled connection (botocore keeps them) was opened under an earlier fetch's deadline.
        deadline_watch(self.sock)
        try:
            return super().getresponse(*args, **kwargs)
        except (OSError, HTTPException):
            # Headers cut off by the deadline: a timeout, which botocore does not retry (it would
            # retry the connection error the shutdown looks like, after a backoff sleep).
            deadline_check()
            raise


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
    """GETs `url` with redirects re-checked hop by hop, capped in bytes and in total time: the
    deadline holds on every receive (deadlines.py), headers and TLS handshake included."""
    with fetch_deadline(settings.ORIGIN_TOTAL_TIMEOUT) as deadline:
        try:
            fetched = _get(url, max_bytes=max_bytes, deadline=deadline)
        except OriginError:
            if deadline.expired:  # The watchdog's shutdown surfaces as whatever the reader made of it.
                raise OriginTimeoutError() from None
            raise
        if deadline.expired:  # An end of stream at the deadline reads like the end of a body.
            raise OriginTimeoutError()
        return fetched


def _get(url: str, *, max_bytes: int, deadline) -> OriginObject:
    for _ in range(settings.ORIGIN_MAX_REDIRECTS + 1):
        remaining = max(deadline.remaining(), 0.1)
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
            if response.status == 508:
                # Our own refusal of a request carrying our marker (rendering/wsgi.py): the URL led
                # back to us by a way the checks above could not see (an alias, a proxy).
                raise OriginLoopError("The URL leads back to this service, which refused to fetch from itself.")
            if response.status != 200:
                raise OriginUnavailableError(f"The origin answered HTTP {response.status}.")
            data = read_capped(response.stream(256 * 1024), max_bytes)
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


def post_url(url: str, *, body: bytes, headers: dict, connect_timeout: float, total_timeout: float) -> int:
    """POSTs `body` once through the same address checks and total deadline; redirects are not
    followed. The status."""
    with fetch_deadline(total_timeout) as deadline:
        try:
            status = _post(url, body=body, headers=headers, connect_timeout=connect_timeout,
                           total_timeout=total_timeout)
        except OriginError:
            if deadline.expired:
                raise OriginTimeoutError() from None
            raise
        if deadline.expired:  # Status line and headers cut off at the deadline: not an answer.
            raise OriginTimeoutError()
        return status


def _post(url: str, *, body: bytes, headers: dict, connect_timeout: float, total_timeout: float) -> int:
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
