"""Staff admin for documents (re-index through the services) and their chunks (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from documents import selectors, services
from documents.models import Chunk, Document, ImportBatch

TEXT_PREVIEW_CHARS = 2000
EXCERPT_CHARS = 80


def _preview(text: str, limit: int = TEXT_PREVIEW_CHARS) -> str:
    if not text:
        return "—"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters in all)"


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "project",
        "status",
        "format",
        "chunk_count",
        "external_id",
        "file_link",
        "created_at",
    )
    list_filter = ("status", "format", "project")
    search_fields = ("title", "external_id")
    list_select_related = ("project",)
    date_hierarchy = "created_at"
    actions = ("reindex_documents",)
    fieldsets = (
        (
            None,
            {"fields": ("id", "project", "title", "external_id", "source", "metadata")},
        ),
        (
            "Content",
            {
                "fields": (
                    "file_link",
                    "original_filename",
                    "content_type",
                    "format",
                    "size_bytes",
                    "pasted_text_preview",
                    "text_preview",
                )
            },
        ),
        (
            "Processing",
            {
                "fields": (
                    "status",
                    "error",
                    "attempts",
                    "claimed_by",
                    "priority",
                    "batch",
                    "chunk_count",
                    "content_hash",
                    "indexed_hash",
                    "status_changed_at",
                )
            },
        ),
        ("History", {"fields": ("uploaded_by", "created_at", "updated_at")}),
    )
    # Everything the pipeline computes is read-only; moving a document between
    # projects would strand its chunks, so the project is too.
    readonly_fields = (
        "id",
        "project",
        "file_link",
        "original_filename",
        "content_type",
        "format",
        "size_bytes",
        "pasted_text_preview",
        "text_preview",
        "status",
        "error",
        "attempts",
        "claimed_by",
        "priority",
        "batch",
        "chunk_count",
        "content_hash",
        "indexed_hash",
        "status_changed_at",
        "uploaded_by",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: Any) -> QuerySet[Document]:
        # The full texts can be megabytes; only the change page reads them.
        # (No select_related here: it would switch off list_select_related.)
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match and (match.url_name or "").endswith(("_changelist", "_download")):
            qs = qs.defer("text", "pasted_text")
        return qs

    def has_add_permission(self, request: Any) -> bool:
        # Documents come in through uploads, the API and import_documents, which hash and enqueue.
        return False

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "<path:object_id>/download/",
            self.admin_site.admin_view(self.download_view),
            name="documents_document_download",
        )
        return [download, *super().get_urls()]  # before the catch-all "<path:object_id>/"

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """The stored file, for staff who may view the document (uploads are not served at MEDIA_URL)."""
        doc = self.get_object(request, unquote(object_id))
        if doc is None:
            raise Http404("No such document.")
        if not self.has_view_or_change_permission(request, doc):
            raise PermissionDenied
        return selectors.document_file_download(document=doc)

    @admin.display(description="file")
    def file_link(self, obj: Document) -> str:
        if not obj.file:
            return "—"
        url = reverse(f"{self.admin_site.name}:documents_document_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.original_filename or "Download")

    @admin.display(description="extracted text")
    def text_preview(self, obj: Document) -> str:
        return _preview(obj.text)

    @admin.display(description="pasted text")
    def pasted_text_preview(self, obj: Document) -> str:
        return _preview(obj.pasted_text)

    @admin.action(description="Re-index selected documents", permissions=["change"])
    def reindex_documents(self, request: Any, queryset: QuerySet[Document]) -> None:
        count = services.documents_reindex(documents=queryset.defer("text", "pasted_text"))
        self.message_user(
            request,
            f"Queued {count} document{'s' if count != 1 else ''} for re-indexing.",
            messages.SUCCESS,
        )

    def get_deleted_objects(self, objs: Any, request: Any) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Chunks are read-only on their own but go with their document.
        perms_needed.discard(Chunk._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def save_model(self, request: Any, obj: Document, form: Any, change: bool) -> None:
        services.document_save_edits(document=obj, fields=list(form.changed_data))

    def delete_model(self, request: Any, obj: Document) -> None:
        services.document_purge(document=obj)

    def delete_queryset(self, request: Any, queryset: QuerySet[Document]) -> None:
        for doc in queryset.defer("text", "pasted_text"):
            services.document_purge(document=doc)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = (
        "document",
        "index",
        "start",
        "end",
        "token_count",
        "vector",
        "excerpt",
    )
    list_filter = ("project",)
    search_fields = ("text",)
    list_select_related = ("document", "project")
    # `embedding` (raw float32 bytes) is never shown; `vector` names its size instead.
    fields = (
        "document",
        "project",
        "index",
        "start",
        "end",
        "token_count",
        "vector",
        "text",
    )
    readonly_fields = fields
    exclude = ("embedding",)

    def get_queryset(self, request: Any) -> QuerySet[Chunk]:
        return (
            super()
            .get_queryset(request)
            .defer("embedding", "document__text", "document__pasted_text")
            .select_related("document", "project")
        )

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        # Chunks belong to their document's ingest; re-index the document instead.
        return False

    @admin.display(description="embedding", ordering="dim")
    def vector(self, obj: Chunk) -> str:
        return f"{obj.dim} floats" if obj.dim else "—"

    @admin.display(description="text")
    def excerpt(self, obj: Chunk) -> str:
        return Truncator(" ".join(obj.text.split())).chars(EXCERPT_CHARS)


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    """Bulk imports, read-only: what each created, skipped and could not read."""

    list_display = (
        "source",
        "project",
        "started_by",
        "created",
        "skipped",
        "failed_records",
        "started_at",
        "finished_at",
    )
    list_filter = ("project",)
    search_fields = ("source",)
    list_select_related = ("project", "started_by")
    fields = list_display + ("failures",)
    readonly_fields = fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
