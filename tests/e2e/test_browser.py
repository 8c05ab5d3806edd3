"""One walk through Docent in a real Chromium: sign up to log out.

Ingest and the agent run are held back until the page shows them pending, then
run inline, so the test sees the pages update themselves without a reload.
Set DOCENT_E2E_SCREENSHOTS to a folder to keep screenshots of the main pages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from agents import tasks as agent_tasks
from documents import tasks as document_tasks
from tests.e2e.pages import chromium_page

PASSWORD = "correct-horse-battery"
NOTES = b"""# Harbour notes

The lighthouse keeper lit the lamp at dusk every evening.
Fog rolled over the bay until morning, and the ferries waited at the quay.

The bakery on the quay sells rye bread on Sundays.
"""

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Page]:
    # `make test` deselects browser tests on a machine without Chromium (CI installs it).
    # Playwright's sync API runs an event loop in this thread; the test also
    # uses the ORM here, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with chromium_page() as page:
        yield page


class Held:
    """Queued jobs kept back until the test releases them (then run inline, eagerly)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.release_one: Callable[[Any], None] = getattr(module, name)
        self.ids: list[Any] = []
        monkeypatch.setattr(module, name, self.ids.append)

    def release(self) -> None:
        while self.ids:
            self.release_one(self.ids.pop(0))


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("DOCENT_E2E_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_sign_up_upload_search_ask_follow_a_citation_and_log_out(
    page: Page, live_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    console_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))
    ingest = Held(monkeypatch, document_tasks, "enqueue_ingest")
    runs = Held(monkeypatch, agent_tasks, "enqueue_run")
    base = live_server.url

    # Sign up: the install's first account is confirmed at once, signed in, and its administrator.
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Email").fill("walker@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_text("you are its administrator")).to_be_visible()
    expect(page.get_by_text("No projects yet")).to_be_visible()

    # Create a project.
    page.get_by_role("link", name="Create your first project").click()
    page.get_by_label("Title").fill("Harbour")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbour")

    # Upload a Markdown file; it shows pending until the worker has it.
    notes = tmp_path / "harbour.md"
    notes.write_bytes(NOTES)
    page.locator("#upload").get_by_label("File").set_input_files(str(notes))
    page.get_by_role("button", name="Add document").click()
    row = page.locator("#documents-table tbody tr").filter(has_text="harbour.md")
    badge = row.locator('[data-field="status"]')
    expect(badge).to_have_text("Pending")
    page.evaluate("window.__sameDocument = true")

    ingest.release()  # extract, chunk and embed now (the first run loads the model)
    expect(badge).to_have_text("Ready", timeout=90_000)
    expect(badge).to_have_class(re.compile(r"\bbadge-ready\b"))
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating itself"
    expect(row.locator('[data-field="chunk_count"]')).not_to_have_text("0")
    screenshot(page, "project")

    # Search finds the passage.
    page.get_by_role("searchbox", name="Search this project").fill("who lit the lamp")
    page.get_by_role("button", name="Search").click()
    first = page.locator(".result").first
    expect(first).to_contain_text("lighthouse keeper lit the lamp")
    expect(first.get_by_role("link", name="Harbour notes")).to_have_attribute(
        "href", re.compile(r"\?start=\d+&end=\d+#passage$")
    )

    # Ask a question from the project page: it opens a conversation, whose new turn
    # streams its answer in place.
    page.get_by_role("link", name="Documents").click()
    page.get_by_label("Ask a question").fill("Who lit the lamp at dusk?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/threads/[0-9a-f-]+/#turn-[0-9a-f-]+$"))
    turn = page.locator("[data-turn]").last
    expect(turn.locator("[data-field=status]")).to_have_text("Queued")
    runs.release()
    chip = page.locator("[data-turn] a.cite-chip").first
    expect(chip).to_be_visible(timeout=60_000)
    expect(page.locator("[data-turn] [data-field=status]").last).to_have_text("Succeeded")
    expect(page.locator("[data-turn] .answer").last).to_contain_text("lit the lamp")
    screenshot(page, "thread")

    # The citation chip shows its quote on focus and opens the document at the highlighted passage.
    chip.focus()
    expect(page.locator(".cite-tip").first).to_be_visible()
    expect(page.locator(".cite-tip").first).to_contain_text("lit the lamp")
    chip.click()
    expect(page).to_have_url(re.compile(r"/documents/[0-9a-f-]+/\?start=\d+&end=\d+#passage$"))
    mark = page.locator("mark#passage")
    expect(mark).to_be_visible()
    expect(mark).to_contain_text("lit the lamp")
    screenshot(page, "document")

    # Log out with the nav button.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_text("You are logged out.")).to_be_visible()

    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
    assert console_errors == []
