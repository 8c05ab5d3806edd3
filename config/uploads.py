"""Upload size, enforced while the body streams in rather than after it is stored.

Two guards, both against settings.MAX_UPLOAD_BYTES:

- `BodySizeLimitMiddleware` refuses a request whose Content-Length is above
  the limit plus room for form fields, before a byte of the body is read
  (Django reads no more than Content-Length, so the header cannot understate it);
- `BoundedUploadHandler` (first in FILE_UPLOAD_HANDLERS) stops a multipart
  upload as soon as one file passes the limit, so a request that fits the
  first guard still never spools more than the limit to disk or memory.

Both answer 413: JSON under /api/ (config.api_errors maps `UploadTooLarge`),
a page with the message elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

# Multipart boundaries, a title and the CSRF token: generous room beside the file.
FORM_ALLOWANCE_BYTES = 1024 * 1024


class UploadTooLarge(Exception):
    """A request body or uploaded file above the upload limit."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or too_large_message())


def too_large_message() -> str:
    return (
        f"The upload is larger than the {settings.DOCENT_MAX_UPLOAD_MB} MB limit; "
        "choose a smaller file or split it."
    )


def body_limit() -> int:
    return int(settings.MAX_UPLOAD_BYTES) + FORM_ALLOWANCE_BYTES


class BoundedUploadHandler(FileUploadHandler):
    """Counts each file's bytes as they arrive and stops at the limit."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received = start + len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            raise UploadTooLarge()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def too_large_response(request: HttpRequest, message: str | None = None) -> HttpResponse:
    message = message or too_large_message()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=413)
    else:
        response = render(request, "413.html", {"message": message}, status=413)
    # The rest of the body is not read: tell the client not to reuse the connection.
    response["Connection"] = "close"
    return response


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class BodySizeLimitMiddleware:
    """Refuse oversize bodies up front; turn an oversize file in a page form into a 413 page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _declared_length(request) > body_limit():
            return too_large_response(request)
        if (
            request.method == "POST"
            and not request.path.startswith("/api/")
            and request.content_type == "multipart/form-data"
        ):
            # Parse now, before CSRF reads the form, so an oversize file shows a page
            # instead of escaping as an error. The API parses in DRF (config.api_errors).
            try:
                request.POST  # noqa: B018
            except UploadTooLarge as exc:
                return too_large_response(request, str(exc))
        return self.get_response(request)
