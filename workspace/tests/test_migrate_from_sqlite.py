"""`migrate_from_sqlite`: a data folder of the SQLite-based Docent moves into PostgreSQL.

The folder is the real one in data/ (made by make_sqlite_datafolder.py with the old code),
extracted afresh for each test. The moves commit for real (transaction=True), as they do
when the command runs, batch by batch.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import tarfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import User
from agents.models import AgentRun, RunKind, Thread
from documents import search
from documents.models import Chunk, Document, DocumentStatus, ImportBatch
from documents.tests.factories import ChunkFactory
from projects.models import Invitation, InvitationStatus, Membership, Project, Role
from workspace import sqlite_move

pytestmark = pytest.mark.django_db(transaction=True)

DATA = Path(__file__).parent / "data" / "sqlite-datafolder.tar.gz"
TABLES = {
    User: "accounts_user",
    Project: "projects_project",
    Membership: "projects_membership",
    Invitation: "projects_invitation",
    ImportBatch: "documents_importbatch",
    Document: "documents_document",
    Chunk: "documents_chunk",
    Thread: "agents_thread",
    AgentRun: "agents_agentrun",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A fresh copy of the old data folder: docent.sqlite3 and media/."""
    target = tmp_path / "old"
    target.mkdir()
    with tarfile.open(DATA) as archive:
        archive.extractall(target, filter="data")
    return target


@pytest.fixture(autouse=True)
def wakeups(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The worker's wake-ups, recorded instead of run: tasks are eager in tests, and an
    inline ingest would embed the pending documents (and load the encoder)."""
    calls: list[Any] = []
    monkeypatch.setattr("documents.tasks.enqueue_ingest", lambda document_id=None: calls.append(document_id))
    return calls


def move(path: Path | str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("migrate_from_sqlite", str(path), stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def old_rows(folder: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with sqlite3.connect(folder / "docent.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()


def old_count(folder: Path, table: str) -> int:
    return int(old_rows(folder, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608


@contextmanager
def writable_copy(folder: Path) -> Iterator[sqlite3.Connection]:
    """The extracted file opened for a test to change, committed and closed after: the triggers
    that kept the FTS5 and sqlite-vec tables in step go first (they need sqlite-vec to run)."""
    with closing(sqlite3.connect(folder / "docent.sqlite3")) as db, db:
        triggers = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for name in triggers:
            db.execute(f'DROP TRIGGER "{name}"')
        yield db


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every moved row, field by field (vectors as bytes); the projects' documents version, a
    counter that cached pages compare, is left out."""
    state: dict[str, list[tuple[Any, ...]]] = {}
    for model in TABLES:
        names = [f.attname for f in model._meta.concrete_fields if f.attname != "documents_version"]
        rows = model._default_manager.order_by("pk").values_list(*names)
        state[model.__name__] = [
            tuple(v.tobytes() if isinstance(v, np.ndarray) else v for v in row) for row in rows
        ]
    return state


def by_email(email: str) -> User:
    return User.objects.get(email=email)


def restart_id_sequences() -> None:
    """The id sequences as a fresh database has them (earlier tests in the run moved them on)."""
    with connection.cursor() as cursor:
        for table in ("documents_chunk", "projects_membership"):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false)", [table])


def test_the_whole_data_folder_moves(folder: Path, wakeups: list[Any]) -> None:
    restart_id_sequences()

    out, err = move(folder)

    for model, table in TABLES.items():
        assert model._default_manager.count() == old_count(folder, table), table
    # The old password signs in; staff stays staff; the unconfirmed account stays unconfirmed.
    ada = authenticate(email="ada@example.com", password="correct-horse-battery")
    assert ada is not None and ada.email_verified
    assert authenticate(email="ada@example.com", password="wrong-horse-battery") is None
    staff = by_email("staff@example.com")
    assert staff.is_staff and staff.is_superuser
    assert by_email("new@example.com").email_verified_at is None
    assert by_email("linus@example.com").tier == "pro"
    old_ada = old_rows(folder, "SELECT * FROM accounts_user WHERE email = 'ada@example.com'")[0]
    assert ada.pk == UUID(old_ada["id"]) and ada.password == old_ada["password"]
    assert ada.date_joined.isoformat(sep=" ").startswith(old_ada["date_joined"])

    handbook = Project.objects.get(title="Chiller handbook")
    roles = dict(Membership.objects.filter(project=handbook).values_list("user__email", "role"))
    assert roles == {
        "ada@example.com": Role.OWNER,
        "grace@example.com": Role.EDITOR,
        "linus@example.com": Role.VIEWER,
    }
    assert list(Membership.objects.order_by("pk").values_list("pk", flat=True)) == [1, 2, 3, 4]
    invitation = Invitation.objects.get()
    assert (invitation.project, invitation.email, invitation.status) == (
        handbook,
        "newcomer@example.com",
        InvitationStatus.PENDING,
    )

    docs = {d.title: d for d in Document.objects.all()}
    assert docs["Handbook"].status == DocumentStatus.READY
    chunk = Chunk.objects.get(document=docs["Handbook"])
    assert chunk.title == "Handbook" and chunk.dim == 384 and chunk.embedding.shape == (384,)
    old_chunk = old_rows(folder, "SELECT * FROM documents_chunk WHERE id = ?", (chunk.pk,))[0]
    assert chunk.embedding.tobytes() == old_chunk["embedding"]
    assert chunk.text == old_chunk["text"]
    assert docs["Broken"].status == DocumentStatus.FAILED
    assert docs["Broken"].error == "The file is damaged or not a PDF: EOF marker not found"
    assert docs["Waiting"].status == DocumentStatus.PENDING
    assert docs["Imported one"].batch == ImportBatch.objects.get()
    assert docs["Safety rules"].metadata["tags"][:2] == ["safety", "rules"]

    # The upload, with the same bytes at the same place under the new media root.
    upload = docs["Safety rules"]
    with upload.file.open("rb") as fh:
        moved = fh.read()
    assert moved == (folder / "media" / upload.file.name).read_bytes()
    assert moved.startswith(b"# Safety rules")

    runs = {run.kind: run for run in AgentRun.objects.filter(parent=None)}
    assert runs[RunKind.ASK].answer == "The warranty lasts three years from installation. [1]"
    cited = [c["chunk"] for run in AgentRun.objects.all() for c in run.citations]
    cited += [n["chunk"] for run in AgentRun.objects.all() for n in run.output.get("nearest", [])]
    assert cited and set(cited) <= set(Chunk.objects.values_list("pk", flat=True))
    thread = Thread.objects.get()
    turns = list(thread.turns.order_by("created_at").values_list("question", flat=True))
    assert turns == ["How long is the warranty?", "Who do I call?"]
    assert thread.turn_count == 2
    # Conversations were open to the whole project then: they stay shared.
    assert thread.shared is True

    # New rows take ids past the moved ones.
    assert (
        ChunkFactory(document=docs["Waiting"], index=0).pk
        > old_rows(folder, "SELECT max(id) FROM documents_chunk")[0][0]
    )
    assert Membership.objects.create(project=handbook, user=staff).pk > 4

    assert "users 5/5" in err and "documents 6/6" in err
    assert "users" in out and "5 copied, 0 already there" in out
    assert "Documents queued for re-embedding: 0." in out
    assert "Documents waiting for the worker (pending): 1" in out
    assert "Files: 1 copied, 0 already there, 0 missing." in out
    assert wakeups  # the worker is told about the pending document


def test_the_old_file_is_only_read(folder: Path) -> None:
    database = folder / "docent.sqlite3"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    move(folder)
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_moved_chunks_are_searchable_at_once(folder: Path) -> None:
    move(folder / "docent.sqlite3")
    handbook = Project.objects.get(title="Chiller handbook")

    lexical = search.search(project_ids=[handbook.pk], query="warranty", mode="lexical", cut=False)
    assert [hit.document_title for hit in lexical][:1] == ["Handbook"]
    # Hybrid embeds the query with the real encoder: the moved vectors are its vectors.
    hybrid = search.search(project_ids=[handbook.pk], query="How long is the warranty?", mode="hybrid")
    assert hybrid.hits[0].document_title == "Handbook"


def test_running_it_twice_changes_nothing(folder: Path) -> None:
    move(folder)
    first = snapshot()

    out, _ = move(folder)

    assert snapshot() == first
    for label in ("users", "projects", "memberships", "invitations", "documents", "chunks", "agent runs"):
        line = next(line for line in out.splitlines() if line.strip().startswith(label))
        assert " 0 copied" in line and "already there" in line and not line.endswith(" 0 already there"), line
    assert "Files: 0 copied, 1 already there, 0 missing." in out


@pytest.mark.parametrize("where", ["between document batches", "after the documents"])
def test_an_interrupted_move_finishes_on_the_next_run(
    folder: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    move(folder)
    clean = snapshot()
    call_command("flush", interactive=False, verbosity=0)
    assert Document.objects.count() == 0

    with monkeypatch.context() as patch:
        if where == "between document batches":
            patch.setattr(sqlite_move, "DOCUMENT_BATCH", 2)
            real = sqlite_move._copy_chunks
            calls = []

            def copy_then_stop(*args: Any, **kwargs: Any) -> Any:
                calls.append(1)
                if len(calls) == 2:
                    raise KeyboardInterrupt
                return real(*args, **kwargs)

            patch.setattr(sqlite_move, "_copy_chunks", copy_then_stop)
        else:
            real_table = sqlite_move._copy_table

            def stop_at_threads(source: Any, table: Any, *args: Any, **kwargs: Any) -> None:
                if table.label == "threads":
                    raise KeyboardInterrupt
                real_table(source, table, *args, **kwargs)

            patch.setattr(sqlite_move, "_copy_table", stop_at_threads)
        with pytest.raises(CommandError, match="Interrupted.*run the same command again"):
            move(folder)

    # What the first run committed is whole: each document there has all its chunks.
    for doc in Document.objects.all():
        assert doc.chunks.count() == old_count_of_chunks(folder, doc.pk)
    if where == "between document batches":
        assert Document.objects.count() == 2
    else:
        assert Document.objects.count() == 6 and AgentRun.objects.count() == 0

    move(folder)
    assert snapshot() == clean


def old_count_of_chunks(folder: Path, document_id: UUID) -> int:
    rows = old_rows(folder, "SELECT count(*) FROM documents_chunk WHERE document_id = ?", (document_id.hex,))
    return int(rows[0][0])


def test_chunks_of_another_dimension_are_not_copied_and_their_document_is_queued_again(
    folder: Path, wakeups: list[Any]
) -> None:
    handbook_id = old_rows(folder, "SELECT id FROM documents_document WHERE title = 'Handbook'")[0]["id"]
    with writable_copy(folder) as db:
        db.execute(
            "UPDATE documents_chunk SET dim = 8, embedding = zeroblob(32) WHERE document_id = ?",
            (handbook_id,),
        )

    out, _ = move(folder)

    handbook = Document.objects.get(pk=UUID(handbook_id))
    assert handbook.status == DocumentStatus.PENDING
    assert handbook.indexed_hash == ""  # embedded again even though its text did not change
    assert not handbook.chunks.exists()
    assert Chunk.objects.count() == old_count(folder, "documents_chunk") - 1
    assert "1 not copied (vectors of another dimension than the encoder's 384, or damaged)" in out
    assert "Documents queued for re-embedding: 1 (Handbook)" in out
    assert "Documents waiting for the worker (pending): 2" in out
    assert wakeups

    # Again: nothing more is queued, and the document is not touched.
    changed = handbook.status_changed_at
    out, _ = move(folder)
    assert "Documents queued for re-embedding: 0." in out
    assert Document.objects.get(pk=handbook.pk).status_changed_at == changed


def test_a_damaged_vector_is_embedded_again(folder: Path) -> None:
    with writable_copy(folder) as db:
        row = db.execute("SELECT id, document_id FROM documents_chunk WHERE dim = 384 LIMIT 1").fetchone()
        db.execute("UPDATE documents_chunk SET embedding = zeroblob(100) WHERE id = ?", (row[0],))

    move(folder)

    assert Document.objects.get(pk=UUID(row[1])).status == DocumentStatus.PENDING
    assert not Chunk.objects.filter(pk=row[0]).exists()


def test_processing_documents_arrive_pending_and_unclaimed(folder: Path) -> None:
    with writable_copy(folder) as db:
        db.execute(
            "UPDATE documents_document SET status = 'processing', claimed_by = 'old-job' WHERE title = 'Waiting'"
        )

    move(folder)

    waiting = Document.objects.get(title="Waiting")
    assert (waiting.status, waiting.claimed_by) == (DocumentStatus.PENDING, "")


def test_a_missing_file_is_reported_and_its_document_keeps_its_text(folder: Path) -> None:
    name = old_rows(folder, "SELECT file FROM documents_document WHERE file != ''")[0]["file"]
    (folder / "media" / name).unlink()

    out, err = move(folder)

    assert "Files: 0 copied, 0 already there, 1 missing." in out
    assert f"missing file (the document keeps its text): Safety rules: {name}" in err
    doc = Document.objects.get(title="Safety rules")
    assert doc.status == DocumentStatus.READY and doc.text.startswith("# Safety rules")


def test_a_dry_run_writes_nothing(folder: Path, settings: Any) -> None:
    out, _ = move(folder, dry_run=True)

    assert "Dry run" in out and "5 would copy" in out
    assert User.objects.count() == 0 and Document.objects.count() == 0
    assert not any(Path(settings.MEDIA_ROOT).rglob("*.md"))


def test_what_stays_behind_is_named(folder: Path) -> None:
    with writable_copy(folder) as db:
        db.execute(
            "INSERT INTO django_session (session_key, session_data, expire_date) "
            "VALUES ('k', 'data', '2027-01-01 00:00:00')"
        )

    out, _ = move(folder)

    assert "Not moved: 1 sessions (everyone signs in again)." in out


def test_the_files_go_to_the_media_root_given(folder: Path, tmp_path: Path) -> None:
    media = tmp_path / "new-media"
    move(folder, media_root=str(media))
    name = Document.objects.get(title="Safety rules").file.name
    assert (media / name).read_bytes() == (folder / "media" / name).read_bytes()


def test_another_account_with_an_old_email_stops_the_move_before_anything_is_written(folder: Path) -> None:
    User.objects.create_user(email="Grace@Example.com", password="someone-else-entirely")

    with pytest.raises(CommandError, match=r"other accounts with the emails of old ones: grace@example.com"):
        move(folder)
    assert Project.objects.count() == 0 and User.objects.count() == 1


def test_chunk_ids_taken_by_other_passages_stop_the_move(folder: Path) -> None:
    ChunkFactory(id=1)  # a fresh database's first chunk: the id of the old Handbook chunk
    users = User.objects.count()

    with pytest.raises(CommandError, match="passages .* under the ids of old ones"):
        move(folder)
    assert User.objects.count() == users and Document.objects.count() == 1


def not_docent(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body text)")
    return path


def newer_schema(folder: Path) -> Path:
    with writable_copy(folder) as db:
        db.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('documents', '0005_one_search_engine', '2026-12-08 00:00:00')"
        )
    return folder


def other_django(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE django_migrations (id integer primary key, app text, name text, applied text)"
        )
        db.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('blog', '0001_initial', '')")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, folder: tmp / "nowhere", "does not exist"),
        (lambda tmp, folder: tmp, "holds no docent.sqlite3"),
        (
            lambda tmp, folder: _write(tmp / "notes.sqlite3", b"just some text, " * 100),
            "is not a SQLite database",
        ),
        (
            lambda tmp, folder: not_docent(tmp / "plain.sqlite3"),
            "not a Docent database: it has no django_migrations",
        ),
        (
            lambda tmp, folder: other_django(tmp / "blog.sqlite3"),
            "not a Docent database: it has no migrations of",
        ),
        (lambda tmp, folder: newer_schema(folder), "newer or unknown schema"),
    ],
    ids=[
        "missing",
        "folder-without-database",
        "not-sqlite",
        "not-django",
        "other-django-site",
        "newer-schema",
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(
    make: Any, message: str, tmp_path: Path, folder: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(CommandError, match=message):
        move(make(scratch, folder))
    assert User.objects.count() == 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_encoder_dimension_is_read_without_loading_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from documents import embedder

    def no_loading() -> int:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(embedder, "is_loaded", lambda: False)
    monkeypatch.setattr(embedder, "dimension", no_loading)
    assert sqlite_move.encoder_dimension() == 384
