"""Conversations: questions chain into threads, follow-ups search with the earlier
turns, declines are their own outcome, and the pages and the API show it all."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from agents import selectors, services
from agents.models import AgentRun, RunKind, RunStatus, Thread
from conftest import make_project
from documents import services as document_services
from documents.models import Document
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

PUMP = (
    "Maintenance notes for the Brightwater pump.\n\n"
    "The Brightwater pump was installed at the river station in 2019. "
    "It was designed by Ada Okafor at Hydrowerk. "
    "The intake filter must be cleaned every two weeks during the summer. "
    "The bakery on the quay sells rye bread on Sundays."
)


@pytest.fixture
def pump(user: Any, project: Project, settings: Any, django_capture_on_commit_callbacks: Any) -> Document:
    settings.LLM_PROVIDER = "offline"
    with django_capture_on_commit_callbacks(execute=True):
        doc = document_services.document_create(user=user, project=project, title="Pump notes", text=PUMP)
    doc.refresh_from_db()
    return doc


def ask(client: APIClient, project: Project, capture: Any, question: str, **extra: Any) -> AgentRun:
    with capture(execute=True):
        response = client.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": question, **extra},
            format="json",
        )
    assert response.status_code == 201, response.content
    return AgentRun.objects.get(pk=response.json()["id"])


def test_a_question_starts_a_thread_and_follow_ups_join_it(user: Any, project: Project) -> None:
    first = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Who designed it?")
    assert first.thread is not None
    thread = first.thread
    assert (thread.title, thread.turn_count, thread.created_by) == ("Who designed it?", 1, user)
    second = services.run_create(
        user=user, project=project, kind=RunKind.ASK, question="When?", thread=thread
    )
    third = services.run_create(
        user=user, project=project, kind=RunKind.ASK, question="Where?", parent=second
    )
    assert second.thread_id == third.thread_id == thread.pk
    assert second.parent_id == first.pk and third.parent_id == second.pk
    thread.refresh_from_db()
    assert thread.turn_count == 3
    summary = services.run_create(user=user, project=project, kind=RunKind.SUMMARIZE)
    assert summary.thread_id is None


def test_a_thread_of_another_project_or_a_summary_in_a_thread_is_refused(user: Any, project: Project) -> None:
    other = make_project(user, title="Other")
    run = services.run_create(user=user, project=other, kind=RunKind.ASK, question="Elsewhere?")
    with pytest.raises(ValidationError, match="not in this project"):
        services.run_create(user=user, project=project, kind=RunKind.ASK, question="Q", thread=run.thread)
    mine = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Here?")
    with pytest.raises(ValidationError, match="Only questions"):
        services.run_create(user=user, project=project, kind=RunKind.SUMMARIZE, thread=mine.thread)


def test_a_full_thread_refuses_more_questions(
    user: Any, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "THREAD_TURNS_MAX", 2)
    first = services.run_create(user=user, project=project, kind=RunKind.ASK, question="One?")
    services.run_create(user=user, project=project, kind=RunKind.ASK, question="Two?", thread=first.thread)
    with pytest.raises(ValidationError, match="at most 2 questions"):
        services.run_create(
            user=user, project=project, kind=RunKind.ASK, question="Three?", thread=first.thread
        )
    assert AgentRun.objects.count() == 2


def test_a_follow_up_is_searched_as_a_standalone_question(
    auth_api: APIClient, project: Project, pump: Document, django_capture_on_commit_callbacks: Any
) -> None:
    first = ask(auth_api, project, django_capture_on_commit_callbacks, "Who designed the Brightwater pump?")
    assert first.status == RunStatus.SUCCEEDED, first.error
    follow = ask(
        auth_api,
        project,
        django_capture_on_commit_callbacks,
        "How often should its intake filter be cleaned?",
        thread=str(first.thread_id),
    )
    assert follow.status == RunStatus.SUCCEEDED, follow.error
    assert follow.thread_id == first.thread_id
    assert "pump" in follow.output["search_query"].lower()
    assert "every two weeks" in follow.answer


def test_a_declined_question_is_not_an_answer(
    auth_api: APIClient, project: Project, pump: Document, django_capture_on_commit_callbacks: Any
) -> None:
    run = ask(
        auth_api,
        project,
        django_capture_on_commit_callbacks,
        "What is the salary of the chief executive of the football club?",
    )
    assert run.status == RunStatus.SUCCEEDED
    body = auth_api.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["answered"] is False
    assert body["citations"] == []
    assert run.output["nearest"], "the nearest passages are kept for the page"


def test_the_thread_api_lists_threads_and_shows_every_turn(
    auth_api: APIClient, user: Any, project: Project
) -> None:
    first = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Who designed it?")
    services.run_create(user=user, project=project, kind=RunKind.ASK, question="When?", thread=first.thread)
    other = make_project(UserFactory(), title="Not mine")
    services.run_create(
        user=other.memberships.get().user, project=other, kind=RunKind.ASK, question="Hidden?"
    )
    listed = auth_api.get(f"/api/v1/threads/?project={project.pk}").json()
    assert [t["title"] for t in listed["results"]] == ["Who designed it?"]
    assert listed["results"][0]["turn_count"] == 2
    assert listed["results"][0]["created_by"] == user.email
    assert len(auth_api.get("/api/v1/threads/").json()["results"]) == 1
    detail = auth_api.get(f"/api/v1/threads/{first.thread_id}/").json()
    assert [t["question"] for t in detail["turns"]] == ["Who designed it?", "When?"]
    assert detail["turns"][0]["answered"] is None  # not run yet
    hidden = Thread.objects.get(project=other)
    assert auth_api.get(f"/api/v1/threads/{hidden.pk}/").status_code == 404
    assert auth_api.get("/api/v1/threads/not-a-uuid/").status_code == 404
    refused = auth_api.post(
        "/api/v1/runs/",
        {"project": str(project.pk), "kind": "ask", "question": "Q", "thread": str(hidden.pk)},
        format="json",
    )
    assert refused.status_code == 404


def test_a_viewer_follows_up_in_a_shared_thread_but_not_in_a_private_one(user: Any, project: Project) -> None:
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    first = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Who?")
    client = Client()
    client.force_login(viewer)
    follow_up = {
        "project": str(project.pk),
        "kind": "ask",
        "question": "And when?",
        "thread": str(first.thread_id),
    }
    private = client.post("/runs/new/", follow_up, HTTP_ACCEPT="application/json")
    assert private.status_code == 404
    assert "not shared with you" in private.json()["detail"]
    assert first.thread is not None
    services.thread_share(user=user, thread=first.thread, shared=True)
    response = client.post("/runs/new/", follow_up, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    reply = response.json()
    assert reply["thread"] == str(first.thread_id)
    assert reply["turn_count"] == 2
    assert reply["events_url"] == f"/runs/{reply['id']}/events"
    assert AgentRun.objects.get(pk=reply["id"]).created_by == viewer


def test_the_json_ask_reports_errors_as_json(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        "/runs/new/",
        {"project": str(project.pk), "kind": "ask", "question": "  "},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "A question is required to ask."
    too_long = owner_client.post(
        "/runs/new/",
        {"project": str(project.pk), "kind": "ask", "question": "x" * 5000},
        HTTP_ACCEPT="application/json",
    )
    assert too_long.status_code == 400
    assert "at most" in too_long.json()["detail"]


def test_the_thread_page_shows_every_turn_with_chips_and_declines(
    owner_client: Client,
    auth_api: APIClient,
    project: Project,
    pump: Document,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first = ask(auth_api, project, django_capture_on_commit_callbacks, "Who designed the Brightwater pump?")
    ask(
        auth_api,
        project,
        django_capture_on_commit_callbacks,
        "What is the salary of the chief executive of the football club?",
        thread=str(first.thread_id),
    )
    body = owner_client.get(f"/runs/threads/{first.thread_id}/").content.decode()
    assert body.index("Who designed the Brightwater pump?") < body.index("salary of the chief executive")
    assert "Ada Okafor" in body
    chip = re.search(r'<a class="cite-chip" href="([^"]+)" aria-describedby="([^"]+)"', body)
    assert chip and chip.group(1).startswith(f"/documents/{pump.pk}/?start=")
    tip = re.search(rf'<span class="cite-tip" role="tooltip" id="{chip.group(2)}"><q>(.*?)</q>', body)
    assert tip and "Ada Okafor" in tip.group(1)
    assert "No answer in these documents" in body
    assert f'name="thread" value="{first.thread_id}"' in body
    project_page = owner_client.get(f"/projects/{project.pk}/").content.decode()
    assert f'href="/runs/threads/{first.thread_id}/"' in project_page
    assert "2 questions" in project_page


def test_an_answer_cannot_inject_markup_through_its_text(
    user: Any, project: Project, owner_client: Client
) -> None:
    run = services.run_create(user=user, project=project, kind=RunKind.ASK, question="<b>Q</b>")
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, answer="<script>alert(1)</script> [1] [7]", output={"answered": True}
    )
    body = owner_client.get(f"/runs/threads/{run.thread_id}/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "[7]" not in body  # a marker naming no kept citation is left out
    assert "&lt;b&gt;Q&lt;/b&gt;" in body


def test_a_summary_of_a_document_deleted_before_it_runs_fails(
    user: Any, project: Project, pump: Document, django_capture_on_commit_callbacks: Any
) -> None:
    run = services.run_create(user=user, project=project, kind=RunKind.SUMMARIZE, document=pump)
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_delete(user=user, document=pump)
    assert services.run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert run.error == "The document was deleted before the run started."
    assert run.answer == ""


def test_a_follow_up_is_rewritten_offline_while_the_models_circuit_is_open(settings: Any) -> None:
    from agents.providers import offline, provider_breaker, rewrite_query

    settings.LLM_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:1/v1"  # nothing listens: a call would fail
    breaker = provider_breaker("openai")
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        breaker.record_failure()
    assert breaker.state() == "open"
    history = [("Who designed the Brightwater pump?", "Ada Okafor.")]
    question = "How often should its intake filter be cleaned?"
    rewritten = rewrite_query(question, history, encode=lambda texts: None)
    assert rewritten == offline.standalone_query(question, history)
    assert "pump" in rewritten.lower()
    assert rewrite_query(question, [], encode=lambda texts: None) == question


def test_the_thread_page_reads_the_same_number_of_queries_for_two_turns_or_twenty(
    owner_client: Client, user: Any, project: Project, pump: Document
) -> None:
    chunk = pump.chunks.first()
    cited = {
        "document": str(pump.pk),
        "chunk": chunk.pk,
        "start": chunk.start,
        "end": chunk.end,
        "quote": "x",
    }
    nearest = {"document": str(pump.pk), "chunk": chunk.pk, "title": "Pump notes", "text": "near"}
    first = services.run_create(user=user, project=project, kind=RunKind.ASK, question="Q0?")

    def add(count: int) -> None:
        for number in range(count):
            run = services.run_create(
                user=user, project=project, kind=RunKind.ASK, question=f"Q{number}?", thread=first.thread
            )
            declined = number % 2 == 1
            AgentRun.objects.filter(pk=run.pk).update(
                status=RunStatus.SUCCEEDED,
                answer="An answer [1].",
                citations=[] if declined else [cited],
                output={"answered": not declined, "nearest": [nearest] if declined else []},
            )

    def queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            body = owner_client.get(f"/runs/threads/{first.thread_id}/").content.decode()
        assert f"?start={chunk.start}&amp;end={chunk.end}#passage" in body
        return len(captured)

    add(2)
    few = queries()
    add(18)
    assert queries() == few


# --- privacy, rename, share and delete -------------------------------------------------


@pytest.fixture
def team(user: Any, project: Project) -> dict[str, Any]:
    """The project's owner (user), a second owner, an editor and a viewer."""
    return {
        "owner": user,
        "co_owner": MembershipFactory(project=project, role=Role.OWNER).user,
        "editor": MembershipFactory(project=project, role=Role.EDITOR).user,
        "viewer": MembershipFactory(project=project, role=Role.VIEWER).user,
    }


def started_by(person: Any, project: Project, question: str = "Who designed it?") -> Thread:
    run = services.run_create(user=person, project=project, kind=RunKind.ASK, question=question)
    assert run.thread is not None
    return run.thread


def test_a_new_thread_is_private_to_its_starter_and_the_projects_owners(
    project: Project, team: dict[str, Any]
) -> None:
    thread = started_by(team["editor"], project)
    assert thread.shared is False
    turn = thread.turns.get()
    summary = services.run_create(user=team["editor"], project=project, kind=RunKind.SUMMARIZE)
    for name, sees in {"editor": True, "owner": True, "co_owner": True, "viewer": False}.items():
        person = team[name]
        assert selectors.threads_visible_to(person).filter(pk=thread.pk).exists() is sees, name
        assert selectors.runs_visible_to(person).filter(pk=turn.pk).exists() is sees, name
        # A summary belongs to no thread: every member sees it, as before.
        assert selectors.runs_visible_to(person).filter(pk=summary.pk).exists(), name
    with pytest.raises(Http404):
        selectors.thread_for(team["viewer"], thread.pk)
    with pytest.raises(Http404):
        selectors.run_for(team["viewer"], turn.pk)
    services.thread_share(user=team["editor"], thread=thread, shared=True)
    assert selectors.thread_for(team["viewer"], thread.pk) == thread
    assert selectors.run_for(team["viewer"], turn.pk) == turn
    assert not selectors.threads_visible_to(UserFactory()).filter(pk=thread.pk).exists()


def test_the_starter_and_owners_rename_and_others_are_refused(project: Project, team: dict[str, Any]) -> None:
    thread = started_by(team["editor"], project)
    before = Thread.objects.get(pk=thread.pk).updated_at
    services.thread_rename(user=team["editor"], thread=thread, title="  Pump   design\n history ")
    assert Thread.objects.get(pk=thread.pk).title == "Pump design history"
    assert Thread.objects.get(pk=thread.pk).updated_at == before, "renaming is not activity"
    services.thread_rename(user=team["co_owner"], thread=thread, title="Tidied by an owner")
    assert Thread.objects.get(pk=thread.pk).title == "Tidied by an owner"
    with pytest.raises(Http404):  # a private thread: the viewer cannot even see it
        services.thread_rename(user=team["viewer"], thread=thread, title="Mine now")
    services.thread_share(user=team["editor"], thread=thread, shared=True)
    with pytest.raises(PermissionDenied, match="started this conversation or a project owner"):
        services.thread_rename(user=team["viewer"], thread=thread, title="Mine now")
    with pytest.raises(Http404):
        services.thread_rename(user=UserFactory(), thread=thread, title="Outsider")
    assert Thread.objects.get(pk=thread.pk).title == "Tidied by an owner"


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("", "A title is required."),
        (" \t\n ", "A title is required."),
        ("x" * 201, "A title has at most 200 characters."),
        (42, "A title is text."),
        ("bad\udfff", "A title must be valid text."),
    ],
)
def test_a_bad_title_is_refused_with_a_reason(user: Any, project: Project, title: Any, message: str) -> None:
    thread = started_by(user, project)
    with pytest.raises(ValidationError) as caught:
        services.thread_rename(user=user, thread=thread, title=title)
    assert caught.value.message_dict == {"title": [message]}
    assert Thread.objects.get(pk=thread.pk).title == "Who designed it?"


def test_control_characters_in_a_title_become_spaces(user: Any, project: Project) -> None:
    thread = started_by(user, project)
    services.thread_rename(user=user, thread=thread, title="Pump\x00notes\x1b 2019")
    assert Thread.objects.get(pk=thread.pk).title == "Pump notes 2019"


def test_only_the_starter_shares_or_unshares(project: Project, team: dict[str, Any]) -> None:
    thread = started_by(team["viewer"], project)
    with pytest.raises(PermissionDenied, match="Only the person who started"):
        services.thread_share(user=team["owner"], thread=thread, shared=True)
    # All or nothing: an owner's rename with a refused share changes nothing.
    with pytest.raises(PermissionDenied):
        services.thread_update(user=team["owner"], thread=thread, title="Renamed", shared=True)
    assert Thread.objects.get(pk=thread.pk).title == "Who designed it?"
    services.thread_share(user=team["viewer"], thread=thread, shared=True)
    assert Thread.objects.get(pk=thread.pk).shared is True
    with pytest.raises(PermissionDenied):
        services.thread_share(user=team["editor"], thread=thread, shared=False)
    services.thread_share(user=team["viewer"], thread=thread, shared=False)
    assert Thread.objects.get(pk=thread.pk).shared is False


def test_deleting_a_thread_deletes_its_turns_and_only_the_starter_or_an_owner_may(
    project: Project, team: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    thread = started_by(team["editor"], project)
    services.run_create(
        user=team["editor"], project=project, kind=RunKind.ASK, question="When?", thread=thread
    )
    summary = services.run_create(user=team["editor"], project=project, kind=RunKind.SUMMARIZE)
    services.thread_share(user=team["editor"], thread=thread, shared=True)
    with pytest.raises(PermissionDenied, match="may delete it"):
        services.thread_delete(user=team["viewer"], thread=thread)
    assert AgentRun.objects.filter(thread=thread).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.thread_delete(user=team["co_owner"], thread=thread)
    assert not Thread.objects.filter(pk=thread.pk).exists()
    assert list(AgentRun.objects.values_list("pk", flat=True)) == [summary.pk]
    with pytest.raises(Thread.DoesNotExist):
        services.thread_delete(user=team["co_owner"], thread=thread)
    with pytest.raises(Thread.DoesNotExist):
        services.thread_rename(user=team["editor"], thread=thread, title="Too late")
    # A question still on its way to the deleted thread is refused, not orphaned.
    with pytest.raises(ValidationError, match="The conversation was deleted."):
        services.run_create(
            user=team["editor"], project=project, kind=RunKind.ASK, question="Q?", thread=thread
        )


def test_a_turn_queued_when_its_thread_is_deleted_is_skipped_by_the_worker(
    user: Any, project: Project, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    forgotten: list[str] = []
    monkeypatch.setattr(services.events, "forget", lambda run_id: forgotten.append(str(run_id)))
    thread = started_by(user, project)
    queued = thread.turns.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.thread_delete(user=user, thread=thread)
    assert forgotten == [str(queued.pk)], "the run's event log is dropped, so open streams end"
    assert services.run_execute(run_id=queued.pk) == "skipped"
    assert not AgentRun.objects.filter(pk=queued.pk).exists()


@pytest.mark.parametrize("outcome", ["answer", "failure"])
def test_a_thread_deleted_while_its_turn_is_answered_drops_the_result(
    user: Any, project: Project, pump: Document, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    from agents.providers import ProviderError

    thread = started_by(user, project, "Who designed the Brightwater pump?")
    running = thread.turns.get()
    real_call = services._call
    forgotten: list[str] = []
    monkeypatch.setattr(services.events, "forget", lambda run_id: forgotten.append(str(run_id)))

    def deleted_midway(run: AgentRun, *args: Any) -> Any:
        # The person deletes the conversation while the model is writing.
        Thread.objects.filter(pk=thread.pk).delete()
        if outcome == "failure":
            raise ProviderError("the model failed too")
        return real_call(run, *args)

    monkeypatch.setattr(services, "_call", deleted_midway)
    assert services.run_execute(run_id=running.pk) == "skipped"
    assert not AgentRun.objects.filter(pk=running.pk).exists(), "the worker must not bring the run back"
    assert forgotten == [str(running.pk)], "what the worker logged meanwhile is dropped"


def test_deleting_a_thread_does_not_refill_the_askers_token_budget(
    user: Any, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    thread = started_by(user, project)
    AgentRun.objects.filter(thread=thread).update(
        status=RunStatus.SUCCEEDED, provider="gemini", input_tokens=900, output_tokens=100
    )
    assert services.tokens_used_this_month(user=user, provider="gemini") == 1000
    with django_capture_on_commit_callbacks(execute=True):
        services.thread_delete(user=user, thread=thread)
    assert not AgentRun.objects.exists()
    assert services.tokens_used_this_month(user=user, provider="gemini") == 1000
    assert services.tokens_used_this_month(user=user, provider="openai") == 0


def test_existing_threads_are_migrated_as_shared_and_new_ones_default_to_private(
    user: Any, project: Project
) -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(targets: Any) -> MigrationExecutor:
        # PostgreSQL alters no table with foreign-key checks still pending in this transaction.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        executor = MigrationExecutor(connection)
        executor.migrate(targets(executor) if callable(targets) else targets)
        return executor

    executor = migrate([("agents", "0003_threads")])
    try:
        old_apps = executor.loader.project_state([("agents", "0003_threads")]).apps
        OldThread = old_apps.get_model("agents", "Thread")
        old = OldThread.objects.create(
            project_id=project.pk, created_by_id=user.pk, title="Before", turn_count=1
        )
    finally:
        migrate(lambda executor: executor.loader.graph.leaf_nodes())
    assert Thread.objects.get(pk=old.pk).shared is True, "people keep the access they had"
    assert started_by(user, project).shared is False
