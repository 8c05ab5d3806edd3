"""Project pages: the list, creating, editing and deleting projects, members and invitations.

The project page itself, with its documents and runs, is the workspace's (workspace/views/projects.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import verification
from core import ratelimit
from projects import access, invitations, selectors, services, webhooks
from projects.forms import (
    InviteForm,
    MemberRoleForm,
    ProjectForm,
    WebhookForm,
    add_service_errors,
)
from projects.models import Membership, Project, ProjectStatus, Role


@require_GET
@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_list(request.user).order_by("status", "-created_at")
    return render(request, "projects/project_list.html", {"projects": projects})


@require_http_methods(["GET", "POST"])
@login_required
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc, {"title": "title", "description": "description"})
        else:
            messages.success(request, "Project created. Add a document to get started.")
            return redirect("projects:detail", pk=project.pk)
    status = 400 if form.errors else 200
    return render(
        request,
        "projects/project_form.html",
        {"form": form, "creating": True},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_edit(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk, need=Role.OWNER)
    initial = {"title": project.title, "description": project.description}
    form = ProjectForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(user=request.user, project=project, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc, {"title": "title", "description": "description"})
        else:
            messages.success(request, "Project saved.")
            return redirect("projects:detail", pk=project.pk)
    status = 400 if form.errors else 200
    return render(
        request,
        "projects/project_form.html",
        {"form": form, "project": project},
        status=status,
    )


@require_POST
@login_required
def project_archive(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk, need=Role.OWNER)
    archived = project.status == ProjectStatus.ARCHIVED
    new_status = ProjectStatus.ACTIVE if archived else ProjectStatus.ARCHIVED
    services.project_update(user=request.user, project=project, status=new_status)
    messages.success(request, "Project restored." if archived else "Project archived.")
    return redirect("projects:detail", pk=project.pk)


@require_http_methods(["GET", "POST"])
@login_required
def project_delete(request: HttpRequest, pk: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk, need=Role.OWNER)
    if request.method == "POST":
        title = project.title
        services.project_delete(user=request.user, project=project)
        messages.success(request, f"“{title}” and its documents were deleted.")
        return redirect("projects:list")
    return render(request, "projects/project_confirm_delete.html", {"project": project})


# --- members -----------------------------------------------------------------


def _membership(project: Project, member_id: int) -> Membership:
    membership = project.memberships.select_related("user", "project").filter(pk=member_id).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


@require_http_methods(["GET", "POST"])
@login_required
def members(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The member list; owners also invite addresses (the POST) and see the open invitations."""
    project = access.project_for(request.user, pk)
    is_owner = access.can(request.user, project, Role.OWNER)
    form = InviteForm(request.POST or None)
    if request.method == "POST":
        access.require(request.user, project, Role.OWNER)
        refusal = ratelimit.hit(invitations.INVITES, request, user=request.user)
        if refusal is not None:
            return ratelimit.refused_page(request, refusal)
        if form.is_valid():
            try:
                invitation = invitations.invitation_create(
                    user=request.user,
                    project=project,
                    base_url=request.build_absolute_uri("/"),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                add_service_errors(form, exc, {"email": "email", "role": "role"})
            else:
                days = settings.INVITATION_DAYS
                messages.success(request, invitations.INVITED.format(email=invitation.email, days=days))
                return redirect("projects:members", pk=project.pk)
    memberships = list(selectors.memberships_of(project))
    rows = [(m, MemberRoleForm(initial={"role": m.role}, prefix=f"m{m.pk}")) for m in memberships]
    # The service refuses to let the last owner leave; the page does not offer it.
    owners = [m.user_id for m in memberships if m.role == Role.OWNER]
    pending = list(invitations.invitations_pending_of(project)) if is_owner else []
    context = {
        "project": project,
        "is_owner": is_owner,
        "form": form,
        "rows": rows,
        "sole_owner": owners == [request.user.pk],
        "invitations": pending,
        "now": timezone.now(),
    }
    return render(request, "projects/members.html", context, status=400 if form.errors else 200)


@require_POST
@login_required
def invitation_revoke(request: HttpRequest, pk: UUID, invitation_id: UUID) -> HttpResponse:
    project = access.project_for(request.user, pk, need=Role.OWNER)
    try:
        invitation = invitations.invitation_revoke(
            user=request.user, project=project, invitation_id=invitation_id
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"The invitation to {invitation.email} was revoked.")
    return redirect("projects:members", pk=project.pk)


# --- invitations to the signed-in user ---------------------------------------------


@require_GET
@login_required
def my_invitations(request: HttpRequest) -> HttpResponse:
    context = {
        "invitations": invitations.invitations_for(request.user),
        "verified": verification.is_verified(request.user),
    }
    return render(request, "projects/invitations.html", context)


@require_POST
@login_required
def invitation_accept(request: HttpRequest, invitation_id: UUID) -> HttpResponse:
    try:
        membership = invitations.invitation_accept(user=request.user, invitation_id=invitation_id)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect("projects:invitations")
    project = membership.project
    messages.success(request, f"You joined “{project.title}” as {membership.get_role_display().lower()}.")
    return redirect("projects:detail", pk=project.pk)


@require_POST
@login_required
def invitation_decline(request: HttpRequest, invitation_id: UUID) -> HttpResponse:
    try:
        invitation = invitations.invitation_decline(user=request.user, invitation_id=invitation_id)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.info(request, f"You declined the invitation to “{invitation.project.title}”.")
    return redirect("projects:invitations")


@require_POST
@login_required
def member_role(request: HttpRequest, pk: UUID, member_id: int) -> HttpResponse:
    project = access.project_for(request.user, pk, need=Role.OWNER)
    membership = _membership(project, member_id)
    form = MemberRoleForm(request.POST, prefix=f"m{membership.pk}")
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect("projects:members", pk=project.pk)
    try:
        services.member_change_role(user=request.user, membership=membership, role=form.cleaned_data["role"])
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    return redirect("projects:members", pk=project.pk)


@require_POST
@login_required
def member_remove(request: HttpRequest, pk: UUID, member_id: int) -> HttpResponse:
    project = access.project_for(request.user, pk)
    membership = _membership(project, member_id)
    leaving = membership.user_id == request.user.pk
    if not leaving:
        access.require(request.user, project, Role.OWNER)
    try:
        services.member_remove(user=request.user, membership=membership)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect("projects:members", pk=project.pk)
    if leaving:
        messages.success(request, f"You left “{project.title}”.")
        return redirect("projects:list")
    messages.success(request, f"{membership.user.email} was removed from the project.")
    return redirect("projects:members", pk=project.pk)


# --- webhooks (owners only) ------------------------------------------------------------

WEBHOOK_LOG_ROWS = 50


@require_http_methods(["GET", "POST"])
@login_required
def webhooks_page(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The project's webhook endpoints, and (the POST) registering one."""
    project = access.project_for(request.user, pk, need=Role.OWNER)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = webhooks.endpoint_create(user=request.user, project=project, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc, {"url": "url", "events": "events", "description": "description"})
        else:
            messages.success(request, "Webhook added. Verify its messages with the secret below.")
            return redirect("projects:webhook", pk=project.pk, webhook_id=endpoint.pk)
    context = {
        "project": project,
        "is_owner": True,
        "endpoints": list(webhooks.endpoints_of(project)),
        "form": form,
    }
    return render(request, "projects/webhooks.html", context, status=400 if form.errors else 200)


@require_GET
@login_required
def webhook_detail(request: HttpRequest, pk: UUID, webhook_id: UUID) -> HttpResponse:
    """One endpoint: its secret, its switches and its delivery log."""
    project = access.project_for(request.user, pk, need=Role.OWNER)
    endpoint = webhooks.endpoint_in(project, webhook_id)
    deliveries = list(webhooks.deliveries_of(endpoint)[:WEBHOOK_LOG_ROWS])
    context = {"project": project, "is_owner": True, "endpoint": endpoint, "deliveries": deliveries}
    return render(request, "projects/webhook_detail.html", context)


def _endpoint_action(request: HttpRequest, pk: UUID, webhook_id: UUID) -> Any:
    project = access.project_for(request.user, pk, need=Role.OWNER)
    return webhooks.endpoint_in(project, webhook_id)


def _back(endpoint: Any) -> HttpResponse:
    return redirect("projects:webhook", pk=endpoint.project_id, webhook_id=endpoint.pk)


@require_POST
@login_required
def webhook_toggle(request: HttpRequest, pk: UUID, webhook_id: UUID) -> HttpResponse:
    endpoint = _endpoint_action(request, pk, webhook_id)
    webhooks.endpoint_update(user=request.user, endpoint=endpoint, enabled=not endpoint.enabled)
    messages.success(request, "Webhook enabled." if endpoint.enabled else "Webhook disabled.")
    return _back(endpoint)


@require_POST
@login_required
def webhook_rotate(request: HttpRequest, pk: UUID, webhook_id: UUID) -> HttpResponse:
    endpoint = _endpoint_action(request, pk, webhook_id)
    webhooks.endpoint_update(user=request.user, endpoint=endpoint, rotate_secret=True)
    messages.success(request, "A new secret signs the messages from now on; update your receiver.")
    return _back(endpoint)


@require_POST
@login_required
def webhook_delete(request: HttpRequest, pk: UUID, webhook_id: UUID) -> HttpResponse:
    endpoint = _endpoint_action(request, pk, webhook_id)
    webhooks.endpoint_delete(user=request.user, endpoint=endpoint)
    messages.success(request, f"The webhook to {endpoint.url} was deleted.")
    return redirect("projects:webhooks", pk=pk)


@require_POST
@login_required
def webhook_test(request: HttpRequest, pk: UUID, webhook_id: UUID) -> HttpResponse:
    endpoint = _endpoint_action(request, pk, webhook_id)
    try:
        webhooks.endpoint_test(user=request.user, endpoint=endpoint)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, "A test event (webhook.ping) was sent; its outcome is in the log below.")
    return _back(endpoint)


@require_POST
@login_required
def webhook_resend(request: HttpRequest, pk: UUID, webhook_id: UUID, delivery_id: UUID) -> HttpResponse:
    endpoint = _endpoint_action(request, pk, webhook_id)
    delivery = webhooks.delivery_in(endpoint, delivery_id)
    try:
        webhooks.delivery_resend(user=request.user, delivery=delivery)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"The {delivery.event} message was sent again.")
    return _back(endpoint)
