"""Invitation races with real parallel requests against a live server on PostgreSQL.

The same invitation accepted from several requests at once makes one
membership and answers every request with it; the same address invited by
several requests at once leaves one open invitation. SQLite serialises every
write, so the module needs PostgreSQL (and fails, rather than skips, under CI).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from conftest import make_project, services_required
from projects.models import Invitation, InvitationStatus, Membership, Role
from tests.servers import call, web_server
from tests.worker import database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PARALLEL = 6


@pytest.fixture(autouse=True)
def _on_postgresql() -> None:
    if connection.vendor != "postgresql":
        message = "the races need PostgreSQL (DATABASE_URL): SQLite serialises every write"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)


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


def access(user: Any) -> str:
    return str(RefreshToken.for_user(user).access_token)


def together(calls: list[Callable[[], tuple[int, Any, dict[str, str]]]]) -> list[tuple[int, Any]]:
    barrier = threading.Barrier(len(calls))

    def run(fn: Callable[[], tuple[int, Any, dict[str, str]]]) -> tuple[int, Any]:
        barrier.wait(timeout=30)
        status, body, _ = fn()
        return status, body

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


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
    token = access(friend)
    url = f"{server}/api/v1/invitations/{invitation.pk}/accept/"
    results = together([lambda: call("POST", url, token=token, body={}) for _ in range(PARALLEL)])
    assert {status for status, _ in results} == {200}, results
    assert len({body["id"] for _, body in results}) == 1
    assert Membership.objects.filter(project=project, user=friend).count() == 1
    assert Invitation.objects.get(pk=invitation.pk).status == InvitationStatus.ACCEPTED


def test_one_address_invited_at_once_from_many_requests_has_one_open_invitation(server: str) -> None:
    owner = UserFactory(email="owner@example.com")
    project = make_project(owner)
    token = access(owner)
    url = f"{server}/api/v1/projects/{project.pk}/invitations/"
    body = {"email": "friend@example.com", "role": "viewer"}
    results = together([lambda: call("POST", url, token=token, body=body) for _ in range(PARALLEL)])
    statuses = [status for status, _ in results]
    assert all(status in {201, 400} for status in statuses), results
    assert statuses.count(201) >= 1
    open_ones = Invitation.objects.filter(project=project, status=InvitationStatus.PENDING)
    assert open_ones.count() == 1
