"""Project and membership API, including who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import api_for, assert_same_as_drf, make_project
from projects.models import Membership, Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_create_project_makes_the_caller_owner(auth_api: APIClient, user: Any) -> None:
    response = auth_api.post("/api/v1/projects/", {"title": "Atlas", "description": "maps"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["role"] == Role.OWNER
    assert body["status"] == "active"
    assert Membership.objects.get(project_id=body["id"], user=user).role == Role.OWNER


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_project_title_must_be_1_to_200_characters(auth_api: APIClient, title: str) -> None:
    response = auth_api.post("/api/v1/projects/", {"title": title}, format="json")
    assert response.status_code == 400
    assert "title" in response.json()


def test_title_of_exactly_200_characters_is_accepted(auth_api: APIClient) -> None:
    assert auth_api.post("/api/v1/projects/", {"title": "x" * 200}, format="json").status_code == 201


def test_unknown_status_is_rejected(auth_api: APIClient) -> None:
    response = auth_api.post("/api/v1/projects/", {"title": "A", "status": "deleted"}, format="json")
    assert response.status_code == 400
    assert "status" in response.json()


def test_list_shows_only_my_projects(auth_api: APIClient, user: Any, other_user: Any) -> None:
    mine = make_project(user, "Mine")
    make_project(other_user, "Theirs")
    response = auth_api.get("/api/v1/projects/")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [str(mine.pk)]


def test_list_shows_each_members_own_role_and_the_document_count(user: Any) -> None:
    from documents.models import Document

    viewer, editor = UserFactory(), UserFactory()
    project = make_project(user, "Shared", viewer=viewer, editor=editor)
    make_project(editor, "Editor's own")
    for n in range(3):
        Document.objects.create(project=project, title=f"d{n}")
    for who, role, count in ((user, "owner", 1), (viewer, "viewer", 1), (editor, "editor", 2)):
        rows = api_for(who).get("/api/v1/projects/").json()["results"]
        assert len(rows) == count
        shared = next(r for r in rows if r["title"] == "Shared")
        assert (shared["role"], shared["document_count"]) == (role, 3)


@pytest.mark.parametrize("zone", ["UTC", "America/Sao_Paulo"])
def test_the_direct_project_representation_equals_drfs_field_by_field_one(
    user: Any, settings: Any, zone: str
) -> None:
    from django.utils import timezone
    from rest_framework.test import APIRequestFactory

    from projects.api import ProjectOut
    from projects.selectors import projects_for_list

    settings.TIME_ZONE = zone
    timezone.deactivate()
    fancy = make_project(user, "Ünïcode “title”")
    Project.objects.filter(pk=fancy.pk).update(description="Line one\nline two")
    make_project(user, "Empty")
    request = APIRequestFactory().get("/")
    request.user = user
    for project in projects_for_list(user):
        serializer = ProjectOut(project, context={"request": request})
        assert_same_as_drf(serializer, project, serializer.data)


def test_malformed_project_id_is_404(auth_api: APIClient) -> None:
    assert auth_api.get("/api/v1/projects/not-a-uuid/").status_code == 404


def test_anonymous_gets_401(api: APIClient, project: Project) -> None:
    assert api.get("/api/v1/projects/").status_code == 401
    assert api.get(f"/api/v1/projects/{project.pk}/").status_code == 401


def test_viewer_reads_but_cannot_change_or_delete(project: Project) -> None:
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    client = api_for(viewer)
    url = f"/api/v1/projects/{project.pk}/"
    assert client.get(url).json()["role"] == Role.VIEWER
    assert client.patch(url, {"title": "New"}, format="json").status_code == 403
    assert client.delete(url).status_code == 403


def test_editor_manages_documents_but_not_the_project_itself(project: Project) -> None:
    editor = MembershipFactory(project=project, role=Role.EDITOR).user
    client = api_for(editor)
    url = f"/api/v1/projects/{project.pk}/"
    assert client.patch(url, {"title": "Renamed"}, format="json").status_code == 403
    assert client.patch(url, {"status": "archived"}, format="json").status_code == 403
    assert client.delete(url).status_code == 403
    project.refresh_from_db()
    assert project.title != "Renamed"
    assert project.status == "active"


def test_owner_archives_and_deletes(auth_api: APIClient, project: Project) -> None:
    url = f"/api/v1/projects/{project.pk}/"
    assert auth_api.patch(url, {"status": "archived"}, format="json").json()["status"] == "archived"
    assert auth_api.put(url, {"title": "Whole", "description": "new"}, format="json").status_code == 200
    assert auth_api.delete(url).status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()


def test_owner_changes_and_removes_a_member(auth_api: APIClient, project: Project) -> None:
    MembershipFactory(project=project, user__email="new@example.com", role=Role.EDITOR)
    base = f"/api/v1/projects/{project.pk}/members/"
    listing = auth_api.get(base).json()
    assert {m["email"] for m in listing} == {"owner@example.com", "new@example.com"}
    member_id = next(m["id"] for m in listing if m["email"] == "new@example.com")
    changed = auth_api.patch(f"{base}{member_id}/", {"role": "viewer"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["role"] == "viewer"
    assert auth_api.delete(f"{base}{member_id}/").status_code == 204
    assert not Membership.objects.filter(pk=member_id).exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "new@example.com", "role": "viewer"},
        {"email": "nobody@example.com", "role": "viewer"},
        {"email": "not-email", "role": "admin"},
        {},
    ],
)
def test_adding_a_member_by_email_is_gone_and_points_to_invitations(
    auth_api: APIClient, project: Project, payload: dict[str, str]
) -> None:
    UserFactory(email="new@example.com")
    response = auth_api.post(f"/api/v1/projects/{project.pk}/members/", payload, format="json")
    assert response.status_code == 410
    assert f"/api/v1/projects/{project.pk}/invitations/" in response.json()["detail"]
    assert project.memberships.count() == 1


def test_the_last_owner_cannot_be_demoted_or_removed(
    auth_api: APIClient, project: Project, user: Any
) -> None:
    membership = Membership.objects.get(project=project, user=user)
    url = f"/api/v1/projects/{project.pk}/members/{membership.pk}/"
    assert auth_api.patch(url, {"role": "viewer"}, format="json").status_code == 400
    assert auth_api.delete(url).status_code == 400
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_editor_cannot_manage_members(project: Project) -> None:
    editor = MembershipFactory(project=project, role=Role.EDITOR).user
    UserFactory(email="friend@example.com")
    client = api_for(editor)
    base = f"/api/v1/projects/{project.pk}/members/"
    assert client.get(base).status_code == 200
    response = client.post(base, {"email": "friend@example.com", "role": "owner"}, format="json")
    assert response.status_code == 403
    invite = f"/api/v1/projects/{project.pk}/invitations/"
    response = client.post(invite, {"email": "friend@example.com", "role": "owner"}, format="json")
    assert response.status_code == 403


def test_member_id_from_another_project_is_404(
    auth_api: APIClient, project: Project, other_user: Any
) -> None:
    foreign = make_project(other_user, "Other")
    foreign_membership = Membership.objects.get(project=foreign)
    url = f"/api/v1/projects/{project.pk}/members/{foreign_membership.pk}/"
    assert auth_api.delete(url).status_code == 404
    assert Membership.objects.filter(pk=foreign_membership.pk).exists()
