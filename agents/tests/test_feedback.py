"""Answers people can rate: the services and the API (POST/GET/DELETE /api/v1/runs/{id}/feedback/
and the owners' GET /api/v1/projects/{id}/feedback/)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from agents import feedback
from agents.models import AgentRun, Rating, RunFeedback, RunKind, RunStatus, Thread
from conftest import api_for, make_project
from core.pagination import Pagination
from documents.models import DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

TEXT = "The lighthouse keeper lit the lamp at dusk. Fog rolled over the bay until morning."
QUOTE = "The lighthouse keeper lit the lamp at dusk."


@pytest.fixture
def people(user: Any, project: Project) -> dict[str, Any]:
    """The project's owner (`user`), an editor, a viewer, and an outsider."""
    found = {"owner": user, "outsider": UserFactory(email="stranger@example.com")}
    for role in (Role.EDITOR, Role.VIEWER):
        found[role] = UserFactory(email=f"{role}@example.com", name=f"The {role}")
        MembershipFactory(project=project, user=found[role], role=role)
    return found


def answer(project: Project, starter: Any, *, shared: bool = True, **fields: Any) -> AgentRun:
    """A question answered in a conversation `starter` started (shared with the project unless told)."""
    document = DocumentFactory(
        project=project, title="Lighthouse log", text=TEXT, status=DocumentStatus.READY
    )
    thread = Thread.objects.create(
        project=project, created_by=starter, title="Who lit the lamp?", turn_count=1, shared=shared
    )
    values: dict[str, Any] = {
        "kind": RunKind.ASK,
        "question": "Who lit the lamp?",
        "status": RunStatus.SUCCEEDED,
        "answer": "The keeper lit it [1].",
        "citations": [
            {"document": str(document.pk), "chunk": 0, "start": 0, "end": len(QUOTE), "quote": QUOTE}
        ],
        "output": {"answered": True},
    }
    values.update(fields)
    return AgentRun.objects.create(project=project, created_by=starter, thread=thread, **values)


def url(run: AgentRun) -> str:
    return f"/api/v1/runs/{run.pk}/feedback/"


def list_url(project: Project, query: str = "") -> str:
    return f"/api/v1/projects/{project.pk}/feedback/{query}"


# --- rating ------------------------------------------------------------------------------


def test_a_viewer_rates_an_answer_then_changes_the_rating_and_note(
    project: Project, people: dict[str, Any]
) -> None:
    run = answer(project, people["owner"])
    viewer = api_for(people[Role.VIEWER])

    first = viewer.post(url(run), {"rating": "up"}, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["run"] == str(run.pk)
    assert first.json()["rating"] == "up"
    assert first.json()["note"] == ""

    changed = viewer.post(url(run), {"rating": "down", "note": "  It missed the fog.  "}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["rating"] == "down"
    assert changed.json()["note"] == "It missed the fog."
    row = RunFeedback.objects.get()
    assert (row.run_id, row.user_id, row.rating, row.note) == (
        run.pk,
        people[Role.VIEWER].pk,
        Rating.DOWN,
        "It missed the fog.",
    )
    assert viewer.get(url(run)).json()["note"] == "It missed the fog."


def test_sending_a_rating_without_a_note_clears_the_note(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    client = api_for(people[Role.EDITOR])
    client.post(url(run), {"rating": "down", "note": "Wrong page."}, format="json")
    assert client.post(url(run), {"rating": "up"}, format="json").json()["note"] == ""


def test_each_person_has_one_rating_of_an_answer(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    for role in (Role.VIEWER, Role.EDITOR, "owner"):
        assert api_for(people[role]).post(url(run), {"rating": "up"}, format="json").status_code == 201
    assert api_for(people[Role.VIEWER]).post(url(run), {"rating": "up"}, format="json").status_code == 200
    assert RunFeedback.objects.filter(run=run).count() == 3
    with pytest.raises(IntegrityError), transaction.atomic():
        RunFeedback.objects.create(run=run, user=people[Role.VIEWER], rating=Rating.DOWN)


def test_removing_a_rating_and_removing_it_again(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    viewer = api_for(people[Role.VIEWER])
    viewer.post(url(run), {"rating": "up", "note": "Clear."}, format="json")

    assert viewer.delete(url(run)).status_code == 204
    assert not RunFeedback.objects.exists()
    again = viewer.delete(url(run))
    assert again.status_code == 404
    assert again.json() == {"detail": "Not found."}
    assert viewer.get(url(run)).status_code == 404


def test_removing_ones_rating_leaves_the_others(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    for role in (Role.VIEWER, Role.EDITOR):
        api_for(people[role]).post(url(run), {"rating": "up"}, format="json")
    assert api_for(people[Role.VIEWER]).delete(url(run)).status_code == 204
    assert list(RunFeedback.objects.values_list("user_id", flat=True)) == [people[Role.EDITOR].pk]


def test_an_outsider_gets_404_and_rates_nothing(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    outsider = api_for(people["outsider"])
    for response in (
        outsider.post(url(run), {"rating": "up"}, format="json"),
        outsider.post(url(run), {"rating": "sideways"}, format="json"),  # no 400: nothing to learn
        outsider.get(url(run)),
        outsider.delete(url(run)),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
    assert not RunFeedback.objects.exists()


def test_anonymous_callers_get_401(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    assert APIClient().post(url(run), {"rating": "up"}, format="json").status_code == 401
    assert APIClient().get(list_url(project)).status_code == 401


def test_another_members_private_conversation_is_404_to_rate(
    project: Project, people: dict[str, Any]
) -> None:
    run = answer(project, people[Role.EDITOR], shared=False)
    viewer = api_for(people[Role.VIEWER])
    assert viewer.post(url(run), {"rating": "down"}, format="json").status_code == 404
    assert viewer.delete(url(run)).status_code == 404
    # Its starter and the project's owners read it, so they may rate it.
    assert api_for(people[Role.EDITOR]).post(url(run), {"rating": "up"}, format="json").status_code == 201
    assert api_for(people["owner"]).post(url(run), {"rating": "up"}, format="json").status_code == 201
    assert set(RunFeedback.objects.values_list("user_id", flat=True)) == {
        people[Role.EDITOR].pk,
        people["owner"].pk,
    }


def test_a_rating_of_a_conversation_made_private_later_cannot_be_changed_by_others(
    project: Project, people: dict[str, Any]
) -> None:
    run = answer(project, people[Role.EDITOR], shared=True)
    viewer = api_for(people[Role.VIEWER])
    assert viewer.post(url(run), {"rating": "up"}, format="json").status_code == 201
    Thread.objects.filter(pk=run.thread_id).update(shared=False)
    assert viewer.post(url(run), {"rating": "down"}, format="json").status_code == 404
    assert viewer.get(url(run)).status_code == 404
    assert RunFeedback.objects.get().rating == Rating.UP


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RunStatus.QUEUED, feedback.STILL_WORKING),
        (RunStatus.RETRIEVING, feedback.STILL_WORKING),
        (RunStatus.GENERATING, feedback.STILL_WORKING),
        (RunStatus.FAILED, feedback.RUN_FAILED),
    ],
)
def test_only_a_succeeded_answer_can_be_rated(
    project: Project, people: dict[str, Any], status: str, message: str
) -> None:
    run = answer(project, people["owner"], status=status, answer="")
    response = api_for(people[Role.VIEWER]).post(url(run), {"rating": "up"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": message}
    assert not RunFeedback.objects.exists()


def test_a_declined_answer_can_be_rated(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"], answer="The documents do not say.", output={"answered": False})
    assert api_for(people[Role.VIEWER]).post(url(run), {"rating": "down"}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": "sideways"}, "rating"),
        ({"rating": ""}, "rating"),
        ({"rating": None}, "rating"),
        ({"rating": 1}, "rating"),
        ({}, "rating"),
        ({"note": "No rating."}, "rating"),
        ({"rating": "up", "note": "x" * (feedback.NOTE_MAX + 1)}, "note"),
        ({"rating": "up", "note": None}, "note"),
        ({"rating": "up", "note": ["a", "list"]}, "note"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    project: Project, people: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    run = answer(project, people["owner"])
    response = api_for(people[Role.VIEWER]).post(url(run), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not RunFeedback.objects.exists()


def test_the_messages_say_what_is_allowed(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    client = api_for(people[Role.VIEWER])
    bad_rating = client.post(url(run), {"rating": "sideways"}, format="json").json()
    too_long = client.post(url(run), {"rating": "up", "note": "x" * 2001}, format="json").json()
    assert bad_rating == {"rating": [feedback.RATING_CHOICE]}
    assert too_long == {"note": ["A note has at most 2,000 characters."]}


def test_a_note_of_exactly_the_limit_is_kept(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    note = "é" * feedback.NOTE_MAX
    response = api_for(people[Role.VIEWER]).post(url(run), {"rating": "up", "note": note}, format="json")
    assert response.status_code == 201
    assert RunFeedback.objects.get().note == note


def test_a_lone_surrogate_in_the_body_is_refused(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    raw = '{"rating": "up", "note": "broken \\ud800 text"}'
    response = api_for(people[Role.VIEWER]).post(url(run), raw, content_type="application/json")
    assert response.status_code == 400
    assert not RunFeedback.objects.exists()


def test_a_nul_character_is_refused_in_json_and_in_a_form(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    client = api_for(people[Role.VIEWER])
    as_json = client.post(url(run), {"rating": "up", "note": "nul \x00 byte"}, format="json")
    as_form = client.post(url(run), {"rating": "up", "note": "nul \x00 byte"})
    assert as_json.status_code == 400
    assert as_form.status_code == 400
    assert "note" in as_form.json()
    assert not RunFeedback.objects.exists()


def test_a_form_encoded_rating_works_too(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    response = api_for(people[Role.VIEWER]).post(url(run), {"rating": "down", "note": "Form."})
    assert response.status_code == 201
    assert RunFeedback.objects.get().note == "Form."


def test_a_rating_changes_nothing_else(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    thread = Thread.objects.get(pk=run.thread_id)
    before = AgentRun.objects.filter(pk=run.pk).values().get()
    api_for(people[Role.VIEWER]).post(url(run), {"rating": "down", "note": "Wrong."}, format="json")
    assert AgentRun.objects.filter(pk=run.pk).values().get() == before
    assert Thread.objects.get(pk=thread.pk).updated_at == thread.updated_at


def test_ratings_go_with_their_conversation(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    api_for(people[Role.VIEWER]).post(url(run), {"rating": "up"}, format="json")
    assert api_for(people["owner"]).delete(f"/api/v1/threads/{run.thread_id}/").status_code == 204
    assert not RunFeedback.objects.exists()


# --- the services on their own ---------------------------------------------------------------


def test_the_service_checks_that_the_person_may_read_the_run(
    project: Project, people: dict[str, Any]
) -> None:
    """A caller that hands the service a run it fetched without a check still gets a 404."""
    private = answer(project, people["owner"], shared=False)
    with pytest.raises(Http404):
        feedback.feedback_set(user=people[Role.VIEWER], run=private, rating="up")
    with pytest.raises(Http404):
        feedback.feedback_set(user=people["outsider"], run=private, rating="up")
    with pytest.raises(Http404):
        feedback.feedback_clear(user=people["outsider"], run=private)
    assert not RunFeedback.objects.exists()


def test_the_service_says_whether_it_created_or_changed(project: Project, people: dict[str, Any]) -> None:
    run = answer(project, people["owner"])
    viewer = people[Role.VIEWER]
    first, created = feedback.feedback_set(user=viewer, run=run, rating="up", note="Good.")
    again, created_again = feedback.feedback_set(user=viewer, run=run, rating="down")
    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert feedback.feedback_clear(user=viewer, run=run) is True
    assert feedback.feedback_clear(user=viewer, run=run) is False


def test_the_service_refuses_a_rating_that_is_not_up_or_down(
    project: Project, people: dict[str, Any]
) -> None:
    run = answer(project, people["owner"])
    with pytest.raises(ValidationError) as refused:
        feedback.feedback_set(user=people[Role.VIEWER], run=run, rating="+1")
    assert refused.value.message_dict == {"rating": [feedback.RATING_CHOICE]}


def test_a_note_is_kept_as_plain_lines() -> None:
    assert feedback.clean_note("  one\r\ntwo\rthree\x07\x00 \t ") == "one\ntwo\nthree"
    assert feedback.clean_note(None) == ""
    with pytest.raises(ValidationError):
        feedback.clean_note("\ud800")
    with pytest.raises(ValidationError):
        feedback.clean_note(12)


# --- the owners' list ----------------------------------------------------------------------


def rate_as(people: dict[str, Any], run: AgentRun, **ratings: tuple[str, str]) -> None:
    for role, (rating, note) in ratings.items():
        feedback.feedback_set(user=people[role], run=run, rating=rating, note=note)


def test_owners_list_the_rated_answers_with_question_answer_citations_and_notes(
    project: Project, people: dict[str, Any]
) -> None:
    run = answer(project, people["owner"])
    rate_as(people, run, viewer=("up", "Spot on."), editor=("down", "Too short."))

    response = api_for(people["owner"]).get(list_url(project))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    by_rating = {item["rating"]: item for item in body["results"]}
    up = by_rating["up"]
    assert up["run"] == str(run.pk)
    assert up["thread"] == str(run.thread_id)
    assert up["question"] == "Who lit the lamp?"
    assert up["answer"] == "The keeper lit it [1]."
    assert up["note"] == "Spot on."
    assert up["user"] == {"email": "viewer@example.com", "name": "The viewer"}
    assert up["citations"][0]["quote"] == QUOTE
    assert up["citations"][0]["start"] == 0
    # Citations read exactly as the run API shows them.
    run_citations = api_for(people["owner"]).get(f"/api/v1/runs/{run.pk}/").json()["citations"]
    assert up["citations"] == run_citations
    assert {"created_at", "updated_at", "id", "kind"} <= set(up)
    assert by_rating["down"]["note"] == "Too short."


def test_owners_filter_the_list_by_rating(project: Project, people: dict[str, Any]) -> None:
    first, second = answer(project, people["owner"]), answer(project, people["owner"], question="When?")
    rate_as(people, first, viewer=("up", ""), editor=("down", "No."))
    rate_as(people, second, viewer=("down", "Wrong."))
    owner = api_for(people["owner"])

    downs = owner.get(list_url(project, "?rating=down")).json()
    ups = owner.get(list_url(project, "?rating=up")).json()

    assert downs["count"] == 2
    assert {item["note"] for item in downs["results"]} == {"No.", "Wrong."}
    assert [item["rating"] for item in ups["results"]] == ["up"]
    assert owner.get(list_url(project)).json()["count"] == 3


def test_a_bad_rating_filter_is_a_400(project: Project, people: dict[str, Any]) -> None:
    response = api_for(people["owner"]).get(list_url(project, "?rating=sideways"))
    assert response.status_code == 400
    assert "rating" in response.json()


def test_the_list_is_latest_first_and_paginated(
    project: Project, people: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pagination, "page_size", 2)
    for n in range(3):
        rate_as(people, answer(project, people["owner"], question=f"Question {n}?"), viewer=("up", ""))
    owner = api_for(people["owner"])
    first = owner.get(list_url(project)).json()
    second = owner.get(list_url(project, "?page=2")).json()
    assert first["count"] == 3
    assert [item["question"] for item in first["results"]] == ["Question 2?", "Question 1?"]
    assert first["next"] is not None
    assert [item["question"] for item in second["results"]] == ["Question 0?"]


def test_the_list_shows_only_this_projects_ratings(project: Project, people: dict[str, Any]) -> None:
    other = make_project(people["owner"], title="Other")
    rate_as(people, answer(project, people["owner"]), owner=("up", "Here."))
    rate_as(people, answer(other, people["owner"]), owner=("down", "There."))
    notes = [item["note"] for item in api_for(people["owner"]).get(list_url(project)).json()["results"]]
    assert notes == ["Here."]


@pytest.mark.parametrize(("role", "status"), [(Role.EDITOR, 403), (Role.VIEWER, 403), ("outsider", 404)])
def test_only_owners_read_the_list(project: Project, people: dict[str, Any], role: str, status: int) -> None:
    rate_as(people, answer(project, people["owner"]), viewer=("up", "Secret note."))
    response = api_for(people[role]).get(list_url(project))
    assert response.status_code == status
    assert "Secret note." not in response.content.decode()


def test_the_list_costs_the_same_queries_however_many_ratings(
    project: Project, people: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    owner = api_for(people["owner"])
    rate_as(people, answer(project, people["owner"]), viewer=("up", ""))
    with CaptureQueriesContext(connection) as one:
        owner.get(list_url(project))
    for n in range(5):
        rate_as(
            people,
            answer(project, people["owner"], question=f"Q{n}?"),
            viewer=("down", ""),
            editor=("up", ""),
        )
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert owner.get(list_url(project)).json()["count"] == 11


def test_the_schema_documents_the_rating_endpoints(client: Any) -> None:
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/json").content)
    operations = schema["paths"]["/api/v1/runs/{id}/feedback/"]
    assert {"get", "post", "delete"} <= set(operations)
    body = schema["components"]["schemas"]["FeedbackInRequest"]
    assert body["required"] == ["rating"]
    assert body["properties"]["note"]["maxLength"] == feedback.NOTE_MAX
    listing = schema["paths"]["/api/v1/projects/{project_pk}/feedback/"]["get"]
    rating_filter = next(p for p in listing["parameters"] if p["name"] == "rating")
    assert set(rating_filter["schema"]["enum"]) == {"up", "down"}
    item = schema["components"]["schemas"]["ProjectFeedbackOut"]["properties"]
    assert {"run", "question", "answer", "citations", "rating", "note", "user"} <= set(item)
