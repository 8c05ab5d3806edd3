"""Bulk import: BEIR corpora and folders into a project, without duplicates."""

from __future__ import annotations

import gzip
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from conftest import api_for
from documents import importing, services
from documents.models import Document, DocumentStatus
from projects.models import Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

RECORDS = [
    {
        "_id": "101",
        "title": "Mitochondria and ageing",
        "text": "Mitochondrial DNA mutations accumulate with age in human muscle tissue.",
    },
    {
        "_id": "102",
        "title": "Coral reef bleaching",
        "text": "Rising sea temperatures cause coral bleaching across tropical reefs.",
    },
    {
        "_id": "103",
        "title": "Battery chemistry",
        "text": "Lithium iron phosphate cathodes trade energy density for a longer cycle life.",
    },
]


def write_corpus(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    lines = [json.dumps(r) for r in RECORDS]
    return write_corpus(tmp_path / "corpus.jsonl.gz", [lines[0], "", lines[1], "   ", lines[2]])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.txt").write_text("Field notes about coral spawning at night.")
    (root / "sub" / "b.md").write_text("# Plan\n\nSurvey the northern reef in March.")
    (root / ".hidden.txt").write_text("A hidden file that must not be imported.")
    (root / ".git" / "config").write_text("[core]")
    return root


def run_import(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_documents", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_beir_corpus_becomes_ready_documents_with_external_ids(project: Any, corpus: Path) -> None:
    out, _ = run_import("--project", str(project.pk), "--sync", str(corpus))

    docs = Document.objects.filter(project=project).order_by("external_id")
    assert [d.external_id for d in docs] == ["101", "102", "103"]
    assert [d.title for d in docs] == [r["title"] for r in RECORDS]
    assert {d.status for d in docs} == {DocumentStatus.READY}
    assert all(d.chunk_count > 0 for d in docs)
    assert "3 created, 0 skipped" in out
    assert "Ingest: 3 ready, 0 failed" in out
    assert "docs/s" in out


def test_importing_the_same_corpus_again_creates_nothing(project: Any, corpus: Path) -> None:
    run_import("--project", str(project.pk), "--sync", str(corpus))

    out, _ = run_import("--project", str(project.pk), "--sync", str(corpus))

    assert "0 created, 3 skipped" in out
    assert Document.objects.filter(project=project).count() == 3


def test_without_sync_each_document_is_queued_after_its_commit(
    project: Any, corpus: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        out, _ = run_import("--project", str(project.pk), "--no-wait", str(corpus))

    assert len(callbacks) == 3
    assert "ingest continues in the worker" in out
    statuses = Document.objects.filter(project=project).values_list("status", flat=True)
    assert set(statuses) == {DocumentStatus.READY}


def test_a_folder_imports_its_visible_files_recursively(project: Any, folder: Path) -> None:
    out, _ = run_import("--project", str(project.pk), "--sync", str(folder))

    docs = Document.objects.filter(project=project).order_by("source")
    # b.md's H1 becomes its title: none was given.
    assert [(d.title, d.source, d.format) for d in docs] == [
        ("a.txt", "a.txt", "txt"),
        ("Plan", "sub/b.md", "md"),
    ]
    assert {d.status for d in docs} == {DocumentStatus.READY}
    assert "2 created" in out


def test_a_folder_imported_again_is_recognised_by_content(project: Any, folder: Path) -> None:
    run_import("--project", str(project.pk), "--sync", str(folder))
    (folder / "copy-of-a.txt").write_bytes((folder / "a.txt").read_bytes())
    (folder / "new.txt").write_text("Something new about reef fish.")

    out, _ = run_import("--project", str(project.pk), "--sync", str(folder))

    assert "1 created, 3 skipped" in out
    assert Document.objects.filter(project=project).count() == 3


def test_a_malformed_line_is_reported_and_the_rest_imported(project: Any, user: Any, tmp_path: Path) -> None:
    corpus = write_corpus(
        tmp_path / "bad.jsonl.gz",
        [
            json.dumps(RECORDS[0]),
            '{"_id": "x", "title": "broken',
            json.dumps({"title": "no id"}),
            json.dumps(RECORDS[1]),
        ],
    )

    report = services.documents_import(user=user, project=project, paths=[corpus])

    assert report.created == 2
    assert report.skipped_existing == 0
    assert [source for source, _ in report.failed] == [f"{corpus}:2", f"{corpus}:3"]
    assert "not valid JSON" in report.failed[0][1]
    assert '"_id"' in report.failed[1][1]


def test_the_command_lists_lines_it_could_not_import(project: Any, tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(json.dumps(RECORDS[0]) + "\nnot json at all\n")

    out, err = run_import("--project", str(project.pk), "--sync", str(corpus))

    assert "1 created, 0 skipped (already in the project), 1 failed" in out
    assert f"not imported: {corpus}:2: line 2: not valid JSON" in err


def test_a_file_over_the_size_limit_is_reported_not_fatal(
    project: Any, user: Any, tmp_path: Path, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 64
    (tmp_path / "big.txt").write_text("x" * 100)
    (tmp_path / "small.txt").write_text("A short note.")
    (tmp_path / "empty.txt").write_text("")

    report = services.documents_import(user=user, project=project, paths=[tmp_path])

    assert report.created == 1
    reasons = dict(report.failed)
    assert "MB limit" in reasons[str(tmp_path / "big.txt")]
    assert "empty" in reasons[str(tmp_path / "empty.txt")]


def test_progress_is_reported_for_every_record(project: Any, user: Any, corpus: Path, folder: Path) -> None:
    events: list[importing.ImportEvent] = []

    services.documents_import(user=user, project=project, paths=[corpus, folder], progress=events.append)

    assert len(events) == importing.count_sources([corpus, folder]) == 5
    assert {e.outcome for e in events} == {importing.CREATED}
    assert all(e.document_id for e in events)


def test_sources_come_in_a_stable_order_without_hidden_files(corpus: Path, folder: Path) -> None:
    records = list(importing.iter_sources([folder, corpus]))

    assert [r.name for r in records if isinstance(r, importing.FileSource)] == [
        "a.txt",
        "sub/b.md",
    ]
    assert [r.external_id for r in records if isinstance(r, importing.BeirRecord)] == [
        "101",
        "102",
        "103",
    ]
    assert [r.line for r in records if isinstance(r, importing.BeirRecord)] == [1, 3, 5]


def test_an_unknown_project_id_is_a_command_error(corpus: Path, db: Any) -> None:
    with pytest.raises(CommandError, match="Unknown project id"):
        run_import("--project", "not-a-uuid", str(corpus))
    with pytest.raises(CommandError, match="no such project"):
        run_import("--project", "00000000-0000-0000-0000-000000000000", str(corpus))


def test_a_missing_path_is_a_command_error(project: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Path does not exist"):
        run_import("--project", str(project.pk), str(tmp_path / "nowhere.jsonl"))


def test_the_importing_user_must_exist_and_be_an_editor(project: Any, corpus: Path) -> None:
    MembershipFactory(project=project, user__email="viewer@example.com", role=Role.VIEWER)

    with pytest.raises(CommandError, match="User not found"):
        run_import("--project", str(project.pk), "--user", "nobody@example.com", str(corpus))
    with pytest.raises(CommandError, match="not an editor"):
        run_import("--project", str(project.pk), "--user", "viewer@example.com", str(corpus))
    assert not Document.objects.filter(project=project).exists()


def test_an_editor_named_with_user_is_recorded_as_uploader(project: Any, corpus: Path) -> None:
    editor = MembershipFactory(project=project, user__email="editor@example.com", role=Role.EDITOR).user

    run_import(
        "--project",
        str(project.pk),
        "--user",
        "EDITOR@example.com",
        "--sync",
        str(corpus),
    )

    assert set(Document.objects.values_list("uploaded_by", flat=True)) == {editor.pk}


def test_imported_external_ids_show_in_the_api_and_in_search(project: Any, user: Any, corpus: Path) -> None:
    run_import("--project", str(project.pk), "--sync", str(corpus))
    doc = Document.objects.get(project=project, external_id="102")
    client = api_for(user)

    detail = client.get(f"/api/v1/documents/{doc.pk}/")
    search = client.get(
        f"/api/v1/projects/{project.pk}/search/",
        {"q": "coral bleaching sea temperatures"},
    )

    assert detail.status_code == 200
    assert detail.json()["external_id"] == "102"
    assert search.status_code == 200
    top = search.json()["results"][0]
    assert (top["document"], top["external_id"]) == (str(doc.pk), "102")


def test_sync_ingests_here_and_publishes_no_jobs(
    project: Any, user: Any, corpus: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as during:
        run_import("--project", str(project.pk), "--sync", str(corpus))
    with django_capture_on_commit_callbacks() as after:
        services.document_create(user=user, project=project, title="Later", text="Added later.")

    assert during == []
    assert len(after) == 1  # nothing process-wide was switched off: the next document is queued
    assert set(Document.objects.filter(external_id__gt="").values_list("status", flat=True)) == {
        DocumentStatus.READY
    }
