"""The embedded search engine: FTS5 (bm25) and sqlite-vec, inside the SQLite file.

Two virtual tables shadow `documents_chunk`, kept by triggers so that every
way a chunk is written or deleted (ingest, a cascade from a document or
project, the admin) updates them in the same transaction:

- `documents_chunk_fts`: a contentless FTS5 table (porter stemmer over
  unicode61) holding each chunk's title and text under the chunk's id.
- `documents_chunk_vec_<dim>`: a sqlite-vec `vec0` table per vector dimension,
  partitioned by project, so a search reads only its project's vectors.

A later migration that rebuilds `documents_chunk` on SQLite (Django remakes
the table for most column changes) drops these triggers: call `install()`
again after it.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import numpy as np

FTS = "documents_chunk_fts"
MAX_QUERY_TERMS = 64
# Lucene's English stop words, the list bm25s used: they carry no meaning to rank by.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
_WORD = re.compile(r"[^\W_]+")

_FTS_BODY = "coalesce((SELECT title FROM documents_document WHERE id = {row}.document_id), '') || char(10) || {row}.text"

INSTALL = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5("
    "body, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_ai AFTER INSERT ON documents_chunk BEGIN "
    f"INSERT INTO {FTS}(rowid, body) VALUES (new.id, {_FTS_BODY.format(row='new')}); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_ad AFTER DELETE ON documents_chunk BEGIN "
    f"DELETE FROM {FTS} WHERE rowid = old.id; END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_au AFTER UPDATE OF text, document_id ON documents_chunk BEGIN "
    f"DELETE FROM {FTS} WHERE rowid = old.id; "
    f"INSERT INTO {FTS}(rowid, body) VALUES (new.id, {_FTS_BODY.format(row='new')}); END",
    # A renamed document: its chunks are found by the new title, not the old one.
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_title AFTER UPDATE OF title ON documents_document BEGIN "
    f"DELETE FROM {FTS} WHERE rowid IN (SELECT id FROM documents_chunk WHERE document_id = new.id); "
    f"INSERT INTO {FTS}(rowid, body) SELECT id, new.title || char(10) || text "
    "FROM documents_chunk WHERE document_id = new.id; END",
]
BACKFILL_FTS = (
    f"INSERT INTO {FTS}(rowid, body) SELECT c.id, coalesce(d.title, '') || char(10) || c.text "
    "FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id"
)


def vec_table(dim: int) -> str:
    return f"documents_chunk_vec_{int(dim)}"


def _vec_statements(dim: int) -> list[str]:
    table = vec_table(dim)
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
        f"chunk_id integer primary key, project_id text partition key, "
        f"embedding float[{int(dim)}] distance_metric=cosine)",
        f"CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON documents_chunk WHEN new.dim = {int(dim)} "
        f"BEGIN INSERT INTO {table}(chunk_id, project_id, embedding) "
        "VALUES (new.id, new.project_id, new.embedding); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON documents_chunk WHEN old.dim = {int(dim)} "
        f"BEGIN DELETE FROM {table} WHERE chunk_id = old.id; END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_au AFTER UPDATE OF embedding, project_id ON documents_chunk "
        f"WHEN old.dim = {int(dim)} BEGIN DELETE FROM {table} WHERE chunk_id = old.id; "
        f"INSERT INTO {table}(chunk_id, project_id, embedding) "
        f"SELECT new.id, new.project_id, new.embedding WHERE new.dim = {int(dim)}; END",
    ]


def _table_exists(cursor: Any, name: str) -> bool:
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [name])
    return cursor.fetchone() is not None


def drop_triggers(schema_editor: Any) -> None:
    """Drop the search triggers before a migration rebuilds `documents_document` or `documents_chunk`.

    SQLite refuses to rename the rebuilt table into place while a trigger names the
    old one; `install()` puts them back afterwards.
    """
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'documents_chunk%'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')


def install(schema_editor: Any) -> None:
    """Create the FTS5 table, a vector table per dimension in use, and their triggers; fill them."""
    with schema_editor.connection.cursor() as cursor:
        fresh = not _table_exists(cursor, FTS)
        for statement in INSTALL:
            cursor.execute(statement)
        if fresh:
            cursor.execute(BACKFILL_FTS)
        cursor.execute("SELECT DISTINCT dim FROM documents_chunk WHERE dim > 0")
        dims = {row[0] for row in cursor.fetchall()} | {384}
    for dim in sorted(dims):
        ensure_dimension(schema_editor.connection, dim)


def ensure_dimension(conn: Any, dim: int) -> None:
    if dim <= 0:
        return
    table = vec_table(dim)
    with conn.cursor() as cursor:
        if _table_exists(cursor, f"{table}_ai"):
            return
        for statement in _vec_statements(dim):
            cursor.execute(statement)
        # Chunks stored before this dimension had a table (none, unless a model changed).
        cursor.execute(
            f"INSERT INTO {table}(chunk_id, project_id, embedding) "
            f"SELECT id, project_id, embedding FROM documents_chunk WHERE dim = {int(dim)} "
            f"AND id NOT IN (SELECT chunk_id FROM {table})"
        )


def _project_key(project_id: UUID) -> str:
    # Django stores UUIDs in SQLite as 32 hex digits; the partition key copies the column.
    return project_id.hex


def dense(project_ids: list[UUID], vector: np.ndarray[Any, Any], depth: int) -> list[tuple[int, float]]:
    """Chunks by cosine similarity to the vector, best first (exact: vec0 scans its partition)."""
    from django.db import connection

    table = vec_table(len(vector))
    blob = np.asarray(vector, dtype="<f4").tobytes()
    found: list[tuple[int, float]] = []
    with connection.cursor() as cursor:
        if not _table_exists(cursor, table):
            return []
        # One KNN per project: the partition key keeps each to its project's rows.
        for project_id in project_ids:
            cursor.execute(
                f"SELECT chunk_id, distance FROM {table} "
                "WHERE embedding MATCH %s AND k = %s AND project_id = %s",
                [blob, depth, _project_key(project_id)],
            )
            found.extend((int(c), 1.0 - float(d)) for c, d in cursor.fetchall())
    found.sort(key=lambda hit: (-hit[1], hit[0]))
    return found[:depth]


def match_expression(query: str) -> str:
    """An FTS5 query matching any meaningful word of the text: each word quoted, so no syntax leaks."""
    words: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word not in STOP_WORDS and word not in words:
            words.append(word)
    return " OR ".join(f'"{w}"' for w in words[:MAX_QUERY_TERMS])


def lexical(project_ids: list[UUID], query: str, depth: int) -> list[tuple[int, float]]:
    """Chunks by FTS5's bm25() for any of the query's words, best first."""
    from django.db import connection

    expression = match_expression(query)
    if not expression:
        return []
    keys = [_project_key(p) for p in project_ids]
    marks = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        # FTS5 first, then the project filter: joined the other way round, SQLite walks the
        # project's chunks and evaluates the full-text query once per chunk.
        cursor.execute(
            f"WITH matched AS MATERIALIZED (SELECT rowid AS id, bm25({FTS}) AS rank FROM {FTS} "
            f"WHERE {FTS} MATCH %s) "
            "SELECT m.id, m.rank FROM matched m JOIN documents_chunk c ON c.id = m.id "
            f"WHERE c.project_id IN ({marks}) ORDER BY m.rank, m.id LIMIT %s",
            [expression, *keys, depth],
        )
        # bm25() is negative, lower is better.
        return [(int(c), -float(r)) for c, r in cursor.fetchall()]
