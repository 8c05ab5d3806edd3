"""One JSON error shape for the API, including Django's own exceptions."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts import limits
from config.uploads import UploadTooLarge


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, UploadTooLarge):
        exc = PayloadTooLarge(str(exc))
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        # Refused before DRF's throttle ran: still counts against the anonymous allowance.
        refusal = limits.unauthenticated_refusal(context.get("request"))
        if refusal is not None:
            exc = limits.RateLimited(refusal)
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_404_NOT_FOUND:
        response.data = {"detail": "Not found."}
    if response is not None and isinstance(exc, limits.RateLimited):
        response.data = {"detail": str(exc.detail), "limit": exc.limit}
    return response
