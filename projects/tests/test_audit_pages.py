"""A project's audit log: what its owners' actions record, and who may read it (the owners,
on a page and in the API)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import audit
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from conftest import make_project
from documents.tests.factories import DocumentFactory
from projects.models import Invitation, Membership, Project

pytestmark = pytest.mark.django_db

IP = "198.51.100.23"


def browser(user: Any) -> Client:
    client = Client(REMOTE_ADDR=IP)
    client.force_login(user)
    return client


def api(user: Any) -> APIClient:
    client = APIClient(REMOTE_ADDR=IP)
    client.force_authenticate(user)
    return client


def project_events(project: Project) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(project_id=project.pk).order_by("id"))


@pytest.fixture
def team(user: Any) -> dict[str, Any]:
    editor, viewer = UserFactory(email="editor@example.com"), UserFactory(email="viewer@example.com")
    project = make_project(user, editor=editor, viewer=viewer)
    return {"owner": user, "editor": editor, "viewer": viewer, "project": project}


# --- what is recorded ---------------------------------------------------------------------


def test_an_owners_actions_in_a_project_are_recorded_in_order_with_actor_target_and_ip(
    team: dict[str, Any],
) -> None:
    owner, editor, viewer, project = team["owner"], team["editor"], team["viewer"], team["project"]
    invitee = UserFactory(email="invitee@example.com")
    members = f"/api/v1/projects/{project.pk}/members/"

    sent = api(owner).post(
        f"/api/v1/projects/{project.pk}/invitations/", {"email": "invitee@example.com", "role": "editor"}
    )
    api(owner).post(f"/api/v1/projects/{project.pk}/invitations/", {"email": "never@example.com"})
    never = Invitation.objects.get(email="never@example.com")
    api(owner).delete(f"/api/v1/projects/{project.pk}/invitations/{never.pk}/")
    accepted = api(invitee).post(f"/api/v1/invitations/{sent.json()['id']}/accept/")
    viewer_membership = Membership.objects.get(project=project, user=viewer)
    changed = api(owner).patch(f"{members}{viewer_membership.pk}/", {"role": "editor"})
    removed = api(owner).delete(f"{members}{Membership.objects.get(project=project, user=editor).pk}/")

    assert (sent.status_code, accepted.status_code, changed.status_code, removed.status_code) == (
        201,
        200,
        200,
        204,
    )
    recorded = [(e.action, e.actor, e.target, e.ip) for e in project_events(project)]
    assert recorded == [
        ("invitation.sent", owner, "invitee@example.com", IP),
        ("invitation.sent", owner, "never@example.com", IP),
        ("invitation.revoked", owner, "never@example.com", IP),
        ("invitation.accepted", invitee, "invitee@example.com", IP),
        ("member.role_changed", owner, "viewer@example.com", IP),
        ("member.removed", owner, "editor@example.com", IP),
    ]
    details = [e.detail for e in project_events(project)]
    assert details[0]["role"] == "editor"
    assert details[4] == {"from": "viewer", "to": "editor"}
    assert details[5] == {"role": "editor", "left": False}


def test_changes_on_the_pages_are_recorded_too(team: dict[str, Any]) -> None:
    owner, viewer, project = team["owner"], team["viewer"], team["project"]
    membership = Membership.objects.get(project=project, user=viewer)
    client = browser(owner)

    client.post(
        reverse("projects:member_role", args=[project.pk, membership.pk]),
        {f"m{membership.pk}-role": "editor"},
    )
    client.post(reverse("projects:member_remove", args=[project.pk, membership.pk]))

    recorded = [(e.action, e.actor, e.target, e.ip) for e in project_events(project)]
    assert recorded == [
        ("member.role_changed", owner, "viewer@example.com", IP),
        ("member.removed", owner, "viewer@example.com", IP),
    ]


def test_setting_the_role_a_member_has_records_nothing(team: dict[str, Any]) -> None:
    membership = Membership.objects.get(project=team["project"], user=team["viewer"])

    response = api(team["owner"]).patch(
        f"/api/v1/projects/{team['project'].pk}/members/{membership.pk}/", {"role": "viewer"}
    )

    assert response.status_code == 200
    assert not project_events(team["project"])


def test_a_member_leaving_is_recorded_as_their_own_removal(team: dict[str, Any]) -> None:
    viewer, project = team["viewer"], team["project"]
    membership = Membership.objects.get(project=project, user=viewer)

    browser(viewer).post(reverse("projects:member_remove", args=[project.pk, membership.pk]))

    event = project_events(project)[0]
    assert (event.action, event.actor, event.target, event.detail["left"]) == (
        "member.removed",
        viewer,
        "viewer@example.com",
        True,
    )


def test_a_refused_change_records_nothing(team: dict[str, Any]) -> None:
    project = team["project"]
    owner_membership = Membership.objects.get(project=project, user=team["owner"])

    refused = api(team["editor"]).delete(f"/api/v1/projects/{project.pk}/members/{owner_membership.pk}/")

    assert refused.status_code == 403
    assert not project_events(project)


def test_deleting_a_document_and_then_the_project_is_recorded_and_outlives_the_project(
    team: dict[str, Any],
) -> None:
    owner, editor, project = team["owner"], team["editor"], team["project"]
    document = DocumentFactory(project=project, title="Budget 2027")
    document_id = str(document.pk)

    deleted_doc = browser(editor).post(reverse("documents:delete", args=[document.pk]))
    deleted_project = browser(owner).post(reverse("projects:delete", args=[project.pk]))

    assert (deleted_doc.status_code, deleted_project.status_code) == (302, 302)
    assert not Project.objects.filter(pk=project.pk).exists()
    recorded = [(e.action, e.actor, e.target, e.ip) for e in project_events(project)]
    assert recorded == [
        ("document.deleted", editor, "Budget 2027", IP),
        ("project.deleted", owner, project.title, IP),
    ]
    assert project_events(project)[0].detail == {"document_id": document_id}


def test_deleting_a_document_through_the_api_is_recorded(team: dict[str, Any]) -> None:
    document = DocumentFactory(project=team["project"], title="Minutes")

    response = api(team["editor"]).delete(f"/api/v1/documents/{document.pk}/")

    assert response.status_code == 204
    event = project_events(team["project"])[0]
    assert (event.action, event.actor, event.target, event.ip) == (
        "document.deleted",
        team["editor"],
        "Minutes",
        IP,
    )


# --- the owners' page ----------------------------------------------------------------------


def _noise(project: Project) -> None:
    audit.record("member.removed", target="mine@example.com", project_id=project.pk)
    audit.record("invitation.sent", target="invited@example.com", project_id=project.pk)
    audit.record("member.removed", target="theirs@example.com", project_id=uuid.uuid4())
    audit.record("auth.sign_in_failed", target="anyone@example.com")


def test_owners_see_their_projects_events_and_no_other(team: dict[str, Any]) -> None:
    project = team["project"]
    _noise(project)

    response = browser(team["owner"]).get(reverse("projects:audit", args=[project.pk]))

    assert response.status_code == 200
    assert b"mine@example.com" in response.content and b"invited@example.com" in response.content
    assert b"theirs@example.com" not in response.content and b"anyone@example.com" not in response.content
    assert IP.encode() not in response.content  # recorded without a request: no address


def test_the_page_filters_by_action(team: dict[str, Any]) -> None:
    project = team["project"]
    _noise(project)

    response = browser(team["owner"]).get(
        reverse("projects:audit", args=[project.pk]), {"action": "invitation.sent"}
    )

    assert b"invited@example.com" in response.content
    assert b"mine@example.com" not in response.content


def test_the_page_is_paginated_newest_first(team: dict[str, Any]) -> None:
    project = team["project"]
    for n in range(55):
        audit.record("member.removed", target=f"person{n:02d}@example.com", project_id=project.pk)
    url = reverse("projects:audit", args=[project.pk])

    first = browser(team["owner"]).get(url)
    second = browser(team["owner"]).get(url, {"page": 2})

    assert b"person54@example.com" in first.content and b"person04@example.com" not in first.content
    assert b"Page 1 of 2" in first.content
    assert b"person04@example.com" in second.content and b"person54@example.com" not in second.content


def test_the_project_page_links_the_log_for_owners_only(team: dict[str, Any]) -> None:
    url = reverse("projects:detail", args=[team["project"].pk])
    audit_url = reverse("projects:audit", args=[team["project"].pk]).encode()

    assert audit_url in browser(team["owner"]).get(url).content
    assert audit_url not in browser(team["editor"]).get(url).content


@pytest.mark.parametrize(("role", "status"), [("editor", 403), ("viewer", 403), ("outsider", 404)])
def test_others_may_not_open_the_page(team: dict[str, Any], other_user: Any, role: str, status: int) -> None:
    caller = other_user if role == "outsider" else team[role]

    response = browser(caller).get(reverse("projects:audit", args=[team["project"].pk]))

    assert response.status_code == status


# --- the API -------------------------------------------------------------------------------


def test_owners_read_their_projects_events_through_the_api(team: dict[str, Any]) -> None:
    project = team["project"]
    _noise(project)

    body = api(team["owner"]).get(f"/api/v1/projects/{project.pk}/audit/").json()

    assert body["count"] == 2
    assert [e["target"] for e in body["results"]] == ["invited@example.com", "mine@example.com"]
    first = body["results"][0]
    assert set(first) == {"id", "at", "action", "actor", "target", "project", "ip", "detail"}
    assert first["project"] == str(project.pk)


def test_the_api_filters_searches_and_pages(team: dict[str, Any]) -> None:
    project = team["project"]
    _noise(project)
    for n in range(60):
        audit.record("member.removed", target=f"person{n:02d}@example.com", project_id=project.pk)
    url = f"/api/v1/projects/{project.pk}/audit/"
    client = api(team["owner"])

    only_sent = client.get(url, {"action": "invitation.sent"}).json()
    searched = client.get(url, {"search": "mine@"}).json()
    page_one, page_two = client.get(url).json(), client.get(url, {"page": 2}).json()

    assert [e["target"] for e in only_sent["results"]] == ["invited@example.com"]
    assert [e["target"] for e in searched["results"]] == ["mine@example.com"]
    assert page_one["count"] == 62 and len(page_one["results"]) == 50 and page_one["next"]
    assert len(page_two["results"]) == 12
    assert client.get(url, {"action": "not-an-action"}).status_code == 400


@pytest.mark.parametrize(("role", "status"), [("editor", 403), ("viewer", 403), ("outsider", 404)])
def test_others_may_not_read_the_log_through_the_api(
    team: dict[str, Any], other_user: Any, role: str, status: int
) -> None:
    caller = other_user if role == "outsider" else team[role]

    response = api(caller).get(f"/api/v1/projects/{team['project'].pk}/audit/")

    assert response.status_code == status


def test_the_endpoint_is_in_the_schema(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/projects/{project_pk}/audit/"]["get"]
    assert "owners" in operation["summary"].lower()
    assert {p["name"] for p in operation["parameters"]} >= {"project_pk", "action", "page", "search"}
