"""fetch_url against a real HTTP server on 127.0.0.1, and the address classifier on literal IPs.

No test contacts a non-loopback address: where a "public" host is needed, the module's resolver
or classifier is replaced so that the check passes (or fails) before any connection is made.
"""

from __future__ import annotations

import io
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from facesearch.errors import FetchRefused
from facesearch.media import fetch as fetch_module
from facesearch.media.fetch import MAX_REDIRECTS, FetchedImage, fetch_url, is_public_address
from tests.helpers import missing


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = png_bytes()
BIG_SIZE = 300_000
SMALL_LIMIT = 100_000


@dataclass
class ServerState:
    """What the handler saw, so tests can assert on requests (Host header, paths)."""

    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ServerState

    def log_message(self, format: str, *args: object) -> None:  # silence the default stderr log
        pass

    def handle(self) -> None:
        # The client hanging up mid-body is what the size and time caps are for: not a server error.
        with suppress(BrokenPipeError, ConnectionResetError):
            super().handle()

    def do_GET(self) -> None:
        self.state.hosts.append(self.headers.get("Host", ""))
        self.state.paths.append(self.path)
        parsed = urlsplit(self.path)
        route = getattr(self, "route_" + parsed.path.strip("/").split("/")[0].replace("-", "_"), None)
        if route is None:
            self.reply(404, "text/plain", b"not found")
        else:
            route(parsed)

    def reply(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def route_image(self, parsed: object) -> None:
        self.reply(200, "image/png", PNG)

    def route_page(self, parsed: object) -> None:
        self.reply(200, "text/html; charset=utf-8", b"<html><body>hello</body></html>")

    def route_untyped(self, parsed: object) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def route_big(self, parsed: object) -> None:
        self.reply(200, "image/jpeg", b"\xff" * BIG_SIZE)

    def route_big_undeclared(self, parsed: object) -> None:
        """No Content-Length: the body ends when the connection closes, only streaming can cap it."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Connection", "close")
        self.end_headers()
        for _ in range(BIG_SIZE // 10_000):
            self.wfile.write(b"\xff" * 10_000)
        self.close_connection = True

    def route_big_chunked(self, parsed: object) -> None:
        """Chunked transfer encoding: no length is known up front."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(BIG_SIZE // 10_000):
            self.wfile.write(b"%x\r\n%s\r\n" % (10_000, b"\xff" * 10_000))
        self.wfile.write(b"0\r\n\r\n")

    def route_redirect(self, parsed: object) -> None:
        """/redirect/N redirects N times (relative Location) and then serves the image."""
        remaining = int(parsed.path.rsplit("/", 1)[1])  # type: ignore[attr-defined]
        location = "/image" if remaining <= 1 else f"/redirect/{remaining - 1}"
        self.reply(302, "text/plain", b"", Location=location)

    def route_redirect_to(self, parsed: object) -> None:
        target = parse_qs(parsed.query)["target"][0]  # type: ignore[attr-defined]
        self.reply(301, "text/plain", b"", Location=target)

    def route_redirect_nowhere(self, parsed: object) -> None:
        self.reply(302, "text/plain", b"")

    def route_error(self, parsed: object) -> None:
        self.reply(500, "text/plain", b"boom")

    def route_slow(self, parsed: object) -> None:
        self.state.stop.wait(5)
        self.reply(200, "image/png", PNG)

    def route_drip(self, parsed: object) -> None:
        """Sends a byte every 50 ms: each read is fast, the whole body would take minutes."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(100_000):
            if self.state.stop.wait(0.05):
                return
            self.wfile.write(b"\x00")
            self.wfile.flush()


@dataclass
class LocalServer:
    base: str
    port: int
    state: ServerState


@contextmanager
def serve(context: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    """A threaded HTTP(S) server on 127.0.0.1 with an OS-chosen port, shut down on exit."""
    state = ServerState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if context else "http"
    try:
        yield LocalServer(f"{scheme}://127.0.0.1:{port}", port, state)
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with serve() as running:
        yield running


def refusal(url: str, **kwargs: object) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        fetch_url(url, **kwargs)  # type: ignore[arg-type]
    return caught.value


def resolve_to(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    """Replace DNS for the named hosts only; IP literals keep the real (local) code path."""
    real = fetch_module._resolve

    def fake(host: str, port: int, timeout: float) -> list[str]:
        return table[host] if host in table else real(host, port, timeout)

    monkeypatch.setattr(fetch_module, "_resolve", fake)


# --- the address classifier -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
        "64:ff9b:1::1",
        "not-an-ip",
        "",
        "999.1.1.1",
    ],
)
def test_non_public_addresses(ip: str) -> None:
    assert is_public_address(ip) is False


@pytest.mark.parametrize(
    "ip",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"],
)
def test_public_addresses(ip: str) -> None:
    assert is_public_address(ip) is True


# --- successful fetches ---------------------------------------------------------------------------


def test_fetches_an_image_with_allow_private(server: LocalServer) -> None:
    fetched = fetch_url(f"{server.base}/image", allow_private=True)
    assert fetched == FetchedImage(url=f"{server.base}/image", data=PNG, content_type="image/png")


def test_follows_redirects_and_reports_the_final_url(server: LocalServer) -> None:
    fetched = fetch_url(f"{server.base}/redirect/{MAX_REDIRECTS}", allow_private=True)
    assert fetched.url == f"{server.base}/image"
    assert fetched.data == PNG


def test_connects_to_the_checked_address_with_the_original_host_header(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "photos.invalid" cannot resolve for real: success proves the request went to the pinned IP.
    resolve_to(monkeypatch, {"photos.invalid": ["127.0.0.1"]})
    fetched = fetch_url(f"http://photos.invalid:{server.port}/image", allow_private=True)
    assert fetched.data == PNG
    assert fetched.url == f"http://photos.invalid:{server.port}/image"
    assert server.state.hosts[-1] == f"photos.invalid:{server.port}"


def test_credentials_are_not_reported_in_the_url(server: LocalServer) -> None:
    fetched = fetch_url(f"http://user:secret@127.0.0.1:{server.port}/image", allow_private=True)
    assert "secret" not in fetched.url
    assert fetched.url == f"{server.base}/image"


def test_uses_a_caller_supplied_client_without_closing_it(server: LocalServer) -> None:
    with httpx.Client(follow_redirects=True) as client:
        fetched = fetch_url(f"{server.base}/redirect/2", allow_private=True, client=client)
        assert fetched.data == PNG
        assert not client.is_closed


# --- refusals -------------------------------------------------------------------------------------


def test_loopback_is_refused_without_allow_private(server: LocalServer) -> None:
    before = len(server.state.paths)
    error = refusal(f"{server.base}/image")
    assert error.code == "private_address"
    assert f"{server.base}/image" in str(error)
    assert "127.0.0.1" in str(error)
    assert len(server.state.paths) == before  # refused before connecting


def test_localhost_name_is_refused(server: LocalServer) -> None:
    assert refusal(f"http://localhost:{server.port}/image").code == "private_address"


def test_ipv6_loopback_literal_is_refused() -> None:
    assert refusal("http://[::1]:9/image").code == "private_address"


def test_any_private_address_among_public_ones_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, {"mixed.invalid": ["93.184.216.34", "10.0.0.7"]})
    error = refusal("http://mixed.invalid/photo.jpg")
    assert error.code == "private_address"
    assert "10.0.0.7" in str(error)
    assert "93.184.216.34" not in str(error)


def test_redirect_to_a_private_address_is_refused_at_the_hop(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend only 127.0.0.1 is public, so the first hop passes; the redirect points at another
    # loopback address, which must be refused before any connection to it is attempted.
    monkeypatch.setattr(fetch_module, "is_public_address", lambda ip: ip == "127.0.0.1")
    target = f"http://127.0.0.2:{server.port}/image"
    error = refusal(f"{server.base}/redirect-to?target={target}")
    assert error.code == "private_address"
    assert "127.0.0.2" in str(error)
    assert target in str(error)


def test_redirect_to_another_scheme_is_refused(server: LocalServer) -> None:
    error = refusal(f"{server.base}/redirect-to?target=file:///etc/passwd", allow_private=True)
    assert error.code == "bad_scheme"
    assert "file" in str(error)


def test_too_many_redirects(server: LocalServer) -> None:
    error = refusal(f"{server.base}/redirect/{MAX_REDIRECTS + 1}", allow_private=True)
    assert error.code == "too_many_redirects"
    assert f"/redirect/{MAX_REDIRECTS + 1}" in str(error)


def test_redirect_without_location(server: LocalServer) -> None:
    assert refusal(f"{server.base}/redirect-nowhere", allow_private=True).code == "http_error"


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "javascript:alert(1)", "a.jpg"])
def test_bad_scheme(url: str) -> None:
    error = refusal(url)
    assert error.code == "bad_scheme"
    assert url in str(error)


def test_url_without_host() -> None:
    assert refusal("http:///image.png").code == "bad_url"


def test_html_page_is_refused(server: LocalServer) -> None:
    error = refusal(f"{server.base}/page", allow_private=True)
    assert error.code == "bad_content_type"
    assert "text/html" in str(error)


def test_missing_content_type_is_refused(server: LocalServer) -> None:
    assert refusal(f"{server.base}/untyped", allow_private=True).code == "bad_content_type"


def test_declared_length_over_the_limit(server: LocalServer) -> None:
    error = refusal(f"{server.base}/big", allow_private=True, max_bytes=SMALL_LIMIT)
    assert error.code == "too_large"
    assert "Content-Length" in str(error)
    assert fetch_url(f"{server.base}/big", allow_private=True, max_bytes=BIG_SIZE).data == b"\xff" * BIG_SIZE


@pytest.mark.parametrize("route", ["big-undeclared", "big-chunked"])
def test_streamed_body_over_the_limit(server: LocalServer, route: str) -> None:
    error = refusal(f"{server.base}/{route}", allow_private=True, max_bytes=SMALL_LIMIT)
    assert error.code == "too_large"
    assert str(SMALL_LIMIT) in str(error)


@pytest.mark.parametrize(("route", "status"), [("missing", "404"), ("error", "500")])
def test_http_errors_name_the_status(server: LocalServer, route: str, status: str) -> None:
    error = refusal(f"{server.base}/{route}", allow_private=True)
    assert error.code == "http_error"
    assert status in str(error)
    assert f"/{route}" in str(error)


def test_slow_server_times_out(server: LocalServer) -> None:
    started = time.monotonic()
    error = refusal(f"{server.base}/slow", allow_private=True, timeout=0.3)
    assert error.code == "timeout"
    assert time.monotonic() - started < 2.0


def test_dripping_body_is_bounded_by_the_overall_timeout(server: LocalServer) -> None:
    started = time.monotonic()
    error = refusal(f"{server.base}/drip", allow_private=True, timeout=0.5)
    assert error.code == "timeout"
    assert time.monotonic() - started < 2.0


def test_closed_port_is_a_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = refusal(f"http://127.0.0.1:{port}/image", allow_private=True)
    assert error.code == "network_error"
    assert str(port) in str(error)


def test_unresolvable_host_is_a_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(host: str, port: int, timeout: float) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetch_module, "_resolve", fail)
    error = refusal("http://nothing-here.invalid/a.png")
    assert error.code == "network_error"
    assert "nothing-here.invalid" in str(error)


def test_hanging_resolver_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(*args: object, **kwargs: object) -> list[object]:
        release.wait(5)
        return []

    monkeypatch.setattr(fetch_module.socket, "getaddrinfo", stuck)
    started = time.monotonic()
    try:
        error = refusal("http://stuck.invalid/a.png", timeout=0.3)
    finally:
        release.set()
    assert error.code == "timeout"
    assert time.monotonic() - started < 1.5


def test_invalid_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timeout"):
        fetch_url("http://example.com/a.png", timeout=0)


# --- TLS through the pinned address ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl command not available to make a test certificate")  # CI must run the TLS test
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=photos.test"]
        + ["-addext", "subjectAltName=DNS:photos.test"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def test_https_pins_the_address_and_keeps_sni_and_certificate_checks(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    sni_names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: sni_names.append(name)
    client_context = ssl.create_default_context(cafile=str(cert))
    resolve_to(monkeypatch, {"photos.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with serve(server_context) as tls_server, httpx.Client(verify=client_context) as client:
        fetched = fetch_url(f"https://photos.test:{tls_server.port}/image", allow_private=True, client=client)
        assert fetched.data == PNG
        assert sni_names == ["photos.test"]
        assert tls_server.state.hosts == [f"photos.test:{tls_server.port}"]
        # Same address, a name the certificate does not cover: verification must fail.
        error = refusal(f"https://other.test:{tls_server.port}/image", allow_private=True, client=client)
        assert error.code == "network_error"
        assert "certificate" in str(error).lower()
