"""Who may do what in a project: the one permission module every view uses.

`project_for(user, id, need=Role.EDITOR)` fetches a project *with* its check.
Outsiders get `Http404` (never 403), so an id says nothing about whether a
project exists; members without enough rights get `PermissionDenied`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, QuerySet
from django.http import Http404

from projects.models import Membership, Project, Role

# Higher number, more rights.
RANK: dict[str, int] = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


def role_of(user: Any, project: Project | UUID | str) -> str | None:
    """The user's role in the project, or None for outsiders and anonymous users."""
    if not getattr(user, "is_authenticated", False):
        return None
    project_id = project.pk if isinstance(project, Project) else project
    return (
        Membership.objects.filter(project_id=project_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def has_role(role: str | None, need: str) -> bool:
    return role is not None and RANK[role] >= RANK[need]


def projects_visible_to(user: Any) -> QuerySet[Project]:
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    return Project.objects.filter(memberships__user_id=user.pk)


def parse_project_id(project_id: Any) -> UUID:
    """A project id as a UUID; anything else is a 404 like an unknown project."""
    if isinstance(project_id, UUID):
        return project_id
    try:
        return UUID(str(project_id))
    except (ValueError, TypeError, AttributeError):
        raise Http404("No such project.") from None


def project_for(user: Any, project_id: Any, *, need: str = Role.VIEWER) -> Project:
    """The project if the user may act on it at `need` level; 404 for outsiders."""
    pid = parse_project_id(project_id)
    # One query: the project and the caller's role in it (a member has exactly one).
    project = projects_visible_to(user).filter(pk=pid).annotate(role_of_caller=F("memberships__role")).first()
    if project is None:
        raise Http404("No such project.")
    project._viewer_role = project.role_of_caller  # type: ignore[attr-defined]
    require(user, project, need)
    return project


def require(user: Any, project: Project, need: str) -> str:
    """Raise unless the user holds at least `need` in the project; returns the role."""
    role = getattr(project, "_viewer_role", None) or role_of(user, project)
    if role is None:
        raise Http404("No such project.")
    project._viewer_role = role  # type: ignore[attr-defined]  # cached for this request
    if not has_role(role, need):
        raise PermissionDenied(f"This needs the {need} role in the project; you are {role}.")
    return role


def can(user: Any, project: Project, need: str) -> bool:
    try:
        require(user, project, need)
    except (Http404, PermissionDenied):
        return False
    return True


def validate_role(value: str) -> str:
    if value not in RANK:
        raise ValidationError(f"Role must be one of {', '.join(RANK)}.")
    return value
