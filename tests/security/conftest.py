"""A small world for the security tests: one project seen by every kind of caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunStatus, Thread
from agents.tests.factories import AgentRunFactory
from documents.models import Document, DocumentStatus
from documents.services import document_create
from documents.tests.factories import ChunkFactory
from projects.models import Invitation, Membership, Project, Role
from projects.services import project_create
from projects.tests.factories import MembershipFactory

ROLES = ("anonymous", "outsider", "viewer", "editor", "owner", "staff")


@dataclass
class World:
    users: dict[str, Any]
    project: Project
    document: Document
    run: AgentRun
    memberships: dict[str, Membership]  # by role name, plus "bystander" (a second viewer)
    other_project: Project  # the outsider's own project
    invitation: Invitation  # an open invitation to the project for the newcomer's address

    def api(self, role: str) -> APIClient:
        client = APIClient()
        if role != "anonymous":
            client.force_authenticate(self.users[role])
        return client

    def browser(self, role: str) -> Client:
        client = Client()
        if role != "anonymous":
            client.force_login(self.users[role])
        return client

    def ids(self, role: str) -> dict[str, str]:
        """Values for the {placeholders} of the matrix's URLs and bodies."""
        mine = self.memberships.get(role, self.memberships["bystander"])
        return {
            "project": str(self.project.pk),
            "document": str(self.document.pk),
            "run": str(self.run.pk),
            "thread": str(self.run.thread_id),
            "viewer_member": str(self.memberships["viewer"].pk),
            "bystander_member": str(self.memberships["bystander"].pk),
            "my_member": str(mine.pk),
            "owner_user": str(self.users["owner"].pk),
            "newcomer_email": self.users["newcomer"].email,
            "invitation": str(self.invitation.pk),
        }


def build_world() -> World:
    # No passwords: hashing six Argon2 passwords per case would dominate the run time.
    def person(email: str, **extra: Any) -> Any:
        return UserFactory(email=email, password=None, **extra)

    users = {
        "owner": person("owner@example.com"),
        "editor": person("editor@example.com"),
        "viewer": person("viewer@example.com"),
        "bystander": person("bystander@example.com"),
        "outsider": person("outsider@example.com"),
        "staff": person("staff@example.com", is_staff=True, is_superuser=True),
        "newcomer": person("newcomer@example.com"),
    }
    project = project_create(user=users["owner"], title="Secret plans")
    memberships = {"owner": Membership.objects.get(project=project, user=users["owner"])}
    for role, name in ((Role.EDITOR, "editor"), (Role.VIEWER, "viewer"), (Role.VIEWER, "bystander")):
        memberships[name] = MembershipFactory(project=project, user=users[name], role=role)
    document = document_create(
        user=users["owner"],
        project=project,
        upload=SimpleUploadedFile("plans.txt", b"The launch is on Tuesday.", content_type="text/plain"),
    )
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.READY, text="The launch is on Tuesday."
    )
    document.refresh_from_db()
    # One searchable chunk (no encoder: a fixed unit vector), so searches have something to leak.
    ChunkFactory(document=document, text=document.text)
    run = AgentRunFactory(
        project=project, question="When is the launch?", status=RunStatus.SUCCEEDED, answer="On Tuesday."
    )
    run.thread = Thread.objects.create(
        project=project, created_by=users["owner"], title=run.question, turn_count=1
    )
    run.save(update_fields=["thread"])
    other_project = project_create(user=users["outsider"], title="Outsider's own")
    invitation = Invitation.objects.create(
        project=project,
        email=users["newcomer"].email,
        role=Role.EDITOR,
        invited_by=users["owner"],
        expires_at=timezone.now() + timedelta(days=14),
    )
    return World(users, project, document, run, memberships, other_project, invitation)


@pytest.fixture
def world(db: Any) -> World:
    return build_world()
