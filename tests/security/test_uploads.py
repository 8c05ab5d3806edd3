"""Uploads: size enforced while reading, type by content, safe names, downloads as attachments."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import make_project
from documents.models import Document
from documents.services import safe_filename

pytestmark = pytest.mark.django_db


class CountingInput(io.RawIOBase):
    """A request body that is never materialised; it counts what the server reads."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"a" * n
        self.read_bytes += n
        return n


def wsgi_post(
    path: str, length: int, *, token: str = "", content_type: str = "multipart/form-data; boundary=x"
) -> tuple[int, bytes, dict[str, str], CountingInput]:
    from config.wsgi import application

    body = CountingInput(length)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(length),
        "wsgi.input": io.BufferedReader(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = int(status.split()[0]), dict(headers)

    content = b"".join(application(environ, start_response))
    return captured["status"], content, captured["headers"], body


@pytest.fixture
def owner(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def project(owner: Any) -> Any:
    return make_project(owner)


def test_an_oversize_api_body_is_refused_before_a_byte_is_read(owner: Any, settings: Any) -> None:
    from rest_framework_simplejwt.tokens import RefreshToken

    settings.DOCENT_MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    token = str(RefreshToken.for_user(owner).access_token)
    status, content, headers, body = wsgi_post("/api/v1/documents/", 3 * 1024 * 1024 * 1024, token=token)
    assert status == 413
    assert b"larger than the 1 MB limit" in content
    assert headers["Content-Type"] == "application/json"
    assert body.read_bytes == 0


def test_an_oversize_page_upload_shows_a_message_without_reading_the_body(owner: Any, project: Any) -> None:
    status, content, headers, body = wsgi_post(f"/projects/{project.pk}/documents/", 200 * 1024 * 1024)
    assert status == 413
    assert b"larger than the 25 MB limit" in content
    assert headers["Content-Type"].startswith("text/html")
    assert body.read_bytes == 0


def test_a_file_past_the_limit_is_dropped_as_it_streams_in(
    owner: Any, project: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DOCENT_MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    stored = {"bytes": 0}
    for handler in (MemoryFileUploadHandler, TemporaryFileUploadHandler):
        original = handler.receive_data_chunk

        def counting(self: Any, raw_data: bytes, start: int, _original: Any = original) -> Any:
            stored["bytes"] += len(raw_data)
            return _original(self, raw_data, start)

        monkeypatch.setattr(handler, "receive_data_chunk", counting)
    client = APIClient()
    client.force_authenticate(owner)
    big = SimpleUploadedFile("big.txt", b"a" * (1024 * 1024 + 512 * 1024), content_type="text/plain")
    response = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": big}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json() == {"file": ["The file is larger than the 1 MB limit."]}
    assert stored["bytes"] <= 1024 * 1024  # the storing handlers never saw the excess
    assert not Document.objects.exists()


def test_a_file_at_the_limit_is_accepted(owner: Any, project: Any, settings: Any) -> None:
    settings.MAX_UPLOAD_BYTES = 64 * 1024
    client = APIClient()
    client.force_authenticate(owner)
    exact = SimpleUploadedFile("exact.txt", b"word " * (64 * 1024 // 5), content_type="text/plain")
    response = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": exact}, format="multipart"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("report.pdf", b"\x7fELF\x02\x01\x01" + b"\x00" * 500, "a program"),
        ("photo.txt", b"GIF89a" + b"\x00" * 500, "a GIF image"),
        ("archive.docx", b"PK\x05\x06" + b"\x00" * 18, "not a Word, PowerPoint, Excel or EPUB document"),
        ("notes.txt", bytes(range(256)) * 8, "looks binary"),
    ],
)
def test_the_type_is_judged_by_content_not_by_name(
    owner: Any, project: Any, name: str, content: bytes, message: str
) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    upload = SimpleUploadedFile(name, content, content_type="text/plain")
    response = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert message in " ".join(response.json()["file"])


def test_an_html_page_named_txt_is_read_as_html(owner: Any, project: Any) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    page = b"<!doctype html><html><body><script>alert(1)</script><p>Hello</p></body></html>"
    upload = SimpleUploadedFile("innocent.txt", page, content_type="text/plain")
    response = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["format"] == "html"


HOSTILE_NAMES = [
    "../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/absolute/path.txt",
    "<script>alert(1)</script>.txt",
    'quote".txt',
    "semi;colon\r\nSet-Cookie: x=1.txt",
    "nul\x00byte.txt",
    "\u202etxt.exe",
    "..",
    ".",
    "",
    " ",
    "a" * 500 + ".txt",
    "CON",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_names_are_sanitised(name: str) -> None:
    safe = safe_filename(name)
    assert safe and len(safe) <= 150
    assert "/" not in safe and "\\" not in safe and ".." not in safe
    assert not set(safe) & set("<>\"';\r\n\x00\u202e ")


@pytest.mark.parametrize("name", ["../../evil.txt", "<b>x</b>.md", "a\r\nb.txt", "..\\up.txt"])
def test_a_hostile_name_is_stored_inside_the_media_folder_and_downloads_as_a_plain_attachment(
    owner: Any, project: Any, name: str, settings: Any
) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    upload = SimpleUploadedFile(name, b"Harmless text.", content_type="text/html")
    response = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    )
    assert response.status_code == 201, response.content
    doc = Document.objects.get(pk=response.json()["id"])
    stored = Path(doc.file.path).resolve()
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    assert "/" not in doc.original_filename and ".." not in doc.original_filename
    download = client.get(f"/api/v1/documents/{doc.pk}/download/")
    assert download.status_code == 200
    disposition = download["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert download["Content-Type"] == "application/octet-stream"
    assert download["X-Content-Type-Options"] == "nosniff"


def test_an_uploaded_html_page_downloads_as_an_attachment_never_rendered(owner: Any, project: Any) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    page = b"<!doctype html><html><body><script>alert(document.cookie)</script><p>x</p></body></html>"
    upload = SimpleUploadedFile("page.html", page, content_type="text/html")
    doc_id = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "file": upload}, format="multipart"
    ).json()["id"]
    download = client.get(f"/api/v1/documents/{doc_id}/download/")
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"] == 'attachment; filename="page.html"'
    assert download["X-Content-Type-Options"] == "nosniff"
    assert (
        "sandbox" in download["Content-Security-Policy"]
        or "default-src 'self'" in download["Content-Security-Policy"]
    )


def test_pasted_text_downloads_as_a_text_attachment(owner: Any, project: Any) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    doc_id = client.post(
        "/api/v1/documents/",
        {"project": str(project.pk), "title": "<b>t</b>", "text": "<script>x</script>"},
        format="json",
    ).json()["id"]
    download = client.get(f"/api/v1/documents/{doc_id}/download/")
    assert download["Content-Type"] == "text/plain; charset=utf-8"
    assert download["Content-Disposition"] == 'attachment; filename="document.txt"'
    assert download["X-Content-Type-Options"] == "nosniff"


def test_page_uploads_go_through_the_same_checks(owner: Any, project: Any, settings: Any) -> None:
    settings.MAX_UPLOAD_BYTES = 1024
    client = Client()
    client.force_login(owner)
    big = SimpleUploadedFile("big.txt", b"a" * 4096, content_type="text/plain")
    response = client.post(f"/projects/{project.pk}/documents/", {"file": big})
    assert response.status_code == 400
    assert "larger than the" in response.content.decode()
    exe = SimpleUploadedFile("x.pdf", b"\x7fELF" + b"\x00" * 100, content_type="application/pdf")
    response = client.post(f"/projects/{project.pk}/documents/", {"file": exe})
    assert response.status_code == 400
    assert "a program" in response.content.decode()
    assert not Document.objects.exists()
