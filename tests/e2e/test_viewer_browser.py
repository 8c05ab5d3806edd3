"""The PDF viewer in a real Chromium, against the production shape of Docent: gunicorn serving
the pages and PDF.js (WhiteNoise, the real CSP), a real Celery worker answering through an
OpenAI-compatible model server (the fake one).

Ask a question answered on page 3 of a five-page PDF, on page 5 of it and on a scanned page of
another PDF; open the first citation at page 3 with the quote marked on the text layer, and
step through the others (page 5 in place, then the OCR word boxes on the scanned page). A PDF
damaged after it was read falls back to the text view with a message, and a PDF carrying
JavaScript actions runs none of them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import ConsoleMessage, Page, expect
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from accounts.tests.factories import UserFactory
from agents.tests.fake_openai import Behaviour, FakeOpenAI, ReceivedRequest, reply_json, reply_text
from conftest import make_project
from documents import services as document_services
from documents.models import Document, DocumentStatus
from documents.tests import samples
from documents.tests.test_extraction import build_pdf
from tests.e2e.pages import VIEWPORTS, assert_accessible, audit, chromium_page, layout_faults
from tests.e2e.pages import screenshot as page_screenshot
from tests.e2e.test_browser import PASSWORD
from tests.servers import web_server
from tests.worker import celery_worker, database_url

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LAMP = "The lighthouse lamp is lit by the keeper at dusk every evening."
FERRY = "The ferry to Skerry Island leaves the quay at noon on Thursdays."
HANDBOOK = [
    ["Harbour handbook", "Chapter one: the quay has forty moorings for small boats."],
    ["Chapter two: the fish market opens at five in the morning."],
    ["Chapter three: the lighthouse.", LAMP],
    ["Chapter four: the harbour master keeps the tide tables in the office."],
    ["Chapter five: ferries.", FERRY],
]
GAUGE = "The tide gauge was mended in March"
TIDE_LOG = [
    ["Tide log for the year", "Calm water in January"],
    ["Storms in February", f"{GAUGE} by the crew"],
    ["High tides in April", "Nothing to report"],
]
BROKEN = "The old leaflet tells of the winter market on the quay."
HOSTILE = "Harmless looking text about the harbour wall."
# What the hostile PDF's JavaScript would do, were it ever run.
SCRIPT = "app.alert('pwned'); document.title = 'pwned'; window.__pwned = true; alert('pwned');"
VIEWER_URL = re.compile(r"/documents/[0-9a-f-]+/view/\?")


def hostile_pdf() -> bytes:
    """A PDF with JavaScript on open (/OpenAction), at document level (/Names), on the page's
    open (/AA) and behind a link covering the whole page."""
    writer = PdfWriter(clone_from=io.BytesIO(build_pdf([[HOSTILE], ["A second page."]])))

    def action() -> Any:
        return writer._add_object(
            DictionaryObject(
                {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject(SCRIPT)}
            )
        )

    writer._root_object[NameObject("/OpenAction")] = action()
    scripts = DictionaryObject({NameObject("/Names"): ArrayObject([TextStringObject("docjs"), action()])})
    writer._root_object[NameObject("/Names")] = DictionaryObject({NameObject("/JavaScript"): scripts})
    page = writer.pages[0]
    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): action()})
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject(
                [FloatObject(0), FloatObject(0), FloatObject(612), FloatObject(792)]
            ),
            NameObject("/Border"): ArrayObject([NumberObject(0), NumberObject(0), NumberObject(0)]),
            NameObject("/A"): action(),
        }
    )
    page[NameObject("/Annots")] = ArrayObject([writer._add_object(link)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def line_with(prompt: str, word: str) -> str:
    """The line of the prompt's passages holding `word`, as extraction (or OCR) wrote it."""
    return next(line.strip() for line in prompt.splitlines() if word in line and "Question" not in line)


def model(request: ReceivedRequest) -> Behaviour:
    """Answers from the passages, citing the lamp (page 3), the ferry (page 5) and the gauge."""
    if not request.streamed:
        return reply_text("When is the lamp lit, when does the ferry leave, when was the gauge mended?")
    prompt = request.prompt
    return reply_json(
        {
            "answer": "The lamp is lit at dusk [1], the ferry leaves at noon on Thursdays [2] "
            "and the tide gauge was mended in March [3].",
            "answered": True,
            "citations": [
                {"passage": 1, "quote": LAMP},
                {"passage": 1, "quote": FERRY},
                {"passage": 1, "quote": line_with(prompt, "gauge")},
            ],
        }
    )


def ingest(user: Any, project: Any, name: str, data: bytes, title: str) -> Document:
    """Reads the PDF here, inline, as the ingest worker would."""
    upload = SimpleUploadedFile(name, data, content_type="application/pdf")
    doc = document_services.document_create(user=user, project=project, upload=upload, title=title)
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY, doc.error
    return doc


@pytest.fixture
def stack(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares this thread
    settings.LLM_PROVIDER = "offline"
    user = UserFactory(email="reader@example.com", password=PASSWORD)
    project = make_project(user, title="Harbour")
    docs = {
        "handbook": ingest(user, project, "handbook.pdf", build_pdf(HANDBOOK), "Harbour handbook"),
        "tides": ingest(
            user,
            project,
            "tides.pdf",
            samples.scanned_pdf([samples.scan(lines) for lines in TIDE_LOG]),
            "Tide log",
        ),
        "broken": ingest(user, project, "leaflet.pdf", build_pdf([["Winter"], [BROKEN]]), "Old leaflet"),
        "hostile": ingest(user, project, "hostile.pdf", hostile_pdf(), "Wall notes"),
    }
    fake = FakeOpenAI(responder=model)
    with fake:
        env = {
            "DOCENT_LLM_PROVIDER": "openai",
            "DOCENT_OPENAI_BASE_URL": fake.url,
            "DOCENT_OPENAI_MODEL": "fake-model",
        }
        web_env = {
            "DATABASE_URL": database_url(),
            "DOCENT_DATA_DIR": str(tmp_path),
            "DOCENT_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            **env,
        }
        with (
            celery_worker(tmp_path, queues="agents,default", extra_env=env),
            web_server(web_env, tmp_path / "web.log") as base,
        ):
            yield {"base": base, "project": project, "docs": docs}


class Watch:
    """Console errors, uncaught exceptions, CSP violations and dialogs of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self.console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("dialog", self.dialog)
        # Reported to the page whatever the console says (added by the DevTools protocol, which
        # the page's CSP does not govern).
        page.add_init_script(
            """document.addEventListener("securitypolicyviolation", (e) => {
                 console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
               });"""
        )

    def console(self, message: ConsoleMessage) -> None:
        source = message.location.get("url", "")
        # The thread page's answer stream, cut off when a citation is clicked as it ends
        # (net::ERR_INCOMPLETE_CHUNKED_ENCODING at times), is that page's business, not the viewer's.
        if re.search(r"/runs/[0-9a-f-]+/events$", source):
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            self.errors.append(f"{message.text} ({source})")

    def dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(stack: dict[str, Any]) -> Iterator[Page]:
    with chromium_page() as page:
        page.goto(f"{stack['base']}/accounts/login/")
        page.get_by_label("Email").fill("reader@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{stack['base']}/")
        yield page


def highlighted(page: Page, number: int) -> str:
    """The text of the marked text-layer elements of page `number`, joined."""
    return page.evaluate(
        """(n) => [...document.querySelectorAll(`.viewer-page[data-page="${n}"] .textLayer .highlight`)]
                 .map((el) => el.textContent).join(" ")""",
        number,
    )


def squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def page_in_view(page: Page, number: int) -> bool:
    return page.evaluate(
        """(n) => { const r = document.querySelector(`.viewer-page[data-page="${n}"]`).getBoundingClientRect();
                    return r.top < innerHeight && r.bottom > 0; }""",
        number,
    )


def ready(page: Page) -> None:
    expect(page.locator("#viewer")).to_have_attribute("data-state", "ready", timeout=30_000)


def test_a_citation_opens_its_page_with_the_quote_marked_and_the_others_are_a_step_away(
    page: Page, stack: dict[str, Any]
) -> None:
    base, docs = stack["base"], stack["docs"]
    watch = Watch(page)
    page.goto(f"{base}/projects/{stack['project'].pk}/")
    page.get_by_label("Ask a question").fill(
        "When is the lighthouse lamp lit, and the ferry, and the tide gauge?"
    )
    page.get_by_role("button", name="Ask", exact=True).click()
    turn = page.locator("[data-turn]").first
    expect(turn.locator(".answer[data-answered=true]")).to_contain_text("lamp is lit", timeout=60_000)
    expect(turn.locator("a.cite-chip")).to_have_count(3)

    # Citation 1 opens the handbook at page 3, the quote marked on the text layer.
    turn.locator("a.cite-chip").first.click()
    expect(page).to_have_url(VIEWER_URL)
    assert f"/documents/{docs['handbook'].pk}/view/" in page.url
    ready(page)
    expect(page.locator("#viewer-page")).to_have_value("3")
    expect(page.locator('[data-field="page-count"]')).to_have_text("5")
    assert squash(LAMP) in squash(highlighted(page, 3)), highlighted(page, 3)
    assert highlighted(page, 2) == "" and highlighted(page, 4) == ""
    assert page_in_view(page, 3)
    expect(page.locator('[data-field="cite-label"]')).to_have_text("p. 3")
    expect(page.locator('[data-field="cite-count"]')).to_have_text("1 of 3")
    page_screenshot(page, "viewer-citation", "desktop")

    # Next citation: page 5 of the same PDF, in place.
    page.evaluate("window.__samePage = true")
    page.get_by_role("link", name="Next citation").click()
    expect(page.locator('[data-field="cite-count"]')).to_have_text("2 of 3")
    expect(page.locator("#viewer-page")).to_have_value("5")
    expect(page.locator('.viewer-page[data-page="5"] .textLayer .highlight').first).to_be_visible()
    assert squash(FERRY) in squash(highlighted(page, 5))
    assert highlighted(page, 3) == "", "the previous citation's mark stays"
    assert page.evaluate("window.__samePage") is True
    assert "cite=2" in page.url

    # Next again: the scanned tide log, the OCR word boxes drawn over page 2.
    page.get_by_role("link", name="Next citation").click()
    expect(page).to_have_url(re.compile(rf"/documents/{docs['tides'].pk}/view/\?.*cite=3"))
    ready(page)
    expect(page.locator("#viewer-page")).to_have_value("2")
    boxes = page.locator('.viewer-page[data-page="2"] .viewer-ocr-mark')
    assert boxes.count() >= 5, "one box per OCR word of the quote"
    expect(boxes.first).to_be_visible()
    assert page.locator('.viewer-page[data-page="1"] .viewer-ocr-mark').count() == 0
    page_screenshot(page, "viewer-scanned", "desktop")

    # And back: the handbook at page 5.
    page.get_by_role("link", name="Previous citation").click()
    expect(page).to_have_url(re.compile(rf"/documents/{docs['handbook'].pk}/view/\?.*cite=2"))
    ready(page)
    expect(page.locator("#viewer-page")).to_have_value("5")
    assert squash(FERRY) in squash(highlighted(page, 5))

    # Pages and zoom from the toolbar.
    page.get_by_label("Page", exact=True).fill("1")
    page.get_by_label("Page", exact=True).press("Enter")
    expect(page.locator("#viewer-page")).to_have_value("1")
    assert page_in_view(page, 1)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#viewer-page")).to_have_value("2")
    width = page.locator('.viewer-page[data-page="2"]').bounding_box()["width"]
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator('[data-field="zoom"]')).to_have_text("125%")
    assert page.locator('.viewer-page[data-page="2"]').bounding_box()["width"] > width * 1.2
    expect(page.locator('.viewer-page[data-page="2"] canvas')).to_have_count(1)
    assert watch.errors == [], "\n".join(watch.errors)
    assert watch.dialogs == []


def test_the_viewer_passes_axe_and_fits_a_phone(page: Page, stack: dict[str, Any]) -> None:
    doc = stack["docs"]["handbook"]
    start = doc.text.index(LAMP)
    url = f"{stack['base']}/documents/{doc.pk}/view/?start={start}&end={start + len(LAMP)}"
    watch = Watch(page)
    violations, faults = [], []
    for width, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.goto(url)
        ready(page)
        assert squash(LAMP) in squash(highlighted(page, 3))
        violations += audit(page, "viewer", width)
        faults += layout_faults(page, "viewer", width)
        page_screenshot(page, "viewer", width)
    assert not faults, "\n".join(faults)
    assert_accessible(violations)
    assert watch.errors == [], "\n".join(watch.errors)


def test_a_pdf_the_viewer_cannot_open_falls_back_to_the_text_view(page: Page, stack: dict[str, Any]) -> None:
    doc = stack["docs"]["broken"]
    # Damaged after it was read: its text is still there, its file no longer a PDF.
    Path(doc.file.path).write_bytes(b"%PDF-1.7\nthis is no longer a PDF at all\n" + b"\x00" * 64)
    start = doc.text.index(BROKEN)
    page.goto(f"{stack['base']}/documents/{doc.pk}/view/?start={start}&end={start + len(BROKEN)}")
    expect(page).to_have_url(
        re.compile(rf"/documents/{doc.pk}/\?start={start}&end=\d+&viewer=failed#passage$")
    )
    expect(page.get_by_text("The PDF could not be shown here")).to_be_visible()
    expect(page.locator("mark#passage")).to_have_text(BROKEN)


def test_a_pdf_carrying_javascript_runs_none_of_it(page: Page, stack: dict[str, Any]) -> None:
    doc = stack["docs"]["hostile"]
    watch = Watch(page)
    start = doc.text.index(HOSTILE)
    page.goto(f"{stack['base']}/documents/{doc.pk}/view/?start={start}&end={start + len(HOSTILE)}")
    ready(page)
    assert squash(HOSTILE) in squash(highlighted(page, 1))
    title = page.title()
    assert title.startswith("Wall notes")
    page.locator('.viewer-page[data-page="1"]').click()  # where the JavaScript link would be
    page.wait_for_timeout(1500)
    assert page.title() == title
    assert page.evaluate("window.__pwned") is None
    assert watch.dialogs == []
    assert page.locator(".annotationLayer, .viewer-page a").count() == 0
    assert watch.errors == [], "\n".join(watch.errors)
