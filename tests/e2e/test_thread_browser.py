"""A whole conversation in a real Chromium, against the production shape of Docent:
gunicorn with uvicorn (ASGI) workers, a real Celery worker, and an OpenAI-compatible
model server (the fake one, streaming slowly enough to watch).

Ask, watch the answer's text arrive piece by piece, follow up with "its", open a
citation chip, and see a question the documents cannot answer declined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.tests.factories import UserFactory
from agents.tests.fake_openai import Behaviour, FakeOpenAI, ReceivedRequest, reply_json, reply_text
from conftest import make_project
from documents import services as document_services
from documents.models import DocumentStatus
from tests.e2e.pages import VIEWPORTS, assert_accessible, audit, chromium_page, layout_faults
from tests.e2e.pages import screenshot as page_screenshot
from tests.e2e.test_browser import PASSWORD, screenshot
from tests.servers import web_server
from tests.worker import celery_worker, database_url

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

NOTES = (
    "Maintenance notes for the Brightwater pump.\n\n"
    "The Brightwater pump was installed at the river station in 2019. "
    "It was designed by Ada Okafor at Hydrowerk. "
    "The intake filter must be cleaned every two weeks during the summer."
)
DESIGNER = "It was designed by Ada Okafor at Hydrowerk."
FILTER = "The intake filter must be cleaned every two weeks during the summer."


def model(request: ReceivedRequest) -> Behaviour:
    """What the model says: rewrites follow-ups, answers from the passages, or declines."""
    prompt = request.prompt
    if not request.streamed:  # the follow-up rewrite
        return reply_text("How often should the Brightwater pump intake filter be cleaned?")
    question = prompt.rsplit("Question:", 1)[-1] if "Question:" in prompt else prompt
    if "salary" in question:
        return reply_json({"answer": "The documents do not say.", "answered": False, "citations": []})
    if "filter" in question:
        return reply_json(
            {
                "answer": "The pump's intake filter is cleaned every two weeks in summer [1].",
                "answered": True,
                "citations": [{"passage": 1, "quote": FILTER}],
            }
        )
    return reply_json(
        {
            "answer": "The Brightwater pump was designed by Ada Okafor of Hydrowerk [1].",
            "answered": True,
            "citations": [{"passage": 1, "quote": DESIGNER}],
        }
    )


@pytest.fixture
def stack(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares this thread
    settings.LLM_PROVIDER = "offline"
    user = UserFactory(email="asker@example.com", password=PASSWORD)
    project = make_project(user, title="Pumps")
    document = document_services.document_create(user=user, project=project, title="Pump notes", text=NOTES)
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY, document.error
    fake = FakeOpenAI(piece_size=3, piece_delay_s=0.04, responder=model)
    with fake:
        env = {
            "DOCENT_LLM_PROVIDER": "openai",
            "DOCENT_OPENAI_BASE_URL": fake.url,
            "DOCENT_OPENAI_MODEL": "fake-model",
        }
        web_env = {"DATABASE_URL": database_url(), "DOCENT_DATA_DIR": str(tmp_path), **env}
        with (
            celery_worker(tmp_path, queues="agents,default", extra_env=env),
            web_server(web_env, tmp_path / "web.log", workers=2) as base,
        ):
            yield {"base": base, "fake": fake, "project": project, "document": document}


@pytest.fixture
def page(stack: dict[str, Any]) -> Iterator[Page]:
    with chromium_page() as page:
        yield page


WATCH = """() => {
  window.__lengths = [];
  const turns = document.querySelector('[data-field="turns"]');
  new MutationObserver(() => {
    const live = turns.querySelector('.streamed');
    if (live) { window.__lengths.push(live.textContent.length); }
  }).observe(turns, { subtree: true, childList: true, characterData: true });
}"""


def test_a_whole_conversation_streams_follows_up_cites_and_declines(
    page: Page, stack: dict[str, Any]
) -> None:
    base, fake = stack["base"], stack["fake"]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))

    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill("asker@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/")
    page.goto(f"{base}/projects/{stack['project'].pk}/")

    # Ask: the conversation page opens and the answer's text arrives piece by piece.
    page.get_by_label("Ask a question").fill("Who designed the Brightwater pump?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/threads/[0-9a-f-]+/#turn-"))
    page.evaluate(WATCH)
    first = page.locator("[data-turn]").first
    expect(first.locator(".answer[data-answered=true]")).to_contain_text("Ada Okafor", timeout=60_000)
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 5, f"the text did not arrive in pieces: {lengths}"
    assert lengths == sorted(lengths), "streamed text only grows"
    expect(first.locator("[data-field=status]")).to_have_text("Succeeded")
    screenshot(page, "thread-first")

    # Follow up with "its": the turn is added in place (no reload) and streams too.
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Ask a question").fill("How often should its intake filter be cleaned?")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.evaluate(WATCH)
    second = page.locator("[data-turn]").nth(1)
    expect(second.locator(".answer[data-answered=true]")).to_contain_text("every two weeks", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of streaming in place"
    assert len(set(page.evaluate("window.__lengths"))) >= 5
    rewrites = [r for r in fake.requests if not r.streamed]
    assert rewrites and "Who designed the Brightwater pump?" in json.dumps(rewrites[-1].messages)
    expect(page.get_by_label("Ask a question")).to_have_value("")

    # A citation chip shows its quote on focus, and opens the highlighted span.
    chip = second.locator("a.cite-chip").first
    chip.focus()
    tip = second.locator(".cite-tip").first
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(FILTER)
    screenshot(page, "thread-chip")
    chip.click()
    expect(page).to_have_url(re.compile(r"/documents/[0-9a-f-]+/\?start=\d+&end=\d+#passage$"))
    expect(page.locator("mark#passage")).to_have_text(FILTER)
    page.go_back()

    # A question the documents cannot answer is declined, with the nearest passages.
    page.get_by_label("Ask a question").fill("What is the salary of the chief executive?")
    page.get_by_role("button", name="Ask", exact=True).click()
    third = page.locator("[data-turn]").nth(2)
    expect(third.locator(".declined")).to_contain_text("No answer in these documents", timeout=60_000)
    expect(third.locator(".declined blockquote").first).to_be_visible()
    expect(third.locator(".cite-chip")).to_have_count(0)
    screenshot(page, "thread-declined")

    # The project page lists the conversation: who asked, and its first question.
    page.goto(f"{base}/projects/{stack['project'].pk}/")
    listed = page.locator("#threads li").first
    expect(listed).to_contain_text("Who designed the Brightwater pump?")
    expect(listed).to_contain_text("asker@example.com")
    expect(listed).to_contain_text("3 questions")
    assert errors == [], errors


def test_the_header_counts_each_question_and_the_thread_is_renamed_shared_and_deleted(
    page: Page, stack: dict[str, Any]
) -> None:
    base, project = stack["base"], stack["project"]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill("asker@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/")
    page.goto(f"{base}/projects/{project.pk}/")

    # Three questions: the header's count follows each one without a reload.
    count = page.locator('[data-field="turn-count"]')
    page.get_by_label("Ask a question").fill("Who designed the Brightwater pump?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/threads/[0-9a-f-]+/#turn-"))
    expect(count).to_have_text("1 question")
    turns = page.locator("[data-turn]")
    expect(turns.first.locator("[data-field=status]")).to_have_text("Succeeded", timeout=60_000)
    page.evaluate("window.__sameDocument = true")
    for number, question in (
        (2, "How often should its intake filter be cleaned?"),
        (3, "Who installed the Brightwater pump?"),
    ):
        page.get_by_label("Ask a question").fill(question)
        page.get_by_role("button", name="Ask", exact=True).click()
        # As soon as the question is taken, before its answer arrives.
        expect(count).to_have_text(f"{number} questions")
        expect(turns).to_have_count(number)
        expect(turns.nth(number - 1).locator("[data-field=status]")).to_have_text("Succeeded", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    expect(count).to_have_text("3 questions")
    thread_url = page.url.split("#", 1)[0]
    page.goto(thread_url)
    expect(count).to_have_text("3 questions")  # and the server agrees

    # Rename, share and make private again, each with a message.
    page.get_by_text("Rename, share or delete").click()
    expect(page.locator('[data-field="visibility"]')).to_contain_text("Private")
    page.get_by_label("Title").fill("Pump questions")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Renamed to “Pump questions”.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pump questions")
    page.get_by_text("Rename, share or delete").click()
    page.get_by_role("button", name="Share with the project").click()
    expect(page.locator(".messages")).to_contain_text("Shared: every member of the project")
    expect(page.locator('[data-field="visibility"]')).to_have_text("Shared with the project")

    # The open panel keeps to the screen and passes axe, at the desktop and the phone width.
    violations, faults = [], []
    for width, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.goto(thread_url)
        page.get_by_text("Rename, share or delete").click()
        expect(page.get_by_role("button", name="Make private")).to_be_visible()
        violations += audit(page, "thread-managed", width)
        faults += layout_faults(page, "thread-managed", width)
        page_screenshot(page, "thread-managed", width)
    assert not faults, "\n".join(faults)
    assert_accessible(violations)
    screenshot(page, "thread-managed")

    # Delete asks first; dismissing keeps the conversation.
    page.set_viewport_size(VIEWPORTS["desktop"])
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete conversation").click()
    expect(page).to_have_url(thread_url)
    expect(page.get_by_role("button", name="Delete conversation")).to_be_enabled()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete conversation").click()
    expect(page).to_have_url(f"{base}/projects/{project.pk}/#threads")
    expect(page.locator(".messages")).to_contain_text("The conversation “Pump questions” was deleted.")
    expect(page.locator("#threads")).not_to_contain_text("Pump questions")
    assert errors == [], "\n".join(errors)
    gone = page.goto(thread_url)
    assert gone is not None and gone.status == 404
