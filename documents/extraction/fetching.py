"""Fetch a web page by URL without giving strangers a way into the server's network.

Adding a page by URL makes the server send a request where a user points it, so
the address is checked first (server-side request forgery): only http and https,
and only public addresses unless `URL_FETCH_ALLOW_PRIVATE` is on. Private,
loopback, link-local, multicast, reserved and unspecified addresses are refused,
also when they hide inside an IPv6 address (IPv4-mapped, 6to4, NAT64). The host
is resolved once and the connection goes to the address that was checked, so a
name that resolves differently a moment later (DNS rebinding) gains nothing.
Every redirect (at most `MAX_REDIRECTS`) is checked the same way. The body is
capped at the upload limit and the whole fetch at `URL_FETCH_TIMEOUT_S`.

Every failure is a `FetchError` whose message a person can read: it is shown
under the URL field of the page or the API.
"""

from __future__ import annotations

import html
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin

from django.conf import settings

from core import netguard
from core.netguard import address_is_public

__all__ = ["MAX_REDIRECTS", "FetchError", "Fetched", "address_is_public", "fetch_page", "page_title"]

MAX_REDIRECTS = 3
MAX_URL_CHARS = 2000
USER_AGENT = "Docent/1.0 (document workspace; fetches one page a user added)"
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_BYTES = 64 * 1024
# Characters a request path may keep as they are; anything else is percent-encoded.
_TITLE_SCAN_BYTES = 64 * 1024
_TITLE_MAX_BYTES = 2000
_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET_RE = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)


class FetchError(Exception):
    """A page could not be fetched; the message says why, for people."""


@dataclass(frozen=True)
class Fetched:
    url: str  # the address finally read, after any redirects
    data: bytes
    content_type: str


_Target = netguard.Target


class _Deadline:
    """One time budget for the whole fetch: resolving, connecting, redirects and reading."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self.end

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> FetchError:
        return FetchError(
            f"The page took longer than {self.seconds:g} seconds to fetch; the site may be slow or down."
        )


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------


def _addresses(host: str, port: int, deadline: _Deadline) -> list[str]:
    """The host's addresses, resolved once (core.netguard; the deadline holds)."""
    try:
        return netguard.resolve(host, port, timeout=deadline.remaining())
    except netguard.ResolveTimeout:
        raise deadline.expired() from None
    except netguard.HostNotFound:
        raise FetchError(f"The host name “{host}” could not be found.") from None


def _checked_addresses(host: str, port: int, deadline: _Deadline) -> list[str]:
    addresses = _addresses(host, port, deadline)
    if settings.URL_FETCH_ALLOW_PRIVATE:
        return addresses
    for address in addresses:
        # Every address must be public: a name may mix a public and a private one.
        if not address_is_public(ipaddress.ip_address(address)):
            shown = host if host == address else f"{host} ({address})"
            raise FetchError(
                f"The address {shown} is on a private, local or reserved network; "
                "only public web pages can be added."
            )
    return addresses


# --------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------


def _target(url: str) -> _Target:
    try:
        return netguard.target(
            url, schemes=("http", "https"), bad_scheme="Only http:// and https:// addresses can be fetched."
        )
    except netguard.BadAddress as exc:
        raise FetchError(str(exc)) from None


def normalise_url(url: str) -> str:
    """The URL as typed, trimmed; a bare host name ("example.com/page") gets https://."""
    url = (url or "").strip()
    if not url:
        raise FetchError("Enter the address of a web page.")
    if len(url) > MAX_URL_CHARS:
        raise FetchError(f"The address is longer than {MAX_URL_CHARS:,} characters.")
    if "://" not in url:
        url = "https://" + url
    return url


# --------------------------------------------------------------------------
# Connections pinned to the checked address
# --------------------------------------------------------------------------


# The connections go to the address that was checked (core.netguard).
_PinnedHTTPConnection = netguard.PinnedHTTPConnection
_PinnedHTTPSConnection = netguard.PinnedHTTPSConnection


def _connect(target: _Target, addresses: list[str], deadline: _Deadline) -> http.client.HTTPConnection:
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    last: OSError | None = None
    for address in addresses:
        conn = cls(target.host, target.port, address=address, timeout=deadline.remaining())
        try:
            conn.connect()
            return conn
        except ssl.SSLError as exc:
            conn.close()
            raise FetchError(f"The site's secure connection could not be verified: {_reason(exc)}") from None
        except OSError as exc:
            conn.close()
            last = exc
            if deadline.passed():
                raise deadline.expired() from None
    raise FetchError(f"The site could not be reached: {_reason(last)}")


def _reason(exc: BaseException | None) -> str:
    text = " ".join(str(exc or "").split()) or type(exc).__name__
    return text[:200]


# --------------------------------------------------------------------------
# The fetch
# --------------------------------------------------------------------------


def fetch_page(url: str) -> Fetched:
    """GET a web page: every hop's address checked, at most 3 redirects, bounded in size and time."""
    deadline = _Deadline(float(settings.URL_FETCH_TIMEOUT_S))
    current = normalise_url(url)
    for _hop in range(MAX_REDIRECTS + 1):
        target = _target(current)
        addresses = _checked_addresses(target.host, target.port, deadline)
        location, fetched = _get(target, addresses, current, deadline)
        if fetched is not None:
            return fetched
        current = urljoin(current, location)
    raise FetchError(
        f"The page redirected more than {MAX_REDIRECTS} times; add the address it finally shows instead."
    )


def _get(target: _Target, addresses: list[str], url: str, deadline: _Deadline) -> tuple[str, Fetched | None]:
    """One request: (the redirect's Location, None) or ("", the page)."""
    conn = _connect(target, addresses, deadline)
    sock = conn.sock
    # Closing the socket at the deadline ends a read that a trickling server keeps alive.
    watchdog = threading.Timer(deadline.remaining(), _abort, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(
            "GET",
            target.path,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                "Accept-Encoding": "identity",
            },
        )
        response = conn.getresponse()
        if response.status in _REDIRECT_STATUSES:
            location = response.getheader("Location", "").strip()
            if not location:
                raise FetchError(
                    f"The site answered with a redirect (HTTP {response.status}) but no address."
                )
            return location, None
        _check_status(response.status)
        content_type = response.getheader("Content-Type", "").strip()
        _check_type(content_type)
        data = _read_body(response, sock, deadline)
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.passed():
            raise deadline.expired() from None
        raise FetchError(f"The site could not be read: {_reason(exc)}") from None
    finally:
        watchdog.cancel()
        conn.close()
    return "", Fetched(url=url, data=data, content_type=content_type)


def _abort(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _check_status(status: int) -> None:
    if status in (200, 203):
        return
    if status in (404, 410):
        raise FetchError(f"The page was not found (HTTP {status}).")
    if status in (401, 403, 407):
        raise FetchError(
            f"The site refused access to the page (HTTP {status}); only public pages can be added."
        )
    if status == 429:
        raise FetchError("The site is limiting requests (HTTP 429); try again later.")
    if status >= 500:
        raise FetchError(f"The site answered with a server error (HTTP {status}); try again later.")
    if 200 <= status < 300:
        raise FetchError(f"The site sent no page (HTTP {status}).")
    raise FetchError(f"The site refused the request (HTTP {status}).")


def _check_type(content_type: str) -> None:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime and mime not in PAGE_TYPES:
        raise FetchError(
            f"The address is not a web page (the site says it is {mime}); "
            "download the file and upload it instead."
        )


def _too_large() -> FetchError:
    return FetchError(f"The page is larger than the {settings.DOCENT_MAX_UPLOAD_MB} MB limit.")


def _read_body(response: http.client.HTTPResponse, sock: socket.socket | None, deadline: _Deadline) -> bytes:
    limit = int(settings.MAX_UPLOAD_BYTES)
    declared = response.getheader("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        if sock is not None:
            sock.settimeout(deadline.remaining())
        chunk = response.read1(_READ_BYTES)
        if not chunk:
            # The watchdog ends a trickle by closing the socket, which reads as the end.
            if deadline.passed():
                raise deadline.expired()
            break
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
        if deadline.passed():
            raise deadline.expired()
    if declared and declared.strip().isdigit() and size < int(declared):
        raise FetchError("The site stopped sending the page before its end; try again later.")
    data = _decoded(b"".join(chunks), response.getheader("Content-Encoding", ""), limit)
    if not data.strip():
        raise FetchError("The site sent an empty page.")
    return data


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its content encoding (asked for none; some servers compress anyway)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(f"The site sent the page in an encoding that cannot be read ({encoding}).")
    # gzip header, else zlib (what "deflate" should be), else raw deflate (what it often is).
    wbits = (31,) if "gzip" in encoding else (15, -15)
    for bits in wbits:
        inflater = zlib.decompressobj(bits)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(data) > limit or inflater.unconsumed_tail:
            raise _too_large()
        return data
    raise FetchError("The site sent a damaged compressed page.")


# --------------------------------------------------------------------------
# What a fetched page is called
# --------------------------------------------------------------------------


def _charset(fetched: Fetched) -> str:
    match = _CHARSET_RE.search(fetched.content_type)
    if match:
        return match.group(1)
    meta = _META_CHARSET_RE.search(fetched.data[:_TITLE_SCAN_BYTES])
    return meta.group(1).decode("ascii") if meta else "utf-8"


def page_title(fetched: Fetched) -> str:
    """The page's <title>, on one line, or "" (found with plain searches: no parser here)."""
    head = fetched.data[:_TITLE_SCAN_BYTES]
    start = head.lower().find(b"<title")
    if start < 0:
        return ""
    open_end = head.find(b">", start)
    if open_end < 0:
        return ""
    close = head.lower().find(b"</title", open_end)
    raw = head[open_end + 1 : close if close >= 0 else open_end + 1 + _TITLE_MAX_BYTES][:_TITLE_MAX_BYTES]
    try:
        text = raw.decode(_charset(fetched), errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    return " ".join(html.unescape(text).split())
