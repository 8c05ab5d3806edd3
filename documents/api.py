"""Document and search API: viewsets that wire access, selectors and services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import page_cache
from documents import locations, search, selectors, services
from documents.extraction import fetching
from documents.models import Chunk, Document, DocumentStatus
from projects import access
from projects.models import Role


class DocumentOut(serializers.ModelSerializer):
    project = serializers.UUIDField(source="project_id", read_only=True)
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id",
            "project",
            "title",
            "external_id",
            "source",
            "original_filename",
            "format",
            "content_type",
            "size_bytes",
            "status",
            "error",
            "chunk_count",
            "content_hash",
            "tags",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_tags(self, obj: Document | Mapping[str, Any]) -> list[str]:
        # A list page passes `.values(*DOCUMENT_OUT_COLUMNS)` rows, the other actions documents.
        metadata = obj["metadata"] if isinstance(obj, Mapping) else obj.metadata
        return list((metadata or {}).get("tags", []))


# The columns DocumentOut reads: a list page loads nothing else.
DOCUMENT_OUT_COLUMNS = [
    "id", "project_id", "title", "external_id", "source", "original_filename", "format", "content_type",
    "size_bytes", "status", "error", "chunk_count", "content_hash", "metadata", "created_at", "updated_at",
]  # fmt: skip


class DocumentIn(serializers.Serializer):
    project = serializers.UUIDField()
    file = serializers.FileField(required=False, allow_empty_file=True, use_url=False)
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=300)
    url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=fetching.MAX_URL_CHARS,
        help_text="A web page to fetch now and add (instead of a file or text).",
    )
    replace = serializers.BooleanField(
        required=False,
        default=False,
        help_text="When the project already holds these exact bytes: true makes this upload that "
        "document (same id, new file name); without it the answer is 409 naming the document.",
    )
    # Which one of file, text and url was sent is checked by services.document_create.


class DuplicateOut(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    existing = DocumentOut()


class LocationOut(serializers.Serializer):
    """Where a passage is in its file (documents.locations); only the fields of its kind are present."""

    kind = serializers.ChoiceField(
        choices=list(locations.KINDS),
        help_text="page (PDF, multi-page TIFF), slide (PPTX), sheet (XLSX), rows (CSV), chapter (EPUB), "
        "section (DOCX, HTML, Markdown: the heading path)",
    )
    label = serializers.CharField(
        help_text='as the pages show it: "p. 12", "Slide 4 (notes)", "Budget, rows 30–32"'
    )
    page = serializers.IntegerField(required=False, help_text="first page, 1-based")
    page_end = serializers.IntegerField(required=False, help_text="last page, when the passage spans pages")
    ocr = serializers.BooleanField(required=False, help_text="the page was read by OCR (a scan)")
    slide = serializers.IntegerField(required=False, help_text="first slide, 1-based")
    slide_end = serializers.IntegerField(
        required=False, help_text="last slide, when the passage spans slides"
    )
    notes = serializers.BooleanField(required=False, help_text="the passage is in the slide's speaker notes")
    sheet = serializers.CharField(required=False, help_text="the worksheet's name")
    rows = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=2,
        max_length=2,
        required=False,
        help_text="[first, last] row numbers as the sheet (or the CSV file's records) number them",
    )
    heading = serializers.CharField(
        required=False, help_text='the chapter title, or the heading path "Warranty > Returns"'
    )
    table = serializers.BooleanField(required=False, help_text="the passage is in a table")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {**instance, "label": locations.label(instance)}


class ChunkOut(serializers.ModelSerializer):
    document = serializers.UUIDField(source="document_id", read_only=True)
    location = LocationOut(
        source="place", allow_null=True, read_only=True, help_text="where the chunk is in the file"
    )

    class Meta:
        model = Chunk
        fields = ["id", "document", "index", "text", "start", "end", "token_count", "location"]
        read_only_fields = fields


class DocumentFilter(django_filters.FilterSet):
    project = django_filters.UUIDFilter(field_name="project_id")
    status = django_filters.ChoiceFilter(choices=DocumentStatus.choices)
    tag = django_filters.CharFilter(method="filter_tag")
    external_id = django_filters.CharFilter()

    class Meta:
        model = Document
        fields = ["project", "status", "external_id", "format"]

    def filter_tag(self, queryset: QuerySet[Document], name: str, value: str) -> QuerySet[Document]:
        return queryset.filter(metadata__tags__contains=[value])


class DocumentRenameIn(serializers.Serializer):
    title = serializers.CharField(max_length=300)

    def to_internal_value(self, data: Any) -> Any:
        others = sorted(set(data) - {"title"}) if hasattr(data, "keys") else []
        if others:
            raise serializers.ValidationError(
                {name: ["Only the title of a document can be changed."] for name in others}
            )
        return super().to_internal_value(data)


class DocumentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Documents in the caller's projects: upload a file, paste text or add a web page by URL."""

    serializer_class = DocumentOut
    filterset_class = DocumentFilter
    search_fields = ["title", "external_id"]
    ordering_fields = ["created_at", "updated_at", "title", "status", "size_bytes"]
    ordering = ["-created_at"]
    # Every query parameter a list page depends on (filters, search, ordering, page).
    LIST_PARAMS = frozenset({"project", "page", "search", "ordering", *DocumentFilter.base_filters})

    def get_queryset(self) -> QuerySet[Document]:
        return selectors.documents_visible_to(self.request.user)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project_id = request.query_params.get("project")
        if not project_id:
            return Response(self._page(self.get_queryset()))
        # An unknown, foreign or malformed project is a 404, never an empty list.
        project = access.project_for(request.user, project_id)
        # A project's pages are the same for every member who may read them: they
        # are cached until one of its documents changes (documents_version).
        data = page_cache.cached(
            request,
            scope=f"documents:{project.pk}",
            version=project.documents_version,
            params=self.LIST_PARAMS,
            build=lambda: self._page(Document.objects.filter(project_id=project.pk)),
        )
        return Response(data)

    def _page(self, documents: QuerySet[Document]) -> dict[str, Any]:
        rows = self.filter_queryset(documents).values(*DOCUMENT_OUT_COLUMNS)
        page = self.paginate_queryset(rows)
        assert page is not None  # the API always paginates
        return self.get_paginated_response(DocumentOut(page, many=True).data).data

    def get_object(self) -> Document:
        need = Role.EDITOR if self.action in {"destroy", "reindex", "partial_update"} else Role.VIEWER
        return selectors.document_for(self.request.user, self.kwargs["pk"], need=need)

    @extend_schema(
        request={"multipart/form-data": DocumentIn, "application/json": DocumentIn},
        responses={201: DocumentOut, 200: DocumentOut, 409: DuplicateOut},
    )
    def create(self, request: Request) -> Response:
        """Add a document. The same bytes again: 409 naming the document that holds them, or,
        with `replace=true`, 200 with that document, which the upload has become."""
        data = DocumentIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = access.project_for(request.user, v["project"], need=Role.EDITOR)
        try:
            doc = services.document_create(
                user=request.user,
                project=project,
                upload=v.get("file"),
                text=v.get("text"),
                url=v.get("url"),
                title=v.get("title", ""),
                external_id=v.get("external_id", ""),
                replace=v["replace"],
            )
        except services.DuplicateDocument as exc:
            body = {
                "detail": " ".join(exc.messages),
                "code": "duplicate",
                "existing": DocumentOut(exc.existing).data,
            }
            return Response(body, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_200_OK if doc.replaced else status.HTTP_201_CREATED
        return Response(DocumentOut(doc).data, status=code)

    @extend_schema(request=DocumentRenameIn, responses={200: DocumentOut})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Rename the document: the title is the one field that changes (editors and owners)."""
        data = DocumentRenameIn(data=request.data)
        data.is_valid(raise_exception=True)
        doc = services.document_rename(
            user=request.user, document=self.get_object(), title=data.validated_data["title"]
        )
        return Response(DocumentOut(doc).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.document_delete(user=request.user, document=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: DocumentOut})
    @action(detail=True, methods=["post"])
    def reindex(self, request: Request, pk: str | None = None) -> Response:
        doc = services.document_reindex(user=request.user, document=self.get_object())
        return Response(DocumentOut(doc).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> HttpResponse:
        doc = self.get_object()
        if doc.file:
            return selectors.document_file_download(document=doc)
        response = HttpResponse(doc.pasted_text, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="document.txt"'
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(responses=ChunkOut(many=True))
    @action(detail=True, methods=["get"])
    def chunks(self, request: Request, pk: str | None = None) -> Response:
        chunks = selectors.chunks_of(self.get_object())
        page = self.paginate_queryset(chunks)
        return self.get_paginated_response(ChunkOut(page, many=True).data)


class SearchIn(serializers.Serializer):
    q = serializers.CharField(max_length=1000, trim_whitespace=True)
    k = serializers.IntegerField(min_value=1, default=10)
    mode = serializers.ChoiceField(choices=list(search.MODES), default="hybrid")

    def validate_k(self, value: int) -> int:
        if value > settings.SEARCH_MAX_K:
            raise serializers.ValidationError(f"k must be between 1 and {settings.SEARCH_MAX_K}.")
        return value


class AllSearchIn(SearchIn):
    project = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        help_text="Only these projects (repeat to name several).",
    )

    def to_internal_value(self, data: Any) -> Any:
        # Query strings repeat a key for a list: ?project=a&project=b.
        if hasattr(data, "getlist"):
            data = {**data.dict(), "project": data.getlist("project")} if "project" in data else data.dict()
        return super().to_internal_value(data)


class HitOut(serializers.Serializer):
    document = serializers.CharField(source="document_id")
    title = serializers.CharField(source="document_title")
    external_id = serializers.CharField()
    project = serializers.CharField(source="project_id")
    project_title = serializers.CharField()
    chunk = serializers.IntegerField(source="chunk_id")
    text = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    score = serializers.FloatField(
        help_text="the fused rank score: the sum of 1/(DOCENT_SEARCH_RRF_K + rank) over the rankings "
        "that found the hit; it depends only on the searched projects' own documents"
    )
    location = LocationOut(allow_null=True, help_text="where the passage is in the file; null for plain text")


def _results(params: dict[str, Any], found: search.Results) -> dict[str, Any]:
    return {
        "query": params["q"],
        "mode": params["mode"],
        "results": HitOut(found.hits, many=True).data,
        "left_out": found.left_out,
    }


SEARCH_RESULTS_FIELDS = {
    "query": serializers.CharField(),
    "mode": serializers.CharField(),
    "results": HitOut(many=True),
    "left_out": serializers.IntegerField(help_text="hits too weak to show, left out of `results`"),
}


class SearchView(APIView):
    """Hybrid (dense + BM25, RRF-fused), dense or lexical search over a project."""

    key_scopes = {"*": "search"}  # the API-key scope it needs (accounts/scopes.py)

    @extend_schema(
        parameters=[
            OpenApiParameter("project_pk", str, OpenApiParameter.PATH),
            OpenApiParameter("q", str, required=True),
            OpenApiParameter("k", int, required=False),
            OpenApiParameter("mode", str, enum=list(search.MODES), required=False),
        ],
        responses=inline_serializer("SearchResults", SEARCH_RESULTS_FIELDS),
    )
    def get(self, request: Request, project_pk: str) -> Response:
        project = access.project_for(request.user, project_pk)
        params = SearchIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        v = params.validated_data
        # project_for has checked access: no second membership query.
        found = search.search(project_ids=[project.pk], query=v["q"], k=v["k"], mode=v["mode"])
        return Response(_results(v, found))


class AllSearchView(APIView):
    """Search every project the caller can read (or those named by `project`); each hit names its project."""

    key_scopes = {"*": "search"}  # the API-key scope it needs (accounts/scopes.py)

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True),
            OpenApiParameter("k", int, required=False),
            OpenApiParameter("mode", str, enum=list(search.MODES), required=False),
            OpenApiParameter(
                "project",
                {"type": "array", "items": {"type": "string", "format": "uuid"}},
                required=False,
                explode=True,
            ),
        ],
        responses=inline_serializer("AllSearchResults", SEARCH_RESULTS_FIELDS),
    )
    def get(self, request: Request) -> Response:
        params = AllSearchIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        v = params.validated_data
        found = search.search_for(
            user=request.user, project_ids=v.get("project"), query=v["q"], k=v["k"], mode=v["mode"]
        )
        return Response(_results(v, found))


# --- bulk imports ------------------------------------------------------------------


class ImportFailureOut(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=selectors.IMPORT_FAILURE_KINDS,
        help_text="record: never became a document; ingest: a document whose ingest failed",
    )
    source = serializers.CharField(help_text="the record's file and line, or the document's title")
    reason = serializers.CharField()


class ImportProgressOut(serializers.Serializer):
    id = serializers.UUIDField()
    source = serializers.CharField(help_text="the paths imported")
    started_by = serializers.CharField(help_text='the importer\'s email ("" once the account is gone)')
    started_at = serializers.DateTimeField()
    creating_finished_at = serializers.DateTimeField(
        allow_null=True, help_text="when the import stopped creating documents (null while it runs)"
    )
    created = serializers.IntegerField(help_text="documents created")
    skipped = serializers.IntegerField(help_text="records already in the project")
    failed_records = serializers.IntegerField(help_text="records that never became documents")
    ready = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="documents whose ingest failed")
    pending = serializers.IntegerField()
    processing = serializers.IntegerField()
    last_ready_at = serializers.DateTimeField(allow_null=True)
    rate = serializers.FloatField(
        help_text="documents ready per second, from the start to the last one ready (to now while running)"
    )
    finished = serializers.BooleanField(help_text="done creating, and nothing left to ingest")
    failures = ImportFailureOut(many=True, help_text="the first few failures of each kind")
    more_failures = serializers.IntegerField(help_text="failures not listed")


@extend_schema(parameters=[OpenApiParameter("project_pk", str, OpenApiParameter.PATH)])
class ImportViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """A project's bulk imports, newest first, with their progress (members)."""

    serializer_class = ImportProgressOut
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            from documents.models import ImportBatch

            return ImportBatch.objects.none()
        project = access.project_for(self.request.user, self.kwargs["project_pk"])
        return selectors.imports_of(project)

    @extend_schema(summary="A project's bulk imports and their progress")
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None  # the API always paginates
        progress = selectors.imports_progress(list(page))
        response = self.get_paginated_response(ImportProgressOut(progress, many=True).data)
        # Never from a cache: the figures move without the project's documents_version.
        response["Cache-Control"] = "max-age=0, no-cache, no-store, must-revalidate, private"
        return response
