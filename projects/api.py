"""Project and membership API: viewsets that wire access, selectors and services."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from config.serialization import iso_datetime
from projects import access, selectors, services
from projects.models import Membership, Project, ProjectStatus, Role


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

    def to_representation(self, instance: Project) -> dict[str, Any]:
        # Built directly, as DRF would field by field (test_api holds them equal),
        # at a fraction of the cost on every list page.
        return {
            "id": str(instance.id),
            "title": instance.title,
            "description": instance.description,
            "status": instance.status,
            "role": self.get_role(instance),
            "document_count": self.get_document_count(instance),
            "created_at": iso_datetime(instance.created_at),
            "updated_at": iso_datetime(instance.updated_at),
        }


class ProjectIn(serializers.Serializer):
    title = serializers.CharField(max_length=200, allow_blank=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10000)
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


@extend_schema_view(
    create=extend_schema(request=MemberIn, responses={201: MemberOut}),
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
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add(user=request.user, project=project, **data.validated_data)
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)

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
