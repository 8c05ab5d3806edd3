"""Project and membership API: viewsets that wire access, selectors and services."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import audit
from accounts.models import AuditEvent
from core import ratelimit
from projects import access, invitations, selectors, services, webhooks
from projects.models import (
    Invitation,
    Membership,
    Project,
    ProjectStatus,
    Role,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)


class ProjectOut(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    document_count = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            "title",
            "description",
            "status",
            "role",
            "document_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_role(self, obj: Project) -> str | None:
        return getattr(obj, "my_role", None) or access.role_of(self.context["request"].user, obj)

    def get_document_count(self, obj: Project) -> int:
        count = getattr(obj, "document_count", None)
        return count if count is not None else obj.documents.count()


class ProjectIn(serializers.Serializer):
    title = serializers.CharField(max_length=200, allow_blank=False)
    # Its limit is the service's (projects.services.DESCRIPTION_MAX), with the page's message.
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=ProjectStatus.choices, required=False)


class MemberOut(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    user = serializers.UUIDField(source="user.id", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "email", "role", "created_at"]
        read_only_fields = fields


class MemberIn(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class MemberPatchIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


@extend_schema_view(
    create=extend_schema(request=ProjectIn, responses={201: ProjectOut}),
    update=extend_schema(request=ProjectIn, responses=ProjectOut),
    partial_update=extend_schema(request=ProjectIn, responses=ProjectOut),
)
class ProjectViewSet(viewsets.ModelViewSet):
    """Projects the caller belongs to."""

    # API-key scopes beyond the default (accounts/scopes.py); a key limited to some projects
    # may not create one it could not then see.
    key_scopes = dict.fromkeys(["update", "partial_update", "destroy"], "admin:projects")
    key_all_projects = ("create",)

    serializer_class = ProjectOut
    filterset_fields = ["status"]
    search_fields = ["title", "description"]
    ordering_fields = ["created_at", "updated_at", "title"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        return selectors.projects_for_list(self.request.user)

    def get_object(self) -> Project:
        project = access.project_for(self.request.user, self.kwargs["pk"])
        return project

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ProjectIn(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(user=request.user, **data.validated_data)
        return Response(
            ProjectOut(project, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        data = ProjectIn(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        project = services.project_update(user=request.user, project=self.get_object(), **data.validated_data)
        return Response(ProjectOut(project, context=self.get_serializer_context()).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.project_delete(user=request.user, project=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UseInvitations(exceptions.APIException):
    """410 for the old add-member call: people join by accepting an invitation."""

    status_code = status.HTTP_410_GONE
    default_detail = "Members join by invitation: POST to /api/v1/projects/{id}/invitations/."
    default_code = "use_invitations"


class DetailOut(serializers.Serializer):
    detail = serializers.CharField()


@extend_schema_view(
    create=extend_schema(
        request=MemberIn,
        responses={410: DetailOut},
        deprecated=True,
        description="Gone: answers 410 to owners. Invite the address instead "
        "(POST /api/v1/projects/{project_pk}/invitations/); the invitee accepts.",
    ),
    partial_update=extend_schema(request=MemberPatchIn, responses=MemberOut),
    update=extend_schema(request=MemberPatchIn, responses=MemberOut),
)
@extend_schema(parameters=[OpenApiParameter("project_pk", str, OpenApiParameter.PATH)])
class MemberViewSet(viewsets.ModelViewSet):
    """Members of one project; owners manage them, members may read them."""

    # API-key scopes (accounts/scopes.py): reading needs `read`, managing `admin:projects`.
    key_scopes = dict.fromkeys(["POST", "PUT", "PATCH", "DELETE"], "admin:projects")

    serializer_class = MemberOut
    pagination_class = None
    filter_backends: list[Any] = []
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def project(self, need: str = Role.VIEWER) -> Project:
        return access.project_for(self.request.user, self.kwargs["project_pk"], need=need)

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return selectors.memberships_of(self.project())

    def get_object(self) -> Membership:
        try:
            pk = int(self.kwargs["pk"])
        except (TypeError, ValueError):
            raise Http404 from None
        membership = self.get_queryset().filter(pk=pk).first()
        if membership is None:
            raise Http404
        return membership

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.project(Role.OWNER)
        raise UseInvitations(
            f"Members join by invitation: POST {{email, role}} to /api/v1/projects/{project.pk}/invitations/."
        )

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = MemberPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_change_role(
            user=request.user, membership=self.get_object(), role=data.validated_data["role"]
        )
        return Response(MemberOut(membership).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.member_remove(user=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations -------------------------------------------------------------------


class InvitationOut(serializers.ModelSerializer):
    project_title = serializers.CharField(source="project.title", read_only=True)
    invited_by = serializers.SerializerMethodField()
    expired = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = [
            "id",
            "project",
            "project_title",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "expired",
        ]
        read_only_fields = fields

    def get_invited_by(self, obj: Invitation) -> str | None:
        return getattr(obj.invited_by, "email", None)

    def get_expired(self, obj: Invitation) -> bool:
        return obj.expires_at <= timezone.now()


class InvitationIn(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


@extend_schema_view(
    list=extend_schema(summary="The project's open invitations (owners)"),
    create=extend_schema(
        request=InvitationIn,
        responses={201: InvitationOut},
        summary="Invite an address (owners)",
        description="The same answer whether or not an account has the address; inviting an address "
        "with an open invitation renews it.",
    ),
    destroy=extend_schema(summary="Revoke an open invitation (owners)"),
)
@extend_schema(parameters=[OpenApiParameter("project_pk", str, OpenApiParameter.PATH)])
class ProjectInvitationViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """A project's invitations: owners invite, list the open ones and revoke them."""

    key_scopes = {"POST": "admin:projects", "DELETE": "admin:projects"}  # API-key scopes (accounts/scopes.py)

    serializer_class = InvitationOut
    pagination_class = None
    filter_backends: list[Any] = []

    def project(self) -> Project:
        return access.project_for(self.request.user, self.kwargs["project_pk"], need=Role.OWNER)

    def get_queryset(self) -> QuerySet[Invitation]:
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return invitations.invitations_pending_of(self.project())

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.project()
        refusal = ratelimit.hit(invitations.INVITES, request, user=request.user)
        if refusal is not None:
            raise ratelimit.RateLimited(refusal)
        data = InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = invitations.invitation_create(
            user=request.user,
            project=project,
            base_url=request.build_absolute_uri("/"),
            **data.validated_data,
        )
        return Response(InvitationOut(invitation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        invitations.invitation_revoke(user=request.user, project=self.project(), invitation_id=kwargs["pk"])
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="Open invitations to your verified address"),
    retrieve=extend_schema(summary="One invitation to your verified address"),
)
class MyInvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Invitations to the caller's verified address; anyone else's are 404."""

    key_scopes = {"POST": "admin:projects"}  # API-key scopes (accounts/scopes.py)
    key_all_projects = ("accept",)  # joining a project a limited key could not see

    serializer_class = InvitationOut
    pagination_class = None
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Invitation]:
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return invitations.invitations_for(self.request.user)

    def get_object(self) -> Invitation:
        invitation = self.get_queryset().filter(pk=invitations._parse_id(self.kwargs["pk"])).first()
        if invitation is None:
            raise Http404
        return invitation

    @extend_schema(request=None, responses={200: MemberOut}, summary="Accept: join the project")
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        membership = invitations.invitation_accept(user=request.user, invitation_id=pk)
        return Response(MemberOut(membership).data)

    @extend_schema(request=None, responses={200: InvitationOut}, summary="Decline")
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        invitation = invitations.invitation_decline(user=request.user, invitation_id=pk)
        return Response(InvitationOut(invitation).data)


class AuditEventOut(serializers.ModelSerializer):
    """One line of a project's audit log."""

    actor = serializers.CharField(source="actor_email", read_only=True, help_text="The actor's email.")
    project = serializers.UUIDField(source="project_id", read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "action", "actor", "target", "project", "ip", "detail"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(
        summary="The project's audit log (owners)",
        description="Who did what in the project, newest first: invitations, role changes and "
        "removals, deletions and webhook changes, each with its actor, target, IP and time. "
        "`?action=` keeps one action; `?search=` matches the actor's email or the target. "
        "Owners only: 403 for the project's other members, 404 for anyone else.",
    )
)
@extend_schema(parameters=[OpenApiParameter("project_pk", str, OpenApiParameter.PATH)])
class ProjectAuditViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """A project's audit events, for its owners; kept DOCENT_AUDIT_DAYS (accounts.audit)."""

    serializer_class = AuditEventOut
    filterset_fields = ["action"]
    search_fields = ["actor_email", "target"]
    ordering_fields: list[str] = []
    key_scopes = {"*": "admin:projects"}  # reading who did what is a project owner's business

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        project = access.project_for(self.request.user, self.kwargs["project_pk"], need=Role.OWNER)
        return audit.project_events(project_id=project.pk)


# --- webhooks ----------------------------------------------------------------------


class WebhookOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "secret",
            "enabled",
            "disabled_reason",
            "consecutive_failures",
            "failing_since",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookIn(serializers.Serializer):
    url = serializers.CharField(max_length=webhooks.MAX_URL_CHARS)
    description = serializers.CharField(max_length=webhooks.DESCRIPTION_MAX, required=False, allow_blank=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1)
    enabled = serializers.BooleanField(required=False)
    rotate_secret = serializers.BooleanField(
        required=False, help_text="true: replace the signing secret with a new one (updates only)."
    )


class WebhookDeliveryOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "message_id",
            "status",
            "attempts",
            "response_status",
            "latency_ms",
            "error",
            "payload",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "finished_at",
        ]
        read_only_fields = fields


_OWNERS_ONLY = "Owners only: 403 for the project's other members, 404 for anyone else."


@extend_schema_view(
    list=extend_schema(summary="The project's webhook endpoints (owners)", description=_OWNERS_ONLY),
    retrieve=extend_schema(summary="One webhook endpoint, with its signing secret (owners)"),
    create=extend_schema(
        request=WebhookIn,
        responses={201: WebhookOut},
        summary="Register a webhook endpoint (owners)",
        description="An https:// address on a public network (checked now and at every delivery), "
        "and the events it receives. The answer holds the `whsec_` secret that signs the messages.",
    ),
    partial_update=extend_schema(
        request=WebhookIn, responses=WebhookOut, summary="Change, enable or disable an endpoint (owners)"
    ),
    update=extend_schema(request=WebhookIn, responses=WebhookOut, summary="Replace an endpoint's settings"),
    destroy=extend_schema(summary="Delete an endpoint and its delivery log (owners)"),
)
@extend_schema(parameters=[OpenApiParameter("project_pk", str, OpenApiParameter.PATH)])
class WebhookViewSet(viewsets.ModelViewSet):
    """A project's signed webhook endpoints (projects.webhooks): owners only."""

    serializer_class = WebhookOut
    pagination_class = None
    filter_backends: list[Any] = []
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    key_scopes = {"*": "admin:projects"}  # the secrets, and where the project's events go

    def project(self) -> Project:
        return access.project_for(self.request.user, self.kwargs["project_pk"], need=Role.OWNER)

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        if getattr(self, "swagger_fake_view", False):
            return WebhookEndpoint.objects.none()
        return webhooks.endpoints_of(self.project())

    def get_object(self) -> WebhookEndpoint:
        return webhooks.endpoint_in(self.project(), self.kwargs["pk"])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.project()
        data = WebhookIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {k: v for k, v in data.validated_data.items() if k in ("url", "description", "events")}
        endpoint = webhooks.endpoint_create(user=request.user, project=project, **fields)
        return Response(WebhookOut(endpoint).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        partial = kwargs.pop("partial", False)
        data = WebhookIn(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        endpoint = webhooks.endpoint_update(user=request.user, endpoint=endpoint, **data.validated_data)
        return Response(WebhookOut(endpoint).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        webhooks.endpoint_delete(user=request.user, endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={202: WebhookDeliveryOut},
        summary="Send a test event (owners)",
        description="Queues a `webhook.ping` message to the endpoint; its outcome shows in the delivery log.",
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, project_pk: str, pk: str) -> Response:
        delivery = webhooks.endpoint_test(user=request.user, endpoint=self.get_object())
        delivery.refresh_from_db()
        return Response(WebhookDeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        summary="An endpoint's delivery log, newest first (owners)",
        description="Each message with its status, attempts, the last response code, latency and error. "
        + _OWNERS_ONLY,
    ),
    retrieve=extend_schema(summary="One delivery (owners)"),
)
@extend_schema(
    parameters=[
        OpenApiParameter("project_pk", str, OpenApiParameter.PATH),
        OpenApiParameter("webhook_pk", str, OpenApiParameter.PATH),
    ]
)
class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The delivery log of one endpoint; a message can be sent again by hand."""

    serializer_class = WebhookDeliveryOut
    filter_backends: list[Any] = []
    key_scopes = {"*": "admin:projects"}

    def endpoint(self) -> WebhookEndpoint:
        project = access.project_for(self.request.user, self.kwargs["project_pk"], need=Role.OWNER)
        return webhooks.endpoint_in(project, self.kwargs["webhook_pk"])

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        return webhooks.deliveries_of(self.endpoint())

    def get_object(self) -> WebhookDelivery:
        return webhooks.delivery_in(self.endpoint(), self.kwargs["pk"])

    @extend_schema(
        request=None,
        responses={202: WebhookDeliveryOut},
        summary="Send a message again (owners)",
        description="A new delivery of the same message (same `webhook-id` and body, signed afresh).",
    )
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, project_pk: str, webhook_pk: str, pk: str) -> Response:
        delivery = webhooks.delivery_resend(user=request.user, delivery=self.get_object())
        delivery.refresh_from_db()
        return Response(WebhookDeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED)
