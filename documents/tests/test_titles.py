"""A document's title from the file itself (PDF and Office metadata, HTML <title>, Markdown H1),
through real ingest, only where nobody chose one."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import docx
import pptx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfWriter

from documents import embedder, search, services
from documents.extraction import readers, sandbox
from documents.models import Document, DocumentStatus
from documents.tests import samples
from documents.tests.test_extraction import build_pdf
from projects.models import Project

pytestmark = pytest.mark.django_db

BODY = "The harbour master publishes the tide tables every Monday morning."


def pdf_titled(title: str | None) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(build_pdf([[BODY]])))
    if title is not None:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_titled(title: str) -> bytes:
    document = docx.Document()
    document.core_properties.title = title
    document.add_paragraph(BODY)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_titled(title: str) -> bytes:
    deck = pptx.Presentation(io.BytesIO(samples.pptx_deck()))
    deck.core_properties.title = title
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def ingested(user: Any, project: Project, name: str, data: bytes, title: str = "") -> Document:
    doc = services.document_create(
        user=user, project=project, upload=SimpleUploadedFile(name, data), title=title
    )
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    doc.refresh_from_db()
    return doc


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("survey.pdf", pdf_titled("Harbour Survey 2026"), "Harbour Survey 2026"),
        ("survey.docx", docx_titled("Tide Tables for the Inner Basin"), "Tide Tables for the Inner Basin"),
        ("deck.pptx", pptx_titled("Harbour Board Deck"), "Harbour Board Deck"),
        ("deck.pptx", samples.pptx_deck(), "Harbour plan"),  # no core title: the first slide's
        ("voyage.epub", samples.epub_book(), "Voyage"),
        (
            "page.html",
            b"<!doctype html><html><head><title>Tide  tables\n</title></head><body><h1>Other</h1>"
            b"<p>" + BODY.encode() + b"</p></body></html>",
            "Tide tables",
        ),
        ("notes.md", b"# Harbour *notes*\n\n" + BODY.encode(), "Harbour notes"),
        ("notes.md", b"Harbour notes\n=============\n\n" + BODY.encode(), "Harbour notes"),
    ],
)
def test_an_untitled_upload_takes_the_title_its_file_gives(
    user: Any, project: Project, name: str, data: bytes, expected: str
) -> None:
    doc = ingested(user, project, name, data)
    assert doc.title == expected
    assert doc.original_filename == name


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "",
        "   ",
        "untitled",
        "Microsoft Word - survey.doc",
        "Microsoft Word - Q3 Report.docx",
        "Document1",
        "survey_v2.docx",
        "1234",
        "about:blank",
        "https://intranet.example.com/print?id=4",
        "~$survey.docx",
        "~WRL0001.tmp",
        "tmp3f9a2k1x",
        ".~lock.survey.docx#",
    ],
)
def test_a_placeholder_pdf_title_leaves_the_file_name(user: Any, project: Project, junk: str | None) -> None:
    doc = ingested(user, project, "survey.pdf", pdf_titled(junk))
    assert doc.title == "survey.pdf"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.md", b"## A section first\n\n# Appendix\n\n" + BODY.encode()),
        ("notes.md", b"```\n# a shell comment, not a heading\n```\n\n" + BODY.encode()),
        ("notes.txt", b"# Not Markdown\n\n" + BODY.encode()),
    ],
)
def test_text_without_an_opening_h1_keeps_its_file_name(
    user: Any, project: Project, name: str, data: bytes
) -> None:
    assert ingested(user, project, name, data).title == name


def test_html_falls_back_to_og_title_then_the_first_h1() -> None:
    og = b'<html><head><meta property="og:title" content="Open Graph Title"></head><body><h1>H</h1><p>x</p>'
    h1 = b"<html><head><title> </title></head><body><svg><title>icon</title></svg><h1>The <em>First</em> Heading</h1>"
    assert readers.extract_text(og + b"</body></html>", filename="a.html").title == "Open Graph Title"
    assert (
        readers.extract_text(h1 + b"<p>x</p></body></html>", filename="a.html").title == "The First Heading"
    )


def test_a_fetched_web_page_gets_no_title_from_the_reader() -> None:
    # Its title was taken when it was fetched (documents.services.document_create).
    assert readers.extract_text(samples.NEWS_PAGE, filename="tides" + readers.WEB_PAGE_SUFFIX).title is None


def test_the_title_crosses_the_sandbox_on_one_line_and_bounded() -> None:
    raw = "  Annual\n\treport  " + "x" * 600
    extracted = sandbox.extract_text_bounded(pdf_titled(raw), filename="a.pdf")
    assert extracted.format == "pdf" and extracted.text == BODY
    assert extracted.title is not None
    assert extracted.title.startswith("Annual report xxx")
    assert len(extracted.title) == services.TITLE_MAX and extracted.title.endswith("…")


def test_a_title_given_at_upload_is_kept(user: Any, project: Project) -> None:
    doc = ingested(user, project, "survey.pdf", pdf_titled("Harbour Survey 2026"), title="My survey")
    assert doc.title == "My survey"


def test_reindexing_keeps_a_title_a_person_edited(user: Any, project: Project) -> None:
    doc = ingested(user, project, "survey.pdf", pdf_titled("Harbour Survey 2026"))
    assert doc.title == "Harbour Survey 2026"
    doc.title = "Edited by hand"
    services.document_save_edits(document=doc, fields=["title"])
    services.document_reindex(user=user, document=doc)
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    doc.refresh_from_db()
    assert doc.title == "Edited by hand"


def test_an_edit_made_while_ingest_runs_wins(
    user: Any, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = services.document_create(
        user=user, project=project, upload=SimpleUploadedFile("survey.pdf", pdf_titled("Harbour Survey 2026"))
    )
    real = embedder.encode

    def edit_then_encode(texts: list[str], **kwargs: Any) -> Any:
        # A person renames the document after it was read and before it is stored.
        Document.objects.filter(pk=doc.pk).update(title="Renamed meanwhile")
        return real(texts, **kwargs)

    monkeypatch.setattr(embedder, "encode", edit_then_encode)
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY
    doc.refresh_from_db()
    assert doc.title == "Renamed meanwhile"


def test_the_files_title_is_indexed_with_the_chunks(user: Any, project: Project) -> None:
    doc = ingested(user, project, "survey.pdf", pdf_titled("Quarterly Lighthouse Inspection"))
    hits = search.search(project_ids=[project.pk], query="lighthouse inspection", mode="lexical")
    assert [hit.document_id for hit in hits] == [str(doc.pk)]
    assert hits[0].document_title == "Quarterly Lighthouse Inspection"


def test_an_import_without_titles_takes_the_files_titles(user: Any, project: Project, tmp_path: Path) -> None:
    (tmp_path / "Harbour Notes.md").write_text("# Harbour notes, spring\n\n" + BODY)
    (tmp_path / "plain.md").write_text(BODY)
    services.documents_import(user=user, project=project, paths=[tmp_path], sync=True)
    titles = dict(Document.objects.filter(project=project).values_list("original_filename", "title"))
    assert titles == {"Harbour_Notes.md": "Harbour notes, spring", "plain.md": "plain.md"}
