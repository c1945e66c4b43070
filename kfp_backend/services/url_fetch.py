"""Downloading a pipeline package over http(s) for a caller (create pipeline / version from a URL).

`fetch` is the plain download of single-user mode: urllib, with the environment's proxies and redirects.

`fetch_public` is multi-user mode's, where a caller must not make the server reach what only the server
can reach (server-side request forgery: its own loopback services, a cloud metadata endpoint, the private
network). Before every connection, the first and each redirect's, the host is resolved and every address
it resolves to must be public: not loopback, private, link-local, unspecified, multicast or reserved
(IPv4 addresses embedded in IPv6 ones are judged as IPv4), unless the allow-list names the host or covers
the address. The connection then goes to an address just checked, while the Host header and the TLS name
stay the URL's: a name that resolves to another address a moment later (DNS rebinding) changes nothing.
Proxies are not used there, since a proxy would resolve the name again itself.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urljoin, urlsplit

from kfp_backend.config import AllowedHosts

USER_AGENT = "kfp-backend"
MAX_REDIRECTS = 10  # as urllib
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DOWNLOAD_CHUNK = 1 << 16

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# What getaddrinfo gives for one address: its family and the socket address to connect to.
Destination = tuple[int, Any]


class TooLarge(Exception):
    """The body is larger than the limit."""


class DestinationRefused(Exception):
    """`url` (the one asked for, or a redirect) names a host that resolves to a non-public address."""

    def __init__(self, url: str, host: str) -> None:
        super().__init__(f"{host} resolves to a non-public address")
        self.url = url
        self.host = host


def is_public(address: Address) -> bool:
    """Globally reachable unicast: what a download for a caller may connect to."""
    candidates: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4-mapped address is its IPv4 address; 6to4 and Teredo ones carry one that is reached too.
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.sixtofour is not None:
            candidates.append(address.sixtofour)
        if address.teredo is not None:
            candidates.append(address.teredo[1])
    return all(
        candidate.is_global and not (candidate.is_multicast or candidate.is_reserved or candidate.is_loopback)
        for candidate in candidates
    )


def _resolve(host: str, port: int) -> list[Destination]:
    """Every address `host` resolves to (a separate function: tests stand in for the resolver)."""
    return [(family, sockaddr) for family, _, _, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)]


def _address(destination: Destination) -> Address:
    return ipaddress.ip_address(str(destination[1][0]).split("%", 1)[0])


def checked_destinations(url: str, host: str, port: int, allowed: AllowedHosts) -> list[Destination]:
    """The addresses of `host`, once every one of them may be reached (DestinationRefused otherwise)."""
    destinations = _resolve(host, port)
    if not destinations:
        raise urllib.error.URLError(f"{host} resolves to no address")
    if not allowed.names_host(host):
        for destination in destinations:
            address = _address(destination)
            if not is_public(address) and not allowed.covers_address(address):
                raise DestinationRefused(url, host)
    return destinations


def _open_socket(destination: Destination, timeout: float) -> socket.socket:
    family, sockaddr = destination
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `destination`, whatever `host` resolves to now (Host header: `host`)."""

    def __init__(self, host: str, port: int, destination: Destination, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._destination = destination

    def connect(self) -> None:
        self.sock = _open_socket(self._destination, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As _PinnedHTTPConnection, over TLS checked against `host` (its certificate and SNI)."""

    def __init__(self, host: str, port: int, destination: Destination, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._destination = destination
        self._tls = context

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(_open_socket(self._destination, self.timeout), server_hostname=self.host)


def _connect(https: bool, host: str, port: int, destinations: list[Destination],
             timeout: float) -> http.client.HTTPConnection:
    """A connection to the first of `destinations` that answers."""
    context = ssl.create_default_context() if https else None
    failure: OSError | None = None
    for destination in destinations:
        connection: http.client.HTTPConnection
        if context is not None:
            connection = _PinnedHTTPSConnection(host, port, destination, timeout, context)
        else:
            connection = _PinnedHTTPConnection(host, port, destination, timeout)
        try:
            connection.connect()
            return connection
        except OSError as exc:
            connection.close()
            failure = exc
    assert failure is not None
    raise failure


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the download took too long")
    return left


def fetch_public(url: str, limit: int, timeout: float, allowed: AllowedHosts) -> bytes:
    """The body at `url` (status 200 after at most MAX_REDIRECTS redirects), reaching only public addresses
    or those `allowed` names. Raises DestinationRefused, TooLarge, OSError, ValueError, HTTPException."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.URLError(f"{url} is not an http or https URL")
        host = parts.hostname
        if not host:
            raise urllib.error.URLError(f"{url} names no host")
        port = parts.port or (443 if scheme == "https" else 80)
        destinations = checked_destinations(url, host, port, allowed)
        connection = _connect(scheme == "https", host, port, destinations, _remaining(deadline))
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers={"User-Agent": USER_AGENT})
            response = connection.getresponse()
            if response.status in REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise urllib.error.URLError(f"HTTP status {response.status} without a Location")
                url = urljoin(url, location.strip())
                continue
            if response.status != 200:
                raise urllib.error.URLError(f"HTTP status {response.status}")
            return read_limited(response, limit, deadline, timeout)
        finally:
            connection.close()
    raise urllib.error.URLError(f"more than {MAX_REDIRECTS} redirects")


def _opener() -> urllib.request.OpenerDirector:
    """http(s) only, redirects included (a redirect to any other scheme fails); proxies from the environment."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def fetch(url: str, limit: int, timeout: float) -> bytes:
    """The body at `url`, as any client would download it (single-user mode)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with _opener().open(request, timeout=timeout) as response:
        if response.status != 200:
            raise urllib.error.URLError(f"HTTP status {response.status}")
        return read_limited(response, limit, deadline, timeout)


def read_limited(response: http.client.HTTPResponse, limit: int, deadline: float, timeout: float) -> bytes:
    """The body, refused (TooLarge) beyond `limit` bytes and (TimeoutError) after `deadline`."""
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        # read1: what has arrived (at most one socket read), so a trickling server meets the deadline.
        chunk = response.read1(_DOWNLOAD_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError(f"download took longer than {timeout} seconds")
    return b"".join(chunks)
