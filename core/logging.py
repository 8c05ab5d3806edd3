"""Structured logs: one JSON object a line, with request/task id, user id and timings."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
task_id_var: ContextVar[str] = ContextVar("task_id", default="")
user_id_var: ContextVar[str] = ContextVar("user_id", default="")
# The caller's address, for the audit log (accounts.audit), which services write without a request.
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="")

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

log = logging.getLogger("docent.request")


class QuietFilter(logging.Filter):
    """Keep the terminal for what someone should read: drop the lines of an ordinary day.

    Dropped: the request line of a successful probe (/healthz, /readyz) or static file;
    Django's second line for a 4xx answer (docent.request already logs every request with
    its status, and Django attaches the traceback of the Http404 or PermissionDenied that
    made it); kombu's "No hostname was supplied" (the broker is a unix socket, which has
    none); and the one-time ONNX export's library chatter (onnxruntime's quantiser logs
    every tensor to the root logger; sentence-transformers advises saving what it saves).
    A 4xx seen by `django.security` keeps its one line, without the traceback. Errors
    (5xx, failed probes, anything at ERROR from a library) always pass. At DOCENT_LOG_LEVEL
    DEBUG nothing is dropped.
    """

    def __init__(
        self,
        static_url: str = "/static/",
        probes: tuple[str, ...] = ("/healthz", "/readyz"),
        everything: bool = False,
    ) -> None:
        super().__init__()
        self.static_url = static_url or "/static/"
        self.probes = frozenset(probes)
        self.everything = everything

    def filter(self, record: logging.LogRecord) -> bool:
        if self.everything:
            return True
        name = record.name
        if name == "docent.request":
            status = getattr(record, "status", 500)
            path = str(getattr(record, "path", ""))
            quiet_path = path in self.probes or path.startswith(self.static_url)
            return not (quiet_path and isinstance(status, int) and status < 400)
        if name == "django.request":
            status = getattr(record, "status_code", 500)
            return not (isinstance(status, int) and 400 <= status < 500)
        if name.startswith("django.security."):
            status = getattr(record, "status_code", 500)
            if isinstance(status, int) and 400 <= status < 500:
                record.exc_info = None
                record.exc_text = None
            return True
        if record.levelno >= logging.ERROR:
            return True
        if name == "kombu.connection":
            return not str(record.msg).startswith("No hostname was supplied")
        if name == "root" and "onnxruntime" in record.pathname:
            return False
        if name.startswith("sentence_transformers"):
            return "Saving the exported ONNX model is heavily recommended" not in str(record.msg)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, var in (("request_id", request_id_var), ("task_id", task_id_var), ("user_id", user_id_var)):
            value = var.get()
            if value:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def request_ip(request: HttpRequest) -> str:
    """The caller's full address; behind a proxy (DOCENT_BEHIND_PROXY), the one it appended.

    The same choice as core.ratelimit.client_ip, without its /64 grouping of IPv6; "" when
    the address is not an IP (a test client, a unix socket).
    """
    address = request.META.get("REMOTE_ADDR", "") or ""
    if getattr(settings, "BEHIND_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            address = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""


class RequestContextMiddleware:
    """Give every request an id (or keep a sane incoming X-Request-ID) and log it once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        user_token = user_id_var.set("")
        ip_token = client_ip_var.set(request_ip(request))
        started = time.monotonic()
        try:
            response = self.get_response(request)
            user = getattr(request, "user", None)
            if user is not None and getattr(user, "is_authenticated", False):
                user_id_var.set(str(user.pk))
            response["X-Request-ID"] = rid
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            request_id_var.reset(token)
            user_id_var.reset(user_token)
            client_ip_var.reset(ip_token)


def connect_celery_signals() -> None:
    """Put the task id on every log line a task writes, and log each task's timing."""
    from celery.signals import task_postrun, task_prerun

    started: dict[str, float] = {}
    task_log = logging.getLogger("docent.task")

    @task_prerun.connect(weak=False)
    def _prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
        task_id_var.set(task_id or "")
        started[task_id or ""] = time.monotonic()
        task_log.info(
            "task started", extra={"task": getattr(task, "name", ""), "task_args": kwargs.get("args")}
        )

    @task_postrun.connect(weak=False)
    def _postrun(
        task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
    ) -> None:
        began = started.pop(task_id or "", None)
        task_log.info(
            "task finished",
            extra={
                "task": getattr(task, "name", ""),
                "state": state,
                "duration_ms": round((time.monotonic() - began) * 1000, 1) if began else None,
            },
        )
        task_id_var.set("")
