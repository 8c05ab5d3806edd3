"""Bulk-import progress: the batch's counters, the selector's figures, the panel, the API, the command."""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from conftest import api_for, make_project
from documents import selectors, services
from documents.models import Document, DocumentStatus, ImportBatch, IngestPriority
from documents.tests.factories import DocumentFactory
from projects.models import Project

pytestmark = pytest.mark.django_db

RECORDS = [
    {"_id": "201", "title": "Kelp forests", "text": "Kelp forests shelter fish along cold rocky coasts."},
    {"_id": "202", "title": "Sea otters", "text": "Sea otters eat urchins, which lets kelp grow back."},
    {"_id": "203", "title": "Urchin barrens", "text": "Without predators, urchins turn kelp into barrens."},
]


def corpus_file(path: Path, *, bad_line: bool = False) -> Path:
    lines = [json.dumps(r) for r in RECORDS]
    if bad_line:
        lines.insert(1, '{"_id": "x", "title": "cut off')
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def a_batch(project: Project, *, started: datetime, **fields: Any) -> ImportBatch:
    batch = ImportBatch.objects.create(project=project, source="/data/corpus.jsonl.gz", **fields)
    ImportBatch.objects.filter(pk=batch.pk).update(started_at=started)  # auto_now_add ignores a value
    batch.refresh_from_db()
    return batch


def docs(batch: ImportBatch, status: str, n: int, *, at: datetime | None = None, error: str = "") -> None:
    for _ in range(n):
        doc = DocumentFactory(project=batch.project, batch=batch, status=status, error=error)
        if at is not None:
            Document.objects.filter(pk=doc.pk).update(status_changed_at=at)


def progress_of(batch: ImportBatch, now: datetime) -> selectors.ImportProgress:
    (progress,) = selectors.imports_progress([batch], now=now)
    return progress


# --- the service keeps the batch ----------------------------------------------------


def test_an_import_records_one_batch_with_its_counters_and_bulk_documents(
    project: Any, user: Any, tmp_path: Path
) -> None:
    corpus = corpus_file(tmp_path / "corpus.jsonl.gz", bad_line=True)
    services.documents_import(user=user, project=project, paths=[corpus])

    report = services.documents_import(user=user, project=project, paths=[corpus])  # again: all skipped

    first, second = ImportBatch.objects.filter(project=project).order_by("started_at")
    assert report.batch_id == str(second.pk)
    assert (first.created, first.skipped, first.failed_records) == (3, 0, 1)
    assert (second.created, second.skipped, second.failed_records) == (0, 3, 1)
    assert first.started_by == user and first.source == str(corpus)
    assert first.finished_at is not None and second.finished_at is not None
    assert first.failures == [{"source": f"{corpus}:2", "reason": first.failures[0]["reason"]}]
    assert "not valid JSON" in first.failures[0]["reason"]
    created = Document.objects.filter(project=project)
    assert set(created.values_list("batch", flat=True)) == {first.pk}
    assert set(created.values_list("priority", flat=True)) == {IngestPriority.BULK}


def test_the_batch_counters_are_saved_while_the_import_runs(
    project: Any, user: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "IMPORT_SAVE_EVERY", 1)
    corpus = corpus_file(tmp_path / "corpus.jsonl.gz")
    seen: list[tuple[int, bool]] = []

    def progress(event: Any) -> None:
        row = ImportBatch.objects.get(project=project)
        seen.append((row.created, row.finished_at is None))

    services.documents_import(user=user, project=project, paths=[corpus], progress=progress)

    assert seen == [(1, True), (2, True), (3, True)]


def test_an_import_that_stops_on_an_error_is_still_marked_finished(
    project: Any, user: Any, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        services.documents_import(user=user, project=project, paths=[tmp_path / "nowhere.jsonl"])

    assert ImportBatch.objects.get(project=project).finished_at is not None


def test_an_upload_outside_an_import_stays_interactive(project: Any, user: Any) -> None:
    doc = services.document_create(user=user, project=project, title="Note", text="A note.")

    assert (doc.batch, doc.priority) == (None, IngestPriority.INTERACTIVE)


# --- the selector -------------------------------------------------------------------


def test_progress_counts_documents_in_every_status_and_rates_ready_ones_until_now(project: Any) -> None:
    now = timezone.now()
    # The counter lags behind its documents while the import runs (saved every so often).
    batch = a_batch(project, started=now - timedelta(seconds=10), created=5, skipped=4, failed_records=1)
    docs(batch, DocumentStatus.READY, 3, at=now - timedelta(seconds=8))
    docs(batch, DocumentStatus.FAILED, 2, error="Could not read the PDF.")
    docs(batch, DocumentStatus.PENDING, 2)
    docs(batch, DocumentStatus.PROCESSING, 1)

    progress = progress_of(batch, now)

    assert (progress.created, progress.skipped, progress.failed_records) == (8, 4, 1)
    assert (progress.ready, progress.failed, progress.pending, progress.processing) == (3, 2, 2, 1)
    assert (progress.unfinished, progress.done, progress.all_failed) == (3, 5, 3)
    assert progress.rate == pytest.approx(0.3)  # 3 ready in the 10 s since it started
    assert not progress.finished


def test_a_finished_import_is_rated_up_to_its_last_ready_document(project: Any) -> None:
    started = timezone.now() - timedelta(hours=2)
    batch = a_batch(project, started=started, created=5, finished_at=started + timedelta(seconds=1))
    docs(batch, DocumentStatus.READY, 2, at=started + timedelta(seconds=2))
    docs(batch, DocumentStatus.READY, 2, at=started + timedelta(seconds=4))
    docs(batch, DocumentStatus.FAILED, 1, at=started + timedelta(seconds=5))

    progress = progress_of(batch, timezone.now())

    assert progress.finished
    assert progress.last_ready_at == started + timedelta(seconds=4)
    assert progress.rate == pytest.approx(1.0)  # 4 ready in 4 s, not in two hours


def test_an_import_still_creating_is_not_finished_though_nothing_is_pending(project: Any) -> None:
    batch = a_batch(project, started=timezone.now())
    docs(batch, DocumentStatus.READY, 1)

    assert not progress_of(batch, timezone.now()).finished


def test_failures_list_records_and_failed_documents_with_their_reasons(project: Any) -> None:
    now = timezone.now()
    records = [{"source": f"/data/c.jsonl:{n}", "reason": f"line {n}: not valid JSON"} for n in range(1, 8)]
    batch = a_batch(project, started=now, failed_records=9, failures=records, finished_at=now, created=2)
    a, b = DocumentFactory(project=project, batch=batch), DocumentFactory(project=project, batch=batch)
    Document.objects.filter(pk=a.pk).update(status=DocumentStatus.FAILED, error="The file is not a PDF.")
    Document.objects.filter(pk=b.pk).update(
        status=DocumentStatus.FAILED, error="Extraction  took\ntoo long. " + "x" * 1000
    )

    progress = progress_of(batch, now)

    listed = [(f.kind, f.source) for f in progress.failures]
    shown = selectors.IMPORT_FAILURES_SHOWN
    assert listed[:shown] == [("record", r["source"]) for r in records[:shown]]
    assert sorted(listed[shown:]) == sorted([("ingest", a.title), ("ingest", b.title)])
    reasons = {f.source: f.reason for f in progress.failures}
    assert reasons[a.title] == "The file is not a PDF."
    assert reasons[b.title].startswith("Extraction took too long.") and len(reasons[b.title]) <= 300
    assert reasons["/data/c.jsonl:1"] == "line 1: not valid JSON"
    assert progress.more_failures == 9 + 2 - len(progress.failures)


def test_progress_of_several_imports_takes_two_queries(
    project: Any, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    batches = []
    for _ in range(3):
        batch = a_batch(project, started=now)
        docs(batch, DocumentStatus.READY, 3)
        docs(batch, DocumentStatus.FAILED, 2, error="broken")
        batches.append(batch)

    with django_assert_max_num_queries(2):
        progress = selectors.imports_progress(batches, now=now)

    assert [(p.ready, p.failed, len(p.failures)) for p in progress] == [(3, 2, 2)] * 3


def test_recent_imports_are_the_running_and_the_lately_finished_ones(project: Any) -> None:
    now = timezone.now()
    old = now - timedelta(days=3)
    long_done = a_batch(project, started=old, finished_at=old)
    docs(long_done, DocumentStatus.READY, 1)
    still_ingesting = a_batch(project, started=old - timedelta(hours=1), finished_at=old)
    docs(still_ingesting, DocumentStatus.PENDING, 1)
    killed = a_batch(project, started=old)  # never finished, nothing waiting
    lately = a_batch(project, started=now - timedelta(hours=5), finished_at=now - timedelta(hours=5))
    running = a_batch(project, started=now - timedelta(minutes=1))
    other_project = make_project(UserFactory(), title="Elsewhere")
    a_batch(other_project, started=now)

    shown = [p.id for p in selectors.imports_recent(project, now=now)]

    assert shown == [running.pk, lately.pk, still_ingesting.pk]
    assert long_done.pk not in shown and killed.pk not in shown


def test_at_most_three_imports_are_recent(project: Any) -> None:
    now = timezone.now()
    for minutes in range(5):
        a_batch(project, started=now - timedelta(minutes=minutes))

    assert len(selectors.imports_recent(project, now=now)) == selectors.IMPORTS_RECENT_LIMIT == 3


# --- the project page and its panel ---------------------------------------------------


@pytest.fixture
def running_import(project: Project) -> ImportBatch:
    now = timezone.now()
    batch = a_batch(
        project,
        started=now - timedelta(seconds=30),
        created=5183,
        failed_records=1,
        failures=[{"source": "/data/corpus.jsonl.gz:77", "reason": "line 77: not valid JSON"}],
    )
    docs(batch, DocumentStatus.READY, 4, at=now)
    docs(batch, DocumentStatus.FAILED, 1, error="The PDF is encrypted.")
    docs(batch, DocumentStatus.PENDING, 2)
    return batch


def panel_of(html: str) -> str:
    found = re.search(r'<section class="card imports-panel".*?</section>', html, re.S)
    assert found, "no import panel"
    return found.group(0)


def test_a_member_sees_the_import_panel_with_figures_progress_and_failures(
    owner_client: Client, project: Project, running_import: ImportBatch
) -> None:
    response = owner_client.get(reverse("projects:detail", args=[project.pk]))

    assert response.status_code == 200
    panel = panel_of(response.content.decode())
    assert re.search(r"4 of 5,183 ready · \d+\.\d docs/s · 2 failed", panel)
    assert '<progress value="5" max="5183"' in panel
    assert "<details" in panel and "Why 2 failed" in panel
    assert "line 77: not valid JSON" in panel and "The PDF is encrypted." in panel
    assert f'data-refresh-url="{reverse("projects:imports", args=[project.pk])}"' in panel
    assert "<script" not in panel  # the page's CSP: behaviour comes from docent.js


def test_the_panel_stops_refreshing_once_the_import_is_finished(
    owner_client: Client, project: Project
) -> None:
    now = timezone.now()
    batch = a_batch(project, started=now - timedelta(minutes=2), created=2, finished_at=now)
    docs(batch, DocumentStatus.READY, 2, at=now)

    panel = panel_of(owner_client.get(reverse("projects:imports", args=[project.pk])).content.decode())

    assert "2 of 2 ready" in panel and "Finished" in panel
    assert "data-refresh-url" not in panel


def test_the_project_page_has_no_panel_without_recent_imports(owner_client: Client, project: Project) -> None:
    html = owner_client.get(reverse("projects:detail", args=[project.pk])).content.decode()

    assert "imports-panel" not in html


def test_the_panel_fragment_is_fresh_though_the_documents_did_not_change_version(
    owner_client: Client, project: Project, running_import: ImportBatch
) -> None:
    url = reverse("projects:imports", args=[project.pk])
    first = owner_client.get(url)
    version = Project.objects.get(pk=project.pk).documents_version
    # A worker finishing documents, as seen by this page: no version bump needed to show it.
    Document.objects.filter(batch=running_import, status=DocumentStatus.PENDING).update(
        status=DocumentStatus.READY
    )

    second = owner_client.get(url)

    assert Project.objects.get(pk=project.pk).documents_version == version
    assert "4 of 5,183 ready" in first.content.decode()
    assert "6 of 5,183 ready" in second.content.decode()
    assert "no-store" in second["Cache-Control"]


# --- the API ----------------------------------------------------------------------------


def test_the_api_lists_a_projects_imports_with_their_progress(
    user: Any, project: Project, running_import: ImportBatch
) -> None:
    response = api_for(user).get(f"/api/v1/projects/{project.pk}/imports/")

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["count"] == 1 and body["next"] is None
    (item,) = body["results"]
    assert item["id"] == str(running_import.pk)
    assert item["started_by"] == ""
    assert {
        k: item[k] for k in ("created", "ready", "failed", "pending", "processing", "failed_records")
    } == {
        "created": 5183,
        "ready": 4,
        "failed": 1,
        "pending": 2,
        "processing": 0,
        "failed_records": 1,
    }
    assert item["finished"] is False and item["creating_finished_at"] is None
    assert item["rate"] > 0
    assert {(f["kind"], f["reason"]) for f in item["failures"]} == {
        ("record", "line 77: not valid JSON"),
        ("ingest", "The PDF is encrypted."),
    }
    assert item["more_failures"] == 0


def test_the_api_pages_through_imports_newest_first(
    user: Any, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.pagination import Pagination

    monkeypatch.setattr(Pagination, "page_size", 2)
    now = timezone.now()
    batches = [a_batch(project, started=now - timedelta(minutes=m)) for m in range(3)]

    first = api_for(user).get(f"/api/v1/projects/{project.pk}/imports/").json()
    second = api_for(user).get(first["next"]).json()

    assert first["count"] == 3
    assert [r["id"] for r in first["results"] + second["results"]] == [str(b.pk) for b in batches]


# --- the command ---------------------------------------------------------------------------


def test_the_command_shows_a_rate_while_creating_and_waiting_and_names_the_batch(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = corpus_file(tmp_path / "corpus.jsonl.gz")
    out, err = StringIO(), StringIO()

    call_command(
        "import_documents", "--project", str(project.pk), "--sync", str(corpus), stdout=out, stderr=err
    )

    bars = capsys.readouterr().err  # tqdm draws on the process's stderr
    assert re.search(r"import\+ingest.*created=3, skipped=0, failed=0, \d+\.\d docs/s", bars)
    assert re.search(r"ingest.*ready=3, failed=0, \d+\.\d docs/s", bars)
    batch = ImportBatch.objects.get(project=project)
    summary = out.getvalue()
    assert re.search(r"\d+\.\d docs/s", summary)
    assert f"Import {batch.pk}" in summary
    assert reverse("projects:detail", args=[project.pk]) in summary
    assert f"/api/v1/projects/{project.pk}/imports/" in summary
