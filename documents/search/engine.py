"""The search engine: PostgreSQL with pgvector (dense) and ParadeDB pg_search (lexical, BM25).

Chunks live in `documents_chunk`, a table partitioned by project (LIST on `project_id`):
every project with chunks has a partition of its own, `documents_chunk_p_<project hex>`,
made when its first chunks are stored and dropped by the sweeper once the project is gone.
A partition carries its own indexes, built from the ones declared on the parent:

- a BM25 index (pg_search, on Tantivy) over the chunk's document title and text, one
  field `body`, tokenised into words with the stemmer and stop words of
  `DOCENT_SEARCH_LANGUAGE` (English by default);
- an HNSW index (pgvector, cosine) per vector dimension in use.

A project's own index means its BM25 statistics (how rare a word is, how long chunks
are) come from its own chunks only: no score, order or cut that a search returns can
depend on another tenant's documents, and a project's search reads its partition alone,
with no filter to apply. A search of several projects asks each partition in one
statement (UNION ALL) and merges.

Both indexes are transactional: a chunk is found by the first search after its ingest
commits, and gone with the delete that removes it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from pgvector import Vector

from documents.search import text as search_text

log = logging.getLogger(__name__)

PARENT = "documents_chunk"
PARTITION_PREFIX = "documents_chunk_p_"
BM25_INDEX = "documents_chunk_bm25"
# HNSW indexes of more dimensions than this are not built by pgvector; such vectors are scanned.
HNSW_MAX_DIM = 2000
# The words of a query the lexical ranking uses, at most: each one costs pg_search a
# posting-list walk (a 10,000-character question took 2.4 s), and past a few dozen
# distinct words a question ranks no differently.
MAX_QUERY_WORDS = 64
# The stemmers pg_search (Tantivy) has, by DOCENT_SEARCH_LANGUAGE.
LANGUAGES = (
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
)

Ranking = list[tuple[int, float]]  # (chunk id, score), best first


def partition_name(project_id: UUID | str) -> str:
    return PARTITION_PREFIX + UUID(str(project_id)).hex


def _partition_project(name: str) -> UUID | None:
    match = re.fullmatch(PARTITION_PREFIX + r"([0-9a-f]{32})", name)
    return UUID(match.group(1)) if match else None


# --- the schema (migrations call these) ------------------------------------------------


def require_extensions(cursor: Any) -> None:
    """pgvector and pg_search in this database, or a message saying how to get them."""
    cursor.execute("SELECT name FROM pg_available_extensions WHERE name IN ('vector', 'pg_search')")
    available = {row[0] for row in cursor.fetchall()}
    missing = sorted({"vector", "pg_search"} - available)
    if missing:
        raise RuntimeError(
            f"This PostgreSQL server lacks the {' and '.join(missing)} extension(s). Docent needs "
            "PostgreSQL 15+ with pgvector 0.8+ and ParadeDB pg_search 0.21+ (e.g. the paradedb/paradedb "
            "image); leave DATABASE_URL unset to use the private server `make run` starts."
        )
    cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_search")


def bm25_index_sql(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"no stemmer for {language!r}")
    tokenizer = f"pdb.unicode_words('alias=body', 'stemmer={language}', 'stopwords_language={language}')"
    # mutable_segment_rows=0: each insert goes straight into a searchable segment. With
    # pg_search's default the newest rows wait in a "mutable segment" that every query
    # scanned at 60-110 ms until the next VACUUM.
    return (
        f"CREATE INDEX IF NOT EXISTS {BM25_INDEX} ON {PARENT} USING bm25 "
        f"(id, ((title || E'\\n' || text)::{tokenizer})) WITH (key_field = 'id', mutable_segment_rows = 0)"
    )


def lexical_language(cursor: Any) -> str | None:
    """The stemmer language the BM25 index was built with (None: no index)."""
    if not _exists(cursor, BM25_INDEX):
        return None
    cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [BM25_INDEX])
    found = re.search(r"stemmer=(\w+)", cursor.fetchone()[0])
    return found.group(1) if found else None


def _exists(cursor: Any, relation: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [relation])
    return bool(cursor.fetchone()[0])


def ensure_lexical_index(cursor: Any, language: str | None = None) -> bool:
    """Build the BM25 index for the configured language, or rebuild it when the language
    changed (every partition's index follows). True when it was (re)built."""
    language = language or settings.SEARCH_LANGUAGE
    if lexical_language(cursor) == language:
        return False
    cursor.execute(f"DROP INDEX IF EXISTS {BM25_INDEX}")
    cursor.execute(bm25_index_sql(language))
    return True


def hnsw_index(dim: int) -> str:
    return f"documents_chunk_hnsw_{int(dim)}"


def ensure_dimension(dim: int) -> None:
    """An HNSW index for vectors of this dimension (a new model brings a new one), on every partition."""
    if dim <= 0 or dim > HNSW_MAX_DIM:
        return
    with connection.cursor() as cursor:
        if _exists(cursor, hnsw_index(dim)):
            return
        # Partial and on an expression: each dimension in use gets its own typed index.
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {hnsw_index(dim)} ON {PARENT} "
            f"USING hnsw ((embedding::vector({int(dim)})) vector_cosine_ops) WHERE dim = {int(dim)}"
        )


# --- partitions ------------------------------------------------------------------------


def ensure_partitions(project_ids: Iterable[Any]) -> None:
    """A partition for each project that has none yet, each made and attached in its own short
    transaction (ATTACH takes a lock that lets searches and inserts go on)."""
    wanted = {UUID(str(p)) for p in project_ids}
    if not wanted:
        return
    have = existing_partitions(wanted)
    for project_id in sorted(wanted - have):
        name = partition_name(project_id)
        with transaction.atomic(), connection.cursor() as cursor:
            # One maker per project: a second waits, then finds the partition there.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 26))", [name])
            if _exists(cursor, name):
                continue
            cursor.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(
                f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES IN (%s)", [str(project_id)]
            )


def existing_partitions(project_ids: Iterable[UUID] | None = None) -> set[UUID]:
    """The projects (of those given, or all) that have a partition."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        found = {p for (name,) in cursor.fetchall() if (p := _partition_project(name)) is not None}
    return found if project_ids is None else found & set(project_ids)


def drop_partitions(project_ids: Iterable[UUID]) -> int:
    """Detach and drop the partitions of these (deleted) projects; how many went.

    DETACH ... CONCURRENTLY never blocks searches and ingest of other projects (a plain
    DROP of a partition locks the whole table); it cannot run inside a transaction.
    """
    dropped = 0
    for project_id in project_ids:
        name = partition_name(project_id)
        with connection.cursor() as cursor:
            if not _exists(cursor, name):
                continue
            cursor.execute(
                "SELECT 1 FROM pg_inherits WHERE inhrelid = %s::regclass AND inhparent = %s::regclass",
                [name, PARENT],
            )
            if cursor.fetchone() is not None:
                cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name} CONCURRENTLY")
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
        dropped += 1
    return dropped


# Partitions this process has seen: a partition, once made, stays until its project is gone,
# so a search asks the catalog only about projects not seen yet (a new project's first chunks
# are found by the very next search), and forgets one whose table went (`forget_partitions`).
_seen: set[UUID] = set()


def partitions(project_ids: Sequence[UUID]) -> set[UUID]:
    """The projects among these that have chunks (a partition)."""
    wanted = {UUID(str(p)) for p in project_ids}
    unknown = wanted - _seen
    if unknown:
        names = {partition_name(p): p for p in unknown}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'", [list(names)]
            )
            _seen.update(names[name] for (name,) in cursor.fetchall())
    return wanted & _seen


def forget_partitions() -> None:
    """Ask the catalog again next time (a partition was dropped under a search)."""
    _seen.clear()


# --- compaction ----------------------------------------------------------------------------

# pg_search writes each insert's rows as a segment of their own, and its merge policy leaves
# dozens of small ones: every search then opens each of them (SciFact's 11,607 chunks ingested
# document by document: 72 segments, 19 ms a top-100; rebuilt into one segment: 1.2 ms). A
# partition with more segments than this is rebuilt (REINDEX ... CONCURRENTLY: searches and
# inserts go on meanwhile) once its project has nothing left waiting to be ingested.
COMPACT_SEGMENTS = 8
# The projects written since their partitions were last looked at, in Redis (a set).
WRITTEN_KEY = "docent:search:written"


def mark_written(project_ids: Iterable[Any]) -> None:
    """Note that these projects' partitions took rows (or lost some) since the last compaction;
    a cache outage costs only a compaction, never the write."""
    members = [str(p) for p in project_ids]
    if not members:
        return
    try:
        _redis().sadd(WRITTEN_KEY, *members)
    except Exception:
        log.warning("could not note a search partition to compact", exc_info=True)


def written() -> list[UUID]:
    return sorted(
        UUID(str(m.decode() if isinstance(m, bytes) else m)) for m in _redis().smembers(WRITTEN_KEY)
    )


def forget_written(project_ids: Iterable[Any]) -> None:
    members = [str(p) for p in project_ids]
    if members:
        _redis().srem(WRITTEN_KEY, *members)


def _redis() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _bm25_index_of(cursor: Any, project_id: UUID) -> str | None:
    cursor.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = to_regclass(%s) AND a.amname = 'bm25'",
        [partition_name(project_id)],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def segment_count(project_id: UUID) -> int:
    """How many segments the project's BM25 index is in (0: no partition)."""
    with connection.cursor() as cursor:
        index = _bm25_index_of(cursor, project_id)
        if index is None:
            return 0
        cursor.execute("SELECT count(*) FROM paradedb.index_info(%s::regclass)", [index])
        return int(cursor.fetchone()[0])


def compact(project_id: UUID) -> bool:
    """Rebuild the project's BM25 index into one segment when it is in more than COMPACT_SEGMENTS;
    True when it was. Outside any transaction (REINDEX CONCURRENTLY cannot run in one)."""
    if segment_count(project_id) <= COMPACT_SEGMENTS:
        return False
    with connection.cursor() as cursor:
        index = _bm25_index_of(cursor, project_id)
        if index is None:
            return False
        try:
            cursor.execute(f"REINDEX INDEX CONCURRENTLY {index}")
        except Exception:
            # A failed concurrent rebuild leaves an invalid copy beside the index: drop it.
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = to_regclass(%s) "
                "AND NOT indisvalid",
                [partition_name(project_id)],
            )
            for (leftover,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {leftover}")
            raise
    return True


# --- ranking -----------------------------------------------------------------------------
#
# Each ranking is a UNION ALL of one branch per searched partition, each planned on its own:
# the planner reads a small partition's vectors and sorts them (exact) and walks a large one's
# HNSW graph, knowing its cost at the connection's hnsw.ef_search (DOCENT_SEARCH_HNSW_EF; the
# relaxed iterative scan goes on until the LIMIT is met: config/settings.py sets both on every
# connection); pg_search ranks each partition's BM25 against that partition's statistics.
# `search` runs both rankings, their fusion and the hits' rows as one statement.


@dataclass(frozen=True)
class Row:
    """A ranked chunk as `ranked` returns it: its fused rank score, the signals the cut reads,
    and what a hit shows."""

    chunk_id: int
    score: float
    cosine: float | None  # to the query, when it was embedded
    bm25: float | None  # when the lexical ranking found it
    document_id: str
    document_title: str
    external_id: str
    project_id: str
    project_title: str
    text: str
    start: int
    end: int
    document_format: str = ""
    locations: list[Any] = field(default_factory=list)  # the chunk's [start, end, locator] ranges


def _json_list(value: Any) -> list[Any]:
    """A jsonb column read through a raw cursor (Django has psycopg hand jsonb over as text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, list) else []


def _dense_sql(projects: list[UUID], dim: int, literal: str, depth: int) -> tuple[str, list[Any]]:
    branch = (
        f"(SELECT id, embedding::vector({dim}) <=> %s::vector({dim}) AS distance FROM {{table}} "
        f"WHERE dim = {dim} ORDER BY distance LIMIT %s)"
    )
    sql = " UNION ALL ".join(branch.format(table=partition_name(p)) for p in projects)
    return sql, [value for _ in projects for value in (literal, depth)]


def _lexical_sql(projects: list[UUID], words: str, depth: int) -> tuple[str, list[Any]]:
    branch = (
        "(SELECT id, paradedb.score(id) AS score FROM {table} "
        "WHERE (title || E'\\n' || text) ||| %s ORDER BY score DESC LIMIT %s)"
    )
    sql = " UNION ALL ".join(branch.format(table=partition_name(p)) for p in projects)
    return sql, [value for _ in projects for value in (words, depth)]


def _literal(vector: np.ndarray[Any, Any]) -> str:
    return Vector(np.asarray(vector, dtype=np.float32)).to_text()


def dense(project_ids: Sequence[UUID], vector: np.ndarray[Any, Any], depth: int) -> Ranking:
    """Chunks by cosine similarity to the vector, best first (the dense ranking alone)."""
    projects = sorted(partitions(project_ids), key=str)
    if not projects:
        return []
    sql, params = _dense_sql(projects, int(len(vector)), _literal(vector), depth)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, distance FROM ({sql}) u ORDER BY distance, id LIMIT %s", [*params, depth])
        return [(int(pk), 1.0 - float(distance)) for pk, distance in cursor.fetchall()]


def lexical_query(query: str) -> str:
    """The query as pg_search gets it: its distinct words (at most MAX_QUERY_WORDS), spaces
    between, so nothing in it is ever read as query syntax and no NUL reaches the database."""
    return " ".join(search_text.distinct_words(query)[:MAX_QUERY_WORDS])


def lexical(project_ids: Sequence[UUID], query: str, depth: int) -> Ranking:
    """Chunks by BM25 over their title and text (any of the query's words), best first (the
    lexical ranking alone); each project scored against its own chunks' statistics."""
    words = lexical_query(query)
    projects = sorted(partitions(project_ids), key=str) if words else []
    if not projects:
        return []
    sql, params = _lexical_sql(projects, words, depth)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, score FROM ({sql}) u ORDER BY score DESC, id LIMIT %s", [*params, depth])
        return [(int(pk), float(score)) for pk, score in cursor.fetchall()]


def ranked(
    project_ids: Sequence[UUID],
    *,
    vector: np.ndarray[Any, Any] | None,
    query: str,
    depth: int,
    k: int,
    rank_k: int,
) -> list[Row]:
    """The top k chunks of the projects, fused by reciprocal rank over the dense ranking (when
    `vector` is given) and the lexical one (when `query` has words), best first, in one statement.

    Each ranking goes `depth` deep; a chunk scores the sum of 1/(rank_k + rank) over the rankings
    that found it (ties to the lower id), as `documents.search.rrf` computes it. The rows carry
    each hit's cosine to the query (computed for every hit, when the query was embedded) and
    its BM25 score, for the cut.
    """
    words = lexical_query(query) if query else ""
    projects = sorted(partitions(project_ids), key=str)
    if not projects or (vector is None and not words):
        return []
    ctes: list[str] = []
    parts: list[str] = []
    params: list[Any] = []
    dim = int(len(vector)) if vector is not None else 0
    literal = _literal(vector) if vector is not None else ""
    if vector is not None:
        sql, branch_params = _dense_sql(projects, dim, literal, depth)
        ctes.append(
            f"dense AS (SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS r FROM ({sql}) u "
            "ORDER BY distance, id LIMIT %s)"
        )
        params += [*branch_params, depth]
        parts.append("SELECT id, r, NULL::float8 AS bm25 FROM dense")
    if words:
        sql, branch_params = _lexical_sql(projects, words, depth)
        ctes.append(
            f"lexical AS (SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS r FROM ({sql}) u "
            "ORDER BY score DESC, id LIMIT %s)"
        )
        params += [*branch_params, depth]
        parts.append("SELECT id, r, score::float8 AS bm25 FROM lexical")
    ctes.append(
        "fused AS (SELECT id, sum(1.0::float8 / (%s + r)) AS score, max(bm25) AS bm25 "
        f"FROM ({' UNION ALL '.join(parts)}) found GROUP BY id ORDER BY score DESC, id LIMIT %s)"
    )
    params += [rank_k, k]
    cosine = (
        f"CASE WHEN c.dim = {dim} THEN 1 - (c.embedding::vector({dim}) <=> %s::vector({dim})) END"
        if vector is not None
        else "NULL::float8"
    )
    statement = (
        f"WITH {', '.join(ctes)} "
        f"SELECT f.id, f.score, {cosine}, f.bm25, c.document_id, d.title, d.external_id, c.project_id, "
        'p.title, c.text, c."start", c."end", d.format, c.locations FROM fused f '
        "JOIN documents_chunk c ON c.id = f.id AND c.project_id = ANY(%s::uuid[]) "
        "JOIN documents_document d ON d.id = c.document_id JOIN projects_project p ON p.id = c.project_id "
        "ORDER BY f.score DESC, f.id"
    )
    if vector is not None:
        params.append(literal)
    params.append([str(p) for p in projects])
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [
        Row(
            chunk_id=int(pk),
            score=float(score),
            cosine=None if cos is None else float(cos),
            bm25=None if bm25 is None else float(bm25),
            document_id=str(document_id),
            document_title=title,
            external_id=external_id,
            project_id=str(project_id),
            project_title=project_title,
            text=text,
            start=start,
            end=end,
            document_format=fmt,
            locations=_json_list(ranges),
        )
        for (
            pk,
            score,
            cos,
            bm25,
            document_id,
            title,
            external_id,
            project_id,
            project_title,
            text,
            start,
            end,
            fmt,
            ranges,
        ) in rows
    ]
