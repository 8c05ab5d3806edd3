"""Invitation races with real parallel requests against a live server on PostgreSQL.

The same invitation accepted from several requests at once makes one
membership and answers every request with it; the same address invited by
several requests at once leaves one open invitation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from conftest import make_project
from projects.models import Invitation, InvitationStatus, Membership, Role
from tests.races import together, token
from tests.servers import call, web_server
from tests.worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 6


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = {
        "DATABASE_URL": database_url(),
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_LLM_PROVIDER": "offline",
        "CELERY_BROKER_URL": "memory://",
        "DOCENT_RATE_API_FREE": "100000",
        "DOCENT_RATE_INVITES": "100000",
        "DOCENT_EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    with web_server(env, tmp_path / "web.log", workers=2) as base:
        yield base


def test_one_invitation_accepted_at_once_from_many_requests_makes_one_membership(server: str) -> None:
    owner, friend = UserFactory(email="owner@example.com"), UserFactory(email="friend@example.com")
    project = make_project(owner)
    invitation = Invitation.objects.create(
        project=project,
        email=friend.email,
        role=Role.EDITOR,
        invited_by=owner,
        expires_at=timezone.now() + timedelta(days=1),
    )
    access = token(friend)
    url = f"{server}/api/v1/invitations/{invitation.pk}/accept/"
    results = together(*[lambda: call("POST", url, token=access, body={}) for _ in range(PARALLEL)])
    assert {status for status, _ in results} == {200}, results
    assert len({body["id"] for _, body in results}) == 1
    assert Membership.objects.filter(project=project, user=friend).count() == 1
    assert Invitation.objects.get(pk=invitation.pk).status == InvitationStatus.ACCEPTED


def test_one_address_invited_at_once_from_many_requests_has_one_open_invitation(server: str) -> None:
    owner = UserFactory(email="owner@example.com")
    project = make_project(owner)
    access = token(owner)
    url = f"{server}/api/v1/projects/{project.pk}/invitations/"
    body = {"email": "friend@example.com", "role": "viewer"}
    results = together(*[lambda: call("POST", url, token=access, body=body) for _ in range(PARALLEL)])
    statuses = [status for status, _ in results]
    assert all(status in {201, 400} for status in statuses), results
    assert statuses.count(201) >= 1
    open_ones = Invitation.objects.filter(project=project, status=InvitationStatus.PENDING)
    assert open_ones.count() == 1
