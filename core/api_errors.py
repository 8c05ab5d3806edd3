"""One JSON error shape for the API, including Django's own exceptions and
the errors raised before a view runs (an unknown URL, a bad request)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core import ratelimit


class Conflict(exceptions.APIException):
    """409: the request clashes with the current state (a twin created a moment ago)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def _is_conflict(exc: DjangoValidationError) -> bool:
    """A service marks a clash with code="conflict" (documents.services: a duplicate external
    id, a re-index of a document already queued)."""
    if hasattr(exc, "error_dict"):
        errors = [e for group in exc.error_dict.values() for e in group]
    else:
        errors = list(exc.error_list)
    return bool(errors) and all(getattr(e, "code", None) == "conflict" for e in errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        if _is_conflict(exc) and not hasattr(exc, "error_dict"):
            detail = " ".join(exc.messages)  # a clash with no field at fault: {"detail": "..."}
        exc = Conflict(detail) if _is_conflict(exc) else exceptions.ValidationError(detail)
    elif isinstance(exc, ObjectDoesNotExist):
        # A service found the object gone (another request deleted it a moment ago).
        exc = exceptions.NotFound()
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        # Refused before DRF's throttle ran: still counts against the anonymous allowance.
        refusal = ratelimit.unauthenticated_refusal(context.get("request"))
        if refusal is not None:
            exc = ratelimit.RateLimited(refusal)
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_404_NOT_FOUND:
        response.data = {"detail": "Not found."}
    if response is not None and isinstance(exc, ratelimit.RateLimited):
        response.data = {"detail": str(exc.detail), "limit": exc.limit}
    if (
        response is not None
        and isinstance(exc, exceptions.APIException)
        and getattr(exc, "names_its_code", False)
    ):
        # A refusal the client acts on by its kind (403 email_unverified: confirm the address).
        response.data = {"detail": str(exc.detail), "code": exc.default_code}
    return response


# Django's error views (config.urls handler400/403/404/500): JSON under /api/, pages elsewhere.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        # A body past DATA_UPLOAD_MAX_MEMORY_SIZE that no Content-Length announced: the upload limit.
        from core.uploads import too_large_response

        return too_large_response(request)
    if _is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
