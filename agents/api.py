"""Agent run API: create a run, then stream its events or poll it until it finishes;
conversations (threads) list their turns."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents import feedback as run_feedback
from agents import presenting, selectors, services, streams
from agents.models import AgentRun, Rating, RunFeedback, RunKind, RunStatus, Thread
from documents import selectors as document_selectors
from documents.api import LocationOut
from projects import access
from projects.models import Role

RUN_TARGET_GONE = "What the run is about (its document, conversation or project) was deleted meanwhile."


class CitationOut(serializers.Serializer):
    document = serializers.CharField()
    chunk = serializers.IntegerField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    quote = serializers.CharField(allow_blank=True)
    deleted = serializers.BooleanField(
        default=False, help_text="Its document was deleted; the quote was removed with it (empty)."
    )
    location = LocationOut(allow_null=True, help_text="where the quote is in the file; null for plain text")


class RunOut(serializers.ModelSerializer):
    project = serializers.UUIDField(source="project_id", read_only=True)
    document = serializers.UUIDField(source="document_id", read_only=True, allow_null=True)
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    thread = serializers.UUIDField(source="thread_id", read_only=True, allow_null=True)
    citations = serializers.SerializerMethodField()
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

    @extend_schema_field(CitationOut(many=True))
    def get_citations(self, run: AgentRun) -> Any:
        return CitationOut(_placed(run)[0], many=True).data

    def to_representation(self, run: AgentRun) -> dict[str, Any]:
        data = super().to_representation(run)
        output = data.get("output")
        if isinstance(output, dict) and isinstance(output.get("nearest"), list):
            # Each nearest passage says where it is, as citations do (looked up for older runs).
            nearest = []
            for item in _placed(run)[1]:
                label = item.pop("location_label", "")
                if item["location"] is not None:
                    item["location"] = {**item["location"], "label": label}
                nearest.append(item)
            data["output"] = {**output, "nearest": nearest}
        return data

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> serializers.ListSerializer:
        kwargs.setdefault("child", cls())
        return _RunsOut(*args, **kwargs)


def _raw(run: AgentRun) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    citations = run.citations if isinstance(run.citations, list) else []
    nearest = run.output.get("nearest") if isinstance(run.output, dict) else None
    return (
        [dict(c) for c in citations if isinstance(c, dict)],
        [dict(i) for i in nearest if isinstance(i, dict)] if isinstance(nearest, list) else [],
    )


def _place(runs: list[AgentRun]) -> None:
    """Every run's citations and nearest passages with their places, looked up (for runs from
    before places were recorded) in one query for all the runs."""
    items = []
    for run in runs:
        run._placed = _raw(run)  # type: ignore[attr-defined]
        items += [*run._placed[0], *run._placed[1]]  # type: ignore[attr-defined]
    presenting.with_locations(items, project_ids={run.project_id for run in runs})


def _placed(run: AgentRun) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not hasattr(run, "_placed"):
        _place([run])
    return run._placed  # type: ignore[attr-defined,no-any-return]


class _RunsOut(serializers.ListSerializer):
    """A page of runs: their places looked up together, not one query per run."""

    def to_representation(self, data: Any) -> list[Any]:
        runs = list(data.all() if hasattr(data, "all") else data)
        _place(runs)
        return super().to_representation(runs)


class FeedbackIn(serializers.Serializer):
    rating = serializers.ChoiceField(
        choices=Rating.choices,
        help_text="up: the answer helped; down: it did not.",
        error_messages={"invalid_choice": run_feedback.RATING_CHOICE},
    )
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=run_feedback.NOTE_MAX,
        help_text="Optional: what was good or wrong about the answer. Sending none clears it.",
        error_messages={"max_length": f"A note has at most {run_feedback.NOTE_MAX:,} characters."},
    )


class FeedbackOut(serializers.ModelSerializer):
    run = serializers.UUIDField(source="run_id", read_only=True)

    class Meta:
        model = RunFeedback
        fields = ["run", "rating", "note", "created_at", "updated_at"]
        read_only_fields = fields


class RaterOut(serializers.Serializer):
    email = serializers.EmailField()
    name = serializers.CharField(allow_blank=True)


class ProjectFeedbackOut(serializers.ModelSerializer):
    """A rating with the answer it rates, for the project's owners."""

    run = serializers.UUIDField(source="run_id", read_only=True)
    thread = serializers.UUIDField(source="run.thread_id", read_only=True, allow_null=True)
    kind = serializers.CharField(source="run.kind", read_only=True)
    question = serializers.CharField(source="run.question", read_only=True)
    answer = serializers.CharField(source="run.answer", read_only=True)
    citations = CitationOut(source="run.citations", many=True, read_only=True)
    user = RaterOut(read_only=True)

    class Meta:
        model = RunFeedback
        fields = [
            "id",
            "run",
            "thread",
            "kind",
            "question",
            "answer",
            "citations",
            "rating",
            "note",
            "user",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class FeedbackFilter(django_filters.FilterSet):
    rating = django_filters.ChoiceFilter(choices=Rating.choices)

    class Meta:
        model = RunFeedback
        fields = ["rating"]


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

    key_scopes = {"create": "ask"}  # API-key scopes beyond the default (accounts/scopes.py)

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

    @extend_schema(
        methods=["GET"],
        summary="Your rating of the answer",
        description="Your own rating and note; 404 when you have not rated it.",
        responses={200: FeedbackOut},
    )
    @extend_schema(
        methods=["POST"],
        summary="Rate the answer: thumbs up or down, with an optional note",
        description="Anyone who can read the run may rate it once it has succeeded (400 before); "
        "sending again changes the rating and note. 201 for a new rating, 200 for a changed one. "
        "A rating is for the project's owners to read (GET /api/v1/projects/{id}/feedback/); it "
        "counts toward nothing else.",
        request=FeedbackIn,
        responses={200: FeedbackOut, 201: FeedbackOut},
    )
    @extend_schema(
        methods=["DELETE"],
        summary="Remove your rating of the answer",
        description="204 when it is removed; 404 when you had not rated it.",
        responses={204: None},
    )
    @action(detail=True, methods=["get", "post", "delete"], url_path="feedback")
    def feedback(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()  # first: someone who may not see it learns nothing from a 400
        if request.method == "GET":
            mine = run_feedback.feedback_of(user=request.user, run=run)
            if mine is None:
                raise exceptions.NotFound()
            return Response(FeedbackOut(mine).data)
        if request.method == "DELETE":
            if not run_feedback.feedback_clear(user=request.user, run=run):
                raise exceptions.NotFound()
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = FeedbackIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            mine, created = run_feedback.feedback_set(user=request.user, run=run, **data.validated_data)
        except DjangoValidationError as exc:
            if hasattr(exc, "error_dict"):
                raise
            raise exceptions.ValidationError({"detail": " ".join(exc.messages)}) from None
        return Response(
            FeedbackOut(mine).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


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
        fields = ["id", "project", "title", "created_by", "shared", "turn_count", "created_at", "updated_at"]
        read_only_fields = fields
        extra_kwargs = {
            "shared": {
                "help_text": "true: every member of the project sees it; false: only its starter "
                "and the project's owners."
            },
            "updated_at": {"help_text": "When its latest question was asked."},
        }


class ThreadDetailOut(ThreadOut):
    turns = serializers.SerializerMethodField()

    class Meta(ThreadOut.Meta):
        fields = [*ThreadOut.Meta.fields, "turns"]
        read_only_fields = fields

    @extend_schema_field(TurnOut(many=True))
    def get_turns(self, thread: Thread) -> list[dict[str, Any]]:
        turns = thread.turns.select_related("project", "document").order_by("created_at")
        return TurnOut(turns, many=True).data


class ThreadPatchIn(serializers.Serializer):
    title = serializers.CharField(
        required=False,
        max_length=services.THREAD_TITLE_MAX,
        help_text="A new title (its starter or a project owner).",
        error_messages={
            "blank": "A title is required.",
            "max_length": "A title has at most {max_length} characters.",
        },
    )
    shared = serializers.BooleanField(
        required=False,
        help_text="Share with every member of the project, or make private again (its starter only).",
    )

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            others = sorted(set(data) - set(self.fields))
            if others:
                raise serializers.ValidationError(
                    {name: ["Only the title and shared of a conversation can be changed."] for name in others}
                )
        return super().to_internal_value(data)


class ThreadFilter(django_filters.FilterSet):
    project = django_filters.UUIDFilter(field_name="project_id")

    class Meta:
        model = Thread
        fields = ["project"]


class ThreadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Conversations: each is a chain of questions (ask runs); ask in one with `thread` on POST /runs/.

    A conversation is private to the person who started it unless they share it with the
    project; the project's owners see all of them.
    """

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

    @extend_schema(
        request=ThreadPatchIn,
        responses={200: ThreadOut},
        description="Rename (its starter or a project owner) and/or share or make private (its "
        "starter only). All or nothing: a refused part changes nothing.",
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        thread = self.get_object()  # first: someone who may not see it learns nothing from a 400
        data = ThreadPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            raise exceptions.ValidationError({"detail": "Send the title or shared (or both) to change."})
        thread = services.thread_update(user=request.user, thread=thread, **data.validated_data)
        return Response(ThreadOut(thread).data)

    @extend_schema(
        responses={204: None},
        description="Delete the conversation and every turn of it (its starter or a project owner). "
        "A turn still queued or being answered does not block it: its result is dropped, and its "
        "event stream ends with `done` saying the run was deleted.",
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.thread_delete(user=request.user, thread=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[OpenApiParameter("project_pk", str, OpenApiParameter.PATH)])
class ProjectFeedbackViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The project's rated answers, for its owners (403 for its other members): each rating
    with the question, the answer and its citations; `?rating=up` or `down` to filter."""

    serializer_class = ProjectFeedbackOut
    filterset_class = FeedbackFilter
    search_fields = ["note", "run__question"]
    ordering_fields = ["updated_at", "created_at"]
    ordering = ["-updated_at"]

    def get_queryset(self) -> QuerySet[RunFeedback]:
        if getattr(self, "swagger_fake_view", False):
            return RunFeedback.objects.none()
        project = access.project_for(self.request.user, self.kwargs["project_pk"], need=Role.OWNER)
        return run_feedback.project_feedback(user=self.request.user, project=project)
