"""Who may do what in a project: the one permission module every view uses.

`project_for(user, id, need=Role.EDITOR)` fetches a project *with* its check.
Outsiders get `Http404` (never 403), so an id says nothing about whether a
project exists; members without enough rights get `PermissionDenied`.

A request made with a personal API key limited to some projects (accounts.keys) sees
only those: `role_of`, `projects_visible_to` and `project_for`, which every selector and
view goes through, answer as if the person were in no other project. The limit only
ever removes projects; the roles are still the owner's own.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404

from accounts.keys import key_project_limit
from projects.models import Membership, Project, Role

# Higher number, more rights.
RANK: dict[str, int] = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


def role_of(user: Any, project: Project | UUID | str) -> str | None:
    """The user's role in the project, or None for outsiders and anonymous users."""
    if not getattr(user, "is_authenticated", False):
        return None
    project_id = project.pk if isinstance(project, Project) else project
    limit = key_project_limit(user)
    if limit is not None and _as_uuid(project_id) not in limit:
        return None
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
    visible = Project.objects.filter(memberships__user_id=user.pk)
    limit = key_project_limit(user)
    return visible if limit is None else visible.filter(pk__in=limit)


def project_titles_of(user: Any) -> list[tuple[UUID, str]]:
    """(id, title) of the person's projects, by title: what an API key may be limited to."""
    return list(projects_visible_to(user).order_by("title", "pk").values_list("pk", "title"))


def _as_uuid(value: Any) -> UUID | None:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def parse_project_id(project_id: Any) -> UUID:
    """A project id as a UUID; anything else is a 404 like an unknown project."""
    if isinstance(project_id, UUID):
        return project_id
    try:
        return UUID(str(project_id))
    except (ValueError, TypeError, AttributeError):
        raise Http404("No such project.") from None


def _column(field: Any) -> str:
    """A concrete field's column (the fields named here are all concrete)."""
    return str(field.column)


@cache
def _project_and_role_sql() -> str:
    """SELECT a project's columns and the caller's role in it, written from the models' metadata."""
    qn = connection.ops.quote_name
    project, membership = Project._meta, Membership._meta
    columns = ", ".join(f"p.{qn(field.column)}" for field in project.concrete_fields)
    role, project_fk, user_fk = (_column(membership.get_field(name)) for name in ("role", "project", "user"))
    pk = qn(_column(project.pk))
    # Only identifiers from the models, quoted; the values go in as parameters.
    sql = f"SELECT {columns}, m.{qn(role)} AS role_of_caller FROM {qn(project.db_table)} p "  # noqa: S608
    sql += f"INNER JOIN {qn(membership.db_table)} m ON m.{qn(project_fk)} = p.{pk} "
    return sql + f"WHERE p.{pk} = %s AND m.{qn(user_fk)} = %s"


def project_for(user: Any, project_id: Any, *, need: str = Role.VIEWER) -> Project:
    """The project if the user may act on it at `need` level; 404 for outsiders."""
    pid = parse_project_id(project_id)
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such project.")
    limit = key_project_limit(user)
    if limit is not None and pid not in limit:
        raise Http404("No such project.")  # outside the key's projects: as if it did not exist
    # One query: the project and the caller's role in it (a member has exactly one).
    # Every project-scoped request makes it, so it is raw SQL: compiling the same
    # ORM query each time cost four times as much as running it.
    params = [
        Project._meta.pk.get_db_prep_value(pid, connection),
        Membership._meta.get_field("user").target_field.get_db_prep_value(user.pk, connection),
    ]
    project = next(iter(Project.objects.raw(_project_and_role_sql(), params)), None)
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
