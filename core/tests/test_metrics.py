"""/metrics: who may read it, what it counts, and that several processes add up (issue 25)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from agents.providers import provider_breaker
from config import run as docent_run
from config.tests.processes import manage
from core import metrics
from documents import ingest
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Project
from tests.servers import call, web_server
from tests.worker import database_url

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-0123456789abcdef"
ARTICLE = (
    "Photosynthesis converts light energy into chemical energy in plants. "
    "Chlorophyll absorbs mostly blue and red light. "
    "The Calvin cycle fixes carbon dioxide into sugars."
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent), matching exactly these labels."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_NETWORKS = []
    return TOKEN


def scrape(client: Client | None = None) -> Samples:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:300]
    return parse(response.content.decode())


# --- who may read it ---------------------------------------------------------------


def test_metrics_is_a_404_when_neither_a_token_nor_a_network_is_configured(settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_NETWORKS = "", []
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_without_the_token_a_scraper_gets_401_naming_the_scheme(token: str) -> None:
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token-0123456789"},
        {"HTTP_AUTHORIZATION": TOKEN},
    ):
        response = Client().get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"docent_" not in response.content


def test_the_token_opens_metrics_with_no_session_and_no_csrf_token(token: str) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies
    assert b"# TYPE docent_http_requests_total counter" in response.content
    # Read-only: a POST is refused whatever it carries.
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_metrics_is_not_rate_limited_like_the_api(token: str, settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anon": 1}
    for _ in range(5):
        assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_a_caller_from_an_allowed_network_needs_no_token(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_NETWORKS = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="fd00::5").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:10.9.9.9").get("/metrics").status_code == 200
    # Outside: 403 (no token is configured, so none would help).
    assert Client(REMOTE_ADDR="192.168.1.10").get("/metrics").status_code == 403
    assert (
        Client(REMOTE_ADDR="11.0.0.1").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code
        == 403
    )


def test_with_a_token_and_networks_either_one_is_enough(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.168.1.10").get("/metrics").status_code == 401
    outside_with_token = Client(REMOTE_ADDR="192.168.1.10")
    assert outside_with_token.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_behind_a_proxy_the_address_the_proxy_saw_is_checked_not_the_proxys(settings: Any) -> None:
    settings.BEHIND_PROXY = True
    settings.METRICS_TOKEN = ""
    settings.METRICS_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    proxied = Client(REMOTE_ADDR="127.0.0.1")
    assert proxied.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert proxied.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9, 127.0.0.5").status_code == 200


def test_a_forwarded_request_read_without_the_proxy_setting_needs_the_token(settings: Any) -> None:
    """A proxy on the same host makes every caller look like loopback: its requests cannot
    pass by network unless the proxy setting says how to read the caller's address."""
    settings.BEHIND_PROXY = False
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    local = Client(REMOTE_ADDR="127.0.0.1")
    assert local.get("/metrics").status_code == 200
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 401
    assert local.get("/metrics", HTTP_FORWARDED="for=203.0.113.9").status_code == 401
    assert (
        local.get(
            "/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("DOCENT_METRICS_NETWORKS", "10.0.0.0/33"), ("DOCENT_METRICS_TOKEN", "short")],
)
def test_a_malformed_metrics_setting_stops_start_up_naming_it(tmp_path: Path, name: str, value: str) -> None:
    done = manage("check", env={name: value}, tmp_path=tmp_path)
    assert done.returncode != 0
    assert name in done.stderr


# --- what it counts ----------------------------------------------------------------


@pytest.mark.django_db
def test_requests_are_counted_and_timed_by_route_and_status_never_by_path(
    token: str, auth_api: APIClient, project: Project
) -> None:
    before = scrape()
    client = Client()
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no-such-page-4711")
    assert auth_api.get(f"/api/v1/projects/{project.pk}/").status_code == 200
    after = scrape()
    healthz = {"route": "healthz", "method": "GET", "status": "200"}
    assert grew(before, after, "docent_http_requests_total", **healthz) == 2
    assert grew(before, after, "docent_http_request_duration_seconds_count", **healthz) == 2
    assert (
        grew(before, after, "docent_http_requests_total", route="unmatched", method="GET", status="404") == 1
    )
    detail = {"route": "project-detail", "method": "GET", "status": "200"}
    assert grew(before, after, "docent_http_requests_total", **detail) == 1
    # The first scrape is counted by the second.
    assert grew(before, after, "docent_http_requests_total", route="metrics", method="GET", status="200") == 1
    # Every request lands in the +Inf bucket (the buckets are cumulative).
    inf = value(after, "docent_http_request_duration_seconds_bucket", **healthz, le="+Inf")
    assert inf == value(after, "docent_http_request_duration_seconds_count", **healthz)
    labels = {v for (_, pairs) in after for _, v in pairs}
    assert not any("no-such-page" in v or str(project.pk) in v for v in labels)


def _paste(client: APIClient, project: Project, capture: Any) -> Document:
    with capture(execute=True):
        response = client.post(
            "/api/v1/documents/",
            {"project": str(project.pk), "title": "Leaves", "text": ARTICLE},
            format="json",
        )
    assert response.status_code == 201, response.content
    return Document.objects.get(pk=response.json()["id"])


@pytest.mark.django_db
def test_a_paste_ingest_counts_a_ready_document_and_a_search_its_latency_by_mode(
    token: str, auth_api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    before = scrape()
    doc = _paste(auth_api, project, django_capture_on_commit_callbacks)
    assert doc.status == DocumentStatus.READY, doc.error
    response = auth_api.get(f"/api/v1/projects/{project.pk}/search/", {"q": "chlorophyll", "mode": "lexical"})
    assert response.status_code == 200
    after = scrape()
    assert grew(before, after, "docent_ingest_documents_total", outcome="ready") == 1
    assert grew(before, after, "docent_search_duration_seconds_count", mode="lexical") == 1
    assert value(after, "docent_search_duration_seconds_count", mode="dense") == value(
        before, "docent_search_duration_seconds_count", mode="dense"
    )


@pytest.mark.django_db
def test_an_ingest_failure_is_counted_by_its_reason_category(token: str, project: Project) -> None:
    doc = DocumentFactory(project=project, status=DocumentStatus.PROCESSING, attempts=1)
    before = scrape()
    assert ingest.fail(doc.pk, 1, "The PDF is damaged or not a PDF: bad xref")
    assert not ingest.fail(doc.pk, 1, "The PDF is damaged or not a PDF: bad xref")  # not claimed any more
    after = scrape()
    assert grew(before, after, "docent_ingest_documents_total", outcome="failed") == 1
    assert grew(before, after, "docent_ingest_failures_total", reason="damaged") == 1


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("The file is damaged (not a valid DOCX).", "damaged"),
        (
            "Reading the file took longer than 120 seconds, the limit per document; it may be damaged",
            "timeout",
        ),
        ("Reading the file needed more than 1,024 MB of memory, the limit per document.", "memory"),
        ("Unsupported file type: the file looks binary, not text.", "unsupported"),
        ("The PDF has too many pages (9,000; the limit is 5,000).", "too_large"),
        ("The extracted text is too long (the limit is 10,000,000 characters).", "too_large"),
        ("The text is empty.", "empty"),
        ("OCR failed on this image: tesseract said no", "ocr"),
        ("Processing failed unexpectedly (KeyError); try re-indexing.", "other"),
    ],
)
def test_failure_reasons_fall_into_a_few_categories(reason: str, category: str) -> None:
    assert metrics.failure_category(reason) == category
    assert category in metrics.FAILURE_REASONS


@pytest.mark.django_db
def test_the_queue_depth_is_read_from_the_database_when_scraped(token: str, project: Project) -> None:
    DocumentFactory.create_batch(3, project=project)
    DocumentFactory(project=project, status=DocumentStatus.PROCESSING)
    DocumentFactory(project=project, status=DocumentStatus.READY)
    samples = scrape()
    pending = Document.objects.filter(status=DocumentStatus.PENDING).count()
    assert pending >= 3
    assert value(samples, "docent_ingest_queue_depth", status="pending") == pending
    assert value(samples, "docent_ingest_queue_depth", status="processing") == 1
    Document.objects.filter(status=DocumentStatus.PENDING).update(status=DocumentStatus.READY)
    assert value(scrape(), "docent_ingest_queue_depth", status="pending") == 0


@pytest.mark.django_db
def test_an_offline_ask_records_its_latency_and_first_token_time(
    token: str,
    auth_api: APIClient,
    project: Project,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.LLM_PROVIDER = "offline"
    _paste(auth_api, project, django_capture_on_commit_callbacks)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_api.post(
            "/api/v1/runs/",
            {"project": str(project.pk), "kind": "ask", "question": "What does chlorophyll absorb?"},
            format="json",
        )
    assert response.status_code == 201, response.content
    run = auth_api.get(f"/api/v1/runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run
    after = scrape()
    assert (
        grew(before, after, "docent_run_duration_seconds_count", provider="offline", status="succeeded") == 1
    )
    assert grew(before, after, "docent_run_first_token_seconds_count", provider="offline") == 1


def test_tokens_are_counted_by_provider_and_direction(token: str) -> None:
    before = scrape()
    metrics.run_finished(
        provider="gemini", status="succeeded", seconds=2.0, input_tokens=120, output_tokens=30
    )
    metrics.run_finished(provider="", status="failed", seconds=0.5)
    after = scrape()
    assert grew(before, after, "docent_llm_tokens_total", provider="gemini", direction="input") == 120
    assert grew(before, after, "docent_llm_tokens_total", provider="gemini", direction="output") == 30
    assert grew(before, after, "docent_run_duration_seconds_count", provider="none", status="failed") == 1


def test_breaker_state_is_read_from_the_shared_cache_when_scraped(token: str, settings: Any) -> None:
    samples = scrape()
    for provider in ("gemini", "openai"):
        assert value(samples, "docent_llm_breaker_state", provider=provider, state="closed") == 1
        assert value(samples, "docent_llm_breaker_state", provider=provider, state="open") == 0
    breaker = provider_breaker("gemini")
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        breaker.record_failure()
    samples = scrape()
    assert value(samples, "docent_llm_breaker_state", provider="gemini", state="open") == 1
    assert value(samples, "docent_llm_breaker_state", provider="gemini", state="closed") == 0
    assert value(samples, "docent_llm_breaker_state", provider="openai", state="closed") == 1
    breaker.reset()
    assert value(scrape(), "docent_llm_breaker_state", provider="gemini", state="closed") == 1


def test_process_memory_is_a_gauge_per_role(token: str) -> None:
    from config import celery as docent_celery

    docent_celery._sample_worker_memory()  # what a worker process does when it starts
    samples = scrape()
    web = value(samples, "docent_process_resident_memory_bytes", role="web")
    worker = value(samples, "docent_process_resident_memory_bytes", role="worker")
    assert web > 10 * 1024 * 1024
    assert worker > 10 * 1024 * 1024


def test_a_scrape_time_gauge_that_cannot_be_read_is_left_out_not_the_scrape() -> None:
    def broken() -> dict[tuple[str, ...], float]:
        raise ConnectionError("cache down")

    text = metrics.exposition({metrics.BREAKER_STATE: broken}).decode()
    assert "docent_http_requests_total" in text
    assert "docent_llm_breaker_state{" not in text


# --- several processes -------------------------------------------------------------


def test_make_run_gives_each_start_an_empty_metrics_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    folder = docent_run.fresh_metrics_dir(tmp_path)
    assert folder == (tmp_path / "metrics").resolve()
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "keep.txt").write_text("not a metrics file")
    assert docent_run.fresh_metrics_dir(tmp_path) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


WORKER_PROCESS = """
import os, sys
from celery.signals import worker_process_shutdown
import django; django.setup()
from core import metrics
import config.celery
assert metrics.multiprocess_dir(), "not in multiprocess mode"
metrics.run_finished(provider="offline", status="succeeded", seconds=1.5, input_tokens=7, output_tokens=3)
metrics.ingest_failed("The text is empty.")
metrics.sample_memory("worker", force=True)
if sys.argv[1] == "exit":
    worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
print(os.getpid())
"""


def _worker_process(tmp_path: Path, folder: Path, how: str) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", WORKER_PROCESS, how],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split()[-1])


def _merged(folder: Path) -> Samples:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return parse(generate_latest(registry).decode())


def test_worker_processes_counters_add_up_and_an_exited_ones_memory_leaves(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    exited = _worker_process(tmp_path, folder, "exit")
    alive = _worker_process(tmp_path, folder, "stay")
    samples = _merged(folder)
    assert value(samples, "docent_llm_tokens_total", provider="offline", direction="input") == 14
    assert value(samples, "docent_llm_tokens_total", provider="offline", direction="output") == 6
    assert value(samples, "docent_run_duration_seconds_count", provider="offline", status="succeeded") == 2
    assert value(samples, "docent_run_duration_seconds_sum", provider="offline", status="succeeded") == 3.0
    assert value(samples, "docent_ingest_failures_total", reason="empty") == 2
    # worker_process_shutdown (config/celery.py) dropped the exited process's live gauge.
    memory = {
        dict(labels)["pid"] for (name, labels) in samples if name == "docent_process_resident_memory_bytes"
    }
    assert memory == {str(alive)}
    assert exited != alive


def _per_process(folder: Path, route: str) -> dict[str, float]:
    """docent_http_requests_total for `route`, as each web process's own file holds it."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        for key, val, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            metric, name, labels, _ = json.loads(key)
            if name == "docent_http_requests_total" and labels.get("route") == route:
                counts[path.stem.split("_")[-1]] = counts.get(path.stem.split("_")[-1], 0.0) + val
    return counts


@pytest.mark.django_db(transaction=True)
def test_requests_served_by_two_gunicorn_workers_add_up_in_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    env = {
        "DATABASE_URL": database_url(),
        "DOCENT_DATA_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "DOCENT_METRICS_TOKEN": TOKEN,
        "CELERY_BROKER_URL": "memory://",
    }
    with web_server(env, tmp_path / "web.log", workers=2) as base:
        # /api/ (not /healthz, which web_server's readiness probe may have called more than once).
        sent = 0
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(_per_process(folder, "api-index")) < 2:
                assert time.monotonic() < deadline, "every request went to one worker"
                statuses = list(pool.map(lambda _: call("GET", f"{base}/api/")[0], range(16)))
                assert statuses == [200] * 16
                sent += 16
        per_process = _per_process(folder, "api-index")
        assert sum(per_process.values()) == sent

        status, text, _ = call("GET", f"{base}/metrics", token=TOKEN)
        assert status == 200
        samples = parse(text)
        api_index = {"route": "api-index", "method": "GET", "status": "200"}
        assert value(samples, "docent_http_requests_total", **api_index) == sent
        assert value(samples, "docent_http_request_duration_seconds_count", **api_index) == sent
        web_pids = {
            dict(labels)["pid"]
            for (name, labels) in samples
            if name == "docent_process_resident_memory_bytes" and dict(labels).get("role") == "web"
        }
        assert web_pids >= set(per_process), (web_pids, per_process)
        assert "docent_ingest_queue_depth" in {name for name, _ in samples}
        # Without the token, the same server refuses.
        assert call("GET", f"{base}/metrics")[0] == 401
        assert list(folder.glob("gauge_liveall_*.db"))
    # Stopped: gunicorn's child_exit (config/gunicorn.py) marked each worker dead; their
    # counts stay in the sums.
    assert list(folder.glob("gauge_liveall_*.db")) == []
    assert sum(_per_process(folder, "api-index").values()) == sent
