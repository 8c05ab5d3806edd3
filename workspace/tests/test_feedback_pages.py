"""Rating answers on the pages (the form under each answer) and the owners' page of rated answers."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from agents import feedback
from agents.models import AgentRun, Rating, RunFeedback, RunKind, RunStatus, Thread
from documents.models import DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory
from workspace.views import feedback as feedback_pages

pytestmark = pytest.mark.django_db

TEXT = "The lighthouse keeper lit the lamp at dusk. Fog rolled over the bay until morning."
QUOTE = "The lighthouse keeper lit the lamp at dusk."


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(user: Any, project: Project) -> dict[str, Any]:
    found = {"owner": user, "outsider": UserFactory(email="stranger@example.com")}
    for role in (Role.EDITOR, Role.VIEWER):
        found[role] = UserFactory(email=f"{role}@example.com")
        MembershipFactory(project=project, user=found[role], role=role)
    return found


def conversation(project: Project, starter: Any, *, shared: bool = True) -> Thread:
    return Thread.objects.create(
        project=project, created_by=starter, title="Who lit the lamp?", turn_count=0, shared=shared
    )


def turn(thread: Thread, question: str = "Who lit the lamp?", **fields: Any) -> AgentRun:
    document = DocumentFactory(
        project=thread.project, title="Lighthouse log", text=TEXT, status=DocumentStatus.READY
    )
    values: dict[str, Any] = {
        "kind": RunKind.ASK,
        "question": question,
        "status": RunStatus.SUCCEEDED,
        "answer": "The keeper lit it [1].",
        "citations": [
            {"document": str(document.pk), "chunk": 0, "start": 0, "end": len(QUOTE), "quote": QUOTE}
        ],
        "output": {"answered": True},
    }
    values.update(fields)
    Thread.objects.filter(pk=thread.pk).update(turn_count=thread.turns.count() + 1)
    return AgentRun.objects.create(
        project=thread.project, created_by=thread.created_by, thread=thread, **values
    )


def thread_url(run: AgentRun) -> str:
    return f"/runs/threads/{run.thread_id}/"


def rating_form(client: Client, run: AgentRun) -> Any:
    soup = BeautifulSoup(client.get(thread_url(run)).content, "html.parser")
    article = soup.find("article", id=f"turn-{run.pk}")
    assert article is not None
    return article.find("form", attrs={"data-feedback": str(run.pk)})


def pressed(form: Any) -> dict[str, str]:
    return {b["value"]: b["aria-pressed"] for b in form.select("button.feedback-btn")}


# --- the form under each answer ------------------------------------------------------------


def test_a_viewer_sees_the_rating_form_under_each_answer(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    form = rating_form(client_for(people[Role.VIEWER]), run)

    assert form is not None
    assert form["method"] == "post"
    assert form["action"] == f"/runs/{run.pk}/feedback/"
    assert form.find("input", attrs={"name": "csrfmiddlewaretoken"}) is not None
    assert "Was this answer helpful?" in form.get_text()
    assert pressed(form) == {"up": "false", "down": "false"}
    note = form.find("textarea", attrs={"name": "note"})
    assert note["maxlength"] == str(feedback.NOTE_MAX)
    assert form.find("label", attrs={"for": note["id"]}) is not None
    assert form.find("button", string="Remove rating") is None


def test_an_unfinished_or_failed_turn_has_no_rating_form(project: Project, people: dict[str, Any]) -> None:
    thread = conversation(project, people["owner"])
    failed = turn(thread, "First?", status=RunStatus.FAILED, answer="", error="timed out")
    working = turn(thread, "Second?", status=RunStatus.GENERATING, answer="")
    client = client_for(people["owner"])
    assert rating_form(client, failed) is None
    assert rating_form(client, working) is None


def test_rating_from_the_form_shows_the_rating_and_lets_it_change_and_go(
    project: Project, people: dict[str, Any]
) -> None:
    run = turn(conversation(project, people["owner"]))
    viewer = client_for(people[Role.VIEWER])

    response = viewer.post(f"/runs/{run.pk}/feedback/", {"rating": "up", "note": "Just right."})
    assert response.status_code == 302
    assert response["Location"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    form = rating_form(viewer, run)
    assert "You rated this answer helpful." in form.get_text()
    assert pressed(form) == {"up": "true", "down": "false"}
    assert form.find("textarea").get_text() == "Just right."
    assert form.find("details").has_attr("open")
    remove = form.find("button", string="Remove rating")
    assert remove["formaction"] == f"/runs/{run.pk}/feedback/remove/"

    viewer.post(f"/runs/{run.pk}/feedback/", {"rating": "down", "note": "Just right."})
    form = rating_form(viewer, run)
    assert "You rated this answer not helpful." in form.get_text()
    assert pressed(form) == {"up": "false", "down": "true"}
    assert RunFeedback.objects.get().rating == Rating.DOWN

    gone = viewer.post(f"/runs/{run.pk}/feedback/remove/")
    assert gone["Location"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    assert not RunFeedback.objects.exists()
    assert "Was this answer helpful?" in rating_form(viewer, run).get_text()


def test_each_person_sees_their_own_rating(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    feedback.feedback_set(user=people[Role.EDITOR], run=run, rating="down", note="Editor's note.")
    form = rating_form(client_for(people[Role.VIEWER]), run)
    assert pressed(form) == {"up": "false", "down": "false"}
    assert "Editor's note." not in str(form)


def test_the_turn_fragment_carries_the_form_too(project: Project, people: dict[str, Any]) -> None:
    """The thread page's script swaps a finished turn in from /runs/{id}/turn/."""
    run = turn(conversation(project, people["owner"]))
    feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="up")
    soup = BeautifulSoup(client_for(people[Role.VIEWER]).get(f"/runs/{run.pk}/turn/").content, "html.parser")
    form = soup.find("form", attrs={"data-feedback": str(run.pk)})
    assert form["action"] == f"/runs/{run.pk}/feedback/"
    assert pressed(form)["up"] == "true"


def test_a_run_outside_a_conversation_goes_back_to_its_run_page(
    project: Project, people: dict[str, Any]
) -> None:
    summary = AgentRun.objects.create(
        project=project,
        created_by=people["owner"],
        kind=RunKind.SUMMARIZE,
        status=RunStatus.SUCCEEDED,
        answer="A log of a lighthouse.",
    )
    response = client_for(people[Role.VIEWER]).post(f"/runs/{summary.pk}/feedback/", {"rating": "up"})
    assert response["Location"] == f"/runs/{summary.pk}/"
    assert RunFeedback.objects.get().run_id == summary.pk


def test_someone_elses_private_conversation_is_404_to_rate(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people[Role.EDITOR], shared=False))
    viewer = client_for(people[Role.VIEWER])
    assert viewer.post(f"/runs/{run.pk}/feedback/", {"rating": "up"}).status_code == 404
    assert viewer.post(f"/runs/{run.pk}/feedback/remove/").status_code == 404
    assert (
        client_for(people["outsider"]).post(f"/runs/{run.pk}/feedback/", {"rating": "up"}).status_code == 404
    )
    assert not RunFeedback.objects.exists()


def test_an_unfinished_answer_is_refused_with_a_message(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]), status=RunStatus.GENERATING, answer="")
    viewer = client_for(people[Role.VIEWER])
    response = viewer.post(f"/runs/{run.pk}/feedback/", {"rating": "up"}, follow=True)
    assert feedback.STILL_WORKING in response.content.decode()
    assert not RunFeedback.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rating": "sideways"}, feedback.RATING_CHOICE),
        ({}, feedback.RATING_CHOICE),
        ({"rating": "up", "note": "x" * (feedback.NOTE_MAX + 1)}, "A note has at most 2,000 characters."),
    ],
)
def test_a_tampered_form_is_refused_with_a_message(
    project: Project, people: dict[str, Any], body: dict[str, str], message: str
) -> None:
    run = turn(conversation(project, people["owner"]))
    response = client_for(people[Role.VIEWER]).post(f"/runs/{run.pk}/feedback/", body, follow=True)
    assert response.status_code == 200
    text = BeautifulSoup(response.content, "html.parser").get_text()
    assert message in text
    assert not RunFeedback.objects.exists()


def test_removing_a_rating_that_is_not_there_says_so(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    response = client_for(people[Role.VIEWER]).post(f"/runs/{run.pk}/feedback/remove/", follow=True)
    assert feedback.NO_RATING in BeautifulSoup(response.content, "html.parser").get_text()


def test_the_forms_need_post_and_a_signed_in_person(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    assert client_for(people[Role.VIEWER]).get(f"/runs/{run.pk}/feedback/").status_code == 405
    anonymous = Client().post(f"/runs/{run.pk}/feedback/", {"rating": "up"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")


def test_the_form_checks_csrf(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    client = Client(enforce_csrf_checks=True)
    client.force_login(people[Role.VIEWER])
    assert client.post(f"/runs/{run.pk}/feedback/", {"rating": "up"}).status_code == 403
    assert not RunFeedback.objects.exists()


def test_a_long_conversation_reads_its_ratings_in_one_query(project: Project, people: dict[str, Any]) -> None:
    thread = conversation(project, people["owner"])
    first = turn(thread, "One?")
    viewer = client_for(people[Role.VIEWER])
    feedback.feedback_set(user=people[Role.VIEWER], run=first, rating="up")

    def rating_queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            assert viewer.get(thread_url(first)).status_code == 200
        return sum('"agents_runfeedback"' in q["sql"] for q in seen.captured_queries)

    assert rating_queries() == 1
    for n in range(4):
        feedback.feedback_set(user=people[Role.VIEWER], run=turn(thread, f"Q{n}?"), rating="down")
    assert rating_queries() == 1


# --- the owners' page --------------------------------------------------------------------


def page_text(client: Client, url: str) -> tuple[int, Any]:
    response = client.get(url)
    return response.status_code, BeautifulSoup(response.content, "html.parser")


def test_owners_see_rated_answers_with_question_answer_citations_and_notes(
    project: Project, people: dict[str, Any]
) -> None:
    run = turn(conversation(project, people["owner"]))
    turn(conversation(project, people["owner"]), "Never rated?")
    feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="up", note="Spot on.\nThanks.")
    feedback.feedback_set(user=people[Role.EDITOR], run=run, rating="down", note="Too short.")

    status, soup = page_text(client_for(people["owner"]), f"/projects/{project.pk}/feedback/")

    assert status == 200
    rated = soup.select("article.rated-answer")
    assert len(rated) == 1
    item = rated[0]
    question = item.find("h3").find("a")
    assert question.get_text() == "Who lit the lamp?"
    assert question["href"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    assert "The keeper lit it" in item.select_one(".answer").get_text()
    assert item.select_one("a.cite-chip") is not None
    source = item.select_one("ol.citations li")
    assert "Lighthouse log" in source.get_text()
    assert source.find("blockquote").get_text() == QUOTE
    notes = [n.get_text() for n in item.select("[data-field=note]")]
    assert sorted(notes) == ["Spot on.Thanks.", "Too short."]
    assert item.select_one("[data-field=note] br") is not None
    assert "viewer@example.com" in item.get_text()
    assert "editor@example.com" in item.get_text()
    assert "1 helpful · 1 not helpful" in item.select_one("[data-field=tally]").get_text()
    assert "Never rated?" not in soup.get_text()
    counts = {a.get_text(" ", strip=True) for a in soup.select(".feedback-filter a")}
    assert counts == {"All 2", "Helpful 1", "Not helpful 1"}


def test_owners_filter_by_rating(project: Project, people: dict[str, Any]) -> None:
    liked = turn(conversation(project, people["owner"]), "Liked?")
    disliked = turn(conversation(project, people["owner"]), "Disliked?")
    feedback.feedback_set(user=people[Role.VIEWER], run=liked, rating="up", note="Good one.")
    feedback.feedback_set(user=people[Role.VIEWER], run=disliked, rating="down", note="Bad one.")
    owner = client_for(people["owner"])

    for query, shown, hidden in [
        ("?rating=up", "Liked?", "Disliked?"),
        ("?rating=down", "Disliked?", "Liked?"),
    ]:
        _, soup = page_text(owner, f"/projects/{project.pk}/feedback/{query}")
        questions = [h.get_text() for h in soup.select("article.rated-answer h3")]
        assert questions == [shown]
        assert hidden not in soup.get_text()
        active = soup.select_one(".feedback-filter a[aria-current=page]")
        assert active["href"].endswith(query)
    _, soup = page_text(owner, f"/projects/{project.pk}/feedback/?rating=nonsense")
    assert len(soup.select("article.rated-answer")) == 2


def test_a_filtered_answer_shows_only_ratings_of_that_kind(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="up", note="Up note.")
    feedback.feedback_set(user=people[Role.EDITOR], run=run, rating="down", note="Down note.")
    _, soup = page_text(client_for(people["owner"]), f"/projects/{project.pk}/feedback/?rating=down")
    assert [n.get_text() for n in soup.select("[data-field=note]")] == ["Down note."]
    # The tally still counts both kinds.
    assert "1 helpful · 1 not helpful" in soup.select_one("[data-field=tally]").get_text()


def test_the_page_is_paginated_latest_first(
    project: Project, people: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_pages, "RATED_PER_PAGE", 2)
    for n in range(3):
        run = turn(conversation(project, people["owner"]), f"Question {n}?")
        feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="up")
    owner = client_for(people["owner"])
    _, first = page_text(owner, f"/projects/{project.pk}/feedback/?rating=up")
    _, second = page_text(owner, f"/projects/{project.pk}/feedback/?rating=up&page=2")
    assert [h.get_text() for h in first.select("article h3")] == ["Question 2?", "Question 1?"]
    assert [h.get_text() for h in second.select("article h3")] == ["Question 0?"]
    assert first.select_one(".pagination a")["href"] == "?rating=up&page=2"


def test_notes_are_shown_as_text_not_markup(project: Project, people: dict[str, Any]) -> None:
    run = turn(conversation(project, people["owner"]))
    feedback.feedback_set(
        user=people[Role.VIEWER], run=run, rating="down", note='<img src=x onerror="alert(1)">'
    )
    body = client_for(people["owner"]).get(f"/projects/{project.pk}/feedback/").content.decode()
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body


def test_an_empty_page_says_how_ratings_arrive(project: Project, people: dict[str, Any]) -> None:
    _, soup = page_text(client_for(people["owner"]), f"/projects/{project.pk}/feedback/")
    assert "No answer was rated yet." in soup.get_text()


@pytest.mark.parametrize(("role", "status"), [(Role.EDITOR, 403), (Role.VIEWER, 403), ("outsider", 404)])
def test_only_owners_open_the_page(project: Project, people: dict[str, Any], role: str, status: int) -> None:
    run = turn(conversation(project, people["owner"]))
    feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="up", note="Owners only.")
    response = client_for(people[role]).get(f"/projects/{project.pk}/feedback/")
    assert response.status_code == status
    assert "Owners only." not in response.content.decode()


def test_the_project_page_links_owners_to_the_rated_answers(project: Project, people: dict[str, Any]) -> None:
    link = f'href="/projects/{project.pk}/feedback/"'
    assert link in client_for(people["owner"]).get(f"/projects/{project.pk}/").content.decode()
    for role in (Role.EDITOR, Role.VIEWER):
        assert link not in client_for(people[role]).get(f"/projects/{project.pk}/").content.decode()


def test_the_page_costs_the_same_queries_however_many_answers(
    project: Project, people: dict[str, Any]
) -> None:
    owner = client_for(people["owner"])
    url = f"/projects/{project.pk}/feedback/"
    feedback.feedback_set(
        user=people[Role.VIEWER], run=turn(conversation(project, people["owner"])), rating="up"
    )
    with CaptureQueriesContext(connection) as one:
        owner.get(url)
    for n in range(4):
        run = turn(conversation(project, people["owner"]), f"Q{n}?")
        feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="down")
        feedback.feedback_set(user=people[Role.EDITOR], run=run, rating="up")
    with CaptureQueriesContext(connection) as five:
        owner.get(url)
    assert len(five.captured_queries) == len(one.captured_queries)
