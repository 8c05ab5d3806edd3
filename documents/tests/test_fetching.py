"""Adding a web page by URL: a real HTTP server on loopback, and every address that must be refused.

The server runs on 127.0.0.1, so the tests that read from it turn
URL_FETCH_ALLOW_PRIVATE on; the tests of refused addresses leave it off (the
default) and make sure no connection is even attempted.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from documents import services
from documents.extraction import fetching, readers
from documents.extraction.fetching import FetchError, address_is_public, fetch_page
from documents.models import Document, DocumentStatus
from documents.tests import samples
from projects.models import Project


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path
        if path in ("/articles/tides.html", "/"):
            self._send(200, samples.NEWS_PAGE)
        elif path == "/host":
            self._send(
                200, b"<html><body><p>Host was " + self.headers["Host"].encode() + b"</p></body></html>"
            )
        elif path == "/missing":
            self._send(404, b"<html><body>Not here</body></html>")
        elif path == "/broken":
            self._send(503, b"<html><body>Down</body></html>")
        elif path == "/private":
            self._send(403, b"<html><body>Members only</body></html>")
        elif path.startswith("/redirect/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/redirect/{left - 1}" if left else "/articles/tides.html")
        elif path == "/to-private":
            self._redirect("http://10.0.0.1/admin")
        elif path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/report.pdf":
            self._send(200, b"%PDF-1.4 not really", content_type="application/pdf")
        elif path == "/gzipped":
            self._send(200, gzip.compress(samples.NEWS_PAGE), Content_Encoding="gzip")
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
        elif path == "/big-unannounced":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"<p>" + b"x" * 16 * 1024 + b"</p>")
            except OSError:
                pass
        elif path == "/slow":
            time.sleep(3)
            self._send(200, samples.NEWS_PAGE)
        elif path == "/cut":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"<html><body>only the start")
            self.close_connection = True
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        else:
            self._send(404, b"")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer is what these tests are about


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.URL_FETCH_ALLOW_PRIVATE = True


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a connection was attempted to {args[0]}")

    monkeypatch.setattr(fetching.socket, "create_connection", refuse)


# -- Addresses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
    ],
)
def test_non_global_addresses_are_not_public(address: str) -> None:
    assert not address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert address_is_public(ipaddress.ip_address(address))


@pytest.mark.usefixtures("no_connections")
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://10.0.0.5/internal",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://LOCALHOST./admin",
    ],
)
def test_private_and_local_addresses_are_refused_with_the_setting_off(url: str) -> None:
    with pytest.raises(FetchError, match="private, local or reserved network; only public web pages"):
        fetch_page(url)


@pytest.mark.usefixtures("no_connections")
def test_a_host_name_that_resolves_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "intranet.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(fetching.socket, "getaddrinfo", resolve)
    with pytest.raises(FetchError, match=r"intranet\.example\.com \(127\.0\.0\.1\) is on a private"):
        fetch_page("https://intranet.example.com/wiki")


@pytest.mark.usefixtures("no_connections")
def test_a_name_with_one_private_address_among_public_ones_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    addresses = ["93.184.216.34", "10.0.0.7"]
    monkeypatch.setattr(
        fetching.socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ],
    )
    with pytest.raises(FetchError, match="10.0.0.7"):
        fetch_page("http://mixed.example.com/")


@pytest.mark.usefixtures("no_connections")
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file", "Only http:// and https://"),
        ("file:///etc/passwd", "Only http:// and https://"),
        ("http://user:secret@example.com/", "user name or password"),
        ("http:///nohost", "no host name"),
        ("http://example.com:99999/", "not a valid URL"),
        ("   ", "Enter the address of a web page"),
        ("https://example.com/" + "a" * 2000, "longer than 2,000 characters"),
    ],
)
def test_bad_addresses_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(FetchError, match=message):
        fetch_page(url)


def test_an_unknown_host_name_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetching.socket, "getaddrinfo", fail)
    with pytest.raises(FetchError, match="“nowhere.example” could not be found"):
        fetch_page("nowhere.example/page")


# -- Fetching from the local server ------------------------------------------


@pytest.mark.usefixtures("allow_private")
def test_a_page_is_fetched_with_the_setting_on(server: str) -> None:
    fetched = fetch_page(server + "/articles/tides.html")
    assert fetched.data == samples.NEWS_PAGE
    assert fetched.content_type.startswith("text/html")
    assert fetching.page_title(fetched) == "Tide tables | Harbour News"


@pytest.mark.usefixtures("allow_private")
def test_the_connection_goes_to_the_address_that_was_checked(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(server.rsplit(":", 1)[1])
    lookups: list[str] = []

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(fetching.socket, "getaddrinfo", resolve)
    fetched = fetch_page(f"http://docs.example.test:{port}/host")
    # The name is resolved once, by us (connecting then only parses the checked address);
    # the request still names the host the user gave.
    assert lookups.count("docs.example.test") == 1
    assert set(lookups) <= {"docs.example.test", "127.0.0.1"}
    assert f"Host was docs.example.test:{port}".encode() in fetched.data


@pytest.mark.usefixtures("allow_private")
def test_up_to_three_redirects_are_followed(server: str) -> None:
    fetched = fetch_page(server + "/redirect/2")
    assert fetched.url.endswith("/articles/tides.html")


@pytest.mark.usefixtures("allow_private")
def test_more_than_three_redirects_are_refused(server: str) -> None:
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch_page(server + "/redirect/3")


@pytest.mark.parametrize(
    ("path", "target"), [("/to-private", "10.0.0.1"), ("/to-metadata", "169.254.169.254")]
)
def test_a_redirect_to_a_private_address_is_refused(
    server: str, path: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The setting stays off; the test server stands in for a public site.
    public = fetching.address_is_public
    monkeypatch.setattr(fetching, "address_is_public", lambda ip: str(ip) == "127.0.0.1" or public(ip))
    with pytest.raises(FetchError, match=f"{target} is on a private, local or reserved network"):
        fetch_page(server + path)


@pytest.mark.usefixtures("allow_private")
def test_a_redirect_to_another_scheme_is_refused(server: str) -> None:
    with pytest.raises(FetchError, match="Only http:// and https://"):
        fetch_page(server + "/to-file")


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing", r"The page was not found \(HTTP 404\)\."),
        ("/broken", r"server error \(HTTP 503\); try again later"),
        ("/private", r"refused access to the page \(HTTP 403\)"),
        ("/report.pdf", "not a web page .*application/pdf.*upload it instead"),
        ("/cut", "stopped sending the page before its end"),
    ],
)
def test_http_failures_have_clear_reasons(server: str, path: str, message: str) -> None:
    with pytest.raises(FetchError, match=message):
        fetch_page(server + path)


@pytest.mark.usefixtures("allow_private")
def test_a_gzipped_page_is_decoded(server: str) -> None:
    assert fetch_page(server + "/gzipped").data == samples.NEWS_PAGE


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_a_page_over_the_upload_limit_is_refused(server: str, path: str, settings: Any) -> None:
    settings.DOCENT_MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = 512 * 1024
    with pytest.raises(FetchError, match="larger than the 1 MB limit"):
        fetch_page(server + path)


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_a_slow_response_is_cut_off_at_the_time_limit(server: str, path: str, settings: Any) -> None:
    settings.URL_FETCH_TIMEOUT_S = 1
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 1 seconds"):
        fetch_page(server + path)
    assert time.monotonic() - started < 2.5


# -- The service, the API and the page ---------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
def test_a_document_is_created_from_a_url_and_indexed_for_its_main_content(
    server: str, user: Any, project: Project
) -> None:
    url = server + "/articles/tides.html"
    doc = services.document_create(user=user, project=project, url=url)
    assert doc.title == "Tide tables | Harbour News"
    assert doc.source == url
    assert doc.original_filename == "tides" + readers.WEB_PAGE_SUFFIX
    assert doc.format == "web"
    with doc.file.open("rb") as stored:
        assert stored.read() == samples.NEWS_PAGE
    services.document_ingest(document_id=doc.pk)
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY, doc.error
    assert "Fishermen welcomed the news" in doc.text
    assert "Sport menu link" not in doc.text


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
def test_a_failed_fetch_is_a_validation_error_on_url(server: str, user: Any, project: Project) -> None:
    with pytest.raises(ValidationError) as caught:
        services.document_create(user=user, project=project, url=server + "/missing")
    assert caught.value.message_dict == {"url": ["The page was not found (HTTP 404)."]}
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_the_default_refuses_a_loopback_url_at_creation(server: str, user: Any, project: Project) -> None:
    with pytest.raises(ValidationError) as caught:
        services.document_create(user=user, project=project, url=server + "/")
    assert "private, local or reserved network" in caught.value.message_dict["url"][0]


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
def test_the_api_adds_a_document_by_url(server: str, auth_api: APIClient, project: Project) -> None:
    response = auth_api.post(
        "/api/v1/documents/",
        {"project": str(project.pk), "url": server + "/", "title": "Tides"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "Tides" and body["format"] == "web" and body["source"] == server + "/"
    assert body["original_filename"] == "page" + readers.WEB_PAGE_SUFFIX


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"url": "/missing"}, "url"),
        ({"url": "/", "text": "also text", "title": "T"}, "url"),
        ({"url": ""}, "url"),
    ],
)
def test_the_api_answers_400_naming_url(
    server: str, auth_api: APIClient, project: Project, extra: dict[str, str], field: str
) -> None:
    payload = {**extra, "url": server + extra["url"] if extra["url"] else ""}
    response = auth_api.post("/api/v1/documents/", {"project": str(project.pk), **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Document.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
def test_the_upload_page_adds_a_web_page(server: str, owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        f"/projects/{project.pk}/documents/", {"url": server + "/articles/tides.html"}
    )
    assert response.status_code == 302
    assert Document.objects.get().format == "web"


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
def test_the_upload_page_shows_why_a_url_failed(server: str, owner_client: Client, project: Project) -> None:
    response = owner_client.post(f"/projects/{project.pk}/documents/", {"url": server + "/missing"})
    assert response.status_code == 400
    assert "The page was not found (HTTP 404)." in response.content.decode()
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_the_upload_page_takes_one_source_at_a_time(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        f"/projects/{project.pk}/documents/",
        {"url": "https://example.com/", "text": "pasted", "title": "T"},
    )
    assert response.status_code == 400
    assert "not more than one" in response.content.decode()
