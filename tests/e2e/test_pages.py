"""Every page of Docent, screenshotted, audited with axe-core and checked for layout faults at a
desktop and a phone width.

One walk over realistic data (ingested documents, a bulk import with failures, a conversation,
summary and extraction runs, a member, open invitations, a long email address) so each page
shows its full content, not an empty state only. Findings of every page are gathered first and
reported together, so one run lists all that needs fixing. Screenshots, axe-violations.json and
layout-faults.json go to $DOCENT_SCREENSHOTS_DIR (default var/screenshots/).

The pages, by URL name (admin pages aside; POST-only actions and JSON/fragment endpoints have
no page of their own, their results are the pages below):
  accounts: signup, login, verify_email, verify_resend, password_reset, password_reset_done,
            password_reset_confirm (valid and spent link), password_reset_complete, password_change
  projects: list (empty and full), create, edit, delete, members (as owner and as editor),
            invitations (then invitation_accept, landing on the project), 403 and 404 pages
  workspace: projects:detail (empty, with documents and an import), projects:search (blank and
            with results), search (all projects), documents:detail (Markdown, plain text, a cited
            passage highlighted), agents:detail (ask with citations, summary, extraction),
            agents:thread
  config: redoc (the API docs the footer links to; Swagger UI at swagger-ui is third-party markup
          that fails WCAG AA on its own, see templates/base.html)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents import services as agent_services
from agents.models import AgentRun, RunKind, RunStatus
from conftest import make_project
from documents import services as document_services
from documents.models import Document, DocumentStatus
from projects import invitations
from projects.models import Membership, Project, Role
from tests.e2e.pages import (
    VIEWPORTS,
    Findings,
    assert_accessible,
    check_page,
    chromium_page,
    layout_faults,
    write_report,
)

# Long on purpose: it shows in the nav, the run and document details, conversations and tables.
EMAIL = "marguerite.featherstonehaugh@coastal-navigation-research.example.org"
PASSWORD = "correct-horse-battery"

HARBOUR_MD = b"""# Harbour notes

The lighthouse keeper lit the lamp at dusk every evening.
Fog rolled over the bay until morning, and the ferries waited at the quay.

## The quay

The bakery on the quay sells rye bread on Sundays.

| Day | Ferry |
| --- | --- |
| Monday | 07:10 |
| Sunday | 09:30 |
"""
PUMP_TEXT = """# Brightwater pump

The Brightwater pump was installed at the river station in 2019.
It was designed by Ada Okafor at Hydrowerk.
The intake filter must be cleaned every two weeks during the summer.
"""
TIDES_TEXT = "High tide at the harbour mouth comes about fifty minutes later each day."
FERRIES_TEXT = "The ferries wait at the quay while fog rolls over the bay.\n"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Page]:
    # Playwright's sync API runs an event loop in this thread, which also uses the ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.LLM_PROVIDER = "offline"  # answers without a model server, deterministically
    with chromium_page() as page:
        yield page


def emailed_link(pattern: str) -> str:
    link = re.search(pattern, mail.outbox[-1].body)
    assert link, mail.outbox[-1].body
    return link.group(0)


def log_in(page: Page, base: str) -> None:
    page.goto(base + reverse("accounts:login"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + reverse("projects:list"))


def ready(document: Document) -> Document:
    """Ingest ran inline on commit (eager tasks); a failure here is not an accessibility issue."""
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY, document.error
    return document


def finished(run: AgentRun) -> AgentRun:
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def import_folder(folder: Path) -> list[Path]:
    """A folder to bulk-import: a text file, a corpus with one broken line, a PDF that is not one."""
    folder.mkdir()
    (folder / "ferries.txt").write_text(FERRIES_TEXT, encoding="utf-8")
    corpus = [{"_id": "quay-1", "title": "The quay at night", "text": "Lanterns hang along the quay."}]
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps(line) for line in corpus) + "\n{not json\n", encoding="utf-8"
    )
    (folder / "scanned-logbook.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    return [folder]


def build_data(user: User, folder: Path) -> dict[str, Any]:
    """A project with ingested documents, an import, runs of every kind, a member and invitations."""
    project = make_project(user, title="Harbour")
    project.description = "Notes about the harbour, its lighthouse and the river pump."
    project.save(update_fields=["description"])
    editor = UserFactory(email="editor@example.com")
    Membership.objects.create(project=project, user=editor, role=Role.EDITOR)
    markdown = ready(
        document_services.document_create(
            user=user,
            project=project,
            upload=SimpleUploadedFile("harbour.md", HARBOUR_MD, content_type="text/markdown"),
        )
    )
    pasted = ready(
        document_services.document_create(user=user, project=project, title="Pump notes", text=PUMP_TEXT)
    )
    ready(document_services.document_create(user=user, project=project, title="Tides", text=TIDES_TEXT))
    # A file name for a title, long and without spaces, as uploads often have: the documents
    # table must still show every row's Delete button whole at 1366 px.
    document_services.document_create(
        user=user,
        project=project,
        title="North_Harbour_Pumping_Station_Quarterly_Maintenance_Report_2024_final_v3.docx",
        text=PUMP_TEXT + " (quarterly report)",
    )
    document_services.documents_import(user=user, project=project, paths=import_folder(folder))
    question = finished(
        agent_services.run_create(
            user=user, project=project, kind=RunKind.ASK, question="Who lit the lamp at dusk?"
        )
    )
    assert question.citations, "the ask run has no citations to show"
    finished(
        agent_services.run_create(
            user=user,
            project=project,
            kind=RunKind.ASK,
            question="What does the bakery sell?",
            thread=question.thread,
        )
    )
    summary = finished(
        agent_services.run_create(user=user, project=project, kind=RunKind.SUMMARIZE, document=markdown)
    )
    extraction = finished(
        agent_services.run_create(user=user, project=project, kind=RunKind.EXTRACT, document=pasted)
    )
    invitations.invitation_create(user=user, project=project, email="guest@example.com")
    # Someone else's project invites this user, so their invitations page has one to answer.
    other_owner = UserFactory(email="lighthouse@example.com")
    other = make_project(other_owner, title="Lighthouse logbook")
    invitations.invitation_create(user=other_owner, project=other, email=user.email, role=Role.EDITOR)
    empty = make_project(user, title="Empty shelf")
    return {
        "project": project,
        "other": other,
        "empty": empty,
        "markdown": markdown,
        "pasted": pasted,
        "question": question,
        "thread": question.thread,
        "summary": summary,
        "extraction": extraction,
    }


def owner_pages(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, path) of the signed-in pages over the data, built from URL names so moved views keep working."""
    project: Project = data["project"]
    return [
        ("project-list", reverse("projects:list")),
        ("project-new", reverse("projects:create")),
        ("project-edit", reverse("projects:edit", args=[project.pk])),
        ("project-delete", reverse("projects:delete", args=[project.pk])),
        ("project", reverse("projects:detail", args=[project.pk])),
        ("project-empty", reverse("projects:detail", args=[data["empty"].pk])),
        ("members", reverse("projects:members", args=[project.pk])),
        ("document-markdown", reverse("documents:detail", args=[data["markdown"].pk])),
        ("document-text", reverse("documents:detail", args=[data["pasted"].pk])),
        ("search-blank", reverse("projects:search", args=[project.pk])),
        ("search", reverse("projects:search", args=[project.pk]) + "?q=who+lit+the+lamp"),
        ("search-all", reverse("search") + "?q=filter+cleaned"),
        ("run-ask", reverse("agents:detail", args=[data["question"].pk])),
        ("run-summary", reverse("agents:detail", args=[data["summary"].pk])),
        ("run-extract", reverse("agents:detail", args=[data["extraction"].pk])),
        ("thread", reverse("agents:thread", args=[data["thread"].pk])),
        ("password-change", reverse("accounts:password_change")),
        ("not-found", reverse("projects:detail", args=[uuid.uuid4()])),
    ]


# Undo, in the loaded page, what keeps an address in its card and a date on one line (through
# the CSSOM, which the CSP allows), so the checker is seen to catch exactly those faults.
BREAK_EMAILS = """() => document.querySelectorAll(".email").forEach((el) => {
  el.style.overflowWrap = "normal"; el.style.whiteSpace = "nowrap";
})"""
BREAK_DATES = """() => document.querySelectorAll(".table td.date").forEach((cell) => {
  cell.style.width = "1px"; cell.querySelector("time").style.whiteSpace = "normal";
})"""


def assert_layout_checks_catch_faults(page: Page, base: str, data: dict[str, Any]) -> None:
    """The layout checks are not vacuous: an address let loose and dates let wrap are reported."""
    page.set_viewport_size(VIEWPORTS["phone"])
    page.goto(base + reverse("agents:detail", args=[data["question"].pk]))
    page.evaluate(BREAK_EMAILS)
    faults = "\n".join(layout_faults(page, "broken-run", "phone"))
    assert "scrolls sideways" in faults and "span.email" in faults and "sticks out of its card" in faults, (
        faults
    )
    page.set_viewport_size(VIEWPORTS["desktop"])
    page.goto(base + reverse("projects:detail", args=[data["project"].pk]))
    page.evaluate(BREAK_DATES)
    faults = "\n".join(layout_faults(page, "broken-project", "desktop"))
    assert "wraps onto 2 lines" in faults, faults


def visit(page: Page, url: str, name: str, status: int = 200, ready: str = "") -> Findings:
    response = page.goto(url)
    assert response is not None, f"{name}: no response from {url}"
    assert response.status == status, f"{name}: {url} answered {response.status}, not {status}"
    return check_page(page, name, ready=ready)


def test_every_page_is_accessible_and_keeps_to_the_screen_at_desktop_and_phone_widths(
    page: Page, live_server: Any, tmp_path: Path
) -> None:
    base = live_server.url
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda m: csp_errors.append(f"{page.url}: {m.text}") if "Content Security Policy" in m.text else None,
    )
    found = Findings()

    # Signed out: the account forms, the address confirmation and the password reset, in order.
    found += visit(page, base + reverse("accounts:login"), "login")
    found += visit(page, base + reverse("accounts:signup"), "signup")
    # The install's first account is confirmed at once, signed in and made its administrator.
    page.get_by_label("Email").fill("harbourmaster@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(base + reverse("projects:list"))
    expect(page.get_by_text("you are its administrator")).to_be_visible()
    found += check_page(page, "project-list-first-account")
    page.context.clear_cookies()  # signed out: a later visitor signs up and confirms by email
    found += visit(page, base + reverse("accounts:signup"), "signup-later")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(base + reverse("accounts:login"))
    found += check_page(page, "login-after-signup")  # with the "check your inbox" message
    found += visit(page, emailed_link(r"https?://\S+/accounts/verify/\S+/"), "verify-email")
    page.get_by_role("button", name="Confirm my address").click()
    found += visit(page, base + reverse("accounts:verify_resend"), "verify-resend")

    found += visit(page, base + reverse("accounts:password_reset"), "password-reset")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_role("button", name="Send the link").click()
    expect(page).to_have_url(base + reverse("accounts:password_reset_done"))
    found += check_page(page, "password-reset-done")
    reset_link = emailed_link(r"https?://\S+/accounts/reset/\S+/")
    found += visit(page, reset_link, "password-reset-confirm")  # redirected to its set-password form
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    found += visit(
        page,
        base + reverse("accounts:password_reset_confirm", args=["MQ", "spent-token"]),
        "password-reset-spent",
    )
    found += visit(page, base + reverse("accounts:password_reset_complete"), "password-reset-complete")

    # Signed in: a new account first, then the whole workspace over realistic data.
    log_in(page, base)
    found += check_page(page, "project-list-empty")
    user = User.objects.get(email=EMAIL)
    data = build_data(user, tmp_path / "import")
    for name, path in owner_pages(data):
        found += visit(page, base + path, name, status=404 if name == "not-found" else 200)
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()

    # A cited passage, reached as a reader would: from the answer's first source.
    page.goto(base + reverse("agents:detail", args=[data["question"].pk]))
    page.locator("a.citation-link").first.click()
    expect(page.locator("mark#passage")).to_be_visible()
    found += check_page(page, "document-passage")

    assert_layout_checks_catch_faults(page, base, data)

    # Answering an invitation: the page that lists it, then where accepting lands.
    found += visit(page, base + reverse("projects:invitations"), "invitations")
    page.get_by_role("row", name=re.compile("Lighthouse logbook")).get_by_role(
        "button", name="Accept"
    ).click()
    expect(page).to_have_url(base + reverse("projects:detail", args=[data["other"].pk]))
    found += check_page(page, "invitation-accepted")
    found += visit(page, base + reverse("projects:members", args=[data["other"].pk]), "members-as-editor")
    found += visit(page, base + reverse("projects:edit", args=[data["other"].pk]), "forbidden", status=403)
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    # The API docs the footer links to: Redoc, served from the sidecar package and drawn by its script.
    page.get_by_role("contentinfo").get_by_role("link", name="API").click()
    expect(page).to_have_url(base + reverse("redoc"))
    found += visit(page, base + reverse("redoc"), "api-docs", ready="h1")

    write_report(found.violations, found.layout)
    # Redoc always tries its footer logo from cdn.redoc.ly; refusing it is the CSP doing its job.
    csp_errors = [e for e in csp_errors if "https://cdn.redoc.ly/" not in e]
    # One failure naming everything: refused by the CSP, laid out wrong, and axe's violations.
    problems = []
    if csp_errors:
        problems.append("the CSP refused something while checking:\n" + "\n".join(csp_errors))
    if found.layout:
        problems.append(f"{len(found.layout)} layout fault(s):\n" + "\n".join(found.layout))
    try:
        assert_accessible(found.violations)
    except AssertionError as exc:
        problems.append(str(exc))
    assert not problems, "\n\n".join(problems)
