"""The project page as a new user tries it, in a real Chromium against the live server:
several files dropped at once (each with its own progress row and the server's verdict),
files chosen or pasted, Ask held back until a document is ready, times that say "just now",
the members page of a sole owner, and long addresses and dates that keep to their cards.

Ingest and agent runs are held back (tests.e2e.test_browser.Held) until the test releases
them. Screenshots at 1366x900 go to var/screenshots/ (tests/e2e/pages.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Page, expect

from accounts.tests.factories import UserFactory
from agents import tasks as agent_tasks
from agents.models import AgentRun, RunKind, RunStatus
from conftest import make_project
from documents import tasks as document_tasks
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Project, Role
from tests.e2e.pages import VIEWPORTS, assert_accessible, audit, chromium_page, screenshot
from tests.e2e.test_browser import PASSWORD, Held

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_EMAIL = "marguerite.featherstonehaugh-cholmondeley.research@department-of-coastal-navigation.example.org"
MAX_UPLOAD_BYTES = 4096
HARBOUR = "# Harbour notes\n\nThe lighthouse keeper lit the lamp at dusk every evening.\n"
TIDES = "High tide at the harbour mouth comes about fifty minutes later each day.\n"
FERRIES = "The ferries wait at the quay while fog rolls over the bay.\n"
# "PROGRAM" stands for an ELF header: the server refuses programs whatever the file is called.
DROP = """([files, selector]) => {
  const program = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, ...Array.from({ length: 512 }, (_, i) => i % 256)]);
  const transfer = new DataTransfer();
  for (const [name, type, body] of files) {
    const bytes = body === "PROGRAM" ? program : new TextEncoder().encode(body);
    transfer.items.add(new File([bytes], name, { type }));
  }
  const target = document.querySelector(selector);
  for (const kind of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(kind, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""

PASTE_FILE = """([name, body]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([body], name, { type: "text/plain" }));
  const event = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
  document.body.dispatchEvent(event);
  return event.defaultPrevented;
}"""

PASTE_TEXT = """([selector, text]) => {
  const transfer = new DataTransfer();
  transfer.setData("text/plain", text);
  const event = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
  document.querySelector(selector).dispatchEvent(event);
  return event.defaultPrevented;
}"""

FITS = """(selector) => Array.from(document.querySelectorAll(selector)).map((el) => ({
  text: el.textContent.trim().slice(0, 60),
  scroll: el.scrollWidth,
  client: el.clientWidth,
}))"""

ONE_LINE = """(selector) => Array.from(document.querySelectorAll(selector)).map((cell) => {
  const time = cell.querySelector("time");
  const style = getComputedStyle(time);
  const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.55;
  return { text: time.textContent, lines: time.getClientRects().length,
           height: time.getBoundingClientRect().height, line };
})"""


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Page]:
    # Playwright's sync API runs an event loop in this thread, which also uses the ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.LLM_PROVIDER = "offline"
    with chromium_page() as page:
        yield page


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(base + reverse("accounts:login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/")


def project_url(base: str, project: Project) -> str:
    return base + reverse("projects:detail", args=[project.pk])


def test_files_dropped_chosen_and_pasted_upload_one_by_one_and_ask_waits_for_a_ready_document(
    page: Page, live_server: Any, monkeypatch: pytest.MonkeyPatch, settings: Any, console_errors: list[str]
) -> None:
    settings.MAX_UPLOAD_BYTES = MAX_UPLOAD_BYTES
    ingest = Held(monkeypatch, document_tasks, "enqueue_ingest")
    user = UserFactory(email="newcomer@example.com")
    project = make_project(user, title="Harbour")
    base = live_server.url
    log_in(page, base, user.email)
    page.goto(project_url(base, project))

    # An empty project: nothing to ask yet, and the drop zone is the first thing in the list.
    ask_card = page.locator("#ask")
    expect(ask_card.get_by_role("status")).to_have_text("Add a document first.")
    expect(ask_card.get_by_role("button", name="Ask", exact=True)).to_be_disabled()
    expect(ask_card.get_by_role("button", name="Summarize project")).to_be_disabled()
    expect(ask_card.get_by_label("Ask a question")).to_be_disabled()
    zone = page.locator("#dropzone")
    expect(zone).to_be_visible()
    assert zone.bounding_box()["y"] + zone.bounding_box()["height"] < VIEWPORTS["desktop"]["height"]
    expect(page.locator("#dropzone-files")).to_have_attribute("multiple", "")
    screenshot(page, "workspace-empty-project", "desktop")
    page.evaluate("window.__sameDocument = true")

    # Three files at once: one row each; two are added, the program is refused with the reason.
    files = [
        ["harbour.md", "text/markdown", HARBOUR],
        ["tides.txt", "text/plain", TIDES],
        ["tool.exe", "application/octet-stream", "PROGRAM"],
    ]
    page.evaluate(DROP, [files, "#dropzone"])
    rows = zone.locator(".upload-row")
    expect(rows).to_have_count(3)
    for name in ("harbour.md", "tides.txt"):
        # Stored: the row follows its document (held back from ingest here), the bar gone.
        row = rows.filter(has_text=name)
        expect(row).to_have_attribute("data-state", "processing")
        expect(row.locator(".upload-note")).to_have_text("Pending…")
        expect(row.locator("progress")).to_be_hidden()
    refused = rows.filter(has_text="tool.exe")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.locator(".upload-note")).to_contain_text("Unsupported file type: this is a program.")
    # A refused file shows no full progress bar, only why, until dismissed.
    expect(refused.locator("progress")).to_be_hidden()

    # The added ones appear in the list (fetched afresh, no reload); Ask still waits for them.
    table = page.locator("#documents-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("harbour.md")
    expect(table).to_contain_text("tides.txt")
    expect(page.locator('[data-part="documents-count"]')).to_have_text("2")
    expect(ask_card.get_by_role("status")).to_have_text("Documents are still being processed.")
    expect(ask_card.get_by_role("button", name="Ask", exact=True)).to_be_disabled()
    assert Document.objects.filter(project=project).count() == 2

    # Too large for the limit: refused with the limit, without sending it.
    big = {"name": "big.txt", "mimeType": "text/plain", "buffer": b"word " * (MAX_UPLOAD_BYTES // 4)}
    page.locator("#dropzone-files").set_input_files(big)
    big_row = rows.filter(has_text="big.txt")
    expect(big_row).to_have_attribute("data-state", "failed")
    expect(big_row.locator(".upload-note")).to_contain_text("larger than the")
    # The server says the same of a file the page did not stop.
    page.evaluate("document.querySelector('#dropzone').removeAttribute('data-max-bytes')")
    page.locator("#dropzone-files").set_input_files({**big, "name": "bigger.txt"})
    bigger_row = rows.filter(has_text="bigger.txt")
    expect(bigger_row).to_have_attribute("data-state", "failed")
    expect(bigger_row.locator(".upload-note")).to_contain_text("The file is larger than the")

    # A file pasted from the clipboard uploads too; pasted text is left to the text field.
    assert page.evaluate(PASTE_FILE, ["ferries.txt", FERRIES]) is True
    expect(rows.filter(has_text="ferries.txt")).to_have_attribute("data-state", "processing")
    expect(table.locator("tbody tr")).to_have_count(3)
    text_box = page.locator("#upload").get_by_label("Or paste text")
    assert page.evaluate(PASTE_TEXT, ["#upload textarea[name=text]", "Some notes"]) is False
    expect(rows).to_have_count(6)

    # The same bytes again, under another name: the row names the document that holds them and
    # offers to replace it; replacing keeps one document, now called by the new name.
    harbour = Document.objects.get(project=project, title="harbour.md")
    page.evaluate(DROP, [[["harbour-copy.md", "text/markdown", HARBOUR]], "#dropzone"])
    twin_row = rows.nth(6)  # by place: once stored, the row names the document it became
    expect(twin_row).to_contain_text("harbour-copy.md")
    expect(twin_row).to_have_attribute("data-state", "duplicate")
    expect(twin_row.locator(".upload-note")).to_contain_text("Already in the project as harbour.md")
    expect(twin_row.get_by_role("link", name="harbour.md")).to_have_attribute(
        "href", reverse("documents:detail", args=[harbour.pk])
    )
    screenshot(page, "workspace-upload-duplicate", "desktop")
    twin_row.get_by_role("button", name="Replace it").click()
    expect(twin_row).to_have_attribute("data-state", "processing")
    assert Document.objects.filter(project=project).count() == 3
    harbour.refresh_from_db()
    assert harbour.original_filename == "harbour-copy.md"
    # Dismissing a refused row clears it.
    refused.get_by_role("button", name="Dismiss tool.exe").click()
    expect(refused).to_have_count(0)
    text_box.fill("The quay bakery sells rye bread on Sundays.")
    page.locator("#upload").get_by_label("Title").fill("Bakery")
    screenshot(page, "workspace-uploads", "desktop")
    assert_accessible(audit(page, "project page with uploads", "desktop"))
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating the list"

    # Once ingest has them, the page enables Ask by itself, and each row says Ready, then clears.
    ingest.release()
    expect(rows.filter(has_text="tides.txt").locator(".upload-note")).to_have_text("Ready", timeout=90_000)
    expect(rows.filter(has_text="tides.txt")).to_have_count(0, timeout=15_000)
    expect(ask_card.get_by_role("button", name="Ask", exact=True)).to_be_enabled(timeout=90_000)
    expect(ask_card.get_by_role("button", name="Summarize project")).to_be_enabled()
    expect(ask_card.get_by_role("status")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True

    # The plain form (the path without script) still adds pasted text.
    page.locator("#upload").get_by_role("button", name="Add document").click()
    expect(page.get_by_text("“Bakery” was added and is being processed.")).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(4)
    # The browser logs each refused upload's 400 (the program, the file over the limit) and the
    # duplicate's 409; nothing else.
    refusals = [e for e in console_errors if "status of 400" in e or "status of 409" in e]
    assert len(refusals) == 3, console_errors
    assert [e for e in console_errors if e not in refusals] == [], console_errors


def test_sole_owner_is_not_offered_leave_and_long_addresses_keep_to_their_cards(
    page: Page, live_server: Any, monkeypatch: pytest.MonkeyPatch, console_errors: list[str]
) -> None:
    Held(monkeypatch, document_tasks, "enqueue_ingest")
    Held(monkeypatch, agent_tasks, "enqueue_run")
    user = UserFactory(email=LONG_EMAIL)
    project = make_project(user, title="Coastal navigation")
    Membership.objects.create(
        project=project, user=UserFactory(email="deckhand@example.com"), role=Role.EDITOR
    )
    doc = DocumentFactory(
        project=project,
        uploaded_by=user,
        status=DocumentStatus.READY,
        title="Observations of tidal streams, currents and soundings along the northern approaches "
        "to the harbour, with notes on the seasonal fog and the pilotage of deep-draught vessels",
    )
    run = AgentRun.objects.create(
        project=project,
        created_by=user,
        kind=RunKind.ASK,
        question="When does the fog lift?",
        status=RunStatus.QUEUED,
    )
    base = live_server.url
    log_in(page, base, user.email)

    # The members page: the only owner is told why there is no Leave; the editor can be removed.
    page.goto(base + reverse("projects:members", args=[project.pk]))
    own_row = page.locator("tbody tr").filter(has_text="(you)")
    expect(own_row).to_contain_text("You are the only owner: make someone else an owner before leaving.")
    expect(page.get_by_role("button", name="Leave")).to_have_count(0)
    expect(
        page.locator("tbody tr").filter(has_text="deckhand@example.com").get_by_role("button", name="Remove")
    ).to_be_visible()
    screenshot(page, "workspace-members-sole-owner", "desktop")

    # The project page: a fresh run says "just now"; dates in the table stay on one line.
    page.goto(project_url(base, project))
    expect(page.locator("#runs .run-row time")).to_have_text("just now")
    cells = page.evaluate(ONE_LINE, "#documents-table td.date")
    assert cells, "no date cells"
    for cell in cells:
        assert cell["lines"] == 1 and cell["height"] <= cell["line"] * 1.2, cell
    screenshot(page, "workspace-project-dates", "desktop")

    # The run page's "About this run" card and the document's details card hold the address.
    page.goto(base + reverse("agents:detail", args=[run.pk]))
    about = page.locator("section").filter(has=page.get_by_role("heading", name="About this run"))
    expect(about).to_contain_text(LONG_EMAIL)
    for box in page.evaluate(FITS, "aside .card, aside .card dd"):
        assert box["scroll"] <= box["client"], box
    screenshot(page, "workspace-run-long-email", "desktop")
    page.goto(base + reverse("documents:detail", args=[doc.pk]))
    expect(page.locator("dl.meta")).to_contain_text(LONG_EMAIL)
    for box in page.evaluate(FITS, ".card:has(dl.meta), dl.meta dd"):
        assert box["scroll"] <= box["client"], box
    screenshot(page, "workspace-document-long-email", "desktop")
    assert console_errors == [], console_errors


FILE_NAME_TITLE = "North_Harbour_Pumping_Station_Quarterly_Maintenance_Report_2024_final_v3_APPROVED.docx"
# Where each control of the documents table is against the box of the wrapper that would scroll it.
ROW_BUTTONS = """() => {
  const wrap = document.querySelector("#documents .table-wrap").getBoundingClientRect();
  return [...document.querySelectorAll("#documents-table button")].map((b) => {
    const r = b.getBoundingClientRect();
    return { text: b.textContent.trim(), inside: r.left >= wrap.left - 1 && r.right <= wrap.right + 1,
             whole: b.scrollWidth <= b.clientWidth + 1 };
  });
}"""


def test_ask_leads_on_a_phone_and_every_delete_button_shows_whole_at_1366(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    Held(monkeypatch, document_tasks, "enqueue_ingest")
    user = UserFactory(email="skipper@example.com")
    project = make_project(user, title="Harbour")
    for title in (FILE_NAME_TITLE, "Tides"):
        DocumentFactory(project=project, uploaded_by=user, status=DocumentStatus.READY, title=title)
    base = live_server.url

    # A wide screen: every row's Delete button whole, in view, without scrolling the table.
    with chromium_page(VIEWPORTS["desktop"]) as page:
        log_in(page, base, user.email)
        page.goto(project_url(base, project))
        buttons = page.evaluate(ROW_BUTTONS)
        assert len(buttons) == 2
        assert all(b["text"] == "Delete" and b["inside"] and b["whole"] for b in buttons), buttons
        wrap = page.locator("#documents .table-wrap")
        assert wrap.evaluate("(w) => w.scrollWidth <= w.clientWidth + 1")
        # Ask heads the side column; dropping files is offered.
        ask, documents = page.locator("#ask").bounding_box(), page.locator("#documents").bounding_box()
        assert ask["x"] > documents["x"] + documents["width"] - 1 and ask["y"] <= documents["y"] + 1
        expect(page.locator(".drop-hint")).to_be_visible()
        screenshot(page, "workspace-long-title", "desktop")

    # A phone: Ask is the first card, under the search box; nothing is dropped on a touch screen.
    with chromium_page(VIEWPORTS["phone"], has_touch=True, is_mobile=True) as page:
        log_in(page, base, user.email)
        page.goto(project_url(base, project))
        ask, documents = page.locator("#ask").bounding_box(), page.locator("#documents").bounding_box()
        assert ask["y"] + ask["height"] <= documents["y"], (ask, documents)
        assert ask["y"] < VIEWPORTS["phone"]["height"], "Ask is below the first screen"
        expect(page.locator(".drop-hint")).to_be_hidden()
        expect(page.locator("#dropzone").get_by_text("Choose files")).to_be_visible()
        # Tabbing reaches Ask before the documents: the order shown is the order read.
        order = page.evaluate(
            "() => document.querySelector('#ask').compareDocumentPosition(document.querySelector('#documents'))"
        )
        assert order & 4  # DOCUMENT_POSITION_FOLLOWING
        screenshot(page, "workspace-phone-ask-first", "phone")
