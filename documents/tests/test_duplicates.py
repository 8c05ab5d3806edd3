"""The same bytes again in a project: refused with the document that holds them (409 naming it,
the page linking it), or, when asked, made that document: same id, the new name and file."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from conftest import make_project
from documents import services
from documents.models import Document, DocumentStatus
from projects.models import Project

pytestmark = pytest.mark.django_db

NOTES = b"The harbour master rings the bell twice when the fog lifts.\n"


def upload(client: APIClient, project: Project, name: str, data: bytes = NOTES, **extra: Any) -> Any:
    body = {"project": str(project.pk), "file": SimpleUploadedFile(name, data, "text/plain"), **extra}
    return client.post("/api/v1/documents/", body, format="multipart")


def test_the_same_bytes_again_are_a_409_naming_the_document_that_holds_them(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(auth_api, project, "harbour.txt")
    assert first.status_code == 201, first.content
    again = upload(auth_api, project, "harbour (1).txt")
    assert again.status_code == 409, again.content
    body = again.json()
    assert body["code"] == "duplicate"
    assert body["existing"]["id"] == first.json()["id"]
    assert body["existing"]["title"] == "harbour.txt"
    assert body["detail"] == "This file is already in the project as “harbour.txt”."
    assert Document.objects.filter(project=project).count() == 1
    # Nothing of the refused upload was stored.
    doc = Document.objects.get(project=project)
    folder = doc.file.storage.path(f"documents/{project.pk}")
    import os

    assert sorted(os.listdir(folder)) == [str(doc.pk)]
    assert os.listdir(os.path.join(folder, str(doc.pk))) == ["harbour.txt"]


def test_replace_makes_the_upload_that_document_keeping_its_id(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(auth_api, project, "harbour.txt").json()
    doc = Document.objects.get(pk=first["id"])
    old_path = doc.file.path
    assert doc.status == DocumentStatus.READY
    chunks = list(doc.chunks.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        replaced = upload(auth_api, project, "harbour-final.txt", replace="true")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["id"] == first["id"]
    doc.refresh_from_db()
    assert doc.original_filename == "harbour-final.txt"
    assert doc.title == "harbour.txt"  # no title was sent: the document keeps its own
    assert doc.file.name.endswith("/harbour-final.txt")
    with doc.file.open("rb") as fh:
        assert fh.read() == NOTES
    import os

    assert not os.path.exists(old_path)  # the old copy went after the commit
    # The same bytes: a ready document keeps its passages (and the citations into them).
    assert doc.status == DocumentStatus.READY
    assert list(doc.chunks.values_list("pk", flat=True)) == chunks
    assert Document.objects.filter(project=project).count() == 1


def test_replace_with_a_title_renames_and_a_failed_twin_is_queued_again(
    auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    upload(auth_api, project, "harbour.txt")
    doc = Document.objects.get(project=project)
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.FAILED, error="worker lost")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(auth_api, project, "harbour.txt", replace="true", title="Harbour bells")
    assert response.status_code == 200, response.content
    doc.refresh_from_db()
    assert doc.title == "Harbour bells"
    assert (doc.status, doc.error) == (DocumentStatus.PENDING, "")
    assert callbacks  # queued for ingest once committed


def test_replace_without_a_twin_just_adds_and_a_bad_value_is_a_400(
    auth_api: APIClient, project: Project
) -> None:
    assert upload(auth_api, project, "a.txt", replace="true").status_code == 201
    bad = upload(auth_api, project, "b.txt", data=b"other bytes\n", replace="perhaps")
    assert bad.status_code == 400
    assert "replace" in bad.json()
    assert Document.objects.filter(project=project).count() == 1


def test_pasted_text_and_other_projects_and_records_with_ids(
    auth_api: APIClient, project: Project, user: Any
) -> None:
    body = {"project": str(project.pk), "title": "Bells", "text": "Two bells: the fog has lifted."}
    assert auth_api.post("/api/v1/documents/", body, format="json").status_code == 201
    again = auth_api.post("/api/v1/documents/", {**body, "title": "Bells again"}, format="json")
    assert again.status_code == 409
    assert again.json()["detail"] == "This text is already in the project as “Bells”."
    # Another project holds its own copy.
    other = make_project(user, title="Elsewhere")
    assert (
        auth_api.post("/api/v1/documents/", {**body, "project": str(other.pk)}, format="json").status_code
        == 201
    )
    # A record with an external id is its own record, whatever its text.
    keyed = {**body, "external_id": "rec-2"}
    assert auth_api.post("/api/v1/documents/", keyed, format="json").status_code == 201
    assert Document.objects.filter(project=project).count() == 2


def test_an_import_skips_bytes_the_project_already_holds(user: Any, project: Project, tmp_path: Any) -> None:
    services.document_create(user=user, project=project, upload=SimpleUploadedFile("a.txt", NOTES))
    (tmp_path / "copy.txt").write_bytes(NOTES)
    (tmp_path / "new.txt").write_bytes(b"A different note.\n")
    report = services.documents_import(user=user, project=project, paths=[tmp_path])
    assert (report.created, report.skipped_existing, report.failed) == (1, 1, [])


def test_the_page_links_the_twin_and_offers_to_replace_it(
    client: Client, user: Any, project: Project
) -> None:
    client.force_login(user)
    url = reverse("projects:upload", args=[project.pk])
    assert client.post(url, {"file": SimpleUploadedFile("harbour.txt", NOTES)}).status_code == 302
    doc = Document.objects.get(project=project)

    page = client.post(url, {"file": SimpleUploadedFile("copy.txt", NOTES)})
    assert page.status_code == 400
    html = page.content.decode()
    assert "This file is already in the project as “harbour.txt”." in html
    assert f'href="{reverse("documents:detail", args=[doc.pk])}"' in html
    assert 'type="checkbox" name="replace"' in html
    assert "Replace “harbour.txt” with this upload" in html

    done = client.post(url, {"file": SimpleUploadedFile("copy.txt", NOTES), "replace": "on"}, follow=True)
    assert "“harbour.txt” was replaced by this upload." in done.content.decode()
    doc.refresh_from_db()
    assert doc.original_filename == "copy.txt"
    assert Document.objects.filter(project=project).count() == 1

    # The drop zone asks for JSON: 409 with the document's title and page.
    answer = client.post(url, {"file": SimpleUploadedFile("x.txt", NOTES)}, HTTP_ACCEPT="application/json")
    assert answer.status_code == 409
    assert answer.json()["existing"]["url"] == reverse("documents:detail", args=[doc.pk])
    assert answer.json()["errors"] == {"file": ["This file is already in the project as “harbour.txt”."]}
