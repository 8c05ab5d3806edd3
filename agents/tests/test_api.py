"""Agent run API: create, poll, list, and the grounded answers they produce (offline provider)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import AgentRun, RunStatus
from conftest import api_for
from documents.models import Document
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

VOLCANO = (
    "Volcanoes form where magma rises through the crust. "
    "Basaltic lava is runny and builds broad shield volcanoes. "
    "Andesitic magma is sticky and tends to erupt explosively. "
    "Mount Fuji is a stratovolcano in Japan that last erupted in 1707."
)
BREAD = (
    "Bread dough rises because yeast ferments sugars into carbon dioxide. "
    "Kneading develops gluten, which traps the gas. "
    "Sourdough relies on wild yeast and lactic acid bacteria."
)


@pytest.fixture
def documents(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any, settings: Any
) -> list[Document]:
    settings.LLM_PROVIDER = "offline"
    created = []
    for title, text in [("Volcanoes", VOLCANO), ("Baking", BREAD)]:
        with django_capture_on_commit_callbacks(execute=True):
            response = auth_api.post(
                "/api/v1/documents/",
                {"project": str(project.pk), "title": title, "text": text},
                format="json",
            )
        created.append(Document.objects.get(pk=response.json()["id"]))
    return created


def create_run(client: APIClient, capture: Any, **payload: Any) -> dict[str, Any]:
    with capture(execute=True):
        response = client.post("/api/v1/runs/", payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == RunStatus.QUEUED
    return client.get(f"/api/v1/runs/{response.json()['id']}/").json()


def test_ask_answers_with_citations_that_quote_the_exact_span(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="Why does bread dough rise?",
    )
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    assert run["provider"] == "offline"
    assert run["latency_ms"] is not None
    assert run["citations"]
    assert "yeast" in run["answer"].lower()
    for citation in run["citations"]:
        doc = Document.objects.get(pk=citation["document"])
        assert doc.text[citation["start"] : citation["end"]] == citation["quote"]
    assert {c["document"] for c in run["citations"]} == {str(documents[1].pk)}


def test_ask_says_so_when_the_documents_do_not_cover_the_question(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="What is the exchange rate of the Swiss franc to the yen?",
    )
    assert run["status"] == RunStatus.SUCCEEDED
    assert run["citations"] == []
    assert run["output"]["answered"] is False
    assert "can't answer" in run["answer"].lower() or "cannot answer" in run["answer"].lower()


def test_follow_up_run_continues_the_conversation(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    first = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="Which volcano is in Japan?",
    )
    second = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="When did it last erupt?",
        parent=first["id"],
    )
    assert second["parent"] == first["id"]
    assert second["status"] == RunStatus.SUCCEEDED
    assert "1707" in second["answer"]


def test_summarize_a_document_cites_its_sentences(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="summarize",
        document=str(documents[0].pk),
    )
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    assert run["answer"]
    assert run["citations"]
    assert all(c["document"] == str(documents[0].pk) for c in run["citations"])


def test_summarize_a_whole_project(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(auth_api, django_capture_on_commit_callbacks, project=str(project.pk), kind="summarize")
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    assert run["answer"]


def test_extract_stores_tags_on_the_document_and_filters_by_them(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    run = create_run(
        auth_api,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="extract",
        document=str(documents[0].pk),
    )
    assert run["status"] == RunStatus.SUCCEEDED, run["error"]
    output = run["output"]
    assert output["tags"] and output["keywords"]
    assert isinstance(output["entities"], list)
    detail = auth_api.get(f"/api/v1/documents/{documents[0].pk}/").json()
    assert detail["tags"] == output["tags"]
    tag = output["tags"][0]
    filtered = auth_api.get(f"/api/v1/documents/?project={project.pk}&tag={tag}").json()
    assert [d["id"] for d in filtered["results"]] == [str(documents[0].pk)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "poem"}, "kind"),
        ({"kind": "ask"}, "question"),
        ({"kind": "ask", "question": "   "}, "question"),
        ({"kind": "ask", "question": "x" * 4001}, "question"),
        ({"kind": "extract"}, "document"),
        ({"question": "why"}, "kind"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    auth_api: APIClient, project: Project, payload: dict[str, Any], field: str
) -> None:
    response = auth_api.post("/api/v1/runs/", {"project": str(project.pk), **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert AgentRun.objects.count() == 0


def test_document_from_another_project_is_refused(
    auth_api: APIClient, user: Any, project: Project, documents: list[Document]
) -> None:
    from conftest import make_project

    other = make_project(user, "Other")
    response = auth_api.post(
        "/api/v1/runs/",
        {"project": str(other.pk), "kind": "summarize", "document": str(documents[0].pk)},
        format="json",
    )
    assert response.status_code == 400
    assert "document" in response.json()


def test_viewer_may_ask_and_list_runs_by_project(
    project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    client = api_for(viewer)
    run = create_run(
        client,
        django_capture_on_commit_callbacks,
        project=str(project.pk),
        kind="ask",
        question="What is sourdough?",
    )
    listing = client.get(f"/api/v1/runs/?project={project.pk}").json()
    assert [r["id"] for r in listing["results"]] == [run["id"]]


# --- conversations: privacy, rename, share, delete ---------------------------------------


@pytest.fixture
def members(user: Any, project: Project) -> dict[str, Any]:
    """The project's owner (user), an editor and a viewer, each with an API client."""
    people = {
        "owner": user,
        "editor": MembershipFactory(project=project, role=Role.EDITOR).user,
        "viewer": MembershipFactory(project=project, role=Role.VIEWER).user,
    }
    return {name: (person, api_for(person)) for name, person in people.items()}


def thread_of(client: APIClient, project: Project, question: str = "Who designed it?") -> dict[str, Any]:
    response = client.post(
        "/api/v1/runs/", {"project": str(project.pk), "kind": "ask", "question": question}, format="json"
    )
    assert response.status_code == 201, response.content
    return client.get(f"/api/v1/threads/{response.json()['thread']}/").json()


def test_another_members_private_thread_and_its_runs_are_404_until_shared(
    project: Project, members: dict[str, Any]
) -> None:
    _, editor = members["editor"]
    _, viewer = members["viewer"]
    _, owner = members["owner"]
    thread = thread_of(editor, project)
    assert thread["shared"] is False
    turn = thread["turns"][0]["id"]
    hidden = {
        f"/api/v1/threads/{thread['id']}/",
        f"/api/v1/runs/{turn}/",
        f"/api/v1/runs/{turn}/events/",
    }
    for path in hidden:
        assert viewer.get(path).status_code == 404, path
    assert viewer.get(f"/api/v1/threads/?project={project.pk}").json()["results"] == []
    assert viewer.get(f"/api/v1/runs/?project={project.pk}").json()["results"] == []
    asked = viewer.post(
        "/api/v1/runs/",
        {"project": str(project.pk), "kind": "ask", "question": "And?", "thread": thread["id"]},
        format="json",
    )
    assert asked.status_code == 404
    follow = viewer.post(
        "/api/v1/runs/",
        {"project": str(project.pk), "kind": "ask", "question": "And?", "parent": turn},
        format="json",
    )
    assert follow.status_code == 404
    # The project's owner sees every thread.
    assert owner.get(f"/api/v1/threads/{thread['id']}/").status_code == 200
    assert [t["id"] for t in owner.get(f"/api/v1/threads/?project={project.pk}").json()["results"]] == [
        thread["id"]
    ]
    assert owner.get(f"/api/v1/runs/{turn}/").status_code == 200
    # Shared: every member sees it and its turns.
    shared = editor.patch(f"/api/v1/threads/{thread['id']}/", {"shared": True}, format="json")
    assert (shared.status_code, shared.json()["shared"]) == (200, True)
    assert viewer.get(f"/api/v1/threads/{thread['id']}/").status_code == 200
    assert viewer.get(f"/api/v1/runs/{turn}/").status_code == 200
    assert [t["id"] for t in viewer.get("/api/v1/threads/").json()["results"]] == [thread["id"]]


def test_the_starter_renames_and_shares_with_patch(project: Project, members: dict[str, Any]) -> None:
    _, editor = members["editor"]
    thread = thread_of(editor, project)
    response = editor.patch(
        f"/api/v1/threads/{thread['id']}/", {"title": "  Pump   design ", "shared": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["shared"]) == ("Pump design", True)
    assert body["updated_at"] == thread["updated_at"], "renaming is not activity"
    assert editor.get(f"/api/v1/threads/{thread['id']}/").json()["title"] == "Pump design"
    private = editor.patch(f"/api/v1/threads/{thread['id']}/", {"shared": False}, format="json")
    assert (private.json()["shared"], private.json()["title"]) == (False, "Pump design")


def test_an_owner_may_rename_and_delete_any_thread_but_not_share_it(
    project: Project, members: dict[str, Any]
) -> None:
    _, editor = members["editor"]
    _, owner = members["owner"]
    thread = thread_of(editor, project)
    path = f"/api/v1/threads/{thread['id']}/"
    assert owner.patch(path, {"title": "Tidied"}, format="json").json()["title"] == "Tidied"
    refused = owner.patch(path, {"title": "Again", "shared": True}, format="json")
    assert refused.status_code == 403
    assert "Only the person who started" in refused.json()["detail"]
    after = editor.get(path).json()
    assert (after["title"], after["shared"]) == ("Tidied", False), "a refused PATCH changes nothing"
    assert owner.delete(path).status_code == 204
    assert editor.get(path).status_code == 404


def test_members_who_see_a_shared_thread_may_not_rename_or_delete_it(
    project: Project, members: dict[str, Any]
) -> None:
    _, editor = members["editor"]
    _, viewer = members["viewer"]
    thread = thread_of(viewer, project)
    path = f"/api/v1/threads/{thread['id']}/"
    assert editor.patch(path, {"title": "Mine"}, format="json").status_code == 404  # private: unseen
    assert editor.delete(path).status_code == 404
    assert viewer.patch(path, {"shared": True}, format="json").status_code == 200
    rename = editor.patch(path, {"title": "Mine"}, format="json")
    assert rename.status_code == 403
    assert rename.json()["detail"] == (
        "Only the person who started this conversation or a project owner may rename it."
    )
    assert editor.delete(path).status_code == 403
    assert editor.patch(path, {"shared": False}, format="json").status_code == 403
    assert viewer.get(path).json()["title"] == "Who designed it?"
    # Its starter may, whatever their role.
    assert viewer.delete(path).status_code == 204
    assert not AgentRun.objects.filter(thread_id=thread["id"]).exists()
    assert viewer.delete(path).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "detail", "Send the title or shared (or both) to change."),
        ({"title": ""}, "title", ["A title is required."]),
        ({"title": "   "}, "title", ["A title is required."]),
        ({"title": "x" * 201}, "title", ["A title has at most 200 characters."]),
        ({"title": None}, "title", ["This field may not be null."]),
        ({"title": ["a", "b"]}, "title", ["Not a valid string."]),
        ({"shared": "maybe"}, "shared", ["Must be a valid boolean."]),
        ({"shared": None}, "shared", ["This field may not be null."]),
        ({"turn_count": 9}, "turn_count", ["Only the title and shared of a conversation can be changed."]),
        (
            {"title": "Fine", "project": "x"},
            "project",
            ["Only the title and shared of a conversation can be changed."],
        ),
    ],
)
def test_a_bad_patch_is_a_400_naming_the_field(
    auth_api: APIClient, project: Project, body: dict[str, Any], field: str, message: Any
) -> None:
    thread = thread_of(auth_api, project)
    response = auth_api.patch(f"/api/v1/threads/{thread['id']}/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()[field] == message
    after = auth_api.get(f"/api/v1/threads/{thread['id']}/").json()
    assert (after["title"], after["shared"]) == ("Who designed it?", False)


def test_a_patch_that_is_not_an_object_or_a_put_is_refused(auth_api: APIClient, project: Project) -> None:
    thread = thread_of(auth_api, project)
    path = f"/api/v1/threads/{thread['id']}/"
    listed = auth_api.patch(path, ["title"], format="json")
    assert listed.status_code == 400
    assert "Expected a dictionary" in str(listed.json())
    put = auth_api.put(path, {"title": "Whole"}, format="json")
    assert put.status_code == 405
    assert put.json() == {"detail": 'Method "PUT" not allowed.'}
    assert auth_api.patch("/api/v1/threads/not-a-uuid/", {"title": "x"}, format="json").status_code == 404


def test_a_thread_deleted_while_its_turn_is_queued_leaves_nothing_behind(
    auth_api: APIClient, project: Project, documents: list[Document], django_capture_on_commit_callbacks: Any
) -> None:
    thread = thread_of(auth_api, project, "What is sourdough?")  # queued: its job never ran here
    turn = thread["turns"][0]["id"]
    assert thread["turns"][0]["status"] == RunStatus.QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_api.delete(f"/api/v1/threads/{thread['id']}/").status_code == 204
    from agents import services

    assert services.run_execute(run_id=turn) == "skipped"  # the job arrives after the delete
    assert auth_api.get(f"/api/v1/runs/{turn}/").status_code == 404
    assert auth_api.get(f"/api/v1/runs/{turn}/events/").status_code == 404
    assert not AgentRun.objects.filter(pk=turn).exists()
