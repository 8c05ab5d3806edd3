"""Hostile documents fail with a reason a person can read; the worker that read them lives on.

Every format but plain text and Markdown (PDF with OCR, Office files, EPUB, HTML
and web pages, CSV, images) is read in a child process with a memory limit and
a timeout (documents/extraction/sandbox.py). These tests make the readers in this process
refuse to run, so a document can only be read, and fail, in that child.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import make_project
from documents import services
from documents.extraction import readers, sandbox
from documents.models import Document, DocumentStatus
from documents.tests import samples
from tests.security import hostile
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def readers_only_in_the_child(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(data: bytes) -> str:
        raise AssertionError("a file of a sandboxed format was read in the worker process itself")

    for name in sandbox.SANDBOXED_FORMATS:
        monkeypatch.setitem(readers._EXTRACTORS, name, refuse)
    yield


def ingest(name: str, data: bytes) -> Document:
    owner = UserFactory(password=None)
    project = make_project(owner)
    doc = services.document_create(
        user=owner,
        project=project,
        upload=SimpleUploadedFile(name, data, content_type="application/octet-stream"),
    )
    started = time.monotonic()
    services.document_ingest(document_id=doc.pk)
    doc.refresh_from_db()
    doc.ingest_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return doc


@pytest.mark.usefixtures("readers_only_in_the_child")
@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("nested.pdf", hostile.nested_pdf, "PDF"),
        ("fan-out.pdf", hostile.fan_out_pdf, "page"),
        ("inflating.pdf", hostile.inflating_pdf, "PDF"),
        ("bomb.docx", hostile.docx_bomb, "zip bomb"),
        ("bomb.pptx", lambda: hostile.zip_bomb("ppt/presentation.xml"), "zip bomb"),
        ("bomb.xlsx", lambda: hostile.zip_bomb("xl/workbook.xml"), "zip bomb"),
        ("bomb.epub", lambda: hostile.zip_bomb("OEBPS/chapter.xhtml", epub=True), "zip bomb"),
        ("strings.xlsx", hostile.shared_string_xlsx, "too long"),
        ("bomb.png", hostile.png_bomb, "decompression bomb"),
        ("image-bomb.pdf", hostile.pdf_image_bomb, "decompression bomb"),
    ],
)
def test_a_hostile_file_fails_the_document_with_a_reason(name: str, make: Any, reason: str) -> None:
    doc = ingest(name, make())
    assert doc.status == DocumentStatus.FAILED
    assert reason in doc.error, doc.error
    assert "Traceback" not in doc.error and len(doc.error) < 400
    assert doc.ingest_seconds < 60


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_a_file_that_needs_too_much_memory_fails_at_the_memory_limit(settings: Any) -> None:
    settings.EXTRACT_MEMORY_MB = 256
    doc = ingest("tags.html", hostile.tag_bomb_html())
    assert doc.status == DocumentStatus.FAILED
    assert "needed more than 256 MB of memory" in doc.error, doc.error


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_a_word_file_of_many_tiny_paragraphs_past_the_memory_limit_says_so(settings: Any) -> None:
    settings.EXTRACT_MEMORY_MB = 200
    doc = ingest("minutes.docx", hostile.many_paragraphs_docx())
    assert doc.status == DocumentStatus.FAILED
    assert "needed more than 200 MB of memory" in doc.error, doc.error
    assert "Split it into smaller files" in doc.error
    assert "unknown error" not in doc.error


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_a_file_that_takes_too_long_fails_at_the_time_limit(settings: Any) -> None:
    settings.EXTRACT_TIMEOUT_S = 2
    doc = ingest("slow.pdf", hostile.slow_pdf())
    assert doc.status == DocumentStatus.FAILED
    assert "took longer than 2 seconds" in doc.error, doc.error
    assert doc.ingest_seconds < 10


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_ordinary_files_read_in_the_child_give_the_same_text() -> None:
    content = zlib.compress(b"BT /F1 12 Tf 72 720 Td (The tide turns at noon.) Tj ET", 9)
    pdf = hostile._one_page(hostile._stream(content))
    html = b"<!doctype html><html><body><h1>Tides</h1><p>The tide turns at noon.</p></body></html>"
    assert sandbox.extract_text_bounded(pdf, filename="t.pdf") == readers.Extracted(
        "The tide turns at noon.", "pdf"
    )
    assert sandbox.extract_text_bounded(html, filename="t.html") == readers.Extracted(
        "Tides\n\nThe tide turns at noon.", "html", "Tides"
    )


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_the_new_formats_read_in_the_child_give_the_same_text() -> None:
    files = {
        "deck.pptx": samples.pptx_deck(),
        "budget.xlsx": samples.xlsx_workbook(),
        "stock.csv": b"name;qty\nrope;3\n",
        "voyage.epub": samples.epub_book(),
        "tides" + readers.WEB_PAGE_SUFFIX: samples.NEWS_PAGE,
    }
    for name, data in files.items():
        assert sandbox.extract_text_bounded(data, filename=name).text.strip(), name
    assert sandbox.extract_text_bounded(files["stock.csv"], filename="stock.csv") == readers.Extracted(
        "name | qty\nrope | 3", "csv"
    )


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_a_scan_is_read_with_ocr_in_the_child() -> None:
    png = samples.image_bytes(samples.scan(["The harbour opens at dawn."]), "PNG")
    result = sandbox.extract_text_bounded(png, filename="scan.png")
    assert result.format == "png" and "The harbour opens at dawn." in result.text


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_the_settings_bound_the_readers_in_the_child(settings: Any) -> None:
    settings.OCR_MAX_PAGES = 2
    settings.SHEET_MAX_CELLS = 1000
    doc = ingest("scans.pdf", samples.scanned_pdf([samples.scan([f"Page {n}"]) for n in range(3)]))
    assert doc.status == DocumentStatus.FAILED
    assert "at most 2 pages of a document are read with OCR" in doc.error, doc.error
    squares = b"".join(b"%d,%d\n" % (n, n * n) for n in range(2000))
    text = sandbox.extract_text_bounded(squares, filename="squares.csv").text
    assert text.endswith("only the rows within that limit were read.]")


def _tesseract_processes() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv0 = cmdline.read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if argv0.endswith(b"tesseract"):
            found.append(cmdline.parent.name)
    return found


@pytest.mark.usefixtures("readers_only_in_the_child")
def test_ocr_past_the_time_limit_fails_and_leaves_no_tesseract_behind(settings: Any) -> None:
    settings.EXTRACT_TIMEOUT_S = 1
    pages = [samples.scan([f"Line {n} of a long scanned report" for n in range(12)]) for _ in range(20)]
    doc = ingest("long-scan.pdf", samples.scanned_pdf(pages))
    assert doc.status == DocumentStatus.FAILED
    assert "took longer than 1 seconds" in doc.error, doc.error
    deadline = time.monotonic() + 3
    while _tesseract_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _tesseract_processes()


def test_unsupported_files_are_refused_before_any_child_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.subprocess, "Popen", lambda *a, **k: pytest.fail("no child for text"))
    with pytest.raises(readers.ExtractionError, match="a program"):
        sandbox.extract_text_bounded(b"\x7fELF" + b"\x00" * 64, filename="x.pdf")
    assert sandbox.extract_text_bounded(b"Plain words.", filename="a.txt").text == "Plain words."


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_a_memory_bomb_and_ingests_the_next_document(tmp_path: Path) -> None:
    owner = UserFactory()
    project = make_project(owner)
    client = APIClient()
    client.force_authenticate(owner)

    def upload(name: str, data: bytes) -> str:
        response = client.post(
            "/api/v1/documents/",
            {"project": str(project.pk), "file": SimpleUploadedFile(name, data)},
            format="multipart",
        )
        assert response.status_code == 201, response.content
        return str(response.json()["id"])

    env = {"DOCENT_EXTRACT_MEMORY_MB": "256", "DOCENT_EXTRACT_TIMEOUT_S": "30"}
    with celery_worker(tmp_path, queues="ingest", extra_env=env) as proc:
        bomb = upload("tags.html", hostile.tag_bomb_html())
        fine = upload("notes.md", b"# Notes\n\nThe harbour opens at dawn.")
        wait_for(
            lambda: (
                not Document.objects.filter(pk__in=[bomb, fine])
                .exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED])
                .exists()
            ),
            timeout=300,
            log=tmp_path / "worker.log",
        )
        assert proc.poll() is None, "the worker died"
    assert Document.objects.get(pk=bomb).status == DocumentStatus.FAILED
    assert "256 MB" in Document.objects.get(pk=bomb).error
    assert Document.objects.get(pk=fine).status == DocumentStatus.READY
