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
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from agents.models import AgentRun, Thread
from documents.models import Document
from projects.models import Invitation, Membership, Project
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


P = "/api/v1/projects/{project}"
D = "/api/v1/documents/{document}"

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
    Case("liveness", "GET", "/healthz", everyone(200), "healthz"),
    Case("api index", "GET", "/api/", everyone(200), "api-index"),
    Case("api v1 root", "GET", "/api/v1/", SIGNED_IN, "api-root"),
    Case("readiness", "GET", "/readyz", everyone(200), "readyz"),
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
    }


def _fill(text: str, world: World, role: str) -> str:
    return text.format(**world.ids(role))


def send(world: World, role: str, case: Case) -> Any:
    path = _fill(case.path, world, role)
    body = case.body(world, role) if callable(case.body) else case.body
    method = case.method.lower()
    if case.page:
        client = world.browser(role)
        return (
            getattr(client, method)(path, body or {}) if body is not None else getattr(client, method)(path)
        )
    client = world.api(role)
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
