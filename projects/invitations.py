"""Invitations: how people join a project.

An owner invites an email address with a role. Whether an account has that
address is never looked up while inviting: the owner gets the same answer, the
same work is done, and the same email goes to the address (sign in, or sign up
with this address, then accept). Inviting an address that already has an open
invitation refreshes it (new role, new expiry, a new email) instead of adding
a second one. Invitations expire after `INVITATION_DAYS`; owners list the open
ones and revoke them.

Only the account whose *verified* address is the invited one sees and answers
an invitation: to anyone else its id is unknown (404). Accepting checks the
expiry and the membership and is idempotent: accepting again returns the
membership it made.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import audit
from accounts.verification import UNVERIFIED, is_verified
from core import ratelimit
from projects import webhooks
from projects.access import require, validate_role
from projects.models import Invitation, InvitationStatus, Membership, Project, Role

log = logging.getLogger(__name__)

INVITES = ratelimit.Limit("invites", "user", "invitations sent")

ALREADY_MEMBER = "That address already belongs to a member of the project."
INVITED = (
    "An invitation was sent to {email}. It works for {days} days; "
    "the invitee accepts it after signing in (or signing up) with that address."
)


class InvitationClosed(ValidationError):
    """An invitation that can no longer be answered (expired, revoked, declined, accepted)."""


def _clean_email(email: str) -> str:
    email = ratelimit.normalise_email(email)
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    return email


def _send_invitation(invitation: Invitation, *, base_url: str) -> None:
    base = base_url.rstrip("/")
    context = {
        "invitation": invitation,
        "project_title": invitation.project.title,
        "inviter": getattr(invitation.invited_by, "email", "") or "An owner",
        "role": invitation.get_role_display().lower(),
        "email": invitation.email,
        "expires_at": invitation.expires_at,
        "invitations_url": f"{base}/invitations/",
        "signup_url": f"{base}/accounts/signup/",
    }
    subject, _, body = render_to_string("projects/email/invitation.txt", context).partition("\n")
    # A mail server that is down must not turn the invitation into an error page.
    sent = send_mail(
        " ".join(subject.split()),  # a title may hold a line break; a header may not
        body.lstrip("\n"),
        settings.DEFAULT_FROM_EMAIL,
        [invitation.email],
        fail_silently=True,
    )
    if not sent:
        log.warning("invitation email not sent", extra={"invitation_id": str(invitation.pk)})


def invitation_create(
    *, user: Any, project: Project, email: str, role: str = Role.VIEWER, base_url: str = ""
) -> Invitation:
    """Invite an address to the project with a role (owners only); the same answer whether or not
    an account has the address."""
    require(user, project, Role.OWNER)
    email = _clean_email(email)
    validate_role(role)
    # Members' addresses are on the members page the owner already sees: saying so leaks nothing.
    if Membership.objects.filter(project=project, user__email__iexact=email).exists():
        raise ValidationError({"email": ALREADY_MEMBER})
    expires_at = timezone.now() + timedelta(days=settings.INVITATION_DAYS)
    for _attempt in range(2):
        try:
            with transaction.atomic():
                invitation = (
                    Invitation.objects.select_for_update()
                    .filter(project=project, email=email, status=InvitationStatus.PENDING)
                    .first()
                )
                if invitation is None:
                    invitation = Invitation.objects.create(
                        project=project, email=email, role=role, invited_by=user, expires_at=expires_at
                    )
                else:
                    invitation.role, invitation.invited_by, invitation.expires_at = role, user, expires_at
                    invitation.save(update_fields=["role", "invited_by", "expires_at"])
            break
        except IntegrityError:
            continue  # another request opened it a moment ago: refresh that one
    else:
        raise ValidationError({"email": "That address was being invited at the same moment; try again."})
    log.info("invitation sent", extra={"invitation_id": str(invitation.pk), "project_id": str(project.pk)})
    audit.record(
        "invitation.sent",
        actor=user,
        target=email,
        project_id=project.pk,
        detail={"role": role, "invitation_id": str(invitation.pk)},
    )
    invitation.project = project
    _send_invitation(invitation, base_url=base_url)
    return invitation


def invitation_revoke(*, user: Any, project: Project, invitation_id: Any) -> Invitation:
    """Withdraw an open invitation (owners only); revoking one already revoked changes nothing."""
    require(user, project, Role.OWNER)
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(pk=_parse_id(invitation_id), project=project)
            .first()
        )
        if invitation is None:
            raise Http404("No such invitation.")
        if invitation.status == InvitationStatus.REVOKED:
            return invitation
        if invitation.status != InvitationStatus.PENDING:
            raise ValidationError(
                {"detail": f"This invitation was already {invitation.status}; there is nothing to revoke."}
            )
        invitation.status, invitation.answered_at = InvitationStatus.REVOKED, timezone.now()
        invitation.save(update_fields=["status", "answered_at"])
        audit.record(
            "invitation.revoked",
            actor=user,
            target=invitation.email,
            project_id=project.pk,
            detail={"invitation_id": str(invitation.pk)},
        )
    return invitation


def invitations_pending_of(project: Project) -> QuerySet[Invitation]:
    """The project's unanswered invitations, expired ones included (owners may revoke or renew them)."""
    return (
        Invitation.objects.filter(project=project, status=InvitationStatus.PENDING)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def invitations_for(user: Any) -> QuerySet[Invitation]:
    """Open, unexpired invitations to the user's verified address (none until it is verified)."""
    if not getattr(user, "is_authenticated", False) or not is_verified(user):
        return Invitation.objects.none()
    return (
        Invitation.objects.filter(
            email=user.email.lower(), status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
        )
        .exclude(project__memberships__user=user)
        .select_related("project", "invited_by")
        .order_by("-created_at")
    )


def _parse_id(invitation_id: Any) -> UUID:
    try:
        return invitation_id if isinstance(invitation_id, UUID) else UUID(str(invitation_id))
    except (ValueError, TypeError, AttributeError):
        raise Http404("No such invitation.") from None


def _locked_for(user: Any, invitation_id: Any) -> Invitation:
    """The invitation to the user's verified address, locked; 404 for anyone else's."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such invitation.")
    if not is_verified(user):
        raise ValidationError({"detail": UNVERIFIED})
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("project")
        .filter(pk=_parse_id(invitation_id), email=user.email.lower())
        .first()
    )
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


def _closed(invitation: Invitation) -> str | None:
    if invitation.status == InvitationStatus.REVOKED:
        return "This invitation was withdrawn by the project's owners."
    if invitation.status == InvitationStatus.DECLINED:
        return "You declined this invitation; ask the project's owners for a new one."
    if invitation.status == InvitationStatus.PENDING and invitation.expires_at <= timezone.now():
        return "This invitation has expired; ask the project's owners for a new one."
    return None


@transaction.atomic
def invitation_accept(*, user: Any, invitation_id: Any) -> Membership:
    """Join the project on the invitation's role; accepting the same invitation again returns the
    membership it made."""
    invitation = _locked_for(user, invitation_id)
    if invitation.status == InvitationStatus.ACCEPTED:
        membership = Membership.objects.filter(project=invitation.project, user=user).first()
        if membership is not None and invitation.accepted_by_id == user.pk:
            return membership
        raise InvitationClosed({"detail": "This invitation was already used."})
    reason = _closed(invitation)
    if reason is not None:
        raise InvitationClosed({"detail": reason})
    if Membership.objects.filter(project=invitation.project, user=user).exists():
        raise ValidationError({"detail": "You are already a member of this project."})
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                project=invitation.project, user=user, role=invitation.role
            )
    except IntegrityError:
        raise ValidationError({"detail": "You are already a member of this project."}) from None
    invitation.status, invitation.answered_at = InvitationStatus.ACCEPTED, timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["status", "answered_at", "accepted_by"])
    webhooks.emit(
        project_id=membership.project_id, event="member.joined", data=webhooks.member_data(membership)
    )
    log.info("invitation accepted", extra={"invitation_id": str(invitation.pk), "user_id": str(user.pk)})
    audit.record(
        "invitation.accepted",
        actor=user,
        target=invitation.email,
        project_id=invitation.project_id,
        detail={"role": invitation.role, "invitation_id": str(invitation.pk)},
    )
    return membership


@transaction.atomic
def invitation_decline(*, user: Any, invitation_id: Any) -> Invitation:
    """Turn an invitation down; declining again changes nothing."""
    invitation = _locked_for(user, invitation_id)
    if invitation.status == InvitationStatus.DECLINED:
        return invitation
    if invitation.status == InvitationStatus.ACCEPTED:
        raise InvitationClosed({"detail": "You already accepted this invitation; leave the project instead."})
    reason = _closed(invitation)
    if reason is not None:
        raise InvitationClosed({"detail": reason})
    invitation.status, invitation.answered_at = InvitationStatus.DECLINED, timezone.now()
    invitation.save(update_fields=["status", "answered_at"])
    return invitation
