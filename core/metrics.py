"""Prometheus metrics: every definition, the helpers the apps call, and the /metrics view.

Multiprocess mode. When PROMETHEUS_MULTIPROC_DIR is set (`make run` sets it to a fresh
folder per start, config/run.py; a deployment sets it itself), every web and worker
process writes its values to files there, and /metrics adds up every process's files
(prometheus_client's MultiProcessCollector): a counter is the sum over all processes,
dead ones included, so a restarted worker loses nothing. The variable must be set before
prometheus_client is imported, so it comes from the environment, never from settings.
Without it (runserver, tests, a management command), values live in this process only.

Gauges no process owns (documents waiting, circuit breakers) are read when /metrics is
scraped, from the database and the shared cache (`ScrapeGauge`): nothing has to keep them
current, and every web process answers the same.

Labels are bounded: a request's route is its URL name (or pattern), never its path; a
failure's reason is one of a few categories.

The apps below `config` own the data of the scrape-time gauges; config/urls.py hands
their readers to `endpoint`, so this module imports no app above it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _MULTIPROC_DIR:
    # Values are written there from the first sample on: the folder must exist.
    Path(_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

from django.conf import settings  # noqa: E402
from django.http import Http404, HttpRequest, HttpResponse  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_safe  # noqa: E402
from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

# This process's metrics (in multiprocess mode the values are in the files; this registry
# is then unused). Not prometheus_client's global REGISTRY: /metrics shows Docent's own.
LOCAL = CollectorRegistry(auto_describe=True)


def multiprocess_dir() -> str:
    """The folder every process writes its metrics to, or '' in single-process mode."""
    return _MULTIPROC_DIR


# --- the metrics -------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "docent_http_requests",
    "HTTP requests answered, by route (URL name or pattern), method and status code.",
    ("route", "method", "status"),
    registry=LOCAL,
)
HTTP_SECONDS = Histogram(
    "docent_http_request_duration_seconds",
    "Time to answer an HTTP request (to the response's headers), by route, method and status.",
    ("route", "method", "status"),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=LOCAL,
)
SEARCH_SECONDS = Histogram(
    "docent_search_duration_seconds",
    "Time a search took (rank, fuse, cut, hydrate), by mode.",
    ("mode",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=LOCAL,
)
INGESTED = Counter(
    "docent_ingest_documents",
    "Documents an ingest finished, by outcome (ready or failed).",
    ("outcome",),
    registry=LOCAL,
)
INGEST_FAILURES = Counter(
    "docent_ingest_failures",
    "Documents whose ingest failed, by reason category.",
    ("reason",),
    registry=LOCAL,
)
RUN_SECONDS = Histogram(
    "docent_run_duration_seconds",
    "Time an agent run took from its claim to its result, by the provider that answered "
    "('none' for a run that failed before one did) and final status.",
    ("provider", "status"),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
    registry=LOCAL,
)
FIRST_TOKEN_SECONDS = Histogram(
    "docent_run_first_token_seconds",
    "Time from a provider's call to the first streamed text of its answer, by provider.",
    ("provider",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0),
    registry=LOCAL,
)
LLM_TOKENS = Counter(
    "docent_llm_tokens",
    "Tokens agent runs used, by provider and direction (input or output).",
    ("provider", "direction"),
    registry=LOCAL,
)
# One value per live process (the pid label is added in multiprocess mode); an exited
# process's value is dropped when it is marked dead (gunicorn's child_exit, Celery's
# worker_process_shutdown).
MEMORY = Gauge(
    "docent_process_resident_memory_bytes",
    "Resident memory (RSS) of each web and worker process, by role.",
    ("role",),
    multiprocess_mode="liveall",
    registry=LOCAL,
)


class ScrapeGauge:
    """A gauge read when /metrics is scraped: `read` returns {label values: value}."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames

    def family(self, read: Callable[[], Mapping[tuple[str, ...], float]]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labelnames))
        for labels, value in sorted(read().items()):
            family.add_metric(list(labels), float(value))
        return family


INGEST_QUEUE = ScrapeGauge(
    "docent_ingest_queue_depth",
    "Documents waiting to be ingested (pending) and being ingested (processing).",
    ("status",),
)
BREAKER_STATE = ScrapeGauge(
    "docent_llm_breaker_state",
    "Each LLM provider's circuit breaker: 1 for its current state (closed, half_open, open), 0 otherwise.",
    ("provider", "state"),
)

Reader = Callable[[], Mapping[tuple[str, ...], float]]


# --- helpers the apps call ---------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(request: HttpRequest) -> str:
    """A bounded name for what a request asked for: its URL name, else its route pattern."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        static = getattr(settings, "STATIC_URL", "/static/") or "/static/"
        return "static" if request.path.startswith(static) else "unmatched"
    if match.url_name:
        return str(match.view_name)
    return str(match.route) or "unmatched"


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    method = request.method if request.method in _METHODS else "other"
    labels = (route_of(request), method, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_SECONDS.labels(*labels).observe(seconds)
    sample_memory("web")


def search_timer(search: Callable[_P, _R]) -> Callable[_P, _R]:
    """Time each search that returns, by its `mode` keyword (a refused mode raises first)."""

    @wraps(search)
    def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        started = time.perf_counter()
        result = search(*args, **kwargs)
        SEARCH_SECONDS.labels(str(kwargs.get("mode", "hybrid"))).observe(time.perf_counter() - started)
        return result

    return timed


# A failure reason (written for a person) to its category, first match wins.
_FAILURE_CATEGORIES = (
    ("memory", re.compile(r"of memory|MemoryError", re.I)),
    ("timeout", re.compile(r"took longer than|timed? ?out", re.I)),
    ("unsupported", re.compile(r"unsupported", re.I)),
    ("too_large", re.compile(r"too (large|long|many)|limit is", re.I)),
    ("empty", re.compile(r"\bempty\b|no text|no extractable text|nothing to index|no chapters", re.I)),
    ("ocr", re.compile(r"\bOCR\b|tesseract|scanned pages", re.I)),
    ("damaged", re.compile(r"damaged|not a valid|not a pdf|could not be (read|parsed)|stopped", re.I)),
)
FAILURE_REASONS = (*(name for name, _ in _FAILURE_CATEGORIES), "other")


def failure_category(reason: str) -> str:
    """One of FAILURE_REASONS for an ingest failure's message."""
    for name, pattern in _FAILURE_CATEGORIES:
        if pattern.search(reason or ""):
            return name
    return "other"


def ingest_ready(count: int) -> None:
    if count:
        INGESTED.labels("ready").inc(count)


def ingest_failed(reason: str) -> None:
    INGESTED.labels("failed").inc()
    INGEST_FAILURES.labels(failure_category(reason)).inc()


def run_finished(
    *, provider: str, status: str, seconds: float, input_tokens: int = 0, output_tokens: int = 0
) -> None:
    provider = provider or "none"
    RUN_SECONDS.labels(provider, status).observe(max(0.0, seconds))
    if input_tokens:
        LLM_TOKENS.labels(provider, "input").inc(input_tokens)
    if output_tokens:
        LLM_TOKENS.labels(provider, "output").inc(output_tokens)


def first_token(*, provider: str, seconds: float) -> None:
    FIRST_TOKEN_SECONDS.labels(provider or "none").observe(max(0.0, seconds))


def resident_memory_bytes() -> int:
    """This process's resident memory now (Linux: /proc/self/statm; elsewhere its peak)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


_MEMORY_EVERY_S = 5.0
_memory_sampled: dict[str, float] = {}


def sample_memory(role: str, *, force: bool = False) -> None:
    """Record this process's memory under `role` ("web" or "worker"), at most every few seconds."""
    now = time.monotonic()
    if not force and now - _memory_sampled.get(role, -_MEMORY_EVERY_S) < _MEMORY_EVERY_S:
        return
    _memory_sampled[role] = now
    MEMORY.labels(role).set(resident_memory_bytes())


def process_dead(pid: int) -> None:
    """A process exited: drop its live gauges from the sums (its counters stay)."""
    if _MULTIPROC_DIR:
        _multiprocess.mark_process_dead(pid, _MULTIPROC_DIR)


# --- /metrics ----------------------------------------------------------------------


class _Local(Collector):
    """This process's metrics (single-process mode)."""

    def collect(self) -> Iterable[Any]:
        return LOCAL.collect()


class _ReadAtScrape(Collector):
    def __init__(self, readers: Mapping[ScrapeGauge, Reader]) -> None:
        self.readers = readers

    def collect(self) -> Iterator[Any]:
        for gauge, read in self.readers.items():
            try:
                yield gauge.family(read)
            except Exception:
                # A database or cache outage leaves this gauge out, not the whole scrape.
                log.warning("metrics: could not read %s", gauge.name, exc_info=True)


def exposition(readers: Mapping[ScrapeGauge, Reader] | None = None) -> bytes:
    """Every process's metrics (or this one's), and the scrape-time gauges, as Prometheus text."""
    registry = CollectorRegistry(auto_describe=False)
    if _MULTIPROC_DIR:
        _multiprocess.MultiProcessCollector(registry, path=_MULTIPROC_DIR)
    else:
        registry.register(_Local())
    if readers:
        registry.register(_ReadAtScrape(readers))
    return generate_latest(registry)


def _client_address(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The caller's address; behind a proxy, the one the proxy appended (as the rate limits read it)."""
    address = request.META.get("REMOTE_ADDR", "") or ""
    if getattr(settings, "BEHIND_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            address = forwarded.split(",")[-1].strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    # An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _bearer(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may read /metrics; else the answer (404 when nothing is configured)."""
    token: str = settings.METRICS_TOKEN
    networks: list[Any] = settings.METRICS_NETWORKS
    if not token and not networks:
        raise Http404("Metrics are not enabled.")
    address = _client_address(request)
    # A request a proxy forwarded, read without DOCENT_BEHIND_PROXY, carries the proxy's address
    # (often loopback), not the caller's: the network rule cannot vouch for it, the token must.
    forwarded_unread = not getattr(settings, "BEHIND_PROXY", False) and (
        "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META
    )
    if (
        address is not None
        and not forwarded_unread
        and any(address.version == n.version and address in n for n in networks)
    ):
        return None
    sent = _bearer(request)
    if token and sent and hmac.compare_digest(sent.encode(), token.encode()):
        return None
    if token:
        response = HttpResponse(
            "A metrics token is required: Authorization: Bearer <DOCENT_METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(
        "Metrics are served only to the configured networks.\n",
        status=403,
        content_type="text/plain; charset=utf-8",
    )


def endpoint(readers: Mapping[ScrapeGauge, Reader]) -> Callable[[HttpRequest], HttpResponse]:
    """The /metrics view, with the readers of the scrape-time gauges (config/urls.py)."""

    # No session, no CSRF token: a scraper sends a bearer token, or comes from an allowed network.
    @csrf_exempt
    @require_safe
    def metrics(request: HttpRequest) -> HttpResponse:
        refused = refusal(request)
        if refused is not None:
            refused["Cache-Control"] = "no-store"
            return refused
        sample_memory("web", force=True)
        response = HttpResponse(exposition(readers), content_type=CONTENT_TYPE_LATEST)
        response["Cache-Control"] = "no-store"
        return response

    return metrics
