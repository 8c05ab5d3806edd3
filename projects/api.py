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

from core import ratelimit
from projects import access, invitations, selectors, services
from projects.models import Invitation, Membership, Project, ProjectStatus, Role


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
