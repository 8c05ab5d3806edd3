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

import re
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from pgvector import Vector

from documents.search import text as search_text

PARENT = "documents_chunk"
PARTITION_PREFIX = "documents_chunk_p_"
BM25_INDEX = "documents_chunk_bm25"
# HNSW indexes of more dimensions than this are not built by pgvector; such vectors are scanned.
HNSW_MAX_DIM = 2000
# A partition of up to this many chunks is ranked exactly (its rows, sorted): a few
# milliseconds, never a missed neighbour. Larger ones go through their HNSW graph: left to
# itself at ef_search 400 the planner priced the graph above reading every row (46 ms a
# query instead of 3 ms at 11,607 chunks, bench/results/load.md, 2026-12-04).
EXACT_DENSE_MAX = 2_000
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


def partitions(project_ids: Sequence[UUID]) -> dict[UUID, float]:
    """The searched projects that have chunks (a partition), with each partition's row count as
    the planner knows it (-1: not analysed yet): one catalog read a search."""
    if not project_ids:
        return {}
    names = {partition_name(p): p for p in project_ids}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'", [list(names)]
        )
        return {names[name]: float(rows) for name, rows in cursor.fetchall()}


# --- ranking -----------------------------------------------------------------------------


def _searched(project_ids: Sequence[UUID], found: dict[UUID, float] | None) -> dict[UUID, float]:
    return partitions(project_ids) if found is None else found


def dense(
    project_ids: Sequence[UUID],
    vector: np.ndarray[Any, Any],
    depth: int,
    *,
    found: dict[UUID, float] | None = None,
) -> Ranking:
    """Chunks by cosine similarity to the vector, best first: each partition ranked exactly
    (small) or through its HNSW graph (large), the partitions' lists merged. `found` is
    `partitions(project_ids)` when the caller has it already."""
    sizes = _searched(project_ids, found)
    if not sizes:
        return []
    projects = sorted(sizes, key=str)
    dim = int(len(vector))
    literal = Vector(np.asarray(vector, dtype=np.float32)).to_text()
    exact = [p for p in projects if sizes[p] <= EXACT_DENSE_MAX]
    graph = [p for p in projects if p not in exact]
    ranked: Ranking = []
    for group, plan in ((exact, "exact"), (graph, "hnsw")):
        if group:
            ranked.extend(_dense_group(group, plan, dim, literal, depth))
    # The relaxed graph scan may hand back near-ties out of order: sort exactly.
    ranked.sort(key=lambda hit: (-hit[1], hit[0]))
    return ranked[:depth]


def _dense_group(projects: list[UUID], plan: str, dim: int, literal: str, depth: int) -> Ranking:
    branch = (
        f"(SELECT id, embedding::vector({dim}) <=> %s::vector({dim}) AS distance FROM {{table}} "
        f"WHERE dim = {dim} ORDER BY distance LIMIT %s)"
    )
    sql = " UNION ALL ".join(branch.format(table=partition_name(p)) for p in projects)
    params: list[Any] = [value for _ in projects for value in (literal, depth)]
    with transaction.atomic(), connection.cursor() as cursor:
        set_dense_plan(cursor, plan, depth)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        # Inside a caller's transaction this block is a savepoint, and releasing one keeps
        # its SET LOCALs: roll it back (it wrote nothing) so the knobs end here.
        transaction.set_rollback(True)
    return [(int(pk), 1.0 - float(distance)) for pk, distance in rows]


def set_dense_plan(cursor: Any, plan: str, depth: int) -> None:
    """Steer the planner for the rest of the transaction, in one round trip (set_config(..., true)
    is SET LOCAL): "exact" reads the rows and sorts; "hnsw" walks the graph."""
    if plan == "exact":
        knobs = {"enable_indexscan": "off"}
    else:
        knobs = {
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.ef_search": str(int(max(settings.SEARCH_HNSW_EF, depth))),
            # The graph is the only ordered path left once these are off.
            "enable_seqscan": "off",
            "enable_bitmapscan": "off",
            "enable_sort": "off",
        }
    calls = ", ".join("set_config(%s, %s, true)" for _ in knobs)
    cursor.execute(f"SELECT {calls}", [part for pair in knobs.items() for part in pair])


def lexical_query(query: str) -> str:
    """The query as pg_search gets it: its distinct words (at most MAX_QUERY_WORDS), spaces
    between, so nothing in it is ever read as query syntax and no NUL reaches the database."""
    return " ".join(search_text.distinct_words(query)[:MAX_QUERY_WORDS])


def lexical(
    project_ids: Sequence[UUID], query: str, depth: int, *, found: dict[UUID, float] | None = None
) -> Ranking:
    """Chunks by BM25 over their title and text (any of the query's words), best first; each
    project scored against its own chunks' statistics."""
    words = lexical_query(query)
    if not words:
        return []
    projects = sorted(_searched(project_ids, found), key=str)
    if not projects:
        return []
    branch = (
        "(SELECT id, paradedb.score(id) AS score FROM {table} "
        "WHERE (title || E'\\n' || text) ||| %s ORDER BY score DESC LIMIT %s)"
    )
    sql = " UNION ALL ".join(branch.format(table=partition_name(p)) for p in projects)
    params: list[Any] = [value for _ in projects for value in (words, depth)]
    if len(projects) > 1:
        sql = f"SELECT id, score FROM ({sql}) merged ORDER BY score DESC, id LIMIT %s"
        params.append(depth)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ranked = [(int(pk), float(score)) for pk, score in cursor.fetchall()]
    ranked.sort(key=lambda hit: (-hit[1], hit[0]))
    return ranked
