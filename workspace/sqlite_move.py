"""Move a data folder of the SQLite-based Docent (`docent.sqlite3` and `media/`) into PostgreSQL.

The old file is opened read-only with the standard library and only its plain Django tables
are read: the full-text (FTS5) and sqlite-vec tables beside them are derived data, rebuilt
here by the database's own indexes as the chunks arrive. Rows are copied in dependency order
with their primary keys (citations in agent runs name chunks by id), column by column from
the current models' `_meta`, so the move follows the models rather than a list of columns.

Re-running is safe: a row whose primary key is already there is left as it is (a person may
have changed it since), each batch commits on its own, and a document commits together with
its chunks, so an interruption never leaves a document with part of its passages. A row the
database holds under another identity (another account with an old account's email) stops
the move before anything is written, rather than being skipped: what refers to the skipped
row (projects, documents, runs) would have nothing to point to.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models.functions import Lower
from django.utils.dateparse import parse_datetime

from accounts.models import User
from agents.models import AgentRun, Thread
from core.vectors import VectorField
from documents import embedder, services, tasks
from documents.models import Chunk, Document, DocumentStatus, ImportBatch
from documents.search import engine
from projects.models import Invitation, Membership, Project

log = logging.getLogger(__name__)

SOURCE_FILE = "docent.sqlite3"

# The migrations the last SQLite-based Docent had applied. The old schema is the models of
# this code without Chunk.title; any other state is a schema this move was not written for.
SQLITE_MIGRATIONS: dict[str, frozenset[str]] = {
    "accounts": frozenset({"0001_initial", "0002_user_email_verified_at"}),
    "projects": frozenset(
        {"0001_initial", "0002_project_documents_version", "0003_drop_index_version", "0004_invitation"}
    ),
    "documents": frozenset(
        {"0001_initial", "0002_document_list_index", "0003_search_in_the_database", "0004_ingest_queue"}
    ),
    "agents": frozenset({"0001_initial", "0002_run_requested_provider", "0003_threads"}),
}
# Columns of the current models that the old tables cannot have, filled here instead: each
# passage's title (its document's), and the sharing of a conversation, which was open to the
# whole project before threads could be private (as agents' migration sets existing threads).
# Any other column added since takes its field's default.
NEW_COLUMNS = {("documents_chunk", "title"), ("agents_thread", "shared")}
SINCE_SQLITE_VALUES: dict[tuple[str, str], Any] = {("agents_thread", "shared"): True}
# What stays behind, with the reason the summary gives.
NOT_MOVED = {
    "django_session": "sessions (everyone signs in again)",
    "token_blacklist_outstandingtoken": "API tokens (signed with the old key; clients sign in again)",
    "django_admin_log": "admin log entries",
    "accounts_user_groups": "group memberships of users",
    "accounts_user_user_permissions": "per-user permissions",
}

ROW_BATCH = 500
# A batch of documents commits with all its chunks: bounded by both, so one transaction
# (and the vectors held in memory for it) stays small.
DOCUMENT_BATCH = 200
CHUNK_BATCH = 2_000
# Ids per lookup in the target database.
LOOKUP_BATCH = 1_000

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)


class MoveRefused(Exception):
    """The move cannot start: the message says why, for a person."""


@dataclass
class Tally:
    copied: int = 0
    present: int = 0  # already in the database (an earlier run, or an equivalent row)


@dataclass
class MoveReport:
    source: Path
    dimension: int
    dry_run: bool
    tables: dict[str, Tally] = field(default_factory=dict)
    chunks_not_copied: int = 0
    # Documents set back to pending because their vectors are not the encoder's.
    requeued: list[str] = field(default_factory=list)
    # Moved documents that are pending now (the worker ingests them).
    waiting: int = 0
    files_copied: int = 0
    files_present: int = 0
    files_missing: list[str] = field(default_factory=list)
    not_moved: dict[str, int] = field(default_factory=dict)


# --- the source file -----------------------------------------------------------------


def sqlite_file_for(*, path: Path) -> Path:
    """The old database file: PATH itself, or the docent.sqlite3 of the data folder PATH."""
    if not path.exists():
        raise MoveRefused(f"{path} does not exist.")
    if path.is_dir():
        found = path / SOURCE_FILE
        if not found.is_file():
            raise MoveRefused(
                f"{path} holds no {SOURCE_FILE}: give the old data folder or its .sqlite3 file."
            )
        return found
    return path


class _Source:
    """The old database, read-only; only plain tables, never the FTS5 or sqlite-vec ones."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.row_factory = sqlite3.Row

    def tables(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f'PRAGMA table_info("{table}")')}

    def count(self, table: str) -> int:
        return int(self.db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # noqa: S608

    def rows(
        self,
        table: str,
        columns: Iterable[str],
        *,
        order_by: str,
        where: str = "",
        params: Sequence[Any] = (),
    ) -> Iterator[list[sqlite3.Row]]:
        """Rows in batches; table and column names come from the models, values go as parameters."""
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'SELECT {names} FROM "{table}" {where} ORDER BY {order_by}'  # noqa: S608
        cursor = self.db.execute(sql, tuple(params))
        while batch := cursor.fetchmany(ROW_BATCH):
            yield batch


def _open(path: Path) -> sqlite3.Connection:
    # mode=ro: nothing in the old folder is written, even by mistake (SQLite may add the
    # -wal/-shm side files a read of a WAL database needs; the database itself is untouched).
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise MoveRefused(f"{path} cannot be opened read-only: {exc}.") from None
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        if not os.access(path, os.R_OK):
            raise MoveRefused(f"{path} is not readable by this user.") from None
        raise MoveRefused(f"{path} is not a SQLite database ({exc}).") from None
    return db


def _check_schema(source: _Source, path: Path) -> None:
    """Refuse anything but a Docent database at the state the last SQLite-based version left."""
    tables = source.tables()
    if "django_migrations" not in tables:
        raise MoveRefused(f"{path} is not a Docent database: it has no django_migrations table.")
    applied: dict[str, set[str]] = {}
    for row in source.db.execute("SELECT app, name FROM django_migrations"):
        applied.setdefault(row[0], set()).add(row[1])
    if not set(SQLITE_MIGRATIONS) <= set(applied):
        apps = ", ".join(sorted(set(SQLITE_MIGRATIONS) - set(applied)))
        raise MoveRefused(f"{path} is not a Docent database: it has no migrations of {apps}.")
    for app, known in SQLITE_MIGRATIONS.items():
        unknown = applied[app] - known
        if unknown:
            raise MoveRefused(
                f"{path} has a newer or unknown schema ({app} {', '.join(sorted(unknown))}); "
                "this command moves the data folders of the last SQLite-based Docent only."
            )
        if applied[app] < known:
            raise MoveRefused(
                f"{path} has an older schema ({app} lacks {', '.join(sorted(known - applied[app]))}): "
                "start the last SQLite-based Docent on it once (it migrates the file), then move it."
            )
    for model in _MODELS:
        table = model._meta.db_table
        if table not in tables:
            raise MoveRefused(f"{path} lacks the table {table}: it is not a complete Docent database.")
        old = source.columns(table)
        new = {f.column for f in model._meta.concrete_fields}
        defaulted = {f.column for f in model._meta.concrete_fields if f.has_default() or f.null}
        missing = new - old - defaulted - {c for t, c in NEW_COLUMNS if t == table}
        if missing or old - new:
            raise MoveRefused(
                f"{path}: the table {table} does not have the columns its migrations promise "
                f"(missing {sorted(missing)}, unknown {sorted(old - new)})."
            )


# --- the target database ------------------------------------------------------------


def _check_migrated() -> None:
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise MoveRefused("The PostgreSQL database is not fully migrated: run `manage.py migrate` first.")


def _chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_conflicts(source: _Source) -> None:
    """Refuse, before anything is written, rows the database holds under another identity:
    a different account with an old account's email, a different document with an old
    document's external id in its project, a different passage under an old chunk id."""
    accounts: dict[str, set[UUID]] = {}
    for batch in source.rows("accounts_user", ["id", "email"], order_by="id"):
        for row in batch:
            accounts.setdefault(row["email"].lower(), set()).add(UUID(row["id"]))
    taken: set[str] = set()
    for emails in _chunked(sorted(accounts), LOOKUP_BATCH):
        owners = User.objects.annotate(address=Lower("email")).filter(address__in=emails)
        taken |= {email for email, pk in owners.values_list("address", "pk") if pk not in accounts[email]}
    if taken:
        raise MoveRefused(
            "The database already has other accounts with the emails of old ones: "
            f"{', '.join(sorted(taken))}. Delete or rename them (or move into an empty database) "
            "and run the move again; nothing was written."
        )

    external = [
        (UUID(row["project_id"]), row["external_id"], UUID(row["id"]))
        for batch in source.rows(
            "documents_document",
            ["id", "project_id", "external_id"],
            order_by="id",
            where="WHERE external_id != ''",
        )
        for row in batch
    ]
    projects = set(Project.objects.filter(pk__in={p for p, _, _ in external}).values_list("pk", flat=True))
    wanted = {(p, e): pk for p, e, pk in external if p in projects}
    clashes: list[str] = []
    for project_id in projects:
        ids = [e for p, e in wanted if p == project_id]
        for names in _chunked(ids, LOOKUP_BATCH):
            holders = Document.objects.filter(project_id=project_id, external_id__in=names)
            clashes += [
                f"{name!r} in project {project_id}"
                for name, pk in holders.values_list("external_id", "pk")
                if wanted[(project_id, name)] != pk
            ]
    if clashes:
        raise MoveRefused(
            f"The database already has other documents with the external ids of old ones: {', '.join(clashes)}. "
            "Nothing was written."
        )

    foreign = 0
    for batch in source.rows("documents_chunk", ["id", "document_id"], order_by="id"):
        documents = {int(row["id"]): UUID(row["document_id"]) for row in batch}
        stored = Chunk.objects.filter(pk__in=list(documents)).values_list("pk", "document_id")
        foreign += sum(1 for pk, document_id in stored if documents[pk] != document_id)
    if foreign:
        raise MoveRefused(
            f"The database already has {foreign} passages (chunks) under the ids of old ones; answers "
            "cite passages by id, so the move needs a database without them (a fresh one). Nothing was written."
        )


# --- values and rows ------------------------------------------------------------------


def _python_value(model_field: models.Field[Any, Any], raw: Any) -> Any:
    """A value as Django's SQLite backend stored it, as the current field takes it."""
    if raw is None:
        return None
    if isinstance(model_field, models.JSONField):
        return json.loads(raw, cls=model_field.decoder) if isinstance(raw, str | bytes) else raw
    if isinstance(model_field, VectorField):
        # float32 little-endian bytes, which the field takes as they are (once checked usable).
        return bytes(raw)
    if isinstance(model_field, models.DateTimeField) and isinstance(raw, str):
        moment = parse_datetime(raw)
        if moment is None:
            raise ValueError(f"not a date and time: {raw!r}")
        # The SQLite backend stored UTC without an offset.
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    # UUIDs (32 hex digits), booleans (0/1), dates, numbers and text.
    return model_field.to_python(raw)


def _instance(model: type[models.Model], row: sqlite3.Row) -> Any:
    """An unsaved model instance of an old row; fields the old table lacks take the value set
    for them (SINCE_SQLITE_VALUES), else their defaults."""
    columns = set(row.keys())
    table = model._meta.db_table
    values = {
        f.attname: _python_value(f, row[f.column]) for f in model._meta.concrete_fields if f.column in columns
    }
    for f in model._meta.concrete_fields:
        if f.column not in columns and (table, f.column) in SINCE_SQLITE_VALUES:
            values[f.attname] = SINCE_SQLITE_VALUES[(table, f.column)]
    return model(**values)


def _insert(model: type[models.Model], objs: Sequence[Any], *, skip_present: bool = True) -> list[Any]:
    """Insert the rows (skipping those already there, by any unique key); the primary keys inserted.

    Written out rather than bulk_create: that stamps auto_now/auto_now_add fields with the
    present time, and the old timestamps are part of the data.
    """
    if not objs:
        return []
    pk = model._meta.pk
    assert pk is not None
    # A row without a primary key takes one from the table's sequence.
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and objs[0].pk is None)]
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    conflict = " ON CONFLICT DO NOTHING" if skip_present else ""
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(objs))}{conflict} RETURNING {quote(pk.column)}"
    )
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in objs for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _reserve_ids(model: type[models.Model], source: _Source) -> None:
    """Move the table's id sequence past the old ids before they are inserted, so a row the
    application adds meanwhile (an ingest running beside the move) never takes one of them."""
    pk = model._meta.pk
    assert pk is not None
    table = model._meta.db_table
    highest = source.db.execute(f'SELECT max("{pk.column}") FROM "{table}"').fetchone()[0]  # noqa: S608
    if highest is None:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk.column])
        sequence = cursor.fetchone()[0]
        if sequence is None:
            raise RuntimeError(f"{table}.{pk.column} has no sequence")
        # GREATEST with nextval: never moves the sequence back under ids handed out already.
        cursor.execute(
            f"SELECT setval(%s, GREATEST((SELECT max({connection.ops.quote_name(pk.column)}) "  # noqa: S608
            f"FROM {connection.ops.quote_name(table)}), %s, nextval(%s)))",
            [sequence, int(highest), sequence],
        )


# --- the move -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    label: str
    model: type[models.Model]
    order_by: str  # parents first where a table refers to itself
    # The columns that make two rows the same thing when their integer ids differ.
    natural_key: tuple[str, ...] = ()


_USERS = _Table("users", User, "date_joined, id")
_PROJECTS = _Table("projects", Project, "created_at, id")
_MEMBERSHIPS = _Table("memberships", Membership, "id", natural_key=("project_id", "user_id"))
_INVITATIONS = _Table("invitations", Invitation, "created_at, id")
_IMPORTS = _Table("import batches", ImportBatch, "started_at, id")
_THREADS = _Table("threads", Thread, "created_at, id")
# A follow-up is asked after its parent: created_at order puts every parent in an earlier
# (or the same) batch.
_RUNS = _Table("agent runs", AgentRun, "created_at, id")
_MODELS: list[type[models.Model]] = [
    User,
    Project,
    Membership,
    Invitation,
    ImportBatch,
    Document,
    Chunk,
    Thread,
    AgentRun,
]


def sqlite_datafolder_move(
    *,
    path: Path,
    media_root: Path | None = None,
    old_media: Path | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> MoveReport:
    """Copy an old SQLite data folder's accounts, projects, documents, chunks, runs and files into this database."""
    database = sqlite_file_for(path=path)
    say: Progress = progress or (lambda table, done, total: None)
    with closing(_open(database)) as db:
        source = _Source(db)
        _check_schema(source, database)
        _check_migrated()
        _check_conflicts(source)
        report = MoveReport(source=database, dimension=encoder_dimension(), dry_run=dry_run)
        tables = source.tables()
        report.not_moved = {
            label: n for table, label in NOT_MOVED.items() if table in tables and (n := source.count(table))
        }
        media_from = old_media or database.parent / "media"
        media_to = media_root or Path(settings.MEDIA_ROOT)
        if dry_run:
            # Everything runs as it would, then rolls back; files are only looked at.
            with transaction.atomic():
                _move(source, report, say, media_from=media_from, media_to=media_to, copy_files=False)
                transaction.set_rollback(True)
        else:
            _reserve_ids(Membership, source)
            _reserve_ids(Chunk, source)
            _move(source, report, say, media_from=media_from, media_to=media_to, copy_files=True)
            if report.waiting:
                tasks.enqueue_ingest()
    log.info(
        "sqlite data folder moved",
        extra={
            "source": str(database),
            "dry_run": dry_run,
            "copied": {label: tally.copied for label, tally in report.tables.items()},
            "requeued": len(report.requeued),
            "files_missing": len(report.files_missing),
        },
    )
    return report


def _move(
    source: _Source, report: MoveReport, say: Progress, *, media_from: Path, media_to: Path, copy_files: bool
) -> None:
    for table in (_USERS, _PROJECTS, _MEMBERSHIPS, _INVITATIONS, _IMPORTS):
        _copy_table(source, table, report, say)
    # Files before their documents: a worker claiming a pending upload finds its file.
    _copy_files(source, report, say, media_from=media_from, media_to=media_to, copy=copy_files)
    _copy_documents(source, report, say)
    for table in (_THREADS, _RUNS):
        _copy_table(source, table, report, say)
    report.waiting = _pending_count(source)


def _copy_table(source: _Source, table: _Table, report: MoveReport, say: Progress) -> None:
    model = table.model
    db_table = model._meta.db_table
    columns = sorted(source.columns(db_table))
    total = source.count(db_table)
    tally = report.tables.setdefault(table.label, Tally())
    done = 0
    say(table.label, done, total)
    for batch in source.rows(db_table, columns, order_by=table.order_by):
        objs = [_instance(model, row) for row in batch]
        with transaction.atomic():
            inserted = len(_insert(model, _keyed(table, objs)))
            if table.natural_key:
                inserted += len(_insert(model, [o for o in objs if o.pk is None]))
        tally.copied += inserted
        tally.present += len(objs) - inserted
        done += len(objs)
        say(table.label, done, total)


def _keyed(table: _Table, objs: list[Any]) -> list[Any]:
    """The rows that keep their ids; an integer id another row has taken in the meantime is
    dropped (the row takes a new one), since only its natural key identifies such a row."""
    if not table.natural_key:
        return objs
    key = table.natural_key
    taken = {
        row[0]: tuple(row[1:])
        for row in table.model._default_manager.filter(pk__in=[o.pk for o in objs]).values_list("pk", *key)
    }
    for obj in objs:
        if obj.pk in taken and taken[obj.pk] != tuple(getattr(obj, k) for k in key):
            obj.pk = None
    return [o for o in objs if o.pk is not None]


def _document_batches(source: _Source, chunk_counts: dict[str, int]) -> Iterator[list[sqlite3.Row]]:
    columns = sorted(source.columns("documents_document"))
    batch: list[sqlite3.Row] = []
    chunks = 0
    for rows in source.rows("documents_document", columns, order_by="project_id, created_at, id"):
        for row in rows:
            batch.append(row)
            chunks += chunk_counts.get(row["id"], 0)
            if len(batch) >= DOCUMENT_BATCH or chunks >= CHUNK_BATCH:
                yield batch
                batch, chunks = [], 0
    if batch:
        yield batch


def _copy_documents(source: _Source, report: MoveReport, say: Progress) -> None:
    """Documents with their chunks, each batch in one transaction: a document is in the
    database with all of its passages or not at all."""
    chunk_counts = {
        row[0]: int(row[1])
        for row in source.db.execute("SELECT document_id, count(*) FROM documents_chunk GROUP BY document_id")
    }
    # Partitions are made in transactions of their own, before any batch needs them.
    with_chunks = [row[0] for row in source.db.execute("SELECT DISTINCT project_id FROM documents_chunk")]
    engine.ensure_partitions(with_chunks)
    engine.ensure_dimension(report.dimension)
    documents = report.tables.setdefault("documents", Tally())
    chunks = report.tables.setdefault("chunks", Tally())
    total = source.count("documents_document")
    done = 0
    say("documents", done, total)
    for batch in _document_batches(source, chunk_counts):
        objs = [_arriving(_instance(Document, row)) for row in batch]
        with transaction.atomic():
            inserted = set(_insert(Document, objs))
            stale = _copy_chunks(source, [o for o in objs if o.pk in inserted], report)
            for project_id in sorted({o.project_id for o in objs if o.pk in inserted}, key=str):
                # Cached document lists of these projects go stale.
                services.documents_changed(project_id=project_id)
            for document in Document.objects.filter(pk__in=stale).order_by("pk"):
                # A failed document keeps its error; its leftover passages just stay behind.
                if document.status != DocumentStatus.FAILED:
                    services.document_requeue(document=document, force=True, enqueue=False)
                    report.requeued.append(document.title)
        documents.copied += len(inserted)
        documents.present += len(objs) - len(inserted)
        chunks.present += _chunks_present(source, [o.pk for o in objs if o.pk not in inserted])
        done += len(objs)
        say("documents", done, total)


def _chunks_present(source: _Source, documents: list[UUID]) -> int:
    """How many old chunks of these documents (there from an earlier run) the database holds."""
    if not documents:
        return 0
    marks = ", ".join("?" * len(documents))
    ids = [
        int(row[0])
        for row in source.db.execute(
            f"SELECT id FROM documents_chunk WHERE document_id IN ({marks})",  # noqa: S608
            [pk.hex for pk in documents],
        )
    ]
    return sum(Chunk.objects.filter(pk__in=part).count() for part in _chunked(ids, LOOKUP_BATCH))


def _arriving(document: Document) -> Document:
    # A document some old worker was ingesting waits for a new one: no claim carries over.
    if document.status == DocumentStatus.PROCESSING:
        document.status = DocumentStatus.PENDING
    if document.status == DocumentStatus.PENDING:
        document.claimed_by = ""
    return document


def _copy_chunks(source: _Source, documents: list[Document], report: MoveReport) -> list[UUID]:
    """Copy the chunks of these (just inserted) documents; the documents whose vectors cannot be
    used as they are (another dimension than the encoder's, or damaged) and need embedding again."""
    if not documents:
        return []
    titles = {d.pk: d.title for d in documents}
    by_document: dict[UUID, list[Chunk]] = {pk: [] for pk in titles}
    usable: dict[UUID, bool] = dict.fromkeys(titles, True)
    columns = sorted(source.columns("documents_chunk"))
    marks = ", ".join("?" * len(documents))
    for rows in source.rows(
        "documents_chunk",
        columns,
        order_by='document_id, "index"',
        where=f"WHERE document_id IN ({marks})",
        params=[d.pk.hex for d in documents],
    ):
        for row in rows:
            chunk = _instance(Chunk, row)
            chunk.title = titles[chunk.document_id]
            by_document[chunk.document_id].append(chunk)
            usable[chunk.document_id] &= _vector_usable(chunk.dim, row["embedding"], report.dimension)
    keep = [c for pk, found in by_document.items() if usable[pk] for c in found]
    for part in _chunked(keep, ROW_BATCH):
        # No ON CONFLICT: a chunk of a document inserted just now cannot be there already,
        # and the ids were checked free before the move began.
        _insert(Chunk, part, skip_present=False)
    tally = report.tables.setdefault("chunks", Tally())
    tally.copied += len(keep)
    stale = [pk for pk, ok in usable.items() if not ok]
    report.chunks_not_copied += sum(len(by_document[pk]) for pk in stale)
    return stale


def _vector_usable(dim: int, blob: Any, dimension: int) -> bool:
    """Whether a stored vector is one of the encoder's: its dimension, whole, and finite
    (the database refuses NaN in a vector)."""
    if dim != dimension or not isinstance(blob, bytes) or len(blob) != 4 * dimension:
        return False
    return bool(np.isfinite(np.frombuffer(blob, dtype="<f4")).all())


def _pending_count(source: _Source) -> int:
    ids = [UUID(row[0]) for row in source.db.execute("SELECT id FROM documents_document")]
    return sum(
        Document.objects.filter(pk__in=part, status=DocumentStatus.PENDING).count()
        for part in _chunked(ids, LOOKUP_BATCH)
    )


# --- files ----------------------------------------------------------------------------


def _copy_files(
    source: _Source, report: MoveReport, say: Progress, *, media_from: Path, media_to: Path, copy: bool
) -> None:
    """The uploads, at the same paths under the new media root; a missing one is reported (its
    document keeps the text extracted from it)."""
    rows = [
        (row["title"], row["file"])
        for batch in source.rows(
            "documents_document", ["title", "file"], order_by="id", where="WHERE file != ''"
        )
        for row in batch
    ]
    same_root = media_from.resolve() == media_to.resolve()
    say("files", 0, len(rows))
    for done, (title, name) in enumerate(rows, start=1):
        old, new = _inside(media_from, name), _inside(media_to, name)
        if old is None or new is None or not old.is_file():
            report.files_missing.append(f"{title}: {name}")
        elif same_root or (new.is_file() and new.stat().st_size == old.stat().st_size):
            report.files_present += 1
        else:
            if copy:
                _copy_file(old, new)
            report.files_copied += 1
        say("files", done, len(rows))


def _inside(root: Path, name: str) -> Path | None:
    """The file `name` under `root`, or None for a name that would leave it."""
    path = (root / name).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def _copy_file(old: Path, new: Path) -> None:
    new.parent.mkdir(parents=True, exist_ok=True)
    # Copied beside and renamed into place: an interrupted copy leaves no half file behind.
    fd, scratch = tempfile.mkstemp(prefix=f".{new.name}.", dir=new.parent)
    os.close(fd)
    try:
        shutil.copyfile(old, scratch)
        os.replace(scratch, new)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


# --- the encoder --------------------------------------------------------------------


def encoder_dimension() -> int:
    """The dimension of the configured encoder's vectors, read from the model's files when they
    say it plainly, so the move does not load the model (seconds, and hundreds of MB)."""
    if embedder.is_loaded():
        return embedder.dimension()
    folder = Path(embedder.model_path())
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        # Only Transformer -> Pooling (-> Normalize): a Dense layer after pooling changes the size.
        if kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            pooling = json.loads((folder / modules[1].get("path", "1_Pooling") / "config.json").read_text())
            found = pooling.get("embedding_dimension") or pooling.get("word_embedding_dimension")
            if isinstance(found, int) and found > 0:
                return found
    except (OSError, ValueError, AttributeError, IndexError, TypeError):
        pass
    return embedder.dimension()
