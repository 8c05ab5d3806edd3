"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from projects.models import Project, Role
from projects.tests.factories import MembershipFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True, scope="session")
def _shared_with_child_processes() -> None:
    """Worker and web processes that tests start reuse this run's ONNX export of the encoder
    and its secret key."""
    from django.conf import settings

    os.environ.setdefault("DOCENT_MODEL_DIR", str(settings.MODEL_DIR))
    # Servers and workers that tests start in their own data folders accept this run's tokens.
    os.environ.setdefault("SECRET_KEY", settings.SECRET_KEY)


@pytest.fixture(autouse=True)
def _isolated_storage(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Uploads go to a temporary folder; tasks run inline unless a test starts a worker."""
    from config.celery import app

    settings.MEDIA_ROOT = str(tmp_path_factory.mktemp("media"))
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from django.core.cache import cache

    cache.clear()


def assert_same_as_drf(serializer: Any, instance: Any, fast: dict[str, Any]) -> None:
    """A directly built representation equals DRF's field-by-field one, keys in the same order."""
    from rest_framework import serializers

    reference = serializers.ModelSerializer.to_representation(serializer, instance)
    assert fast == dict(reference)
    assert list(fast) == list(reference)


def make_project(owner: Any, title: str = "Research", **members: Any) -> Project:
    from projects.services import project_create

    project = project_create(user=owner, title=title)
    for role, users in members.items():
        for user in users if isinstance(users, list) else [users]:
            MembershipFactory(project=project, user=user, role=Role(role))
    return project


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory(email="owner@example.com")


@pytest.fixture
def other_user(db: Any) -> Any:
    return UserFactory(email="outsider@example.com")


@pytest.fixture
def project(user: Any) -> Project:
    return make_project(user)


@pytest.fixture
def owner_client(client: Client, user: Any) -> Client:
    """The test client logged in (session) as the project's owner."""
    client.force_login(user)
    return client


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def auth_api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def api_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
