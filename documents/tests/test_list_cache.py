"""A project's document list is served from the cache, and every change to its documents shows at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from agents import services as agent_services
from agents.models import RunKind
from conftest import api_for, make_project
from documents import ingest, services
from documents.models import Document, DocumentStatus
from projects.models import Project, Role
from projects.services import member_remove
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

TEXT = "Coral reefs bleach when the sea warms. Bleached corals can recover within a decade."


def listing(client: APIClient, project: Project, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/documents/", {"project": str(project.pk), **params})
    assert response.status_code == 200, response.content
    return response.json()


def document_queries(run: Callable[[], Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        run()
    return [q["sql"] for q in captured.captured_queries if Document._meta.db_table in q["sql"]]


def entry(page: dict[str, Any], doc: Document) -> dict[str, Any]:
    [row] = [r for r in page["results"] if r["id"] == str(doc.pk)]
    return row


@pytest.fixture
def doc(user: Any, project: Project) -> Document:
    return services.document_create(user=user, project=project, title="Reefs", text=TEXT)


@pytest.fixture
def ready(user: Any, project: Project, django_capture_on_commit_callbacks: Any) -> Document:
    with django_capture_on_commit_callbacks(execute=True):
        created = services.document_create(user=user, project=project, title="Ready", text=TEXT)
    created.refresh_from_db()
    assert created.status == DocumentStatus.READY
    return created


def test_a_repeated_list_request_reads_no_documents_from_the_database(
    auth_api: APIClient, project: Project, doc: Document
) -> None:
    first = document_queries(lambda: listing(auth_api, project))
    assert first, "the first request builds the page from the database"
    again: dict[str, Any] = {}
    assert document_queries(lambda: again.update(listing(auth_api, project))) == []
    assert again == listing(auth_api, project)
    assert [r["id"] for r in again["results"]] == [str(doc.pk)]


def test_every_filter_and_page_is_cached_apart(auth_api: APIClient, user: Any, project: Project) -> None:
    for i in range(3):
        services.document_create(user=user, project=project, title=f"Note {i}", text=f"{TEXT} ({i})")
    assert listing(auth_api, project)["count"] == 3
    assert listing(auth_api, project, search="Note 1")["count"] == 1
    assert listing(auth_api, project, status="ready")["count"] == 0
    assert [r["title"] for r in listing(auth_api, project, ordering="title")["results"]] == [
        "Note 0",
        "Note 1",
        "Note 2",
    ]
    assert [r["title"] for r in listing(auth_api, project, ordering="-title")["results"]][0] == "Note 2"


def test_page_links_follow_the_host_the_client_used(auth_api: APIClient, user: Any, project: Project) -> None:
    for i in range(51):
        services.document_create(user=user, project=project, title=f"Note {i}", text=f"{TEXT} {i}")
    local = listing(auth_api, project)
    other = auth_api.get("/api/v1/documents/", {"project": str(project.pk)}, HTTP_HOST="localhost").json()
    assert local["next"].startswith("http://testserver/")
    assert other["next"].startswith("http://localhost/")
    assert local["count"] == other["count"] == 51


def _claim(doc: Document) -> None:
    assert ingest.claim(token="job") != []


def _fail(doc: Document) -> None:
    (claim,) = ingest.claim(token="job")
    assert ingest.fail(doc.pk, claim.attempt, "The file is damaged.")


def _ingest(doc: Document) -> None:
    assert services.document_ingest(document_id=doc.pk) == DocumentStatus.READY


def _reindex(doc: Document) -> None:
    services.document_ingest(document_id=doc.pk)
    services.document_reindex(user=doc.uploaded_by, document=doc)


def _tags(doc: Document) -> None:
    doc.metadata = {"tags": ["coral"]}
    services.document_save_metadata(document=doc)


CHANGES: dict[str, tuple[Callable[[Document], None], Callable[[dict[str, Any]], bool]]] = {
    "claimed for processing": (_claim, lambda row: row["status"] == "processing"),
    "failed with a reason": (_fail, lambda row: row["status"] == "failed" and "damaged" in row["error"]),
    "ingested": (_ingest, lambda row: row["status"] == "ready" and row["chunk_count"] > 0),
    "queued to re-index": (_reindex, lambda row: row["status"] == "pending"),
    "tagged": (_tags, lambda row: row["tags"] == ["coral"]),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_to_a_document_shows_in_the_next_list(
    auth_api: APIClient, project: Project, doc: Document, change: str
) -> None:
    apply, shows = CHANGES[change]
    before = entry(listing(auth_api, project), doc)
    assert before["status"] == "pending"
    apply(Document.objects.get(pk=doc.pk))
    assert shows(entry(listing(auth_api, project), doc)), change


def test_created_and_deleted_documents_show_in_the_next_list(
    auth_api: APIClient, user: Any, project: Project, doc: Document
) -> None:
    assert listing(auth_api, project)["count"] == 1
    second = services.document_create(user=user, project=project, title="Tides", text=TEXT + " Tides too.")
    assert listing(auth_api, project)["count"] == 2
    assert auth_api.delete(f"/api/v1/documents/{second.pk}/").status_code == 204
    page = listing(auth_api, project)
    assert [r["id"] for r in page["results"]] == [str(doc.pk)]


def test_an_extract_run_shows_its_tags_in_the_next_list(
    auth_api: APIClient, user: Any, project: Project, ready: Document, settings: Any
) -> None:
    settings.LLM_PROVIDER = "offline"
    assert entry(listing(auth_api, project), ready)["tags"] == []
    run = agent_services.run_create(user=user, project=project, kind=RunKind.EXTRACT, document=ready)
    agent_services.run_execute(run_id=run.pk)
    tags = entry(listing(auth_api, project), ready)["tags"]
    assert tags and tags == Document.objects.get(pk=ready.pk).metadata["tags"]


def test_a_staff_edit_in_the_admin_shows_in_the_next_list_and_in_search(
    auth_api: APIClient, admin_client: Any, project: Project, ready: Document
) -> None:
    assert entry(listing(auth_api, project), ready)["title"] == "Ready"
    url = reverse("admin:documents_document_change", args=[ready.pk])
    form = {"title": "Coral survey", "external_id": "", "source": "", "metadata": "{}"}
    assert admin_client.post(url, form).status_code == 302
    assert entry(listing(auth_api, project), ready)["title"] == "Coral survey"
    hits = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "coral bleaching"}).json()
    assert {hit["title"] for hit in hits["results"]} == {"Coral survey"}


def test_access_is_checked_before_the_cache_is_asked(user: Any, project: Project, doc: Document) -> None:
    membership = MembershipFactory(project=project, role=Role.VIEWER)
    client = api_for(membership.user)
    assert listing(client, project)["count"] == 1
    member_remove(user=user, membership=membership)
    assert client.get("/api/v1/documents/", {"project": str(project.pk)}).status_code == 404
    outsider = api_for(UserFactory())
    assert outsider.get("/api/v1/documents/", {"project": str(project.pk)}).status_code == 404


def test_pages_of_two_projects_never_mix(
    auth_api: APIClient, user: Any, project: Project, doc: Document
) -> None:
    other = make_project(user, title="Other")
    services.document_create(user=user, project=other, title="Elsewhere", text=TEXT)
    assert [r["title"] for r in listing(auth_api, project)["results"]] == ["Reefs"]
    assert [r["title"] for r in listing(auth_api, other)["results"]] == ["Elsewhere"]


def test_with_the_cache_off_every_list_reads_the_database(
    auth_api: APIClient, project: Project, doc: Document, settings: Any
) -> None:
    settings.LIST_CACHE_S = 0
    listing(auth_api, project)
    assert document_queries(lambda: listing(auth_api, project))


def test_a_page_with_a_parameter_the_list_ignores_is_built_afresh_and_not_stored(
    auth_api: APIClient, project: Project, doc: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.cache import cache

    stored: list[str] = []
    real_set = cache.set
    monkeypatch.setattr(cache, "set", lambda key, *a, **kw: (stored.append(key), real_set(key, *a, **kw)))
    odd: dict[str, Any] = {}
    assert document_queries(lambda: odd.update(listing(auth_api, project, utm_source="mail")))
    assert document_queries(lambda: listing(auth_api, project, utm_source="mail")), "never served from cache"
    assert odd["count"] == 1
    assert not [key for key in stored if key.startswith("page:")]
    listing(auth_api, project, status="pending")
    assert [key for key in stored if key.startswith("page:")], "a known filter is cached"
