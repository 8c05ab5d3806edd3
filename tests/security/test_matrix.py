"""Who gets what: every API endpoint and every page against every kind of caller.

Each case names the exact status for anonymous, outsider, viewer, editor,
owner and staff. Outsiders (and staff, who are outsiders to projects: they
work in the admin) get 404 for another project's objects, never its data.
A refused write (any 4xx) leaves every project, document, membership,
invitation and run as it was. Two guards keep the matrix complete: every operation in the OpenAPI schema and
every named URL must appear in a case, so a new endpoint fails here until
someone decides who may use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts import keys
from accounts.models import ApiKey, Scope
from agents.models import AgentRun, RunFeedback, Thread
from documents.models import Document
from projects import webhooks
from projects.models import Invitation, Membership, Project, WebhookDelivery, WebhookEndpoint
from tests.security.conftest import ROLES, World

pytestmark = pytest.mark.django_db

# Things only members may ever see.
SECRETS = ("Secret plans", "The launch is on Tuesday", "When is the launch?")
LOGIN = "/accounts/login/"


def expect(anonymous: int, outsider: int, viewer: int, editor: int, owner: int, staff: int) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, outsider, viewer, editor, owner, staff), strict=True))


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


MEMBERS_READ = expect(401, 404, 200, 200, 200, 404)
EDITORS_WRITE = expect(401, 404, 403, 201, 201, 404)
OWNER_ONLY = expect(401, 404, 403, 403, 200, 404)
SIGNED_IN = expect(401, 200, 200, 200, 200, 200)
STAFF_ONLY = expect(401, 403, 403, 403, 403, 200)

PAGE_MEMBERS_READ = expect(302, 404, 200, 200, 200, 404)
PAGE_OWNER_POST = expect(302, 404, 403, 403, 302, 404)
PAGE_EDITOR_POST = expect(302, 404, 403, 302, 302, 404)


Body = Callable[[World, str], Any]


@dataclass
class Case:
    name: str
    method: str
    path: str  # with {placeholders} from World.ids
    expected: dict[str, int]
    route: str  # the URL name this case covers
    op: str = ""  # "METHOD /schema/path" for API cases
    body: Body | dict[str, Any] | None = None
    multipart: bool = False
    page: bool = False
    check: Callable[[World, str, Any], None] | None = field(default=None, repr=False)
    # Run before the request (and before the state a refused write must keep is read).
    setup: Callable[[World], None] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.name


def set_password(world: World) -> Any:
    newcomer = world.users["newcomer"]
    newcomer.set_password("a-long-pass-phrase")
    newcomer.save(update_fields=["password"])
    return newcomer


def lists_nothing_of_the_project(world: World, role: str, response: Any) -> None:
    if role in {"outsider", "staff"}:
        ids = {item["id"] for item in response.json()["results"]}
        assert not ids & {str(world.project.pk), str(world.document.pk), str(world.run.pk)}


def _lists_no_invitation(world: World, response: Any) -> None:
    assert str(world.invitation.pk) not in {item["id"] for item in response.json()}


def lists_the_project(world: World, role: str, response: Any) -> None:
    ids = {item["id"] for item in response.json()["results"]}
    if role in {"viewer", "editor", "owner"}:
        assert str(world.project.pk) in ids
    elif role != "anonymous":
        assert str(world.project.pk) not in ids


def finds_the_project_for_members_only(world: World, role: str, response: Any) -> None:
    projects = {hit["project"] for hit in response.json()["results"]}
    if role in {"viewer", "editor", "owner"}:
        assert str(world.project.pk) in projects
    else:
        assert str(world.project.pk) not in projects


# Threads: world.run is a turn of a thread the owner started, private to the owner (and the
# project's owners) until shared. Cases named "shared ..." share it first (setup=share_the_thread).
STARTER_ONLY = expect(401, 404, 404, 404, 200, 404)
PAGE_STARTER_ONLY = expect(302, 404, 404, 404, 200, 404)
PAGE_STARTER_POST = expect(302, 404, 404, 404, 302, 404)
SHARED_STARTER_WRITE = expect(401, 404, 403, 403, 200, 404)
PAGE_SHARED_STARTER_POST = expect(302, 404, 403, 403, 302, 404)
T = "/api/v1/threads/{thread}"
PT = "/runs/threads/{thread}"


def share_the_thread(world: World) -> None:
    """Share world.run's thread with the project before the request."""
    Thread.objects.filter(pk=world.run.thread_id).update(shared=True)


def hand_the_thread_to_the_editor(world: World) -> None:
    """world.run's thread, private, started by the editor: the project's owner is not its starter."""
    Thread.objects.filter(pk=world.run.thread_id).update(created_by=world.users["editor"])


def renames_the_thread(world: World, role: str, response: Any) -> None:
    assert Thread.objects.get(pk=world.run.thread_id).title == "Renamed"


def shares_the_thread(world: World, role: str, response: Any) -> None:
    assert Thread.objects.get(pk=world.run.thread_id).shared is True


def lists_the_private_thread_to_its_starter_only(world: World, role: str, response: Any) -> None:
    ids = {item["id"] for item in response.json()["results"]}
    assert (str(world.run.thread_id) in ids) == (role == "owner"), (role, ids)


def lists_the_private_threads_run_to_its_starter_only(world: World, role: str, response: Any) -> None:
    ids = {item["id"] for item in response.json()["results"]}
    assert (str(world.run.pk) in ids) == (role == "owner"), (role, ids)


# Ratings of answers: world.run is the one rated. Rows are made directly for every person, so
# a removal has something to remove (and a refused one something that must stay).
F = "/api/v1/runs/{run}/feedback/"
PF = "/runs/{run}/feedback/"
RATE_STARTER_ONLY = expect(401, 404, 404, 404, 201, 404)
RATE_MEMBERS = expect(401, 404, 201, 201, 201, 404)
PAGE_MEMBERS_POST = expect(302, 404, 302, 302, 302, 404)


def rate_it_as_everyone(world: World) -> None:
    """Every person has rated world.run (even those who may not read it: made directly)."""
    for user in world.users.values():
        RunFeedback.objects.create(run=world.run, user=user, rating="down", note="Kept.")


def share_and_rate_it_as_everyone(world: World) -> None:
    share_the_thread(world)
    rate_it_as_everyone(world)


def rated_by_the_caller(world: World, role: str, response: Any) -> None:
    assert RunFeedback.objects.filter(run=world.run, user=world.users[role], rating="up").exists()


def unrated_by_the_caller(world: World, role: str, response: Any) -> None:
    assert not RunFeedback.objects.filter(run=world.run, user=world.users[role]).exists()
    assert RunFeedback.objects.filter(run=world.run).count() == len(world.users) - 1


P = "/api/v1/projects/{project}"
D = "/api/v1/documents/{document}"

# Webhooks: world has none, so cases that name one make it first (setup=make_a_webhook), with
# fixed ids the paths can name. Its target is a public address literal: no name to resolve.
WEBHOOK = "5f0c2a4e-8d1b-4c3a-9e7f-1a2b3c4d5e6f"
DELIVERY = "6a1d3b5f-9e2c-4d4b-8f80-2b3c4d5e6f70"
W = P + "/webhooks/" + WEBHOOK
PUBLIC_HOOK = "https://93.184.215.14/hooks/docent"
OWNER_CREATES = expect(401, 404, 403, 403, 201, 404)
OWNER_QUEUES = expect(401, 404, 403, 403, 202, 404)
OWNER_DELETES = expect(401, 404, 403, 403, 204, 404)


def make_a_webhook(world: World) -> None:
    endpoint = WebhookEndpoint.objects.create(
        id=WEBHOOK,
        project=world.project,
        url=PUBLIC_HOOK,
        events=["document.ready"],
        secret=webhooks.new_secret(),
        created_by=world.users["owner"],
    )
    WebhookDelivery.objects.create(
        id=DELIVERY,
        endpoint=endpoint,
        event="document.ready",
        payload={"type": "document.ready", "timestamp": "2026-01-01T00:00:00Z", "data": {}},
        message_id="msg_matrix",
        status="failed",
    )


def shows_the_secret_to_the_owner(world: World, role: str, response: Any) -> None:
    assert role == "owner" and response.json()["secret"].startswith("whsec_")


# A personal API key of the project's owner (made directly: no secret is needed to revoke it).
OWNERS_KEY = "00000000-0000-4000-8000-0000000000ce"


def give_the_owner_a_key(world: World) -> None:
    ApiKey.objects.create(
        id=OWNERS_KEY,
        owner=world.users["owner"],
        name="Owner's CI",
        prefix="0123456789ab",
        secret_hash="0" * 64,
        scopes=["read"],
        project_ids=[world.project.pk],
    )


def lists_the_owners_key_to_the_owner_only(world: World, role: str, response: Any) -> None:
    ids = {item["id"] for item in response.json()["results"]}
    assert (OWNERS_KEY in ids) == (role == "owner"), (role, ids)
    assert all("key" not in item and "secret_hash" not in item for item in response.json()["results"])


# The audit log: an event in the project and one in another project, which nobody here may see.
def record_audit_events(world: World) -> None:
    import uuid

    from accounts import audit

    owner = world.users["owner"]
    audit.record("member.removed", actor=owner, target="kept@example.com", project_id=world.project.pk)
    audit.record("member.removed", actor=owner, target="elsewhere@example.com", project_id=uuid.uuid4())


def lists_only_the_projects_events(world: World, role: str, response: Any) -> None:
    events = response.json()["results"]
    targets = {event["target"] for event in events}
    assert "kept@example.com" in targets
    assert "elsewhere@example.com" not in targets
    assert {event["project"] for event in events} == {str(world.project.pk)}


def shows_only_the_projects_events(world: World, role: str, response: Any) -> None:
    assert b"kept@example.com" in response.content
    assert b"elsewhere@example.com" not in response.content


API_CASES = [
    Case("users list", "GET", "/api/v1/users/", STAFF_ONLY, "user-list", "GET /api/v1/users/"),
    Case(
        "user read",
        "GET",
        "/api/v1/users/{owner_user}/",
        STAFF_ONLY,
        "user-detail",
        "GET /api/v1/users/{id}/",
    ),
    Case("me", "GET", "/api/v1/users/me", SIGNED_IN, "user-me", "GET /api/v1/users/me/"),
    Case(
        "me patch",
        "PATCH",
        "/api/v1/users/me",
        SIGNED_IN,
        "user-me",
        "PATCH /api/v1/users/me/",
        {"name": "N"},
    ),
    Case(
        "projects list",
        "GET",
        "/api/v1/projects/",
        SIGNED_IN,
        "project-list",
        "GET /api/v1/projects/",
        check=lists_the_project,
    ),
    Case(
        "project create",
        "POST",
        "/api/v1/projects/",
        expect(401, 201, 201, 201, 201, 201),
        "project-list",
        "POST /api/v1/projects/",
        {"title": "New"},
    ),
    Case("project read", "GET", P + "/", MEMBERS_READ, "project-detail", "GET /api/v1/projects/{id}/"),
    Case(
        "project patch",
        "PATCH",
        P + "/",
        OWNER_ONLY,
        "project-detail",
        "PATCH /api/v1/projects/{id}/",
        {"title": "Renamed"},
    ),
    Case(
        "project put",
        "PUT",
        P + "/",
        OWNER_ONLY,
        "project-detail",
        "PUT /api/v1/projects/{id}/",
        {"title": "Renamed"},
    ),
    Case(
        "project delete",
        "DELETE",
        P + "/",
        expect(401, 404, 403, 403, 204, 404),
        "project-detail",
        "DELETE /api/v1/projects/{id}/",
    ),
    Case(
        "members list",
        "GET",
        P + "/members/",
        MEMBERS_READ,
        "member-list",
        "GET /api/v1/projects/{project_pk}/members/",
    ),
    # Gone: people join by invitation (410 names the invitations endpoint).
    Case(
        "member add",
        "POST",
        P + "/members/",
        expect(401, 404, 403, 403, 410, 404),
        "member-list",
        "POST /api/v1/projects/{project_pk}/members/",
        lambda w, r: {"email": w.users["newcomer"].email, "role": "viewer"},
    ),
    Case(
        "invitations of a project",
        "GET",
        P + "/invitations/",
        OWNER_ONLY,
        "project-invitation-list",
        "GET /api/v1/projects/{project_pk}/invitations/",
    ),
    Case(
        "invite",
        "POST",
        P + "/invitations/",
        expect(401, 404, 403, 403, 201, 404),
        "project-invitation-list",
        "POST /api/v1/projects/{project_pk}/invitations/",
        {"email": "someone-new@example.com", "role": "viewer"},
    ),
    Case(
        "revoke invitation",
        "DELETE",
        P + "/invitations/{invitation}/",
        expect(401, 404, 403, 403, 204, 404),
        "project-invitation-detail",
        "DELETE /api/v1/projects/{project_pk}/invitations/{id}/",
    ),
    Case(
        "my invitations",
        "GET",
        "/api/v1/invitations/",
        SIGNED_IN,
        "invitation-list",
        "GET /api/v1/invitations/",
        check=lambda w, r, response: _lists_no_invitation(w, response),
    ),
    # The invitation is the newcomer's: to everyone else it does not exist.
    Case(
        "someone else's invitation",
        "GET",
        "/api/v1/invitations/{invitation}/",
        expect(401, 404, 404, 404, 404, 404),
        "invitation-detail",
        "GET /api/v1/invitations/{id}/",
    ),
    Case(
        "accept someone else's invitation",
        "POST",
        "/api/v1/invitations/{invitation}/accept/",
        expect(401, 404, 404, 404, 404, 404),
        "invitation-accept",
        "POST /api/v1/invitations/{id}/accept/",
    ),
    Case(
        "decline someone else's invitation",
        "POST",
        "/api/v1/invitations/{invitation}/decline/",
        expect(401, 404, 404, 404, 404, 404),
        "invitation-decline",
        "POST /api/v1/invitations/{id}/decline/",
    ),
    Case(
        "webhooks of a project",
        "GET",
        P + "/webhooks/",
        OWNER_ONLY,
        "project-webhook-list",
        "GET /api/v1/projects/{project_pk}/webhooks/",
        setup=make_a_webhook,
    ),
    Case(
        "add a webhook",
        "POST",
        P + "/webhooks/",
        OWNER_CREATES,
        "project-webhook-list",
        "POST /api/v1/projects/{project_pk}/webhooks/",
        {"url": PUBLIC_HOOK, "events": ["document.ready", "run.failed"]},
    ),
    Case(
        "webhook read",
        "GET",
        W + "/",
        OWNER_ONLY,
        "project-webhook-detail",
        "GET /api/v1/projects/{project_pk}/webhooks/{id}/",
        setup=make_a_webhook,
        check=shows_the_secret_to_the_owner,
    ),
    Case(
        "webhook change",
        "PATCH",
        W + "/",
        OWNER_ONLY,
        "project-webhook-detail",
        "PATCH /api/v1/projects/{project_pk}/webhooks/{id}/",
        {"enabled": False},
        setup=make_a_webhook,
    ),
    Case(
        "webhook replace",
        "PUT",
        W + "/",
        OWNER_ONLY,
        "project-webhook-detail",
        "PUT /api/v1/projects/{project_pk}/webhooks/{id}/",
        {"url": PUBLIC_HOOK, "events": ["member.joined"], "description": "Chat"},
        setup=make_a_webhook,
    ),
    Case(
        "webhook delete",
        "DELETE",
        W + "/",
        OWNER_DELETES,
        "project-webhook-detail",
        "DELETE /api/v1/projects/{project_pk}/webhooks/{id}/",
        setup=make_a_webhook,
    ),
    Case(
        "webhook test event",
        "POST",
        W + "/test/",
        OWNER_QUEUES,
        "project-webhook-test",
        "POST /api/v1/projects/{project_pk}/webhooks/{id}/test/",
        setup=make_a_webhook,
    ),
    Case(
        "webhook deliveries",
        "GET",
        W + "/deliveries/",
        OWNER_ONLY,
        "project-webhook-delivery-list",
        "GET /api/v1/projects/{project_pk}/webhooks/{webhook_pk}/deliveries/",
        setup=make_a_webhook,
    ),
    Case(
        "webhook delivery read",
        "GET",
        W + "/deliveries/" + DELIVERY + "/",
        OWNER_ONLY,
        "project-webhook-delivery-detail",
        "GET /api/v1/projects/{project_pk}/webhooks/{webhook_pk}/deliveries/{id}/",
        setup=make_a_webhook,
    ),
    Case(
        "webhook delivery resend",
        "POST",
        W + "/deliveries/" + DELIVERY + "/resend/",
        OWNER_QUEUES,
        "project-webhook-delivery-resend",
        "POST /api/v1/projects/{project_pk}/webhooks/{webhook_pk}/deliveries/{id}/resend/",
        setup=make_a_webhook,
    ),
    Case(
        "member read",
        "GET",
        P + "/members/{viewer_member}/",
        MEMBERS_READ,
        "member-detail",
        "GET /api/v1/projects/{project_pk}/members/{id}/",
    ),
    Case(
        "member role patch",
        "PATCH",
        P + "/members/{bystander_member}/",
        OWNER_ONLY,
        "member-detail",
        "PATCH /api/v1/projects/{project_pk}/members/{id}/",
        {"role": "editor"},
    ),
    Case(
        "member role put",
        "PUT",
        P + "/members/{bystander_member}/",
        OWNER_ONLY,
        "member-detail",
        "PUT /api/v1/projects/{project_pk}/members/{id}/",
        {"role": "editor"},
    ),
    Case(
        "member remove",
        "DELETE",
        P + "/members/{bystander_member}/",
        expect(401, 404, 403, 403, 204, 404),
        "member-detail",
        "DELETE /api/v1/projects/{project_pk}/members/{id}/",
    ),
    # Members may leave; the last owner may not.
    Case(
        "member leaves",
        "DELETE",
        P + "/members/{my_member}/",
        expect(401, 404, 204, 204, 400, 404),
        "member-detail",
        "DELETE /api/v1/projects/{project_pk}/members/{id}/",
    ),
    Case(
        "documents list",
        "GET",
        "/api/v1/documents/",
        SIGNED_IN,
        "document-list",
        "GET /api/v1/documents/",
        check=lists_nothing_of_the_project,
    ),
    Case(
        "documents of a project",
        "GET",
        "/api/v1/documents/?project={project}",
        MEMBERS_READ,
        "document-list",
        "GET /api/v1/documents/",
    ),
    Case(
        "document paste",
        "POST",
        "/api/v1/documents/",
        EDITORS_WRITE,
        "document-list",
        "POST /api/v1/documents/",
        lambda w, r: {"project": str(w.project.pk), "title": "Pasted", "text": "Some text."},
    ),
    Case(
        "document upload",
        "POST",
        "/api/v1/documents/",
        EDITORS_WRITE,
        "document-list",
        "POST /api/v1/documents/",
        lambda w, r: {
            "project": str(w.project.pk),
            "file": SimpleUploadedFile("notes.md", b"# Notes\n\nHello.", content_type="text/markdown"),
        },
        multipart=True,
    ),
    Case("document read", "GET", D + "/", MEMBERS_READ, "document-detail", "GET /api/v1/documents/{id}/"),
    Case(
        "document rename",
        "PATCH",
        D + "/",
        expect(401, 404, 403, 200, 200, 404),
        "document-detail",
        "PATCH /api/v1/documents/{id}/",
        {"title": "Renamed notes"},
    ),
    Case(
        "document delete",
        "DELETE",
        D + "/",
        expect(401, 404, 403, 204, 204, 404),
        "document-detail",
        "DELETE /api/v1/documents/{id}/",
    ),
    Case(
        "document reindex",
        "POST",
        D + "/reindex/",
        expect(401, 404, 403, 202, 202, 404),
        "document-reindex",
        "POST /api/v1/documents/{id}/reindex/",
    ),
    Case(
        "document download",
        "GET",
        D + "/download/",
        MEMBERS_READ,
        "document-download",
        "GET /api/v1/documents/{id}/download/",
    ),
    Case(
        "document chunks",
        "GET",
        D + "/chunks/",
        MEMBERS_READ,
        "document-chunks",
        "GET /api/v1/documents/{id}/chunks/",
    ),
    Case(
        "imports of a project",
        "GET",
        P + "/imports/",
        MEMBERS_READ,
        "project-import-list",
        "GET /api/v1/projects/{project_pk}/imports/",
    ),
    Case(
        "search",
        "GET",
        P + "/search/?q=launch&mode=lexical",
        MEMBERS_READ,
        "project-search",
        "GET /api/v1/projects/{project_pk}/search/",
    ),
    Case(
        "search all projects",
        "GET",
        "/api/v1/search/?q=launch&mode=lexical",
        SIGNED_IN,
        "search-all",
        "GET /api/v1/search/",
        check=finds_the_project_for_members_only,
    ),
    Case(
        "runs list",
        "GET",
        "/api/v1/runs/",
        SIGNED_IN,
        "run-list",
        "GET /api/v1/runs/",
        check=lists_nothing_of_the_project,
    ),
    Case(
        "runs of a project",
        "GET",
        "/api/v1/runs/?project={project}",
        MEMBERS_READ,
        "run-list",
        "GET /api/v1/runs/",
        check=lists_the_private_threads_run_to_its_starter_only,
    ),
    Case(
        "ask",
        "POST",
        "/api/v1/runs/",
        expect(401, 404, 201, 201, 201, 404),
        "run-list",
        "POST /api/v1/runs/",
        lambda w, r: {"project": str(w.project.pk), "kind": "ask", "question": "When?"},
    ),
    # Kept on the document for everyone: editors only (a viewer overwrote its tags for all).
    Case(
        "extract from a document",
        "POST",
        "/api/v1/runs/",
        EDITORS_WRITE,
        "run-list",
        "POST /api/v1/runs/",
        lambda w, r: {"project": str(w.project.pk), "kind": "extract", "document": str(w.document.pk)},
    ),
    Case(
        "summarize a document",
        "POST",
        "/api/v1/runs/",
        EDITORS_WRITE,
        "run-list",
        "POST /api/v1/runs/",
        lambda w, r: {"project": str(w.project.pk), "kind": "summarize", "document": str(w.document.pk)},
    ),
    Case(
        "summarize the project",
        "POST",
        "/api/v1/runs/",
        expect(401, 404, 201, 201, 201, 404),
        "run-list",
        "POST /api/v1/runs/",
        lambda w, r: {"project": str(w.project.pk), "kind": "summarize"},
    ),
    # world.run is a turn of the owner's private thread.
    Case("run read", "GET", "/api/v1/runs/{run}/", STARTER_ONLY, "run-detail", "GET /api/v1/runs/{id}/"),
    Case(
        "run events",
        "GET",
        "/api/v1/runs/{run}/events/",
        STARTER_ONLY,
        "run-events",
        "GET /api/v1/runs/{id}/events/",
    ),
    Case(
        "shared thread's run read",
        "GET",
        "/api/v1/runs/{run}/",
        MEMBERS_READ,
        "run-detail",
        "GET /api/v1/runs/{id}/",
        setup=share_the_thread,
    ),
    Case(
        "shared thread's run events",
        "GET",
        "/api/v1/runs/{run}/events/",
        MEMBERS_READ,
        "run-events",
        "GET /api/v1/runs/{id}/events/",
        setup=share_the_thread,
    ),
    Case(
        "threads list",
        "GET",
        "/api/v1/threads/",
        SIGNED_IN,
        "thread-list",
        "GET /api/v1/threads/",
        check=lists_nothing_of_the_project,
    ),
    Case(
        "threads of a project",
        "GET",
        "/api/v1/threads/?project={project}",
        MEMBERS_READ,
        "thread-list",
        "GET /api/v1/threads/",
        check=lists_the_private_thread_to_its_starter_only,
    ),
    Case("thread read", "GET", T + "/", STARTER_ONLY, "thread-detail", "GET /api/v1/threads/{id}/"),
    Case(
        "shared thread read",
        "GET",
        T + "/",
        MEMBERS_READ,
        "thread-detail",
        "GET /api/v1/threads/{id}/",
        setup=share_the_thread,
    ),
    Case(
        "thread rename",
        "PATCH",
        T + "/",
        STARTER_ONLY,
        "thread-detail",
        "PATCH /api/v1/threads/{id}/",
        {"title": "Renamed"},
        check=renames_the_thread,
    ),
    Case(
        "thread share",
        "PATCH",
        T + "/",
        STARTER_ONLY,
        "thread-detail",
        "PATCH /api/v1/threads/{id}/",
        {"shared": True},
        check=shares_the_thread,
    ),
    # The editor's private thread: the project's owner reads, renames and deletes it, but
    # only its starter shares it; the viewer does not see it.
    Case(
        "editor's thread read",
        "GET",
        T + "/",
        expect(401, 404, 404, 200, 200, 404),
        "thread-detail",
        "GET /api/v1/threads/{id}/",
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "editor's thread rename",
        "PATCH",
        T + "/",
        expect(401, 404, 404, 200, 200, 404),
        "thread-detail",
        "PATCH /api/v1/threads/{id}/",
        {"title": "Renamed"},
        check=renames_the_thread,
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "editor's thread share",
        "PATCH",
        T + "/",
        expect(401, 404, 404, 200, 403, 404),
        "thread-detail",
        "PATCH /api/v1/threads/{id}/",
        {"shared": True},
        check=shares_the_thread,
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "editor's thread delete",
        "DELETE",
        T + "/",
        expect(401, 404, 404, 204, 204, 404),
        "thread-detail",
        "DELETE /api/v1/threads/{id}/",
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "editor's thread's run read",
        "GET",
        "/api/v1/runs/{run}/",
        expect(401, 404, 404, 200, 200, 404),
        "run-detail",
        "GET /api/v1/runs/{id}/",
        setup=hand_the_thread_to_the_editor,
    ),
    # Members who see a shared thread may not rename it, make it private or delete it.
    Case(
        "shared thread rename",
        "PATCH",
        T + "/",
        SHARED_STARTER_WRITE,
        "thread-detail",
        "PATCH /api/v1/threads/{id}/",
        {"title": "Renamed"},
        setup=share_the_thread,
    ),
    Case(
        "shared thread made private",
        "PATCH",
        T + "/",
        SHARED_STARTER_WRITE,
        "thread-detail",
        "PATCH /api/v1/threads/{id}/",
        {"shared": False},
        setup=share_the_thread,
    ),
    Case(
        "thread put",
        "PUT",
        T + "/",
        expect(401, 405, 405, 405, 405, 405),
        "thread-detail",
        "",
        {"title": "R"},
    ),
    Case(
        "thread delete",
        "DELETE",
        T + "/",
        expect(401, 404, 404, 404, 204, 404),
        "thread-detail",
        "DELETE /api/v1/threads/{id}/",
    ),
    Case(
        "shared thread delete",
        "DELETE",
        T + "/",
        expect(401, 404, 403, 403, 204, 404),
        "thread-detail",
        "DELETE /api/v1/threads/{id}/",
        setup=share_the_thread,
    ),
    Case(
        "ask in a thread",
        "POST",
        "/api/v1/runs/",
        expect(401, 404, 404, 404, 201, 404),
        "run-list",
        "POST /api/v1/runs/",
        lambda w, r: {
            "project": str(w.project.pk),
            "kind": "ask",
            "question": "And?",
            "thread": str(w.run.thread_id),
        },
    ),
    Case(
        "ask in a shared thread",
        "POST",
        "/api/v1/runs/",
        expect(401, 404, 201, 201, 201, 404),
        "run-list",
        "POST /api/v1/runs/",
        lambda w, r: {
            "project": str(w.project.pk),
            "kind": "ask",
            "question": "And?",
            "thread": str(w.run.thread_id),
        },
        setup=share_the_thread,
    ),
    Case(
        "rate an answer",
        "POST",
        F,
        RATE_STARTER_ONLY,
        "run-feedback",
        "POST /api/v1/runs/{id}/feedback/",
        {"rating": "up"},
        check=rated_by_the_caller,
    ),
    Case(
        "rate a shared thread's answer",
        "POST",
        F,
        RATE_MEMBERS,
        "run-feedback",
        "POST /api/v1/runs/{id}/feedback/",
        {"rating": "up", "note": "Clear."},
        setup=share_the_thread,
    ),
    Case(
        "change a rating",
        "POST",
        F,
        expect(401, 404, 200, 200, 200, 404),
        "run-feedback",
        "POST /api/v1/runs/{id}/feedback/",
        {"rating": "up"},
        check=rated_by_the_caller,
        setup=share_and_rate_it_as_everyone,
    ),
    # Who may not read the answer learns nothing from a 400.
    Case(
        "rate a shared thread's answer sideways",
        "POST",
        F,
        expect(401, 404, 400, 400, 400, 404),
        "run-feedback",
        "POST /api/v1/runs/{id}/feedback/",
        {"rating": "sideways"},
        setup=share_the_thread,
    ),
    Case(
        "rate the editor's thread's answer",
        "POST",
        F,
        expect(401, 404, 404, 201, 201, 404),
        "run-feedback",
        "POST /api/v1/runs/{id}/feedback/",
        {"rating": "up"},
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "my rating",
        "GET",
        F,
        expect(401, 404, 404, 404, 200, 404),
        "run-feedback",
        "GET /api/v1/runs/{id}/feedback/",
        setup=rate_it_as_everyone,
    ),
    Case(
        "my rating of a shared thread's answer",
        "GET",
        F,
        MEMBERS_READ,
        "run-feedback",
        "GET /api/v1/runs/{id}/feedback/",
        setup=share_and_rate_it_as_everyone,
    ),
    Case(
        "my rating when I gave none",
        "GET",
        F,
        expect(401, 404, 404, 404, 404, 404),
        "run-feedback",
        "GET /api/v1/runs/{id}/feedback/",
        setup=share_the_thread,
    ),
    Case(
        "remove my rating",
        "DELETE",
        F,
        expect(401, 404, 404, 404, 204, 404),
        "run-feedback",
        "DELETE /api/v1/runs/{id}/feedback/",
        check=unrated_by_the_caller,
        setup=rate_it_as_everyone,
    ),
    Case(
        "remove my rating of a shared thread's answer",
        "DELETE",
        F,
        expect(401, 404, 204, 204, 204, 404),
        "run-feedback",
        "DELETE /api/v1/runs/{id}/feedback/",
        setup=share_and_rate_it_as_everyone,
    ),
    Case(
        "rated answers",
        "GET",
        P + "/feedback/",
        OWNER_ONLY,
        "project-feedback-list",
        "GET /api/v1/projects/{project_pk}/feedback/",
        setup=share_and_rate_it_as_everyone,
    ),
    Case(
        "rated answers, the unhelpful ones",
        "GET",
        P + "/feedback/?rating=down",
        OWNER_ONLY,
        "project-feedback-list",
        "GET /api/v1/projects/{project_pk}/feedback/",
        setup=rate_it_as_everyone,
    ),
    Case(
        "audit log",
        "GET",
        P + "/audit/",
        OWNER_ONLY,
        "project-audit-list",
        "GET /api/v1/projects/{project_pk}/audit/",
        setup=record_audit_events,
        check=lists_only_the_projects_events,
    ),
    Case(
        "audit log, one action",
        "GET",
        P + "/audit/?action=member.removed",
        OWNER_ONLY,
        "project-audit-list",
        "GET /api/v1/projects/{project_pk}/audit/",
        setup=record_audit_events,
        check=lists_only_the_projects_events,
    ),
    # Auth endpoints take no session or token: the same for everyone.
    Case(
        "register",
        "POST",
        "/api/v1/auth/register",
        everyone(202),
        "auth-register",
        "POST /api/v1/auth/register",
        {"email": "fresh@example.com", "password": "a-long-pass-phrase"},
    ),
    Case(
        "token",
        "POST",
        "/api/v1/auth/token",
        everyone(200),
        "token-obtain",
        "POST /api/v1/auth/token",
        lambda w, r: {"email": set_password(w).email, "password": "a-long-pass-phrase"},
    ),
    Case(
        "token refresh",
        "POST",
        "/api/v1/auth/token/refresh",
        everyone(200),
        "token-refresh",
        "POST /api/v1/auth/token/refresh",
        lambda w, r: {"refresh": str(RefreshToken.for_user(w.users["newcomer"]))},
    ),
    Case(
        "token verify",
        "POST",
        "/api/v1/auth/token/verify",
        everyone(200),
        "token-verify",
        "POST /api/v1/auth/token/verify",
        lambda w, r: {"token": str(AccessToken.for_user(w.users["newcomer"]))},
    ),
    Case(
        "logout",
        "POST",
        "/api/v1/auth/logout",
        everyone(200),
        "auth-logout",
        "POST /api/v1/auth/logout",
        lambda w, r: {"refresh": str(RefreshToken.for_user(w.users["newcomer"]))},
    ),
    Case(
        "confirm an address",
        "POST",
        "/api/v1/auth/email/verify",
        everyone(400),
        "auth-email-verify",
        "POST /api/v1/auth/email/verify",
        {"token": "not-a-token"},
    ),
    Case(
        "resend the confirmation",
        "POST",
        "/api/v1/auth/email/resend",
        everyone(202),
        "auth-email-resend",
        "POST /api/v1/auth/email/resend",
        {"email": "someone@example.com"},
    ),
    Case(
        "keys list",
        "GET",
        "/api/v1/keys/",
        SIGNED_IN,
        "key-list",
        "GET /api/v1/keys/",
        setup=lambda w: give_the_owner_a_key(w),
        check=lambda w, r, response: lists_the_owners_key_to_the_owner_only(w, r, response),
    ),
    Case(
        "key create",
        "POST",
        "/api/v1/keys/",
        expect(401, 201, 201, 201, 201, 201),
        "key-list",
        "POST /api/v1/keys/",
        {"name": "CI", "scopes": ["read", "search"]},
    ),
    # Only the project's members may limit a key to it.
    Case(
        "key create limited to the project",
        "POST",
        "/api/v1/keys/",
        expect(401, 400, 201, 201, 201, 400),
        "key-list",
        "POST /api/v1/keys/",
        lambda w, r: {"name": "CI", "scopes": ["read"], "projects": [str(w.project.pk)]},
    ),
    Case(
        "revoke the owner's key",
        "DELETE",
        "/api/v1/keys/" + OWNERS_KEY + "/",
        expect(401, 404, 404, 404, 204, 404),
        "key-detail",
        "DELETE /api/v1/keys/{id}/",
        setup=lambda w: give_the_owner_a_key(w),
    ),
    Case("schema", "GET", "/api/schema/", everyone(200), "schema"),
    Case("swagger", "GET", "/api/docs/", everyone(200), "swagger-ui"),
    Case("redoc", "GET", "/api/redoc/", everyone(200), "redoc"),
    Case("redoc bundle", "GET", "/api/redoc/redoc.standalone.js", everyone(200), "redoc-bundle"),
]

PP = "/projects/{project}"
PAGE_CASES = [
    Case("project list", "GET", "/", expect(302, 200, 200, 200, 200, 200), "projects:list"),
    Case(
        "new project form", "GET", "/projects/new/", expect(302, 200, 200, 200, 200, 200), "projects:create"
    ),
    Case(
        "new project",
        "POST",
        "/projects/new/",
        everyone(302),
        "projects:create",
        body={"title": "New", "description": ""},
    ),
    Case("project page", "GET", PP + "/", PAGE_MEMBERS_READ, "projects:detail"),
    Case("edit form", "GET", PP + "/edit/", expect(302, 404, 403, 403, 200, 404), "projects:edit"),
    Case("edit", "POST", PP + "/edit/", PAGE_OWNER_POST, "projects:edit", body={"title": "Renamed"}),
    Case("archive", "POST", PP + "/archive/", PAGE_OWNER_POST, "projects:archive"),
    Case("delete form", "GET", PP + "/delete/", expect(302, 404, 403, 403, 200, 404), "projects:delete"),
    Case("delete", "POST", PP + "/delete/", PAGE_OWNER_POST, "projects:delete"),
    Case("members page", "GET", PP + "/members/", PAGE_MEMBERS_READ, "projects:members"),
    Case(
        "add member",
        "POST",
        PP + "/members/",
        PAGE_OWNER_POST,
        "projects:members",
        body=lambda w, r: {"email": w.users["newcomer"].email, "role": "viewer"},
    ),
    Case(
        "revoke an invitation",
        "POST",
        PP + "/invitations/{invitation}/revoke/",
        PAGE_OWNER_POST,
        "projects:invitation_revoke",
    ),
    Case(
        "invitations page",
        "GET",
        "/invitations/",
        expect(302, 200, 200, 200, 200, 200),
        "projects:invitations",
    ),
    Case(
        "accept someone else's invitation page",
        "POST",
        "/invitations/{invitation}/accept/",
        expect(302, 404, 404, 404, 404, 404),
        "projects:invitation_accept",
    ),
    Case(
        "decline someone else's invitation page",
        "POST",
        "/invitations/{invitation}/decline/",
        expect(302, 404, 404, 404, 404, 404),
        "projects:invitation_decline",
    ),
    Case(
        "webhooks page",
        "GET",
        PP + "/webhooks/",
        expect(302, 404, 403, 403, 200, 404),
        "projects:webhooks",
        setup=make_a_webhook,
    ),
    Case(
        "add a webhook page",
        "POST",
        PP + "/webhooks/",
        PAGE_OWNER_POST,
        "projects:webhooks",
        body={"url": PUBLIC_HOOK, "events": ["document.ready"], "description": ""},
    ),
    Case(
        "webhook page",
        "GET",
        PP + "/webhooks/" + WEBHOOK + "/",
        expect(302, 404, 403, 403, 200, 404),
        "projects:webhook",
        setup=make_a_webhook,
    ),
    Case(
        "webhook enable or disable",
        "POST",
        PP + "/webhooks/" + WEBHOOK + "/toggle/",
        PAGE_OWNER_POST,
        "projects:webhook_toggle",
        setup=make_a_webhook,
    ),
    Case(
        "webhook new secret",
        "POST",
        PP + "/webhooks/" + WEBHOOK + "/rotate/",
        PAGE_OWNER_POST,
        "projects:webhook_rotate",
        setup=make_a_webhook,
    ),
    Case(
        "webhook delete page",
        "POST",
        PP + "/webhooks/" + WEBHOOK + "/delete/",
        PAGE_OWNER_POST,
        "projects:webhook_delete",
        setup=make_a_webhook,
    ),
    Case(
        "webhook test event page",
        "POST",
        PP + "/webhooks/" + WEBHOOK + "/test/",
        PAGE_OWNER_POST,
        "projects:webhook_test",
        setup=make_a_webhook,
    ),
    Case(
        "webhook resend page",
        "POST",
        PP + "/webhooks/" + WEBHOOK + "/deliveries/" + DELIVERY + "/resend/",
        PAGE_OWNER_POST,
        "projects:webhook_resend",
        setup=make_a_webhook,
    ),
    Case(
        "change role",
        "POST",
        PP + "/members/{bystander_member}/role/",
        PAGE_OWNER_POST,
        "projects:member_role",
        body=lambda w, r: {f"m{w.memberships['bystander'].pk}-role": "editor"},
    ),
    Case(
        "remove member",
        "POST",
        PP + "/members/{bystander_member}/remove/",
        PAGE_OWNER_POST,
        "projects:member_remove",
    ),
    Case(
        "leave project",
        "POST",
        PP + "/members/{my_member}/remove/",
        expect(302, 404, 302, 302, 302, 404),
        "projects:member_remove",
    ),
    Case(
        "add document",
        "POST",
        PP + "/documents/",
        PAGE_EDITOR_POST,
        "projects:upload",
        body={"title": "Pasted", "text": "Some text."},
    ),
    Case("search page", "GET", PP + "/search/?q=launch&mode=lexical", PAGE_MEMBERS_READ, "projects:search"),
    Case(
        "search all page",
        "GET",
        "/search/?q=launch&mode=lexical",
        expect(302, 200, 200, 200, 200, 200),
        "search",
    ),
    Case(
        "documents state",
        "GET",
        PP + "/documents.json?id={document}",
        PAGE_MEMBERS_READ,
        "projects:documents_status",
    ),
    Case("import panel", "GET", PP + "/imports/", PAGE_MEMBERS_READ, "projects:imports"),
    Case("document page", "GET", "/documents/{document}/", PAGE_MEMBERS_READ, "documents:detail"),
    Case("document state", "GET", "/documents/{document}/status.json", PAGE_MEMBERS_READ, "documents:status"),
    # The world's document is plain text: the viewer sends members on to its text view.
    Case(
        "PDF viewer",
        "GET",
        "/documents/{document}/view/",
        expect(302, 404, 302, 302, 302, 404),
        "documents:view",
    ),
    Case("document file", "GET", "/documents/{document}/file/", PAGE_MEMBERS_READ, "documents:file"),
    Case("reindex", "POST", "/documents/{document}/reindex/", PAGE_EDITOR_POST, "documents:reindex"),
    Case(
        "rename document",
        "POST",
        "/documents/{document}/rename/",
        PAGE_EDITOR_POST,
        "documents:rename",
        body={"title": "Renamed notes"},
    ),
    Case("delete document", "POST", "/documents/{document}/delete/", PAGE_EDITOR_POST, "documents:delete"),
    Case(
        "ask from a page",
        "POST",
        "/runs/new/",
        expect(302, 404, 302, 302, 302, 404),
        "agents:create",
        body=lambda w, r: {"project": str(w.project.pk), "kind": "ask", "question": "When?"},
    ),
    Case(
        "extract from a page",
        "POST",
        "/runs/new/",
        PAGE_EDITOR_POST,
        "agents:create",
        body=lambda w, r: {"project": str(w.project.pk), "kind": "extract", "document": str(w.document.pk)},
    ),
    Case(
        "summarize a document from a page",
        "POST",
        "/runs/new/",
        PAGE_EDITOR_POST,
        "agents:create",
        body=lambda w, r: {"project": str(w.project.pk), "kind": "summarize", "document": str(w.document.pk)},
    ),
    # world.run is a turn of the owner's private thread; "shared ..." cases share it first.
    Case("run page", "GET", "/runs/{run}/", PAGE_STARTER_ONLY, "agents:detail"),
    Case("run state", "GET", "/runs/{run}/status.json", PAGE_STARTER_ONLY, "agents:status"),
    Case("run events page", "GET", "/runs/{run}/events", PAGE_STARTER_ONLY, "agents:events"),
    Case("run turn", "GET", "/runs/{run}/turn/", PAGE_STARTER_ONLY, "agents:turn"),
    Case("thread page", "GET", PT + "/", PAGE_STARTER_ONLY, "agents:thread"),
    Case(
        "shared thread's run page",
        "GET",
        "/runs/{run}/",
        PAGE_MEMBERS_READ,
        "agents:detail",
        setup=share_the_thread,
    ),
    Case(
        "shared thread's run events page",
        "GET",
        "/runs/{run}/events",
        PAGE_MEMBERS_READ,
        "agents:events",
        setup=share_the_thread,
    ),
    Case(
        "shared thread's run turn",
        "GET",
        "/runs/{run}/turn/",
        PAGE_MEMBERS_READ,
        "agents:turn",
        setup=share_the_thread,
    ),
    Case("shared thread page", "GET", PT + "/", PAGE_MEMBERS_READ, "agents:thread", setup=share_the_thread),
    Case(
        "rename thread",
        "POST",
        PT + "/rename/",
        PAGE_STARTER_POST,
        "agents:thread_rename",
        body={"title": "R"},
    ),
    Case(
        "rename shared thread",
        "POST",
        PT + "/rename/",
        PAGE_SHARED_STARTER_POST,
        "agents:thread_rename",
        body={"title": "R"},
        setup=share_the_thread,
    ),
    Case(
        "share thread",
        "POST",
        PT + "/share/",
        PAGE_STARTER_POST,
        "agents:thread_share",
        body={"shared": "true"},
    ),
    Case(
        "make shared thread private",
        "POST",
        PT + "/share/",
        PAGE_SHARED_STARTER_POST,
        "agents:thread_share",
        body={"shared": "false"},
        setup=share_the_thread,
    ),
    Case("delete thread", "POST", PT + "/delete/", PAGE_STARTER_POST, "agents:thread_delete"),
    Case(
        "delete shared thread",
        "POST",
        PT + "/delete/",
        PAGE_SHARED_STARTER_POST,
        "agents:thread_delete",
        setup=share_the_thread,
    ),
    # The editor's private thread on the pages: its starter and the project's owner.
    Case(
        "editor's thread page",
        "GET",
        PT + "/",
        expect(302, 404, 404, 200, 200, 404),
        "agents:thread",
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "rename editor's thread",
        "POST",
        PT + "/rename/",
        expect(302, 404, 404, 302, 302, 404),
        "agents:thread_rename",
        body={"title": "Renamed"},
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "share editor's thread",
        "POST",
        PT + "/share/",
        expect(302, 404, 404, 302, 403, 404),
        "agents:thread_share",
        body={"shared": "true"},
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "delete editor's thread",
        "POST",
        PT + "/delete/",
        expect(302, 404, 404, 302, 302, 404),
        "agents:thread_delete",
        setup=hand_the_thread_to_the_editor,
    ),
    # Rating answers from the pages, and the owners' page of rated answers.
    Case(
        "rate an answer from a page",
        "POST",
        PF,
        PAGE_STARTER_POST,
        "agents:feedback",
        body={"rating": "up"},
    ),
    Case(
        "rate a shared thread's answer from a page",
        "POST",
        PF,
        PAGE_MEMBERS_POST,
        "agents:feedback",
        body={"rating": "down", "note": "Too short."},
        setup=share_the_thread,
    ),
    Case(
        "rate the editor's thread's answer from a page",
        "POST",
        PF,
        expect(302, 404, 404, 302, 302, 404),
        "agents:feedback",
        body={"rating": "up"},
        setup=hand_the_thread_to_the_editor,
    ),
    Case(
        "remove a rating from a page",
        "POST",
        PF + "remove/",
        PAGE_STARTER_POST,
        "agents:feedback_remove",
        setup=rate_it_as_everyone,
    ),
    Case(
        "remove a rating of a shared thread's answer from a page",
        "POST",
        PF + "remove/",
        PAGE_MEMBERS_POST,
        "agents:feedback_remove",
        setup=share_and_rate_it_as_everyone,
    ),
    Case(
        "rated answers page",
        "GET",
        PP + "/feedback/",
        expect(302, 404, 403, 403, 200, 404),
        "projects:feedback",
        setup=share_and_rate_it_as_everyone,
    ),
    Case(
        "rated answers page, the helpful ones",
        "GET",
        PP + "/feedback/?rating=up",
        expect(302, 404, 403, 403, 200, 404),
        "projects:feedback",
    ),
    Case(
        "audit log page",
        "GET",
        PP + "/audit/",
        expect(302, 404, 403, 403, 200, 404),
        "projects:audit",
        setup=record_audit_events,
        check=shows_only_the_projects_events,
    ),
    Case(
        "audit log page, one action",
        "GET",
        PP + "/audit/?action=member.removed",
        expect(302, 404, 403, 403, 200, 404),
        "projects:audit",
        setup=record_audit_events,
        check=shows_only_the_projects_events,
    ),
    Case("login page", "GET", LOGIN, expect(200, 302, 302, 302, 302, 302), "accounts:login"),
    Case("signup page", "GET", "/accounts/signup/", expect(200, 302, 302, 302, 302, 302), "accounts:signup"),
    Case("log out", "POST", "/accounts/logout/", everyone(302), "accounts:logout"),
    Case(
        "password page",
        "GET",
        "/accounts/password/",
        expect(302, 200, 200, 200, 200, 200),
        "accounts:password_change",
    ),
    Case("confirm link", "GET", "/accounts/verify/not-a-token/", everyone(400), "accounts:verify_email"),
    Case("resend form", "GET", "/accounts/verify/resend/", everyone(200), "accounts:verify_resend"),
    Case("reset form", "GET", "/accounts/password-reset/", everyone(200), "accounts:password_reset"),
    Case(
        "reset request",
        "POST",
        "/accounts/password-reset/",
        everyone(302),
        "accounts:password_reset",
        body={"email": "owner@example.com"},
    ),
    Case(
        "reset sent", "GET", "/accounts/password-reset/done/", everyone(200), "accounts:password_reset_done"
    ),
    Case(
        "reset link",
        "GET",
        "/accounts/reset/MQ/not-a-token/",
        everyone(200),
        "accounts:password_reset_confirm",
    ),
    Case("reset done", "GET", "/accounts/reset/done/", everyone(200), "accounts:password_reset_complete"),
    # Single sign-on (accounts/oidc.py): 404 until a provider is configured, as here;
    # accounts/tests/test_oidc.py runs them against a provider on loopback.
    Case("sso start", "GET", "/oidc/authenticate/", everyone(404), "oidc_authentication_init"),
    Case(
        "sso callback", "GET", "/oidc/callback/?code=a&state=b", everyone(404), "oidc_authentication_callback"
    ),
    Case("sso log out", "POST", "/oidc/logout/", everyone(302), "oidc_logout"),
    Case("API keys page", "GET", "/accounts/keys/", expect(302, 200, 200, 200, 200, 200), "accounts:keys"),
    Case(
        "create a key from the page",
        "POST",
        "/accounts/keys/",
        expect(302, 200, 200, 200, 200, 200),
        "accounts:keys",
        body={"name": "CI", "scopes": ["read"]},
    ),
    Case(
        "create a key for the project from the page",
        "POST",
        "/accounts/keys/",
        expect(302, 400, 200, 200, 200, 400),
        "accounts:keys",
        body=lambda w, r: {"name": "CI", "scopes": ["read"], "projects": [str(w.project.pk)]},
    ),
    Case(
        "revoke the owner's key from the page",
        "POST",
        "/accounts/keys/" + OWNERS_KEY + "/revoke/",
        expect(302, 404, 404, 404, 302, 404),
        "accounts:key_revoke",
        setup=give_the_owner_a_key,
    ),
    Case("liveness", "GET", "/healthz", everyone(200), "healthz"),
    Case("api index", "GET", "/api/", everyone(200), "api-index"),
    Case("api v1 root", "GET", "/api/v1/", SIGNED_IN, "api-root"),
    Case("readiness", "GET", "/readyz", everyone(200), "readyz"),
    # Nobody's session or API token opens it: a scraper's DOCENT_METRICS_TOKEN or an allowed
    # network does (core/tests/test_metrics.py); unconfigured, as here, it does not exist.
    Case("metrics", "GET", "/metrics", everyone(404), "metrics"),
    Case("admin index", "GET", "/admin/", expect(302, 302, 302, 302, 302, 200), "admin:index"),
]
for _case in PAGE_CASES:
    _case.page = True

CASES = API_CASES + PAGE_CASES


def stored_state() -> dict[str, list[Any]]:
    """What a refused request must leave untouched."""
    return {
        "projects": list(Project.objects.order_by("pk").values_list("pk", "title", "description", "status")),
        "documents": list(Document.objects.order_by("pk").values_list("pk", "title", "status", "attempts")),
        "memberships": list(
            Membership.objects.order_by("pk").values_list("pk", "project_id", "user_id", "role")
        ),
        "invitations": list(Invitation.objects.order_by("pk").values_list("pk", "status")),
        "runs": list(AgentRun.objects.order_by("pk").values_list("pk", "status")),
        "threads": list(Thread.objects.order_by("pk").values_list("pk", "title", "shared", "turn_count")),
        "ratings": list(RunFeedback.objects.order_by("pk").values_list("pk", "rating", "note")),
        "webhooks": list(
            WebhookEndpoint.objects.order_by("pk").values_list("pk", "url", "events", "enabled", "secret")
        ),
        "webhook deliveries": list(WebhookDelivery.objects.order_by("pk").values_list("pk", "status")),
        "keys": list(ApiKey.objects.order_by("pk").values_list("pk", "revoked_at", "scopes", "project_ids")),
    }


def _fill(text: str, world: World, role: str) -> str:
    return text.format(**world.ids(role))


def send(world: World, role: str, case: Case, client: Any = None) -> Any:
    path = _fill(case.path, world, role)
    body = case.body(world, role) if callable(case.body) else case.body
    method = case.method.lower()
    if case.page:
        client = world.browser(role)
        return (
            getattr(client, method)(path, body or {}) if body is not None else getattr(client, method)(path)
        )
    client = client or world.api(role)
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="multipart" if case.multipart else "json")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_caller_gets_exactly_the_expected_status(world: World, case: Case, role: str) -> None:
    if case.setup is not None:
        case.setup(world)
    refused = case.expected[role] >= 400
    before = stored_state() if refused and case.method != "GET" else None
    response = send(world, role, case)
    assert response.status_code == case.expected[role], (case.name, role, response.content[:300])
    if before is not None:
        assert stored_state() == before, (case.name, role)
    if role == "anonymous" and case.page and response.status_code == 302 and case.expected["outsider"] != 302:
        assert response["Location"].startswith(LOGIN)
    if role in {"anonymous", "outsider", "staff"}:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode(errors="replace")
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, (case.name, role, leaked)
    if response.status_code == 404 and not case.page:
        assert response.json() == {"detail": "Not found."}
    if case.check is not None and response.status_code == 200:
        case.check(world, role, response)


# --- personal API keys on every endpoint ------------------------------------------------
#
# The scope each API operation needs from a key (accounts/scopes.py implements it): the
# first rule whose method and path match. None: never with a key (403 key_not_allowed).
KEY_SCOPE_RULES: list[tuple[str, str, str | None]] = [
    ("PATCH", r"/api/v1/users/me/", None),  # a key never changes the account
    ("POST|DELETE", r"/api/v1/keys/", None),  # nor makes or revokes keys
    ("GET", r"/api/v1/(projects/\{project_pk\}/)?search/", "search"),
    ("POST", r"/api/v1/runs/$", "ask"),
    ("PUT|PATCH|DELETE", r"/api/v1/projects/\{id\}/$", "admin:projects"),
    ("POST|PUT|PATCH|DELETE", r"/api/v1/projects/\{project_pk\}/(members|invitations)/", "admin:projects"),
    ("POST", r"/api/v1/invitations/\{id\}/(accept|decline)/", "admin:projects"),
    (".*", r"/api/v1/projects/\{project_pk\}/(audit|webhooks)/", "admin:projects"),
    ("GET|HEAD|OPTIONS", r".*", "read"),
    (".*", r".*", "write"),
]
# What a key limited to some projects may not do at all, whatever its scopes.
LIMITED_KEY_REFUSED = {"POST /api/v1/projects/", "POST /api/v1/invitations/{id}/accept/"}
# The endpoints that take a key: the API, less the sign-in endpoints (they authenticate no one).
KEY_CASES = [
    case
    for case in API_CASES
    if case.path.startswith("/api/v1/") and not case.path.startswith("/api/v1/auth/")
]


def key_scope(case: Case) -> str | None:
    method, _, path = (case.op or f"{case.method} {case.path}").partition(" ")
    for methods, pattern, scope in KEY_SCOPE_RULES:
        if re.fullmatch(methods, method) and re.match(pattern, path):
            return scope
    raise AssertionError(case)


def _key_role(case: Case) -> str:
    """The caller the key belongs to: one the endpoint lets in, where there is one."""
    allowed = [
        role for role in ("owner", "editor", "viewer", "staff", "outsider") if case.expected[role] < 400
    ]
    return allowed[0] if allowed else "owner"


def key_client(user: Any, scopes: Any, projects: Any = ()) -> APIClient:
    _key, raw = keys.key_create(user=user, name="matrix", scopes=scopes, projects=projects)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _refusal_code(response: Any) -> str:
    return str(response.json().get("code"))


@pytest.mark.parametrize("case", KEY_CASES, ids=str)
def test_a_key_with_every_scope_gets_what_its_owner_gets(world: World, case: Case) -> None:
    role, need = _key_role(case), key_scope(case)
    if case.setup is not None:
        case.setup(world)
    client = key_client(world.users[role], Scope.values)
    expected = case.expected[role] if need is not None else 403
    before = stored_state() if expected >= 400 and case.method != "GET" else None
    response = send(world, role, case, client)
    assert response.status_code == expected, (case.name, role, response.content[:300])
    if need is None:
        assert _refusal_code(response) == "key_not_allowed"
    if before is not None:
        assert stored_state() == before, case.name
    if case.check is not None and response.status_code == 200:
        case.check(world, role, response)


@pytest.mark.parametrize("case", [c for c in KEY_CASES if key_scope(c) is not None], ids=str)
def test_a_key_without_the_scope_an_endpoint_needs_gets_403_naming_it(world: World, case: Case) -> None:
    role, need = _key_role(case), key_scope(case)
    if case.setup is not None:
        case.setup(world)
    client = key_client(world.users[role], [scope for scope in Scope.values if scope != need])
    before = stored_state()
    response = send(world, role, case, client)
    assert response.status_code == 403, (case.name, role, response.content[:300])
    assert _refusal_code(response) == "scope_missing"
    assert f"`{need}`" in response.json()["detail"]
    assert stored_state() == before, case.name


@pytest.mark.parametrize("case", KEY_CASES, ids=str)
def test_a_key_limited_to_another_project_meets_this_one_as_an_outsider(world: World, case: Case) -> None:
    """The owner's key for their other project: the world's project is as foreign as to an outsider."""
    owner = world.users["owner"]
    elsewhere = Project.objects.create(title="Owner's other", created_by=owner)
    Membership.objects.create(project=elsewhere, user=owner, role="owner")
    if case.setup is not None:
        case.setup(world)
    client = key_client(owner, Scope.values, projects=[elsewhere.pk])
    refused = key_scope(case) is None or case.op in LIMITED_KEY_REFUSED
    expected = 403 if refused else case.expected["outsider"]
    before = stored_state() if expected >= 400 and case.method != "GET" else None
    response = send(world, "owner", case, client)
    assert response.status_code == expected, (case.name, response.content[:300])
    if refused:
        assert _refusal_code(response) == "key_not_allowed"
    if before is not None:
        assert stored_state() == before, case.name
    body = b"".join(response.streaming_content) if response.streaming else response.content
    leaked = [secret for secret in SECRETS if secret in body.decode(errors="replace")]
    assert not leaked, (case.name, leaked)
    # The key list is the owner's own (it names no project's content): no outsider's view of it.
    if case.check is not None and response.status_code == 200 and case.route != "key-list":
        case.check(world, "outsider", response)


def test_an_outsider_cannot_tell_a_foreign_project_from_a_missing_one(world: World) -> None:
    api = world.api("outsider")
    foreign = api.get(f"/api/v1/projects/{world.project.pk}/")
    missing = api.get("/api/v1/projects/00000000-0000-4000-8000-000000000000/")
    assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
    for verb in ("options",):
        a = getattr(api, verb)(f"/api/v1/projects/{world.project.pk}/")
        b = getattr(api, verb)("/api/v1/projects/00000000-0000-4000-8000-000000000000/")
        assert a.status_code == b.status_code
        assert a.content.replace(str(world.project.pk).encode(), b"X") == b.content.replace(
            b"00000000-0000-4000-8000-000000000000", b"X"
        )


def test_ids_are_random_uuids(world: World) -> None:
    for obj in (world.project, world.document, world.run, world.users["owner"]):
        assert re.fullmatch(r"[0-9a-f-]{36}", str(obj.pk))
        assert obj.pk.version == 4


# --- the admin -----------------------------------------------------------------


def _admin_urls(world: World) -> list[tuple[str, bool]]:
    """Every registered model's changelist, add and change page, with whether staff may open it."""
    staff = world.users["staff"]
    request = RequestFactory().get("/admin/")
    request.user = staff
    urls = []
    for model, model_admin in admin.site._registry.items():
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        urls.append((reverse(f"admin:{info}_changelist"), model_admin.has_view_permission(request)))
        urls.append((reverse(f"admin:{info}_add"), model_admin.has_add_permission(request)))
        obj = model._default_manager.first()
        if obj is not None:
            urls.append(
                (
                    reverse(f"admin:{info}_change", args=[obj.pk]),
                    model_admin.has_view_permission(request, obj),
                )
            )
    return urls


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_open_the_admin(world: World, role: str) -> None:
    client = world.browser(role)
    urls = _admin_urls(world)
    assert len(urls) >= 10
    for url, allowed in urls:
        response = client.get(url)
        if role == "staff":
            assert response.status_code == (200 if allowed else 403), url
        else:
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url
            assert not any(secret.encode() in response.content for secret in SECRETS)


# --- completeness ------------------------------------------------------------------


def _schema_operations(client: Client) -> set[str]:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    ops = set()
    for path, item in schema["paths"].items():
        normalised = re.sub(r"/\?$", "/", path)  # the router accepts a missing final slash
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                ops.add(f"{method.upper()} {normalised}")
    return ops


def test_every_schema_operation_is_in_the_matrix(client: Client) -> None:
    covered = {case.op for case in API_CASES if case.op}
    missing = _schema_operations(client) - covered
    assert not missing, f"add these API operations to the access matrix: {sorted(missing)}"


def _route_names(patterns: list[Any], namespace: str = "") -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # walked model by model in test_only_staff_open_the_admin
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= _route_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            names.add(f"{namespace}{pattern.name}" if pattern.name else f"<unnamed {pattern.pattern}>")
    return names


def test_every_named_url_is_in_the_matrix() -> None:
    covered = {case.route for case in CASES}
    missing = _route_names(get_resolver().url_patterns) - covered
    assert not missing, f"add these URLs to the access matrix: {sorted(missing)}"


# --- the MCP server --------------------------------------------------------------------
#
# /mcp is routed past Django's URLs (config/asgi.py), so neither guard above sees it. Each of its
# tools mirrors an API operation and needs that operation's key scope; agents/tests/test_mcp.py
# plays the callers against a real server (no key or a revoked one: 401; a missing scope or a
# project outside the key: a tool error).
MCP_TWINS = {
    "list_projects": "GET /api/v1/projects/",
    "search": "GET /api/v1/search/",
    "ask": "POST /api/v1/runs/",
    "get_passage": "GET /api/v1/documents/{id}/",
}


def test_every_mcp_tool_needs_the_scope_of_the_api_operation_it_mirrors() -> None:
    import asyncio

    from agents import mcp

    tools = {tool.name for tool in asyncio.run(mcp.server.list_tools())}
    assert tools == set(MCP_TWINS) == set(mcp.TOOL_SCOPES), "add the new tool to MCP_TWINS"
    covered = {case.op for case in API_CASES}
    for tool, op in MCP_TWINS.items():
        assert op in covered, op
        method, _, path = op.partition(" ")
        assert mcp.TOOL_SCOPES[tool] == key_scope(Case(tool, method, path, everyone(200), tool, op=op)), tool
