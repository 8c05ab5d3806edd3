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
        row = rows.filter(has_text=name)
        expect(row.locator(".upload-note")).to_have_text("Added — processing")
        expect(row).to_have_attribute("data-state", "added")
        assert row.locator("progress").evaluate("(bar) => bar.value === bar.max")
    refused = rows.filter(has_text="tool.exe")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.locator(".upload-note")).to_contain_text("Unsupported file type: this is a program.")

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
    expect(rows.filter(has_text="ferries.txt").locator(".upload-note")).to_have_text("Added — processing")
    expect(table.locator("tbody tr")).to_have_count(3)
    text_box = page.locator("#upload").get_by_label("Or paste text")
    assert page.evaluate(PASTE_TEXT, ["#upload textarea[name=text]", "Some notes"]) is False
    expect(rows).to_have_count(6)
    text_box.fill("The quay bakery sells rye bread on Sundays.")
    page.locator("#upload").get_by_label("Title").fill("Bakery")
    screenshot(page, "workspace-uploads", "desktop")
    assert_accessible(audit(page, "project page with uploads", "desktop"))
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating the list"

    # Once ingest has them, the page enables Ask by itself.
    ingest.release()
    expect(ask_card.get_by_role("button", name="Ask", exact=True)).to_be_enabled(timeout=90_000)
    expect(ask_card.get_by_role("button", name="Summarize project")).to_be_enabled()
    expect(ask_card.get_by_role("status")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True

    # The plain form (the path without script) still adds pasted text.
    page.locator("#upload").get_by_role("button", name="Add document").click()
    expect(page.get_by_text("“Bakery” was added and is being processed.")).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(4)
    # The browser logs each refused upload's 400 (the program, the file over the limit); nothing else.
    refusals = [e for e in console_errors if "status of 400" in e]
    assert len(refusals) == 2, console_errors
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
