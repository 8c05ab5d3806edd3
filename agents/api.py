"""Agent run API: create a run, then poll it until it finishes."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.models import AgentRun, RunKind, RunStatus
from documents import selectors as document_selectors
from projects import access


class CitationOut(serializers.Serializer):
    document = serializers.CharField()
    chunk = serializers.IntegerField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    quote = serializers.CharField()


class RunOut(serializers.ModelSerializer):
    project = serializers.UUIDField(source="project_id", read_only=True)
    document = serializers.UUIDField(source="document_id", read_only=True, allow_null=True)
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    citations = CitationOut(many=True, read_only=True)
    finished = serializers.BooleanField(read_only=True)

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "project",
            "kind",
            "question",
            "document",
            "parent",
            "status",
            "finished",
            "answer",
            "output",
            "citations",
            "provider",
            "model",
            "degraded",
            "degraded_reason",
            "input_tokens",
            "output_tokens",
            "latency_ms",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunIn(serializers.Serializer):
    project = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=RunKind.choices)
    question = serializers.CharField(required=False, allow_blank=True, max_length=services.QUESTION_MAX)
    document = serializers.UUIDField(required=False, allow_null=True)
    parent = serializers.UUIDField(required=False, allow_null=True)
    allow_offline = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Use the offline provider when the Gemini token budget is spent.",
    )


class RunFilter(django_filters.FilterSet):
    project = django_filters.UUIDFilter(field_name="project_id")
    document = django_filters.UUIDFilter(field_name="document_id")
    kind = django_filters.ChoiceFilter(choices=RunKind.choices)
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)

    class Meta:
        model = AgentRun
        fields = ["project", "document", "kind", "status"]


class RunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Ask a question, summarise, or extract tags/keywords/entities; runs finish in the worker."""

    serializer_class = RunOut
    filterset_class = RunFilter
    search_fields = ["question"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self) -> QuerySet[AgentRun]:
        project = self.request.query_params.get("project")
        if self.action == "list" and project:
            access.project_for(self.request.user, project)
        return selectors.runs_visible_to(self.request.user)

    def get_object(self) -> AgentRun:
        return selectors.run_for(self.request.user, self.kwargs["pk"])

    @extend_schema(
        request=RunIn, responses={201: RunOut, 429: OpenApiResponse(description="Token budget spent")}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = RunIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = access.project_for(request.user, v["project"])
        document = None
        if v.get("document"):
            document = document_selectors.document_for(request.user, v["document"])
        parent = selectors.run_for(request.user, v["parent"]) if v.get("parent") else None
        try:
            run = services.run_create(
                user=request.user,
                project=project,
                kind=v["kind"],
                question=v.get("question", ""),
                document=document,
                parent=parent,
                allow_offline=v["allow_offline"],
            )
        except services.TokenBudgetExceeded as exc:
            return Response(
                {"detail": str(exc), "limit": "gemini_tokens_per_month"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        return Response(RunOut(run).data, status=status.HTTP_201_CREATED)
