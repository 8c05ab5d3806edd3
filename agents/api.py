"""Agent run API: create a run, then stream its events or poll it until it finishes;
conversations (threads) list their turns."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services, streams
from agents.models import AgentRun, RunKind, RunStatus, Thread
from documents import selectors as document_selectors
from projects import access

RUN_TARGET_GONE = "What the run is about (its document, conversation or project) was deleted meanwhile."


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
    thread = serializers.UUIDField(source="thread_id", read_only=True, allow_null=True)
    citations = CitationOut(many=True, read_only=True)
    finished = serializers.BooleanField(read_only=True)
    answered = serializers.BooleanField(
        read_only=True,
        allow_null=True,
        help_text="false when the documents do not support an answer (the run declined); "
        "null until the run has succeeded.",
    )

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "project",
            "kind",
            "question",
            "document",
            "parent",
            "thread",
            "status",
            "finished",
            "answered",
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
    thread = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Ask in this conversation (as its next turn); without it a question starts a new one.",
    )
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


# One Server-Sent Event of a run's stream (`data` is JSON text).
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["status", "delta", "reset", "done"]},
        "id": {"type": "string"},
        "data": {"type": "string", "description": "JSON: {status, label}, {text}, {} or {run}"},
        "retry": {"type": "integer"},
    },
}


class EventStreamRenderer(renderers.BaseRenderer):
    """text/event-stream: the run's events. Errors are answered as JSON (RunViewSet.handle_exception)."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return streams.frame("error", data)


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

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        # An error is a JSON body, as everywhere in the API, even to an event-stream client.
        if isinstance(getattr(self.request, "accepted_renderer", None), EventStreamRenderer):
            self.request.accepted_renderer = renderers.JSONRenderer()
            self.request.accepted_media_type = "application/json"
        return response

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
        thread = selectors.thread_for(request.user, v["thread"]) if v.get("thread") else None
        try:
            run = services.run_create(
                user=request.user,
                project=project,
                kind=v["kind"],
                question=v.get("question", ""),
                document=document,
                parent=parent,
                thread=thread,
                allow_offline=v["allow_offline"],
            )
        except services.TokenBudgetExceeded as exc:
            return Response(
                {"detail": str(exc), "limit": "llm_tokens_per_month"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        except IntegrityError:  # its document, conversation or project was deleted meanwhile
            return Response({"detail": RUN_TARGET_GONE}, status=status.HTTP_409_CONFLICT)
        return Response(RunOut(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Stream the run's events (Server-Sent Events)",
        description=(
            "text/event-stream: `status` (the run moved on), `delta` (answer text as it is "
            "written), `reset` (discard the text so far: the fallback provider starts over) and "
            "`done` (the whole run, as GET shows it). Send `Last-Event-ID` to resume; after "
            "`done` a reconnect gets 204."
        ),
        parameters=[
            OpenApiParameter("Last-Event-ID", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False)
        ],
        responses={
            (200, "text/event-stream"): SSE_EVENT_SCHEMA,
            204: None,
            400: OpenApiResponse(description="Last-Event-ID is not an id this stream sent"),
        },
    )
    # JSON first: errors are JSON unless the client asked for text/event-stream.
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, EventStreamRenderer])
    def events(self, request: Request, pk: str | None = None) -> HttpResponse:
        return streams.response(request._request, self.get_object())


class TurnOut(RunOut):
    class Meta(RunOut.Meta):
        fields = [f for f in RunOut.Meta.fields if f not in {"project", "thread", "kind", "document"}]
        read_only_fields = fields


class ThreadOut(serializers.ModelSerializer):
    project = serializers.UUIDField(source="project_id", read_only=True)
    created_by = serializers.EmailField(
        source="created_by.email", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Thread
        fields = ["id", "project", "title", "created_by", "turn_count", "created_at", "updated_at"]
        read_only_fields = fields


class ThreadDetailOut(ThreadOut):
    turns = serializers.SerializerMethodField()

    class Meta(ThreadOut.Meta):
        fields = [*ThreadOut.Meta.fields, "turns"]
        read_only_fields = fields

    @extend_schema_field(TurnOut(many=True))
    def get_turns(self, thread: Thread) -> list[dict[str, Any]]:
        turns = thread.turns.select_related("project", "document").order_by("created_at")
        return TurnOut(turns, many=True).data


class ThreadFilter(django_filters.FilterSet):
    project = django_filters.UUIDFilter(field_name="project_id")

    class Meta:
        model = Thread
        fields = ["project"]


class ThreadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Conversations: each is a chain of questions (ask runs); ask in one with `thread` on POST /runs/."""

    serializer_class = ThreadOut
    filterset_class = ThreadFilter
    search_fields = ["title"]
    ordering_fields = ["updated_at", "created_at"]
    ordering = ["-updated_at"]

    def get_queryset(self) -> QuerySet[Thread]:
        project = self.request.query_params.get("project")
        if self.action == "list" and project:
            access.project_for(self.request.user, project)
        return selectors.threads_visible_to(self.request.user)

    def get_object(self) -> Thread:
        return selectors.thread_for(self.request.user, self.kwargs["pk"])

    @extend_schema(responses=ThreadDetailOut)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(ThreadDetailOut(self.get_object()).data)
