"""Rating an answer in a real Chromium, and finding the rating on the owner's page.

A viewer rates an answer "Not helpful" with a note from the conversation page (a plain form,
no script needed), changes their mind, and the project's owner finds the answer, its sources
and the note on the page of rated answers, filtered to the unhelpful ones. Both pages are
audited with axe-core and checked for layout faults at a desktop and a phone width.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Page, expect

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, Rating, RunFeedback, RunKind, RunStatus, Thread
from conftest import make_project
from documents.models import DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Role
from tests.e2e.pages import VIEWPORTS, assert_accessible, audit, chromium_page, layout_faults, screenshot
from tests.e2e.test_browser import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = "The lighthouse keeper lit the lamp at dusk. Fog rolled over the bay until morning."
QUOTE = "The lighthouse keeper lit the lamp at dusk."
NOTE = "It should say that the fog lifted in the morning."


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    # Playwright's sync API runs an event loop in this thread, which also uses the ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_page() as page:
        yield page


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            errors.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


def log_in(page: Page, base: str, email: str) -> None:
    page.context.clear_cookies()
    page.goto(base + reverse("accounts:login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/")


def check_widths(page: Page, name: str) -> tuple[list[Any], list[str]]:
    violations, faults = [], []
    for width, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.reload()
        screenshot(page, name, width)
        violations += audit(page, name, width)
        faults += layout_faults(page, name, width)
    page.set_viewport_size(VIEWPORTS["desktop"])
    return violations, faults


def test_a_viewer_rates_an_answer_and_the_owner_finds_it_on_the_rated_answers_page(
    page: Page, live_server: Any, console_errors: list[str]
) -> None:
    owner = UserFactory(email="keeper@example.com", password=PASSWORD)
    viewer = UserFactory(email="reader@example.com", password=PASSWORD)
    project = make_project(owner, title="Lighthouse")
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    document = DocumentFactory(
        project=project, uploaded_by=owner, title="Lighthouse log", text=TEXT, status=DocumentStatus.READY
    )
    thread = Thread.objects.create(
        project=project, created_by=owner, title="Who lit the lamp?", turn_count=1, shared=True
    )
    run = AgentRun.objects.create(
        project=project,
        created_by=owner,
        thread=thread,
        kind=RunKind.ASK,
        question="Who lit the lamp?",
        status=RunStatus.SUCCEEDED,
        answer="The lighthouse keeper lit the lamp at dusk [1].",
        citations=[{"document": str(document.pk), "chunk": 0, "start": 0, "end": len(QUOTE), "quote": QUOTE}],
        output={"answered": True},
        provider="offline",
    )
    base = live_server.url
    violations: list[Any] = []
    faults: list[str] = []

    # The viewer rates the answer "Not helpful", with a note, from the conversation page.
    log_in(page, base, viewer.email)
    page.goto(base + reverse("agents:thread", args=[thread.pk]))
    answer = page.locator(f"#turn-{run.pk}")
    form = answer.locator("form.feedback")
    expect(form).to_contain_text("Was this answer helpful?")
    form.get_by_text("Add a note").click()
    form.get_by_label("Note for the project's owners (optional)").fill(NOTE)
    form.get_by_role("button", name="Not helpful").click()
    expect(page).to_have_url(base + reverse("agents:thread", args=[thread.pk]) + f"#turn-{run.pk}")
    form = page.locator(f"#turn-{run.pk} form.feedback")
    expect(form.locator("[data-field=my-rating]")).to_have_text("You rated this answer not helpful.")
    expect(form.get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")
    expect(form.get_by_role("button", name="Helpful", exact=True)).to_have_attribute("aria-pressed", "false")
    expect(form.get_by_label("Note for the project's owners (optional)")).to_have_value(NOTE)
    assert RunFeedback.objects.get().rating == Rating.DOWN
    found = check_widths(page, "feedback-thread")
    violations += found[0]
    faults += found[1]

    # They change their mind, then back again: one rating, the latest, with the note kept.
    form.get_by_role("button", name="Helpful", exact=True).click()
    expect(page.locator(f"#turn-{run.pk} [data-field=my-rating]")).to_have_text(
        "You rated this answer helpful."
    )
    page.locator(f"#turn-{run.pk} form.feedback").get_by_role("button", name="Not helpful").click()
    expect(page.locator(f"#turn-{run.pk} [data-field=my-rating]")).to_have_text(
        "You rated this answer not helpful."
    )
    assert list(RunFeedback.objects.values_list("rating", "note")) == [(Rating.DOWN, NOTE)]

    # The owner follows the link from the project page to the rated answers.
    log_in(page, base, owner.email)
    page.goto(base + reverse("projects:detail", args=[project.pk]))
    page.get_by_role("link", name="Rated answers").click()
    expect(page).to_have_url(base + reverse("projects:feedback", args=[project.pk]))
    rated = page.locator(f"[data-rated='{run.pk}']")
    expect(rated.get_by_role("heading", name="Who lit the lamp?")).to_be_visible()
    expect(rated.locator(".answer")).to_contain_text("The lighthouse keeper lit the lamp at dusk")
    expect(rated.locator("ol.citations")).to_contain_text("Lighthouse log")
    expect(rated.locator("ol.citations blockquote")).to_have_text(QUOTE)
    expect(rated.locator("[data-field=note]")).to_have_text(NOTE)
    expect(rated).to_contain_text(viewer.email)
    expect(rated.locator(".rating-badge")).to_have_text("Not helpful")
    found = check_widths(page, "feedback-owner")
    violations += found[0]
    faults += found[1]

    # Filtered: the unhelpful ones keep it, the helpful ones do not.
    filters = page.get_by_role("navigation", name="Show ratings")
    filters.get_by_role("link", name=re.compile(r"^Not helpful")).click()
    expect(page).to_have_url(base + reverse("projects:feedback", args=[project.pk]) + "?rating=down")
    expect(page.locator(f"[data-rated='{run.pk}']")).to_be_visible()
    filters.get_by_role("link", name=re.compile(r"^Helpful")).click()
    expect(page).to_have_url(base + reverse("projects:feedback", args=[project.pk]) + "?rating=up")
    expect(page.locator("[data-rated]")).to_have_count(0)
    expect(page.get_by_text("No answer was rated helpful yet.")).to_be_visible()

    # The answer's own link leads back to it in the conversation.
    filters.get_by_role("link", name=re.compile(r"^All")).click()
    page.locator(f"[data-rated='{run.pk}'] h3 a").click()
    expect(page).to_have_url(base + reverse("agents:thread", args=[thread.pk]) + f"#turn-{run.pk}")

    assert_accessible(violations)
    assert faults == [], "\n".join(faults)
    assert console_errors == [], console_errors
