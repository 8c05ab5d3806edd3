"""Upload size, enforced while the body streams in rather than after it is stored.

Two guards, both against settings.MAX_UPLOAD_BYTES:

- `BodySizeLimitMiddleware` answers 413 to a request whose Content-Length is
  above the limit plus room for form fields, before a byte of the body is read
  (Django never reads past Content-Length, so the header cannot understate it).
  A body that is not multipart (JSON, a urlencoded form) carries pasted text
  in an escaped form, up to TEXT_ENCODING_FACTOR times its own size (`\u0439`
  for a two-byte letter, `%0A` for a newline): such bodies may be that much
  larger, so text up to the limit always arrives and the service measures the
  text itself (settings.DATA_UPLOAD_MAX_MEMORY_SIZE is the same bound);
- `BoundedUploadHandler` (first in FILE_UPLOAD_HANDLERS) drops a file's bytes
  as soon as they pass the limit, so nothing beyond it is kept in memory or on
  disk. The view then gets an `OversizeUpload` that records the size only, and
  refuses it with the usual field error ("The file is larger than the N MB limit").
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

# Multipart boundaries, a title and the CSRF token: generous room beside the file.
FORM_ALLOWANCE_BYTES = 1024 * 1024


# JSON's \uXXXX escape of a two-byte UTF-8 letter, or %XX per byte in a urlencoded form.
TEXT_ENCODING_FACTOR = 3


def body_limit(content_type: str = "multipart/form-data") -> int:
    """The largest body accepted: files arrive raw in multipart, pasted text may arrive escaped."""
    limit = int(settings.MAX_UPLOAD_BYTES)
    if not content_type.lower().startswith("multipart/"):
        limit *= TEXT_ENCODING_FACTOR
    return limit + FORM_ALLOWANCE_BYTES


def too_large_message() -> str:
    return (
        f"The upload is larger than the {settings.DOCENT_MAX_UPLOAD_MB} MB limit; "
        "choose a smaller file or split it."
    )


class OversizeUpload(UploadedFile):
    """Stands for a file that passed the limit: its size is known, its bytes were dropped."""

    def __init__(self, name: str, content_type: str, size: int) -> None:
        super().__init__(io.BytesIO(), name or "upload", content_type, size)


class BoundedUploadHandler(FileUploadHandler):
    """Counts each file's bytes as they arrive and keeps none past the limit."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.over_limit = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.over_limit = True
        # None stops the chunk here: the handlers that store files never see it.
        return None if self.over_limit else raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if self.over_limit:
            return OversizeUpload(self.file_name or "upload", self.content_type or "", file_size)
        return None  # within the limit: the next handler returns the stored file


def too_large_response(request: HttpRequest) -> HttpResponse:
    message = too_large_message()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=413)
    else:
        response = render(request, "413.html", {"message": message}, status=413)
    # The body is left unread: the connection cannot carry another request.
    response["Connection"] = "close"
    return response


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class BodySizeLimitMiddleware:
    """Refuse a body above the upload limit before reading any of it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _declared_length(request) > body_limit(request.META.get("CONTENT_TYPE", "")):
            return too_large_response(request)
        return self.get_response(request)
