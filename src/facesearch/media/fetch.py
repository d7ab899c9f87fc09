"""Download one image from a URL without letting the URL reach places it must not (SSRF).

A user-supplied URL is an instruction to make *this server* open a connection. Without checks it
could read the cloud metadata endpoint (169.254.169.254), an admin page on localhost, or any host
on the private network, and a hostile server could stall or flood the ingestion batch. So
:func:`fetch_url`:

* accepts only ``http`` and ``https``;
* resolves the host itself and refuses it when *any* of its addresses is not public (private,
  loopback, link-local, multicast, reserved, unspecified, shared, IPv4 embedded in IPv6...),
  unless ``allow_private`` is set;
* connects to the very address it checked (the "pin"), sending the original name in the ``Host``
  header and as TLS SNI, and verifying the certificate against that name. A DNS answer that changes
  between the check and the connection (DNS rebinding) therefore cannot redirect the request;
* follows at most :data:`MAX_REDIRECTS` redirects itself, re-checking scheme and addresses at
  every hop;
* requires an ``image/*`` content type and caps the body, from ``Content-Length`` and while
  streaming;
* bounds the whole operation, DNS included, by ``timeout``.

Every refusal is a :class:`~facesearch.errors.FetchRefused` whose message names the URL and the
reason, and whose ``code`` is one of ``bad_url``, ``bad_scheme``, ``private_address``,
``too_many_redirects``, ``http_error``, ``bad_content_type``, ``too_large``, ``timeout`` or
``network_error``.

Limitations: when a caller passes its own ``client`` configured with a proxy, the proxy connects
to the pinned address but may apply its own policy; the pin cannot stop a proxy that resolves
names itself, so only pass such a client when the proxy is trusted.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from facesearch._version import __version__
from facesearch.errors import FetchRefused

logger = logging.getLogger(__name__)

__all__ = ["MAX_REDIRECTS", "FetchedImage", "fetch_url", "is_public_address"]

#: Redirect hops followed before giving up: enough for http->https plus a CDN or two.
MAX_REDIRECTS = 5

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Non-public ranges that Python 3.11's ``is_global``/``is_private`` miss or got wrong in some
#: patch releases: shared address space (CGNAT), IETF protocol assignments, the 6to4 relay anycast,
#: benchmarking, multicast, class E, and the local-use NAT64 prefix.
_ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "64:ff9b:1::/48",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchedImage:
    """The body of a successful fetch.

    ``url`` is the final URL after redirects, with any ``user:password@`` removed so it can be
    stored as provenance. ``content_type`` is the lower-cased media type without parameters
    (e.g. ``image/jpeg``); the bytes still have to go through ``decode_image``.
    """

    url: str
    data: bytes
    content_type: str


def is_public_address(ip: str) -> bool:
    """Whether ``ip`` (an IPv4 or IPv6 literal) is a globally routable unicast address.

    IPv4 addresses embedded in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
    ``64:ff9b::/96``) are judged by the IPv4 address they lead to, because that is where the
    packets end up. An IPv6 zone (``fe80::1%eth0``) is ignored; anything unparseable is not public.
    """
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return _is_public(address)


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _is_public(embedded)
    if any(address in network for network in _ALWAYS_BLOCKED if network.version == address.version):
        return False
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )
    return address.is_global and not special


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def fetch_url(
    url: str,
    *,
    timeout: float = 15.0,
    max_bytes: int = 50 * 1024 * 1024,
    allow_private: bool = False,
    client: httpx.Client | None = None,
) -> FetchedImage:
    """Download the image at ``url``, or raise :class:`FetchRefused` saying why not.

    ``timeout`` bounds each network operation and, checked between them, the whole fetch
    (resolution, redirects, body), so a server that drips bytes cannot hold a batch worker: the
    worst case is about twice ``timeout``. ``allow_private`` lifts the address check, for
    deliberately self-hosted sources on the local network. A caller-supplied ``client`` is used
    as is (its redirect setting is overridden) and is not closed; without one a short-lived client
    that ignores proxy environment variables is used, since a proxy would defeat the address pin.
    """
    if timeout <= 0 or max_bytes <= 0:
        raise ValueError(f"timeout and max_bytes must be positive, got {timeout} and {max_bytes}")
    deadline = time.monotonic() + timeout
    original = current = _parse_url(url, url)
    http = client or httpx.Client(
        trust_env=False, follow_redirects=False, headers={"User-Agent": f"facesearch/{__version__}"}
    )
    try:
        for _ in range(MAX_REDIRECTS + 1):
            response = _send(http, current, allow_private, deadline)
            try:
                target = _redirect_target(response, current)
                if target is None:
                    return _read_image(response, current, max_bytes, deadline)
            finally:
                response.close()
            logger.debug("following redirect %s -> %s", _display(current), _display(target))
            current = target
        raise FetchRefused(
            f"refused {_display(original)}: more than {MAX_REDIRECTS} redirects (last: {_display(current)})",
            code="too_many_redirects",
        )
    finally:
        if client is None:
            http.close()


def _display(url: httpx.URL) -> str:
    """The URL without credentials: it goes into messages, logs and the stored provenance."""
    return str(url.copy_with(username=None, password=None))


def _parse_url(raw: str, context: str) -> httpx.URL:
    """Parse and vet one URL (the original or a redirect target); ``context`` names it in messages."""
    try:
        parsed = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused(f"refused {context!r}: not a valid URL ({exc})", code="bad_url") from exc
    if parsed.scheme not in _SCHEMES:
        scheme = parsed.scheme or "none"
        raise FetchRefused(
            f"refused {context!r}: scheme {scheme!r} is not allowed, only http and https",
            code="bad_scheme",
        )
    if not parsed.raw_host:
        raise FetchRefused(f"refused {context!r}: the URL has no host", code="bad_url")
    return parsed


def _redirect_target(response: httpx.Response, current: httpx.URL) -> httpx.URL | None:
    """The next hop's URL for a redirect response, vetted like the original; None otherwise."""
    if response.status_code not in _REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if not location:
        raise FetchRefused(
            f"refused {_display(current)}: HTTP {response.status_code} redirect without a Location header",
            code="http_error",
        )
    try:
        joined = current.join(location)
    except httpx.InvalidURL as exc:
        raise FetchRefused(
            f"refused {_display(current)}: invalid redirect Location {location!r} ({exc})", code="bad_url"
        ) from exc
    return _parse_url(str(joined), f"{_display(joined)} (redirected from {_display(current)})")


def _send(http: httpx.Client, url: httpx.URL, allow_private: bool, deadline: float) -> httpx.Response:
    """Open a streamed GET to one of the checked addresses of ``url``'s host.

    Addresses are tried in resolver order, moving on only when a connection cannot be established
    (as a browser would when, say, IPv6 is unreachable).
    """
    host = url.raw_host.decode("ascii")
    addresses = _checked_addresses(url, host, allow_private, deadline)
    headers = {"Host": url.netloc.decode("ascii"), "Accept": "image/*", "Accept-Encoding": "identity"}
    if url.scheme == "https":
        # A pooled TLS connection was verified for the name it was opened with; do not let a
        # later request for another name that resolves to the same address reuse it.
        headers["Connection"] = "close"
    last_error: httpx.ConnectError | None = None
    for address in addresses:
        request = http.build_request(
            "GET",
            url.copy_with(host=address.split("%", 1)[0]),
            headers=headers,
            extensions={"sni_hostname": host},
            timeout=_remaining(deadline, url),
        )
        with _network_errors(url):
            try:
                return http.send(request, stream=True, follow_redirects=False)
            except httpx.ConnectError as exc:
                logger.debug("cannot connect to %s for %s: %s", address, _display(url), exc)
                last_error = exc
    raise FetchRefused(
        f"refused {_display(url)}: cannot connect to {host} ({last_error})", code="network_error"
    ) from last_error


def _checked_addresses(url: httpx.URL, host: str, allow_private: bool, deadline: float) -> list[str]:
    """Resolve ``host`` and refuse it if any address is not public: an attacker's DNS can return
    one public and one private address and let the client pick."""
    port = url.port or _SCHEMES[url.scheme]
    try:
        addresses = _resolve(host, port, _remaining(deadline, url))
    except TimeoutError as exc:
        raise FetchRefused(f"refused {_display(url)}: resolving {host} timed out", code="timeout") from exc
    except (OSError, UnicodeError) as exc:
        raise FetchRefused(f"refused {_display(url)}: cannot resolve {host} ({exc})", code="network_error") from exc
    if not addresses:
        raise FetchRefused(f"refused {_display(url)}: {host} has no address", code="network_error")
    if not allow_private:
        blocked = [address for address in addresses if not is_public_address(address)]
        if blocked:
            raise FetchRefused(
                f"refused {_display(url)}: {host} resolves to non-public address "
                f"{', '.join(blocked)} (pass allow_private=True for trusted local sources)",
                code="private_address",
            )
    return addresses


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """Resolve ``host`` to unique IP strings, in resolver order, within ``timeout`` seconds.

    ``socket.getaddrinfo`` has no timeout of its own, so it runs in a daemon thread that is
    abandoned (not killed) if the system resolver hangs; the caller gets :class:`TimeoutError`.
    """
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    found: list[list[tuple[Any, ...]]] = []
    failed: list[Exception] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, name=f"facesearch-resolve-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if failed:
        raise failed[0]
    if not found:
        raise TimeoutError(f"resolving {host} took more than {timeout:.1f} s")
    # getaddrinfo entries are (family, type, proto, canonname, sockaddr); sockaddr[0] is the IP.
    return list(dict.fromkeys(str(info[4][0]) for info in found[0]))


def _remaining(deadline: float, url: httpx.URL) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused(f"refused {_display(url)}: timed out", code="timeout")
    return left


@contextmanager
def _network_errors(url: httpx.URL) -> Iterator[None]:
    """Translate httpx's transport failures into refusals that name the URL."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise FetchRefused(f"refused {_display(url)}: timed out ({type(exc).__name__})", code="timeout") from exc
    except httpx.RequestError as exc:
        raise FetchRefused(
            f"refused {_display(url)}: network error ({type(exc).__name__}: {exc})", code="network_error"
        ) from exc


def _read_image(response: httpx.Response, url: httpx.URL, max_bytes: int, deadline: float) -> FetchedImage:
    """Check status, type and declared size, then stream the body under the byte and time caps."""
    shown = _display(url)
    if not 200 <= response.status_code < 300:
        raise FetchRefused(f"refused {shown}: server answered HTTP {response.status_code}", code="http_error")
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not content_type.startswith("image/"):
        raise FetchRefused(
            f"refused {shown}: content type {content_type or 'missing'!r} is not an image",
            code="bad_content_type",
        )
    declared = _content_length(response)
    if declared is not None and declared > max_bytes:
        raise FetchRefused(
            f"refused {shown}: Content-Length {declared} bytes exceeds the limit of {max_bytes}",
            code="too_large",
        )
    data = _read_body(response, url, max_bytes, deadline)
    return FetchedImage(url=shown, data=data, content_type=content_type)


def _content_length(response: httpx.Response) -> int | None:
    """The declared length, or None when absent or malformed (the streaming cap still applies)."""
    try:
        return int(response.headers.get("content-length", ""))
    except ValueError:
        return None


def _read_body(response: httpx.Response, url: httpx.URL, max_bytes: int, deadline: float) -> bytes:
    """Stream the body, refusing as soon as it passes ``max_bytes`` or the deadline.

    The cap counts decoded bytes: we ask for ``identity`` encoding, but a server may compress
    anyway, and it is the decompressed size that costs memory.
    """
    chunks: list[bytes] = []
    total = 0
    with _network_errors(url):
        # No chunk_size: httpx would buffer up to it before yielding, and a server dripping one byte
        # at a time would then never reach the deadline check.
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise FetchRefused(
                    f"refused {_display(url)}: body exceeds the limit of {max_bytes} bytes", code="too_large"
                )
            chunks.append(chunk)
            _remaining(deadline, url)
    return b"".join(chunks)
