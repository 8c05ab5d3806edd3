"""The staff admin for projects and memberships."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import ERROR, get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.tests.factories import UserFactory
from conftest import make_project
from projects import services
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
    from documents.tests.factories import ChunkFactory, DocumentFactory

    project = make_project(user, "Doomed")
    doc = DocumentFactory(project=project)
    ChunkFactory(document=doc, text="t")

    response = admin_client.post(reverse("admin:projects_project_delete", args=[project.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Chunk.objects.exists()


def _project_form(project: Project, roles: dict[Any, str], delete: tuple[Any, ...] = ()) -> dict[str, str]:
    """The project change form as posted, with each membership's role (and DELETE) as given."""
    memberships = list(Membership.objects.filter(project=project).order_by("pk"))
    data = {
        "title": project.title,
        "description": project.description,
        "status": project.status,
        "created_by": str(project.created_by_id),
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, m in enumerate(memberships):
        data |= {
            f"memberships-{i}-id": str(m.pk),
            f"memberships-{i}-project": str(project.pk),
            f"memberships-{i}-user": str(m.user_id),
            f"memberships-{i}-role": roles.get(m.user, m.role),
        }
        if m.user in delete:
            data[f"memberships-{i}-DELETE"] = "on"
    return data


def _roles(project: Project) -> dict[str, str]:
    return dict(Membership.objects.filter(project=project).values_list("user__email", "role"))


@pytest.mark.parametrize("change", ["demote", "remove"])
def test_project_form_refuses_to_leave_the_project_without_an_owner(
    admin_client: Any, user: Any, change: str
) -> None:
    editor = UserFactory(email="editor@example.com")
    project = make_project(user, "Coral reefs", editor=editor)
    data = (
        _project_form(project, {user: Role.EDITOR})
        if change == "demote"
        else _project_form(project, {}, delete=(user,))
    )

    response = admin_client.post(reverse("admin:projects_project_change", args=[project.pk]), data)

    assert response.status_code == 200  # the form again, with the reason
    assert services.LAST_OWNER_DEMOTED in response.content.decode()
    assert _roles(project) == {"owner@example.com": "owner", "editor@example.com": "editor"}


def test_project_form_hands_ownership_over_in_one_save(admin_client: Any, user: Any) -> None:
    editor = UserFactory(email="editor@example.com")
    project = make_project(user, "Coral reefs", editor=editor)

    response = admin_client.post(
        reverse("admin:projects_project_change", args=[project.pk]),
        _project_form(project, {user: Role.VIEWER, editor: Role.OWNER}),
    )

    assert response.status_code == 302
    assert _roles(project) == {"owner@example.com": "viewer", "editor@example.com": "owner"}


def test_membership_form_refuses_to_demote_the_last_owner(admin_client: Any, user: Any) -> None:
    project = make_project(user, "Coral reefs")
    owner = Membership.objects.get(project=project, user=user)

    response = admin_client.post(
        reverse("admin:projects_membership_change", args=[owner.pk]),
        {"user": str(user.pk), "role": Role.VIEWER},
    )

    assert response.status_code == 200
    assert services.LAST_OWNER_DEMOTED in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_deleting_the_last_owner_is_refused_with_a_message(admin_client: Any, user: Any) -> None:
    project = make_project(user, "Coral reefs", viewer=UserFactory(email="viewer@example.com"))
    owner = Membership.objects.get(project=project, user=user)

    page = admin_client.post(reverse("admin:projects_membership_delete", args=[owner.pk]), {"post": "yes"})
    action = admin_client.post(
        reverse("admin:projects_membership_changelist"),
        {"action": "remove_selected", "_selected_action": [str(owner.pk)]},
    )

    for response in (page, action):
        assert response.status_code == 302
        errors = [str(m) for m in get_messages(response.wsgi_request) if m.level == ERROR]
        assert any(services.LAST_OWNER_REMOVED in e for e in errors), errors
        assert not any(
            "Removed" in str(m) or "Successfully" in str(m) for m in get_messages(response.wsgi_request)
        )
    assert _roles(project) == {"owner@example.com": "owner", "viewer@example.com": "viewer"}


def test_the_bulk_remove_takes_the_others_and_says_how_many(admin_client: Any, user: Any) -> None:
    project = make_project(user, "Coral reefs", viewer=UserFactory(email="viewer@example.com"))
    chosen = Membership.objects.filter(project=project).values_list("pk", flat=True)

    response = admin_client.post(
        reverse("admin:projects_membership_changelist"),
        {"action": "remove_selected", "_selected_action": [str(pk) for pk in chosen]},
    )

    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Removed 1 membership." in said
    assert any(services.LAST_OWNER_REMOVED in m for m in said)
    assert _roles(project) == {user.email: "owner"}


def test_staff_services_refuse_what_a_stale_form_would_allow(user: Any) -> None:
    """Two staff edits checked against the same page: the services, under the project's lock, refuse the second."""
    second = UserFactory(email="second@example.com")
    project = make_project(user, "Coral reefs")
    Membership.objects.create(project=project, user=second, role=Role.OWNER)
    first_owner = Membership.objects.get(project=project, user=user)
    second_owner = Membership.objects.get(project=project, user=second)

    first_owner.role = Role.VIEWER
    services.member_save_by_staff(membership=first_owner)
    second_owner.role = Role.VIEWER
    with pytest.raises(ValidationError, match="at least one owner"):
        services.member_save_by_staff(membership=second_owner)
    with pytest.raises(ValidationError, match="last owner"):
        services.member_remove_by_staff(membership=Membership.objects.get(pk=second_owner.pk))

    assert _roles(project) == {"owner@example.com": "viewer", "second@example.com": "owner"}


def test_admin_is_branded_docent(admin_client: Any) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert "<title>Docent administration | Docent admin</title>" in html
    assert ">Docent</a>" in html  # the header
    assert "Django administration" not in html
