"""Outbound connections to addresses users give, without a way into the server's network.

Whenever the server sends a request where a user points it (adding a web page by
URL, delivering a webhook), the host is resolved once here, every address it
resolves to is checked (`address_is_public`), and the connection then goes to
the checked address itself (`PinnedHTTPConnection`, `PinnedHTTPSConnection`), so
a name that resolves differently a moment later (DNS rebinding) gains nothing.
The callers phrase the refusals for their own pages: this module only decides.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = [
    "BadAddress",
    "HostNotFound",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "ResolveTimeout",
    "Target",
    "address_is_public",
    "first_private",
    "resolve",
    "target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class BadAddress(Exception):
    """The URL cannot be sent to (the message says why, for people)."""


@dataclass(frozen=True)
class Target:
    """Where a URL points, as a request to it is made."""

    scheme: str
    host: str  # ASCII (IDNA), no brackets
    port: int
    path: str  # path and query, as sent in the request line


def target(url: str, *, schemes: tuple[str, ...], bad_scheme: str) -> Target:
    """The URL taken apart for a request; BadAddress (`bad_scheme` for a scheme not in `schemes`)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadAddress("The address is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise BadAddress(bad_scheme)
    if parts.username is not None or parts.password is not None:
        raise BadAddress("Addresses with a user name or password are not supported.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadAddress("The address has no host name.")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadAddress(f"The host name “{host}” is not valid.") from None
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


class HostNotFound(Exception):
    """The host name has no address (or could not be looked up)."""


class ResolveTimeout(Exception):
    """Looking the host name up took longer than allowed."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address; False for anything local or special."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_is_public(embedded)
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_private
    )


def resolve(host: str, port: int, *, timeout: float) -> list[str]:
    """The host's addresses, resolved once (in a thread, so the time limit holds); an IP literal
    is its own address. Raises HostNotFound or ResolveTimeout."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    found: list[Any] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    worker = threading.Thread(target=lookup, name="docent-netguard-dns", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.0))
    if worker.is_alive():
        raise ResolveTimeout(host)
    if failed or not found:
        raise HostNotFound(host)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 scope (fe80::1%eth0) is not part of it
        if address not in addresses:
            addresses.append(address)
    return addresses


def first_private(addresses: list[str]) -> str | None:
    """The first address that is not public, or None when all are (a name may mix the two)."""
    for address in addresses:
        if not address_is_public(ipaddress.ip_address(address)):
            return address
    return None


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address already checked, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is verified against the host name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
