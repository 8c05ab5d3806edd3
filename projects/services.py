"""Writes on projects and memberships."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from projects.access import require, validate_role
from projects.models import Membership, Project, ProjectStatus, Role

log = logging.getLogger(__name__)

TITLE_MAX = 200


def _clean_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise ValidationError({"title": "A title is required."})
    if len(title) > TITLE_MAX:
        raise ValidationError({"title": f"A title has at most {TITLE_MAX} characters."})
    return title


def _clean_status(status: str) -> str:
    if status not in ProjectStatus.values:
        raise ValidationError({"status": f"Status must be one of {', '.join(ProjectStatus.values)}."})
    return status


@transaction.atomic
def project_create(
    *, user: Any, title: str, description: str = "", status: str = ProjectStatus.ACTIVE
) -> Project:
    """Create a project with its creator as owner."""
    project = Project.objects.create(
        title=_clean_title(title),
        description=description or "",
        status=_clean_status(status),
        created_by=user,
    )
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    log.info("project created", extra={"project_id": str(project.pk), "user_id": str(user.pk)})
    return project


def project_update(*, user: Any, project: Project, **changes: Any) -> Project:
    """Change title, description or status (owners only)."""
    require(user, project, Role.OWNER)
    fields = []
    if "title" in changes:
        project.title = _clean_title(changes["title"])
        fields.append("title")
    if "description" in changes:
        project.description = changes["description"] or ""
        fields.append("description")
    if "status" in changes:
        project.status = _clean_status(changes["status"])
        fields.append("status")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_delete(*, user: Any, project: Project) -> None:
    """Delete a project and everything in it (owners only)."""
    require(user, project, Role.OWNER)
    project.delete()


def project_touch_documents(*, project_id: Any) -> None:
    """Tell every process that the project's document list changed (call inside the change's transaction)."""
    Project.objects.filter(pk=project_id).update(documents_version=F("documents_version") + 1)


def _owner_count(project: Project) -> int:
    return project.memberships.filter(role=Role.OWNER).count()


@transaction.atomic
def member_add(*, user: Any, project: Project, email: str, role: str) -> Membership:
    """Add an existing user to the project by email (owners only)."""
    require(user, project, Role.OWNER)
    validate_role(role)
    User = get_user_model()
    invitee = User.objects.filter(email__iexact=(email or "").strip(), is_active=True).first()
    if invitee is None:
        raise ValidationError({"email": "No active user has that email address."})
    if Membership.objects.filter(project=project, user=invitee).exists():
        raise ValidationError({"email": "That user is already a member of the project."})
    return Membership.objects.create(project=project, user=invitee, role=role)


@transaction.atomic
def member_change_role(*, user: Any, membership: Membership, role: str) -> Membership:
    """Change a member's role; a project always keeps at least one owner."""
    require(user, membership.project, Role.OWNER)
    validate_role(role)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and role != Role.OWNER and _owner_count(locked.project) <= 1:
        raise ValidationError({"role": "A project needs at least one owner."})
    locked.role = role
    locked.save(update_fields=["role"])
    return locked


@transaction.atomic
def member_remove(*, user: Any, membership: Membership) -> None:
    """Remove a member (owners), or leave (anyone); never the last owner."""
    if membership.user_id != user.pk:
        require(user, membership.project, Role.OWNER)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and _owner_count(locked.project) <= 1:
        raise ValidationError({"role": "The last owner cannot be removed."})
    locked.delete()
