"""Writes on projects and memberships."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404

from accounts import audit
from projects import webhooks
from projects.access import require, validate_role
from projects.models import Membership, Project, ProjectStatus, Role

log = logging.getLogger(__name__)

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000


def _clean_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise ValidationError({"title": "A title is required."})
    if len(title) > TITLE_MAX:
        raise ValidationError({"title": f"A title has at most {TITLE_MAX} characters."})
    return title


def _clean_description(description: str) -> str:
    description = description or ""
    if len(description) > DESCRIPTION_MAX:
        raise ValidationError({"description": f"A description has at most {DESCRIPTION_MAX:,} characters."})
    return description


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
        description=_clean_description(description),
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
        project.description = _clean_description(changes["description"])
        fields.append("description")
    if "status" in changes:
        project.status = _clean_status(changes["status"])
        fields.append("status")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_lock(*, project_id: Any) -> Project:
    """Lock the project's row for this transaction; Http404 when it is gone (deleted meanwhile).

    Every change of a project's memberships, and its delete, takes this lock first, so
    they take turns: two owners removing each other cannot both see the other as spare,
    and a delete never meets a member or document added half-way through it.
    """
    project = Project.objects.select_for_update().filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project.")
    return project


def project_delete(*, user: Any, project: Project) -> None:
    """Delete a project and everything in it, its files included (owners only)."""
    require(user, project, Role.OWNER)
    project_purge(project=project)
    audit.record("project.deleted", actor=user, target=project.title, project_id=project.pk)


@transaction.atomic
def project_purge(*, project: Project) -> None:
    """Delete a project with its memberships, documents and files; callers check permission (admin).

    The files go after commit (the documents app's pre_delete receiver on Project).
    """
    # Its invitations first, then its row: the order accepting an invitation locks them in
    # (projects.invitations), so a member joining and the delete take turns instead of deadlocking.
    list(project.invitations.select_for_update().values_list("pk", flat=True))
    locked = project_lock(project_id=project.pk)
    locked.delete()
    log.info("project deleted", extra={"project_id": str(project.pk)})


def projects_release_for_deleted_user(*, user_id: Any) -> None:
    """Before an account is deleted: delete the projects only it belongs to (files and all), and
    hand each shared project it alone owned to its longest-standing other member, as owner."""
    project_ids = list(Membership.objects.filter(user_id=user_id).values_list("project_id", flat=True))
    for project_id in project_ids:
        with transaction.atomic():
            project = Project.objects.select_for_update().filter(pk=project_id).first()
            if project is None:
                continue
            others = Membership.objects.filter(project_id=project_id).exclude(user_id=user_id)
            if not others.exists():
                project.delete()
                log.info("project deleted with its only member", extra={"project_id": str(project_id)})
            elif not others.filter(role=Role.OWNER).exists():
                heir = others.order_by("created_at", "pk").first()
                assert heir is not None  # others.exists() above, under the project's lock
                heir.role = Role.OWNER
                heir.save(update_fields=["role"])
                log.info("project handed to a new owner", extra={"project_id": str(project_id)})


def _owner_count(project_id: Any) -> int:
    return Membership.objects.filter(project_id=project_id, role=Role.OWNER).count()


def _locked_membership(membership: Membership) -> Membership:
    """The membership as it is now, with its project locked; Http404 when either is gone."""
    project_lock(project_id=membership.project_id)
    locked = Membership.objects.filter(pk=membership.pk).first()
    if locked is None:
        raise Http404("No such member.")
    return locked


def _require_owner_now(user: Any, project_id: Any) -> None:
    """The caller's role read again under the project's lock: it may have changed since the request began."""
    role = (
        Membership.objects.filter(project_id=project_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )
    if role is None:
        raise Http404("No such project.")
    if role != Role.OWNER:
        raise PermissionDenied(f"This needs the owner role in the project; you are {role}.")


LAST_OWNER_DEMOTED = "A project needs at least one owner."
LAST_OWNER_REMOVED = "The last owner cannot be removed."


def _set_role(locked: Membership, role: str) -> Membership:
    if locked.role == Role.OWNER and role != Role.OWNER and _owner_count(locked.project_id) <= 1:
        raise ValidationError({"role": LAST_OWNER_DEMOTED})
    if locked.role != role:
        locked.role = role
        locked.save(update_fields=["role"])
    return locked


def _remove(locked: Membership) -> None:
    if locked.role == Role.OWNER and _owner_count(locked.project_id) <= 1:
        raise ValidationError({"role": LAST_OWNER_REMOVED})
    locked.delete()


# People join a project by accepting an invitation (projects.invitations): adding an
# account by its address told owners which addresses had accounts, and asked no one.


@transaction.atomic
def member_change_role(*, user: Any, membership: Membership, role: str) -> Membership:
    """Change a member's role; a project always keeps at least one owner, however many ask at once."""
    require(user, membership.project, Role.OWNER)
    validate_role(role)
    locked = _locked_membership(membership)
    _require_owner_now(user, locked.project_id)
    previous = locked.role
    _set_role(locked, role)
    if previous != locked.role:
        audit.record(
            "member.role_changed",
            actor=user,
            target=locked.user.email,
            project_id=locked.project_id,
            detail={"from": previous, "to": locked.role},
        )
    return locked


@transaction.atomic
def member_remove(*, user: Any, membership: Membership) -> None:
    """Remove a member (owners), or leave (anyone); never the last owner."""
    if membership.user_id != user.pk:
        require(user, membership.project, Role.OWNER)
    locked = _locked_membership(membership)
    if locked.user_id != user.pk:
        _require_owner_now(user, locked.project_id)
    _remove(locked)
    left = "left" if locked.user_id == user.pk else "removed"
    webhooks.emit(
        project_id=locked.project_id, event="member.left", data=webhooks.member_data(locked, how=left)
    )
    audit.record(
        "member.removed",
        actor=user,
        target=locked.user.email,
        project_id=locked.project_id,
        detail={"role": locked.role, "left": locked.user_id == user.pk},
    )


@transaction.atomic
def member_save_by_staff(*, membership: Membership) -> Membership:
    """Store a staff edit from the admin (a new member or a changed role); the last-owner rule holds."""
    validate_role(membership.role)
    project_lock(project_id=membership.project_id)
    current = Membership.objects.filter(pk=membership.pk).first() if membership.pk else None
    if current is not None and current.project_id != membership.project_id:
        raise ValidationError({"project": "A membership cannot move to another project."})
    demoted = current is not None and current.role == Role.OWNER and membership.role != Role.OWNER
    if demoted and _owner_count(membership.project_id) <= 1:
        raise ValidationError({"role": LAST_OWNER_DEMOTED})
    membership.save()
    if current is None:
        webhooks.emit(
            project_id=membership.project_id, event="member.joined", data=webhooks.member_data(membership)
        )
    return membership


@transaction.atomic
def member_remove_by_staff(*, membership: Membership) -> None:
    """Remove a member from the admin; never the last owner."""
    project_lock(project_id=membership.project_id)
    locked = Membership.objects.filter(pk=membership.pk).first()
    if locked is not None:
        _remove(locked)
        data = webhooks.member_data(locked, how="removed")
        webhooks.emit(project_id=locked.project_id, event="member.left", data=data)
