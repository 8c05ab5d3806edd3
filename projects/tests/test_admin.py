"""The staff admin for projects and memberships."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from conftest import make_project
from projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db


def test_project_pages_render_for_a_superuser(admin_client: Any, user: Any) -> None:
    project = make_project(user, "Coral reefs", viewer=UserFactory(email="viewer@example.com"))

    changelist = admin_client.get(
        reverse("admin:projects_project_changelist"),
        {"status__exact": "active", "q": "coral"},
    )
    change = admin_client.get(reverse("admin:projects_project_change", args=[project.pk]))
    add = admin_client.get(reverse("admin:projects_project_add"))

    assert changelist.status_code == 200
    assert b"Coral reefs" in changelist.content
    assert change.status_code == 200
    assert b"viewer@example.com" in change.content  # the membership inline
    assert add.status_code == 200


def test_project_changelist_queries_do_not_grow_with_projects(
    admin_client: Any, user: Any, django_assert_max_num_queries: Any
) -> None:
    url = reverse("admin:projects_project_changelist")
    for i in range(3):
        make_project(UserFactory(), f"Project {i}")
    admin_client.get(url)  # warm the session and content types

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(10):
        make_project(UserFactory(), f"More {i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(url).status_code == 200


def test_membership_pages_render_and_search_by_user_email(admin_client: Any, user: Any) -> None:
    project = make_project(user, "Coral reefs")
    membership = Membership.objects.get(project=project, user=user)

    changelist = admin_client.get(
        reverse("admin:projects_membership_changelist"),
        {"q": "owner@example.com", "role__exact": "owner"},
    )
    change = admin_client.get(reverse("admin:projects_membership_change", args=[membership.pk]))
    add = admin_client.get(reverse("admin:projects_membership_add"))

    assert changelist.status_code == 200
    assert b"Coral reefs" in changelist.content
    assert change.status_code == 200
    assert add.status_code == 200


def test_project_added_in_the_admin_is_owned_by_its_creator(admin_client: Any, user: Any) -> None:
    response = admin_client.post(
        reverse("admin:projects_project_add"),
        {
            "title": "Made by staff",
            "description": "",
            "status": "active",
            "created_by": str(user.pk),
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302
    project = Project.objects.get(title="Made by staff")
    assert Membership.objects.get(project=project).role == Role.OWNER


def test_superuser_deletes_a_project_with_its_chunks(admin_client: Any, user: Any) -> None:
    from documents.models import Chunk
    from documents.tests.factories import DocumentFactory

    project = make_project(user, "Doomed")
    doc = DocumentFactory(project=project)
    Chunk.objects.create(
        document=doc, project=project, index=0, text="t", start=0, end=1, embedding=b"\0" * 4, dim=1
    )

    response = admin_client.post(reverse("admin:projects_project_delete", args=[project.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Chunk.objects.exists()
