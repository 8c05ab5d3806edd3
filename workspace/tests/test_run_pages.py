"""Agent run pages: starting runs from forms and showing their results."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunKind, RunStatus
from documents import services as document_services
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db

TEXT = "The lighthouse keeper lit the lamp at dusk. Fog rolled over the bay until morning."


@pytest.fixture
def doc(project: Project) -> Document:
    return DocumentFactory(
        project=project,
        title="Lighthouse log",
        pasted_text=TEXT,
        text=TEXT,
        status=DocumentStatus.READY,
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def finished_run(project: Project, user: Any, **fields: Any) -> AgentRun:
    defaults: dict[str, Any] = {
        "kind": RunKind.ASK,
        "question": "Who lit the lamp?",
        "status": RunStatus.SUCCEEDED,
        "answer": "The keeper lit it [1].",
        "provider": "offline",
        "model": "extractive-v1",
        "latency_ms": 42,
        "output": {"answered": True},
    }
    defaults.update(fields)
    return AgentRun.objects.create(project=project, created_by=user, **defaults)


def test_run_page_lists_citations_linking_to_the_exact_passage(
    owner_client: Client, project: Project, user: Any, doc: Document
) -> None:
    start, end = 0, TEXT.index(" Fog")
    run = finished_run(
        project,
        user,
        citations=[
            {
                "document": str(doc.pk),
                "chunk": 1,
                "start": start,
                "end": end,
                "quote": TEXT[start:end],
            }
        ],
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    citations = re.search(r'<ol class="citations">(.*?)</ol>', body, re.DOTALL).group(1)
    href = html.unescape(re.search(r'href="([^"]+)"', citations).group(1))
    assert href == f"/documents/{doc.pk}/?start={start}&end={end}#passage"
    assert "Lighthouse log" in citations
    assert "The lighthouse keeper lit the lamp at dusk." in citations
    assert re.search(r"The keeper lit it <span class=\"cite\"><a class=\"cite-chip\" href=\"[^\"]+\"", body)
    for shown in ["offline", "extractive-v1", "42 ms"]:
        assert shown in body
    assert "data-poll-url" not in body

    passage = owner_client.get(href.split("#")[0]).content.decode()
    assert '<mark id="passage">The lighthouse keeper lit the lamp at dusk.</mark>' in passage


def test_a_citation_of_a_deleted_document_has_no_link(
    owner_client: Client, project: Project, user: Any
) -> None:
    gone = "00000000-0000-0000-0000-000000000001"
    run = finished_run(
        project,
        user,
        citations=[{"document": gone, "chunk": 1, "start": 0, "end": 3, "quote": "The"}],
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "A deleted document" in body
    assert f"/documents/{gone}/" not in body


def test_unfinished_run_page_polls_its_status(owner_client: Client, project: Project, user: Any) -> None:
    run = AgentRun.objects.create(project=project, created_by=user, kind=RunKind.ASK, question="Why?")
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'data-poll-url="/runs/{run.pk}/status.json" data-poll-reload' in body
    assert "Waiting for a worker" in body
    assert owner_client.get(f"/runs/{run.pk}/status.json").json() == {
        "items": [
            {
                "id": str(run.pk),
                "status": "queued",
                "status_label": "Queued",
                "error": "",
                "finished": False,
            }
        ],
        "finished": False,
    }


def test_failed_run_shows_the_error(owner_client: Client, project: Project, user: Any) -> None:
    run = finished_run(
        project,
        user,
        status=RunStatus.FAILED,
        answer="",
        error="Nothing to read <yet>.",
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "The run failed: Nothing to read &lt;yet&gt;." in body


def test_unanswerable_question_shows_the_nearest_passages(
    owner_client: Client, project: Project, user: Any, doc: Document
) -> None:
    run = finished_run(
        project,
        user,
        answer="I can't answer that from this project's documents.",
        output={
            "answered": False,
            "nearest": [
                {
                    "document": str(doc.pk),
                    "chunk": 999,
                    "title": doc.title,
                    "text": TEXT,
                }
            ],
        },
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "No answer in these documents" in body
    assert "Nearest passages" in body
    assert f'href="/documents/{doc.pk}/"' in body
    assert "Fog rolled over the bay" in body


def test_degraded_run_says_so_with_the_reason(owner_client: Client, project: Project, user: Any) -> None:
    run = finished_run(project, user, degraded=True, degraded_reason="gemini circuit open")
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Degraded" in body and "gemini circuit open" in body


def test_extract_run_lists_tags_keywords_and_entities(
    owner_client: Client, project: Project, user: Any, doc: Document
) -> None:
    run = finished_run(
        project,
        user,
        kind=RunKind.EXTRACT,
        question="",
        document=doc,
        output={
            "answered": True,
            "tags": ["maritime"],
            "keywords": ["lighthouse", "fog"],
            "entities": [{"text": "Keeper <Jo>", "type": "person"}],
        },
    )
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    for expected in [
        "maritime",
        "lighthouse",
        "fog",
        "Keeper &lt;Jo&gt;",
        "person",
        "Lighthouse log",
    ]:
        assert expected in body


def test_outsider_gets_404_on_run_pages_and_cannot_start_runs(
    project: Project, user: Any, other_user: Any, doc: Document
) -> None:
    run = finished_run(project, user)
    outsider = client_for(other_user)
    assert outsider.get(f"/runs/{run.pk}/").status_code == 404
    assert outsider.get(f"/runs/{run.pk}/status.json").status_code == 404
    assert (
        outsider.post(
            "/runs/new/", {"project": str(project.pk), "kind": "ask", "question": "Hi?"}
        ).status_code
        == 404
    )
    theirs = Project.objects.create(title="Theirs")
    Membership.objects.create(project=theirs, user=other_user, role=Role.OWNER)
    # Their own project, but my document or my run: still 404.
    assert (
        outsider.post(
            "/runs/new/",
            {"project": str(theirs.pk), "kind": "summarize", "document": str(doc.pk)},
        ).status_code
        == 404
    )
    assert (
        outsider.post(
            "/runs/new/",
            {
                "project": str(theirs.pk),
                "kind": "ask",
                "question": "Hi?",
                "parent": str(run.pk),
            },
        ).status_code
        == 404
    )
    assert AgentRun.objects.count() == 1


def test_an_empty_question_goes_back_with_a_message(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "ask",
            "question": "  ",
            "next": f"/projects/{project.pk}/",
        },
        follow=True,
    )
    assert response.redirect_chain == [(f"/projects/{project.pk}/", 302)]
    assert "A question is required to ask." in response.content.decode()
    assert not AgentRun.objects.exists()


def test_a_foreign_next_url_is_ignored(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "ask",
            "question": "",
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == f"/projects/{project.pk}/"


def test_run_creation_is_post_only(owner_client: Client) -> None:
    assert owner_client.get("/runs/new/").status_code == 405


def test_viewer_may_ask(project: Project) -> None:
    viewer = UserFactory()
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    response = client_for(viewer).post(
        "/runs/new/", {"project": str(project.pk), "kind": "ask", "question": "Why?"}
    )
    run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    assert run.created_by == viewer


def test_summarize_button_on_a_document_starts_a_document_run(
    owner_client: Client, project: Project, doc: Document
) -> None:
    response = owner_client.post(
        "/runs/new/",
        {"project": str(project.pk), "kind": "summarize", "document": str(doc.pk)},
    )
    run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.kind == RunKind.SUMMARIZE and run.document == doc


def test_summarizing_a_pending_document_says_it_is_not_ready(owner_client: Client, project: Project) -> None:
    pending = DocumentFactory(project=project)
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "extract",
            "document": str(pending.pk),
            "next": f"/documents/{pending.pk}/",
        },
        follow=True,
    )
    assert "The document is not ready yet." in response.content.decode()
    assert not AgentRun.objects.exists()


def test_follow_up_question_creates_a_run_with_this_parent(
    owner_client: Client, project: Project, user: Any
) -> None:
    parent = finished_run(project, user)
    body = owner_client.get(f"/runs/{parent.pk}/").content.decode()
    assert f'name="parent" value="{parent.pk}"' in body
    response = owner_client.post(
        "/runs/new/",
        {
            "project": str(project.pk),
            "kind": "ask",
            "question": "And then?",
            "parent": str(parent.pk),
        },
    )
    child = AgentRun.objects.exclude(pk=parent.pk).get()
    assert response["Location"] == f"/runs/threads/{child.thread_id}/#turn-{child.pk}"
    assert child.parent == parent
    assert "And then?" in owner_client.get(f"/runs/{parent.pk}/").content.decode()


def test_asking_from_the_project_page_answers_with_a_cited_passage(
    owner_client: Client,
    project: Project,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_create(
            user=user,
            project=project,
            title="Lighthouse log",
            text=TEXT + " The bakery on the quay sells rye bread every Sunday.",
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/runs/new/",
            {
                "project": str(project.pk),
                "kind": "ask",
                "question": "Who lit the lamp at dusk?",
            },
        )
    run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/threads/{run.thread_id}/#turn-{run.pk}"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    body = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert "lighthouse keeper lit the lamp" in body.lower()
    assert re.search(
        r'class="citation-link" href="/documents/[0-9a-f-]+/\?start=\d+&amp;end=\d+#passage"',
        body,
    )
    thread_page = owner_client.get(f"/runs/threads/{run.thread_id}/").content.decode()
    assert "lighthouse keeper lit the lamp" in thread_page.lower()
    assert re.search(
        r'class="cite-chip" href="/documents/[0-9a-f-]+/\?start=\d+&amp;end=\d+#passage"', thread_page
    )
    project_page = owner_client.get(f"/projects/{project.pk}/").content.decode()
    assert f'href="/runs/threads/{run.thread_id}/"' in project_page


# --- conversations: privacy, rename, share, delete on the pages ---------------------------


def ask_in(person: Any, project: Project, question: str, thread: Any = None) -> AgentRun:
    from agents import services

    return services.run_create(
        user=person, project=project, kind=RunKind.ASK, question=question, thread=thread
    )


def flashes(client: Client, url: str) -> str:
    return html.unescape(client.get(url).content.decode())


def test_another_members_private_thread_is_404_on_every_page_and_unlisted(
    project: Project, user: Any
) -> None:
    editor = Membership.objects.create(project=project, user=UserFactory(), role=Role.EDITOR).user
    viewer = client_for(Membership.objects.create(project=project, user=UserFactory(), role=Role.VIEWER).user)
    turn = ask_in(editor, project, "Where is the lighthouse?")
    summary = finished_run(project, editor, kind=RunKind.SUMMARIZE, question="")
    pages = [
        f"/runs/threads/{turn.thread_id}/",
        f"/runs/{turn.pk}/",
        f"/runs/{turn.pk}/turn/",
        f"/runs/{turn.pk}/status.json",
        f"/runs/{turn.pk}/events",
    ]
    for page in pages:
        assert viewer.get(page).status_code == 404, page
    project_page = viewer.get(f"/projects/{project.pk}/").content.decode()
    assert "Where is the lighthouse?" not in project_page
    assert f"/runs/{summary.pk}/" in project_page, "runs outside a thread stay visible to members"
    # The project's owner sees it, marked private; its starter sees it too.
    for person in (user, editor):
        listing = client_for(person).get(f"/projects/{project.pk}/").content.decode()
        assert f'href="/runs/threads/{turn.thread_id}/"' in listing
        assert '<span data-field="private">Private</span>' in listing
        assert client_for(person).get(f"/runs/{turn.pk}/").status_code == 200
    # Shared by its starter: visible to every member.
    starter = client_for(editor)
    response = starter.post(f"/runs/threads/{turn.thread_id}/share/", {"shared": "true"})
    assert response["Location"] == f"/runs/threads/{turn.thread_id}/"
    assert "Shared: every member of the project can now read this conversation." in flashes(
        starter, response["Location"]
    )
    for page in pages[:4]:
        assert viewer.get(page).status_code == 200, page
    assert "Where is the lighthouse?" in viewer.get(f"/projects/{project.pk}/").content.decode()
    assert "Shared with the project" in viewer.get(pages[0]).content.decode()


def test_follow_ups_of_a_summary_in_private_threads_are_not_listed_to_others(
    project: Project, user: Any
) -> None:
    viewer = Membership.objects.create(project=project, user=UserFactory(), role=Role.VIEWER).user
    summary = finished_run(project, user, kind=RunKind.SUMMARIZE, question="")
    from agents import services

    services.run_create(
        user=user, project=project, kind=RunKind.ASK, question="Lamp oil budget?", parent=summary
    )
    assert "Lamp oil budget?" in client_for(user).get(f"/runs/{summary.pk}/").content.decode()
    assert "Lamp oil budget?" not in client_for(viewer).get(f"/runs/{summary.pk}/").content.decode()


def test_a_run_that_follows_a_private_question_does_not_show_it_to_others(
    project: Project, user: Any
) -> None:
    from agents import services

    editor = Membership.objects.create(project=project, user=UserFactory(), role=Role.EDITOR).user
    viewer = Membership.objects.create(project=project, user=UserFactory(), role=Role.VIEWER).user
    private = ask_in(editor, project, "Where is the secret lamp?")
    summary = services.run_create(user=editor, project=project, kind=RunKind.SUMMARIZE, parent=private)
    assert summary.thread_id is None  # a summary belongs to no thread: every member sees it
    as_viewer = client_for(viewer).get(f"/runs/{summary.pk}/").content.decode()
    assert "Where is the secret lamp?" not in as_viewer
    assert f"/runs/{private.pk}/" not in as_viewer
    as_starter = client_for(editor).get(f"/runs/{summary.pk}/").content.decode()
    assert "Where is the secret lamp?" in as_starter


def test_the_starter_renames_shares_and_deletes_on_the_thread_page(
    owner_client: Client, project: Project, user: Any
) -> None:
    turn = ask_in(user, project, "Who lit the lamp?")
    url = f"/runs/threads/{turn.thread_id}/"
    page = owner_client.get(url).content.decode()
    assert f'action="{url}rename/"' in page
    assert f'action="{url}share/"' in page and 'name="shared" value="true"' in page
    assert f'action="{url}delete/"' in page and "data-confirm=" in page
    assert "Private: only you and the project's owners can read it" in page

    renamed = owner_client.post(f"{url}rename/", {"title": "  The   lamp "})
    assert renamed["Location"] == url
    assert "Renamed to “The lamp”." in flashes(owner_client, url)
    assert "<h1>The lamp</h1>" in owner_client.get(url).content.decode()

    for bad, message in (("   ", "A title is required."), ("x" * 201, "A title has at most 200 characters.")):
        refused = owner_client.post(f"{url}rename/", {"title": bad})
        assert refused.status_code == 302
        assert message in flashes(owner_client, url)
    missing = owner_client.post(f"{url}rename/", {})
    assert "A title is required." in flashes(owner_client, url)
    assert missing.status_code == 302

    odd = owner_client.post(f"{url}share/", {"shared": "yes please"})
    assert odd.status_code == 302
    assert "That request was incomplete" in flashes(owner_client, url)
    owner_client.post(f"{url}share/", {"shared": "true"})
    assert 'name="shared" value="false"' in owner_client.get(url).content.decode()
    owner_client.post(f"{url}share/", {"shared": "false"})
    assert "Made private" in flashes(owner_client, url)

    deleted = owner_client.post(f"{url}delete/")
    assert deleted["Location"] == f"/projects/{project.pk}/#threads"
    assert "The conversation “The lamp” was deleted." in flashes(owner_client, deleted["Location"])
    assert not AgentRun.objects.filter(pk=turn.pk).exists()
    assert owner_client.get(url).status_code == 404
    assert owner_client.post(f"{url}delete/").status_code == 404
    assert owner_client.post(f"{url}rename/", {"title": "Back"}).status_code == 404
    assert owner_client.get(f"{url}delete/").status_code == 405


def test_only_permitted_people_see_the_management_forms(project: Project, user: Any) -> None:
    editor = Membership.objects.create(project=project, user=UserFactory(), role=Role.EDITOR).user
    viewer = Membership.objects.create(project=project, user=UserFactory(), role=Role.VIEWER).user
    turn = ask_in(editor, project, "Who lit the lamp?")
    from agents import services

    assert turn.thread is not None
    services.thread_share(user=editor, thread=turn.thread, shared=True)
    url = f"/runs/threads/{turn.thread_id}/"
    as_owner = client_for(user).get(url).content.decode()
    assert "rename/" in as_owner and "delete/" in as_owner and "share/" not in as_owner
    as_viewer = client_for(viewer).get(url).content.decode()
    assert "Rename, share or delete" not in as_viewer
    refused = client_for(viewer).post(f"{url}rename/", {"title": "Mine"})
    assert refused.status_code == 403
    assert client_for(viewer).post(f"{url}delete/").status_code == 403
    assert client_for(user).post(f"{url}share/", {"shared": "false"}).status_code == 403
    assert AgentRun.objects.filter(pk=turn.pk).exists()


def test_the_project_page_lists_threads_by_their_latest_question(
    owner_client: Client, project: Project, user: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import Thread

    older = ask_in(user, project, "Older conversation?")
    newer = ask_in(user, project, "Newer conversation?")
    hour_ago = timezone.now() - timedelta(hours=1)
    Thread.objects.filter(pk=older.thread_id).update(updated_at=hour_ago - timedelta(minutes=5))
    Thread.objects.filter(pk=newer.thread_id).update(updated_at=hour_ago)

    def listed() -> list[str]:
        body = owner_client.get(f"/projects/{project.pk}/").content.decode()
        section = body[body.index('id="threads"') : body.index('id="runs"')]
        return re.findall(r'class="thread-title" href="[^"]+">([^<]+)</a>', section)

    assert listed() == ["Newer conversation?", "Older conversation?"]
    ask_in(user, project, "A follow-up?", thread=older.thread)  # activity: it moves to the top
    assert listed() == ["Older conversation?", "Newer conversation?"]
    assert older.thread is not None
    from agents import services

    services.thread_rename(user=user, thread=older.thread, title="Renamed")
    services.thread_rename(user=user, thread=Thread.objects.get(pk=newer.thread_id), title="Also renamed")
    assert listed() == ["Renamed", "Also renamed"], "renaming is not activity"


def test_the_json_ask_gives_the_new_turn_count_and_a_clear_404_for_a_deleted_thread(
    owner_client: Client, project: Project, user: Any
) -> None:
    first = ask_in(user, project, "One?")
    payload = {"project": str(project.pk), "kind": "ask", "thread": str(first.thread_id)}
    for count in (2, 3):
        reply = owner_client.post(
            "/runs/new/", {**payload, "question": f"Q{count}?"}, HTTP_ACCEPT="application/json"
        )
        assert reply.status_code == 201
        assert reply.json()["turn_count"] == count
    assert f"{3} questions" in owner_client.get(f"/runs/threads/{first.thread_id}/").content.decode()
    owner_client.post(f"/runs/threads/{first.thread_id}/delete/")
    gone = owner_client.post("/runs/new/", {**payload, "question": "Four?"}, HTTP_ACCEPT="application/json")
    assert gone.status_code == 404
    assert gone.json() == {"detail": "No such conversation: it was deleted, or it is not shared with you."}
