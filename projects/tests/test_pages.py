"""Project pages: list, create, the project page, uploads, members, archive and delete."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.tests.factories import UserFactory
from conftest import make_project
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Project, ProjectStatus, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(project: Project, suffix: str = "") -> str:
    return f"/projects/{project.pk}/{suffix}"


# --- list and create -----------------------------------------------------------


def test_project_list_shows_my_projects_with_role_and_document_count(owner_client: Client, user: Any) -> None:
    mine = make_project(user, title="Mine")
    DocumentFactory(project=mine)
    DocumentFactory(project=mine)
    shared = make_project(UserFactory(), title="Shared with me")
    MembershipFactory(project=shared, user=user, role=Role.VIEWER)
    make_project(UserFactory(), title="Somebody else's")

    body = owner_client.get("/").content.decode()
    assert "Mine" in body and "Shared with me" in body
    assert "Somebody else" not in body
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)
    mine_row = next(r for r in rows if "Mine" in r)
    assert "Owner" in mine_row and '<td class="num">2</td>' in mine_row
    shared_row = next(r for r in rows if "Shared with me" in r)
    assert "Viewer" in shared_row and '<td class="num">0</td>' in shared_row


def test_creating_a_project_with_an_empty_title_shows_the_error(
    owner_client: Client,
) -> None:
    response = owner_client.post("/projects/new/", {"title": "   ", "description": ""})
    assert response.status_code == 400
    assert "A title is required." in response.content.decode()
    assert not Project.objects.exists()


def test_creating_a_project_with_a_201_character_title_shows_the_error(
    owner_client: Client,
) -> None:
    response = owner_client.post("/projects/new/", {"title": "x" * 201})
    assert response.status_code == 400
    assert "A title has at most 200 characters." in response.content.decode()
    assert not Project.objects.exists()


def test_creating_a_project_makes_me_owner_and_opens_its_page(owner_client: Client, user: Any) -> None:
    response = owner_client.post("/projects/new/", {"title": "y" * 200, "description": "Notes"})
    project = Project.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url(project)
    assert Membership.objects.get(project=project).role == Role.OWNER
    page = owner_client.get(url(project)).content.decode()
    assert "Project created." in page
    assert 'id="upload"' in page


def test_project_form_needs_a_csrf_token(user: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/projects/new/", {"title": "T"}).status_code == 403


# --- who sees what ---------------------------------------------------------------


def test_unknown_project_id_is_a_404_page(owner_client: Client) -> None:
    response = owner_client.get("/projects/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_viewer_sees_no_upload_or_delete_controls(project: Project) -> None:
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    doc = DocumentFactory(project=project, status=DocumentStatus.READY)
    body = client_for(viewer).get(url(project)).content.decode()
    assert doc.title in body
    assert 'id="upload"' not in body
    assert 'enctype="multipart/form-data"' not in body
    assert f"/documents/{doc.pk}/delete/" not in body
    assert "/archive/" not in body and "Delete project" not in body
    # Viewers may still ask.
    assert 'action="/runs/new/"' in body


def test_viewer_gets_403_when_posting_an_upload(project: Project) -> None:
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    response = client_for(viewer).post(url(project, "documents/"), {"title": "T", "text": "Some text"})
    assert response.status_code == 403
    assert "editor" in response.content.decode()
    assert not Document.objects.exists()


def test_editor_sees_upload_but_not_owner_controls(project: Project) -> None:
    editor = MembershipFactory(project=project, role=Role.EDITOR).user
    body = client_for(editor).get(url(project)).content.decode()
    assert 'id="upload"' in body
    assert "Delete project" not in body
    assert client_for(editor).post(url(project, "archive/")).status_code == 403
    assert client_for(editor).get(url(project, "delete/")).status_code == 403


# --- uploads -------------------------------------------------------------------


def test_uploading_an_empty_file_shows_a_message(owner_client: Client, project: Project) -> None:
    empty = SimpleUploadedFile("empty.txt", b"", content_type="text/plain")
    response = owner_client.post(url(project, "documents/"), {"file": empty, "title": ""})
    assert response.status_code == 400
    assert "The file is empty." in response.content.decode()
    assert not Document.objects.exists()


def test_uploading_an_oversized_file_shows_the_limit(
    owner_client: Client, project: Project, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 64
    big = SimpleUploadedFile("big.txt", b"a" * 65, content_type="text/plain")
    response = owner_client.post(url(project, "documents/"), {"file": big})
    assert response.status_code == 400
    assert "larger than the" in response.content.decode()
    assert not Document.objects.exists()


def test_upload_needs_a_file_or_text(owner_client: Client, project: Project) -> None:
    response = owner_client.post(url(project, "documents/"), {"title": "Only a title"})
    assert response.status_code == 400
    assert "Choose a file, paste some text or give a web address." in response.content.decode()


def test_pasted_text_needs_a_title_and_keeps_the_text_on_error(
    owner_client: Client, project: Project
) -> None:
    response = owner_client.post(url(project, "documents/"), {"title": "", "text": "Keep <me> please"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "A title is required with pasted text." in body
    assert "Keep &lt;me&gt; please" in body


def test_uploading_a_file_adds_a_pending_document(owner_client: Client, project: Project) -> None:
    upload = SimpleUploadedFile(
        "notes.md",
        b"# Notes\n\nThe harbour opens at dawn.",
        content_type="text/markdown",
    )
    response = owner_client.post(url(project, "documents/"), {"file": upload, "title": ""})
    assert response.status_code == 302
    doc = Document.objects.get()
    assert doc.title == "notes.md" and doc.status == DocumentStatus.PENDING
    page = owner_client.get(url(project)).content.decode()
    assert "“notes.md” was added" in page
    # The table asks for updates while something is unfinished.
    assert f'data-poll-url="/projects/{project.pk}/documents.json"' in page
    assert f'data-item="{doc.pk}" data-status="pending"' in page


def test_pasted_text_is_ingested_and_shows_ready(
    owner_client: Client, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            url(project, "documents/"),
            {
                "title": "Harbour rules",
                "text": "The harbour opens at dawn. Boats leave before noon.",
            },
        )
    assert response.status_code == 302
    doc = Document.objects.get()
    assert doc.status == DocumentStatus.READY, doc.error
    page = owner_client.get(url(project)).content.decode()
    assert 'class="badge badge-ready" data-field="status">Ready<' in page
    assert "data-poll-url" not in page


def test_documents_json_reports_the_state_of_the_asked_documents(
    owner_client: Client, project: Project
) -> None:
    pending = DocumentFactory(project=project)
    failed = DocumentFactory(project=project, status=DocumentStatus.FAILED, error="No text in the PDF.")
    elsewhere = DocumentFactory()
    response = owner_client.get(
        url(project, "documents.json"),
        {"id": [str(pending.pk), str(failed.pk), str(elsewhere.pk), "not-a-uuid"]},
    )
    assert response.status_code == 200
    data = response.json()
    states = {item["id"]: item for item in data["items"]}
    assert set(states) == {str(pending.pk), str(failed.pk)}
    assert states[str(pending.pk)]["status"] == "pending" and not states[str(pending.pk)]["finished"]
    assert states[str(failed.pk)] == {
        "id": str(failed.pk),
        "status": "failed",
        "status_label": "Failed",
        "error": "No text in the PDF.",
        "chunk_count": 0,
        "finished": True,
    }
    assert data["finished"] is False


def test_failed_documents_show_their_reason(owner_client: Client, project: Project) -> None:
    DocumentFactory(
        project=project,
        status=DocumentStatus.FAILED,
        error="The PDF has no <text> layer.",
    )
    body = owner_client.get(url(project)).content.decode()
    assert "The PDF has no &lt;text&gt; layer." in body


# --- edit, archive, delete -------------------------------------------------------


def test_owner_edits_archives_restores_and_deletes_a_project(owner_client: Client, project: Project) -> None:
    response = owner_client.post(url(project, "edit/"), {"title": "", "description": ""})
    assert response.status_code == 400 and "A title is required." in response.content.decode()
    assert (
        owner_client.post(url(project, "edit/"), {"title": "Renamed", "description": "D"}).status_code == 302
    )
    project.refresh_from_db()
    assert project.title == "Renamed"

    owner_client.post(url(project, "archive/"))
    project.refresh_from_db()
    assert project.status == ProjectStatus.ARCHIVED
    assert "Archived" in owner_client.get(url(project)).content.decode()
    owner_client.post(url(project, "archive/"))
    project.refresh_from_db()
    assert project.status == ProjectStatus.ACTIVE

    assert "cannot be undone" in owner_client.get(url(project, "delete/")).content.decode()
    response = owner_client.post(url(project, "delete/"))
    assert response["Location"] == "/"
    assert not Project.objects.filter(pk=project.pk).exists()


# --- members -----------------------------------------------------------------


def test_owner_changes_and_removes_a_member(owner_client: Client, project: Project) -> None:
    membership = MembershipFactory(project=project, user__email="colleague@example.com", role=Role.EDITOR)
    page = owner_client.get(url(project, "members/")).content.decode()
    assert "colleague@example.com" in page and "Invite someone" in page

    owner_client.post(
        url(project, f"members/{membership.pk}/role/"),
        {f"m{membership.pk}-role": "viewer"},
    )
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER

    owner_client.post(url(project, f"members/{membership.pk}/remove/"))
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_the_members_form_invites_and_never_says_whether_an_account_exists(
    owner_client: Client, project: Project
) -> None:
    UserFactory(email="colleague@example.com")
    known = owner_client.post(url(project, "members/"), {"email": "colleague@example.com", "role": "viewer"})
    unknown = owner_client.post(url(project, "members/"), {"email": "nobody@example.com", "role": "viewer"})
    assert known.status_code == unknown.status_code == 302
    assert project.memberships.count() == 1  # nobody joined without accepting
    page = owner_client.get(url(project, "members/")).content.decode()
    assert "No active user" not in page
    assert "An invitation was sent to nobody@example.com." in page


def test_the_last_owner_cannot_step_down(owner_client: Client, project: Project) -> None:
    mine = project.memberships.get()
    response = owner_client.post(
        url(project, f"members/{mine.pk}/role/"),
        {f"m{mine.pk}-role": "viewer"},
        follow=True,
    )
    assert "A project needs at least one owner." in response.content.decode()
    response = owner_client.post(url(project, f"members/{mine.pk}/remove/"), follow=True)
    assert "The last owner cannot be removed." in response.content.decode()
    mine.refresh_from_db()
    assert mine.role == Role.OWNER


def test_members_see_the_list_but_only_owners_manage_it(project: Project) -> None:
    membership = MembershipFactory(project=project, role=Role.EDITOR)
    editor = membership.user
    owner_membership = project.memberships.get(role=Role.OWNER)
    client = client_for(editor)
    page = client.get(url(project, "members/")).content.decode()
    assert "owner@example.com" in page and "Invite someone" not in page
    assert (
        client.post(url(project, "members/"), {"email": "x@example.com", "role": "viewer"}).status_code == 403
    )
    assert client.post(url(project, f"members/{owner_membership.pk}/remove/")).status_code == 403
    # Anyone may leave.
    response = client.post(url(project, f"members/{membership.pk}/remove/"))
    assert response["Location"] == "/"
    assert not Membership.objects.filter(pk=membership.pk).exists()
