"""The permission module: roles rank owner > editor > viewer, outsiders see nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.tests.factories import UserFactory
from conftest import make_project
from projects import access
from projects.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(user: Any) -> dict[str, Any]:
    viewer, editor, outsider = UserFactory(), UserFactory(), UserFactory()
    project = make_project(user, viewer=viewer, editor=editor)
    return {"project": project, "owner": user, "editor": editor, "viewer": viewer, "outsider": outsider}


@pytest.mark.parametrize(
    ("who", "need", "allowed"),
    [
        ("owner", Role.OWNER, True),
        ("owner", Role.EDITOR, True),
        ("owner", Role.VIEWER, True),
        ("editor", Role.OWNER, False),
        ("editor", Role.EDITOR, True),
        ("editor", Role.VIEWER, True),
        ("viewer", Role.OWNER, False),
        ("viewer", Role.EDITOR, False),
        ("viewer", Role.VIEWER, True),
    ],
)
def test_roles_grant_what_they_rank(people: dict[str, Any], who: str, need: str, allowed: bool) -> None:
    project = people["project"]
    assert access.can(people[who], project, need) is allowed
    if allowed:
        assert access.project_for(people[who], project.pk, need=need) == project
    else:
        with pytest.raises(PermissionDenied):
            access.project_for(people[who], project.pk, need=need)


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_project_for_reads_each_callers_own_role_in_one_query(
    people: dict[str, Any], who: str, django_assert_num_queries: Any
) -> None:
    # Three members: the caller's own membership row decides, never another member's.
    with django_assert_num_queries(1):
        project = access.project_for(people[who], people["project"].pk)
    assert access.require(people[who], project, Role.VIEWER) == who


@pytest.mark.parametrize("need", [Role.VIEWER, Role.EDITOR, Role.OWNER])
def test_outsiders_and_anonymous_get_404_not_403(people: dict[str, Any], need: str) -> None:
    project = people["project"]
    for who in (people["outsider"], AnonymousUser()):
        with pytest.raises(Http404):
            access.project_for(who, project.pk, need=need)
        assert access.can(who, project, need) is False


@pytest.mark.parametrize("bad_id", ["", "nope", "1", None, "00000000-0000-0000-0000-000000000000"])
def test_malformed_or_unknown_ids_are_404(user: Any, bad_id: Any) -> None:
    with pytest.raises(Http404):
        access.project_for(user, bad_id)


def test_visible_projects_are_exactly_the_memberships(people: dict[str, Any], user: Any) -> None:
    make_project(people["outsider"], "Elsewhere")
    assert list(access.projects_visible_to(people["viewer"])) == [people["project"]]
    assert list(access.projects_visible_to(AnonymousUser())) == []
    assert access.role_of(people["editor"], people["project"]) == Role.EDITOR
    assert access.role_of(people["outsider"], people["project"]) is None


def test_staff_get_no_project_rights_outside_the_admin(people: dict[str, Any]) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    with pytest.raises(Http404):
        access.project_for(staff, people["project"].pk)
