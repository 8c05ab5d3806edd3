"""Cross-cutting middleware: the Permissions-Policy and X-XSS-Protection
headers (Django has no setting for either), a clean 503 when the database
or cache is down, and the request metrics (core/metrics.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import SimpleTemplateResponse

from core import metrics

log = logging.getLogger(__name__)


class PermissionsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        # "0" turns off the legacy XSS auditor of old browsers: its filtering could be
        # abused to blank out or leak parts of a page; the CSP is the defence instead.
        response.setdefault("X-XSS-Protection", "0")
        return response


def _service_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        errors += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    try:
        # django-redis wraps the connection errors above in its own exception.
        from django_redis.exceptions import ConnectionInterrupted

        errors.append(ConnectionInterrupted)
    except ImportError:  # pragma: no cover - django-redis is a dependency
        pass
    return tuple(errors)


SERVICE_ERRORS = _service_errors()


class ServiceUnavailableMiddleware:
    """Turn 'database/cache unreachable' into a 503 instead of a traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, SERVICE_ERRORS) or (
            isinstance(exception, DatabaseError)
            and not isinstance(exception, (OperationalError, InterfaceError))
        ):
            return None
        log.error("service unavailable: %s", type(exception).__name__, exc_info=exception)
        message = "A service Docent depends on is unavailable; try again shortly."
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"detail": message}, status=503)
        else:
            response = SimpleTemplateResponse("503.html", {"message": message}, status=503)
            response.render()
        response["Retry-After"] = "30"
        return response


class RequestMetricsMiddleware:
    """Count every response and time it, by route and status (the outermost middleware, so
    the time includes the others', and a 429 or 503 made by one of them is counted too).

    Sync and async alike: an event stream (served by Django's ASGI handler) is not moved
    to a thread for it. A streamed response is timed to its headers."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        metrics.observe_request(request, response.status_code, time.perf_counter() - started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        metrics.observe_request(request, response.status_code, time.perf_counter() - started)
        return response
