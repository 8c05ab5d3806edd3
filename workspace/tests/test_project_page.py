"""The project page as a new user meets it: the drop zone's JSON uploads, Ask held back
until a document is ready, times that read "just now", and the members page of a sole owner."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunKind, RunStatus
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Membership, Project, Role
from workspace.templatetags.docent_time import ago, ago_at

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
PROGRAM = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4


def upload_url(project: Project) -> str:
    return reverse("projects:upload", args=[project.pk])


def page_of(client: Client, project: Project) -> str:
    response = client.get(reverse("projects:detail", args=[project.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --- the upload endpoint answers the drop zone in JSON --------------------------------


def test_json_upload_answers_201_with_the_new_document(owner_client: Client, project: Project) -> None:
    notes = SimpleUploadedFile("harbour.md", b"# Harbour\n\nThe keeper lit the lamp.", "text/markdown")

    response = owner_client.post(upload_url(project), {"file": notes}, **JSON)

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    body = response.json()
    doc = Document.objects.get(project=project)
    assert body == {
        "id": str(doc.pk),
        "title": "harbour.md",
        "url": reverse("documents:detail", args=[doc.pk]),
        "status_url": reverse("documents:status", args=[doc.pk]),
        "status": doc.status,
    }


def test_json_upload_of_an_unsupported_file_answers_400_with_the_reason(
    owner_client: Client, project: Project
) -> None:
    program = SimpleUploadedFile("tool.bin", PROGRAM, "application/octet-stream")

    response = owner_client.post(upload_url(project), {"file": program}, **JSON)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["file"]
    assert errors["file"][0].startswith("Unsupported file type: this is a program.")
    assert not Document.objects.filter(project=project).exists()


def test_json_upload_of_a_file_over_the_limit_answers_400_with_the_limit(
    owner_client: Client, project: Project, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 100
    settings.DOCENT_MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.txt", b"word " * 100, "text/plain")

    response = owner_client.post(upload_url(project), {"file": big}, **JSON)

    assert response.status_code == 400
    assert response.json() == {"errors": {"file": ["The file is larger than the 1 MB limit."]}}


def test_json_upload_with_nothing_names_the_missing_source(owner_client: Client, project: Project) -> None:
    response = owner_client.post(upload_url(project), {}, **JSON)

    assert response.status_code == 400
    assert response.json() == {"errors": {"file": ["Choose a file, paste some text or give a web address."]}}


def test_plain_form_upload_still_redirects_to_the_documents(owner_client: Client, project: Project) -> None:
    notes = SimpleUploadedFile("notes.txt", b"Fog rolled over the bay.", "text/plain")

    response = owner_client.post(upload_url(project), {"file": notes})

    assert response.status_code == 302
    assert response["Location"] == reverse("projects:detail", args=[project.pk]) + "#documents"


def test_plain_form_upload_error_renders_the_page_not_json(owner_client: Client, project: Project) -> None:
    program = SimpleUploadedFile("tool.bin", PROGRAM, "application/octet-stream")

    response = owner_client.post(upload_url(project), {"file": program})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "Unsupported file type" in response.content.decode()


# --- the drop zone and Ask on the page ----------------------------------------------


def test_editor_sees_a_multi_file_drop_zone_above_the_documents_list(
    owner_client: Client, project: Project
) -> None:
    html = page_of(owner_client, project)

    zone = re.search(r"<form class=\"dropzone\"[^>]*>", html)
    assert zone is not None
    assert f'action="{upload_url(project)}"' in zone.group(0)
    assert "data-dropzone" in zone.group(0)
    assert re.search(r'<input type="file" id="dropzone-files" name="file" multiple', html)
    # At the top of the documents card: before the list, and before the sidebar's form.
    assert html.index('class="dropzone"') < html.index('data-part="documents"') < html.index('id="upload"')


def test_viewer_gets_no_drop_zone(client: Client, project: Project) -> None:
    viewer = UserFactory()
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)

    assert "data-dropzone" not in page_of(client, project)


def ask_buttons(html: str) -> list[str]:
    return re.findall(
        r"<button type=\"submit\" class=\"btn[^\"]*btn-block\"[^>]*>(?:Ask|Summarize project)", html
    )


def test_empty_project_disables_ask_and_summarize_with_a_reason(
    owner_client: Client, project: Project
) -> None:
    html = page_of(owner_client, project)

    assert 'id="ask-blocked"' in html
    assert "Add a document first." in html
    buttons = ask_buttons(html)
    assert len(buttons) == 2
    assert all(" disabled" in b and 'aria-describedby="ask-blocked"' in b for b in buttons)
    assert re.search(r"<textarea[^>]*name=\"question\"[^>]*disabled", html)


def test_project_with_only_pending_documents_says_they_are_processing(
    owner_client: Client, project: Project
) -> None:
    DocumentFactory(project=project, status=DocumentStatus.PENDING)

    html = page_of(owner_client, project)

    assert "Documents are still being processed." in html
    assert all(" disabled" in b for b in ask_buttons(html))
    # When they are ready, the poller fetches the Ask card afresh.
    assert 'data-poll-refresh="ask"' in html


def test_project_with_a_ready_document_enables_ask(owner_client: Client, project: Project) -> None:
    DocumentFactory(project=project, status=DocumentStatus.PENDING)
    DocumentFactory(project=project, status=DocumentStatus.READY)

    html = page_of(owner_client, project)

    assert 'id="ask-blocked"' not in html
    buttons = ask_buttons(html)
    assert len(buttons) == 2
    assert not any(" disabled" in b for b in buttons)
    assert "data-poll-refresh" not in html


def test_project_whose_documents_all_failed_asks_for_another(owner_client: Client, project: Project) -> None:
    DocumentFactory(project=project, status=DocumentStatus.FAILED, error="The file is empty.")

    html = page_of(owner_client, project)

    assert "None of the documents could be read; add another." in html
    assert all(" disabled" in b for b in ask_buttons(html))


def test_document_dates_in_the_table_are_compact(owner_client: Client, project: Project) -> None:
    doc = DocumentFactory(project=project, status=DocumentStatus.READY)
    Document.objects.filter(pk=doc.pk).update(created_at=datetime(2025, 3, 4, 14, 5, tzinfo=UTC))

    html = page_of(owner_client, project)

    assert re.search(
        r'<td class="hide-narrow date"><time [^>]*title="4 Mar 2025, 14:05">4 Mar 2025</time>', html
    )


# --- the `ago` filter ------------------------------------------------------------------

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "said"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(seconds=-30), "just now"),  # another server's clock a little ahead
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=1, seconds=59), "1 minute ago"),
        (timedelta(minutes=2), "2 minutes ago"),
        (timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=2, minutes=30), "2 hours ago"),
        (timedelta(hours=23, minutes=59), "23 hours ago"),
        (timedelta(days=1), "9 Jun 2025"),
        (timedelta(days=400), "6 May 2024"),
    ],
)
def test_ago_says_just_now_then_minutes_then_hours_then_the_date(before: timedelta, said: str) -> None:
    assert ago_at(NOW - before, NOW) == said


def test_ago_filter_in_a_template_reads_the_clock() -> None:
    template = Template("{% load docent_time %}{{ at|ago }}|{{ missing|ago }}")

    rendered = template.render(Context({"at": timezone.now() - timedelta(minutes=5, seconds=3)}))

    assert rendered == "5 minutes ago|"
    assert ago(timezone.now()) == "just now"


def test_a_fresh_run_in_the_project_page_says_just_now(
    owner_client: Client, project: Project, user: Any
) -> None:
    AgentRun.objects.create(
        project=project, created_by=user, kind=RunKind.ASK, question="Who lit it?", status=RunStatus.QUEUED
    )

    html = page_of(owner_client, project)

    assert re.search(r'<li class="run-row">.*?<time class="muted"[^>]*>just now</time>', html, re.S)
    assert "0\xa0minutes" not in html and "0 minutes" not in html


# --- the members page of a sole owner ----------------------------------------------------


def test_sole_owner_is_not_offered_leave(owner_client: Client, project: Project) -> None:
    Membership.objects.create(project=project, user=UserFactory(), role=Role.EDITOR)

    response = owner_client.get(reverse("projects:members", args=[project.pk]))

    html = response.content.decode()
    assert "You are the only owner: make someone else an owner before leaving." in html
    assert ">Leave<" not in html
    assert html.count(">Remove<") == 1  # the editor can still be removed


def test_one_of_two_owners_may_leave(client: Client, project: Project, user: Any) -> None:
    Membership.objects.create(project=project, user=UserFactory(), role=Role.OWNER)
    client.force_login(user)

    html = client.get(reverse("projects:members", args=[project.pk])).content.decode()

    assert ">Leave<" in html
    assert "You are the only owner" not in html


def test_editor_may_leave_a_project_with_one_owner(client: Client, project: Project) -> None:
    editor = UserFactory()
    Membership.objects.create(project=project, user=editor, role=Role.EDITOR)
    client.force_login(editor)

    html = client.get(reverse("projects:members", args=[project.pk])).content.decode()

    assert ">Leave<" in html
    assert "You are the only owner" not in html


def test_sole_owner_leaving_anyway_is_still_refused(
    owner_client: Client, project: Project, user: Any
) -> None:
    mine = Membership.objects.get(project=project, user=user)

    owner_client.post(reverse("projects:member_remove", args=[project.pk, mine.pk]))

    assert Membership.objects.filter(pk=mine.pk, role=Role.OWNER).exists()
