"""The production search engine: pgvector (HNSW) and BM25, computed inside PostgreSQL.

Dense: chunk vectors live in `documents_chunk.embedding` (pgvector `vector`),
with an HNSW index (cosine) per dimension in use. pgvector 0.8's iterative
index scan keeps a per-project filter from starving the result.

Lexical: PostgreSQL's own `ts_rank` ranks SciFact at 0.62 nDCG@10 against
0.695 for BM25, so Docent scores BM25 itself, in SQL. Each chunk keeps a
tsvector of its title and text (`english`: Snowball stemmer and stop words)
and its token count; statement triggers with transition tables keep, per
project, every term's document frequency and the chunk count and total
length, exact under any insert or delete (ingest, cascades, the admin). A
query ranks only the chunks holding its rarest terms (up to
`LEXICAL_CANDIDATES` postings, the rarest term always), then scores them with
every query term: a chunk matching only common words cannot reach the top
with Lucene's idf, and a long question no longer ranks every row that shares
one word with it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from pgvector import Vector

# BM25 as bm25s and Lucene compute it.
K1 = 1.5
B = 0.75
# Postings ranked per query, rarest terms first (bench/results/scale.md): the candidate rows
# are read from the heap one by one, which is most of a lexical search's time at scale.
LEXICAL_CANDIDATES = 5_000
# With a common rarest term: how many of the next rarest terms may make the second match.
PAIR_TERMS = 4
# HNSW indexes more dimensions than this are not built by pgvector; such vectors are scanned.
HNSW_MAX_DIM = 2000
# Dense plans (dense_plan). Searched projects of up to this many chunks are ranked exactly:
# their own rows through the project index, a few milliseconds, never a missed neighbour.
EXACT_DENSE_MAX = 2_000
# Larger ones go through the HNSW graph when they hold at least this share of the table's
# chunks (the graph spans every project, and a filtered scan gives up after
# hnsw.max_scan_tuples); below it the planner weighs the graph against the project's rows.
# Left to itself at ef_search 400 the planner priced the graph above a sequential scan of a
# 11,607-chunk table: 46 ms a query instead of 3 ms (bench/results/load.md, 2026-12-04).
HNSW_MIN_SHARE = 0.05

INSTALL = [
    """
    ALTER TABLE documents_chunk
      ADD COLUMN IF NOT EXISTS lexemes tsvector,
      ADD COLUMN IF NOT EXISTS lexical_length integer NOT NULL DEFAULT 0
    """,
    "CREATE INDEX IF NOT EXISTS documents_chunk_lexemes ON documents_chunk USING gin (lexemes)",
    """
    CREATE TABLE IF NOT EXISTS documents_lexical_term (
      project_id uuid NOT NULL, term text NOT NULL, df integer NOT NULL,
      PRIMARY KEY (project_id, term))
    """,
    """
    CREATE TABLE IF NOT EXISTS documents_lexical_project (
      project_id uuid PRIMARY KEY, chunks bigint NOT NULL, length bigint NOT NULL)
    """,
    # Each chunk's lexemes come from its document's title and its text, as the vector does.
    """
    CREATE OR REPLACE FUNCTION documents_chunk_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.lexemes := to_tsvector('english',
        coalesce((SELECT title FROM documents_document WHERE id = NEW.document_id), '') || E'\\n' || NEW.text);
      NEW.lexical_length := coalesce((SELECT sum(cardinality(positions)) FROM unnest(NEW.lexemes)), 0);
      RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS documents_chunk_lexemes ON documents_chunk",
    """
    CREATE TRIGGER documents_chunk_lexemes BEFORE INSERT OR UPDATE OF text, document_id
      ON documents_chunk FOR EACH ROW EXECUTE FUNCTION documents_chunk_lexemes()
    """,
    # Statistics: one writer per project at a time (an advisory lock held to commit),
    # so concurrent ingests never deadlock over the same term rows.
    """
    CREATE OR REPLACE FUNCTION documents_lexical_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtextextended(project_id::text, 7))
        FROM (SELECT DISTINCT project_id FROM new_rows ORDER BY 1) p;
      INSERT INTO documents_lexical_term AS t (project_id, term, df)
        SELECT r.project_id, u.lexeme, count(*) FROM new_rows r, unnest(r.lexemes) u
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (project_id, term) DO UPDATE SET df = t.df + excluded.df;
      INSERT INTO documents_lexical_project AS s (project_id, chunks, length)
        SELECT project_id, count(*), sum(lexical_length) FROM new_rows GROUP BY 1 ORDER BY 1
        ON CONFLICT (project_id) DO UPDATE
        SET chunks = s.chunks + excluded.chunks, length = s.length + excluded.length;
      RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION documents_lexical_remove() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtextextended(project_id::text, 7))
        FROM (SELECT DISTINCT project_id FROM old_rows ORDER BY 1) p;
      UPDATE documents_lexical_term t SET df = t.df - d.n
        FROM (SELECT r.project_id, u.lexeme, count(*) AS n FROM old_rows r, unnest(r.lexemes) u
              GROUP BY 1, 2) d
        WHERE t.project_id = d.project_id AND t.term = d.lexeme;
      UPDATE documents_lexical_project s SET chunks = s.chunks - d.n, length = s.length - d.len
        FROM (SELECT project_id, count(*) AS n, sum(lexical_length) AS len FROM old_rows GROUP BY 1) d
        WHERE s.project_id = d.project_id;
      -- A project left without chunks (emptied, or being deleted) keeps no statistics.
      DELETE FROM documents_lexical_term t USING documents_lexical_project s
        WHERE s.chunks <= 0 AND t.project_id = s.project_id
          AND s.project_id IN (SELECT DISTINCT project_id FROM old_rows);
      DELETE FROM documents_lexical_project s
        WHERE s.chunks <= 0 AND s.project_id IN (SELECT DISTINCT project_id FROM old_rows);
      RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS documents_lexical_add ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_remove ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_update_old ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_update_new ON documents_chunk",
    """
    CREATE TRIGGER documents_lexical_add AFTER INSERT ON documents_chunk
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_lexical_add()
    """,
    """
    CREATE TRIGGER documents_lexical_remove AFTER DELETE ON documents_chunk
      REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_lexical_remove()
    """,
    # An update counts as the old rows leaving and the new ones arriving.
    """
    CREATE TRIGGER documents_lexical_update_old AFTER UPDATE ON documents_chunk
      REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_lexical_remove()
    """,
    """
    CREATE TRIGGER documents_lexical_update_new AFTER UPDATE ON documents_chunk
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_lexical_add()
    """,
    # A renamed document: its chunks' lexemes follow the new title.
    """
    CREATE OR REPLACE FUNCTION documents_document_retitle() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.title IS DISTINCT FROM OLD.title THEN
        UPDATE documents_chunk SET text = text WHERE document_id = NEW.id;
      END IF;
      RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS documents_document_retitle ON documents_document",
    """
    CREATE TRIGGER documents_document_retitle AFTER UPDATE OF title ON documents_document
      FOR EACH ROW EXECUTE FUNCTION documents_document_retitle()
    """,
]


def _require_pgvector(cursor: Any) -> None:
    cursor.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError(
            "This PostgreSQL server has no pgvector extension. Docent needs PostgreSQL 15+ with "
            "pgvector 0.8+ (e.g. the pgvector/pgvector container image, or the postgresql-NN-pgvector package)."
        )
    cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")


def convert_embeddings(schema_editor: Any) -> None:
    """Move `documents_chunk.embedding` from float32 bytes (bytea) to pgvector's `vector`."""
    with schema_editor.connection.cursor() as cursor:
        _require_pgvector(cursor)
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'documents_chunk'::regclass AND attname = 'embedding'"
        )
        row = cursor.fetchone()
        if row and row[0].startswith("vector"):
            return
        cursor.execute("ALTER TABLE documents_chunk ADD COLUMN embedding_vector vector")
        last = 0
        while True:
            cursor.execute(
                "SELECT id, embedding FROM documents_chunk WHERE id > %s ORDER BY id LIMIT 2000", [last]
            )
            rows = cursor.fetchall()
            if not rows:
                break
            cursor.executemany(
                "UPDATE documents_chunk SET embedding_vector = %s::vector WHERE id = %s",
                [(Vector(np.frombuffer(bytes(blob), dtype="<f4")).to_text(), pk) for pk, blob in rows],
            )
            last = rows[-1][0]
        cursor.execute("ALTER TABLE documents_chunk DROP COLUMN embedding")
        cursor.execute("ALTER TABLE documents_chunk RENAME COLUMN embedding_vector TO embedding")
        cursor.execute("ALTER TABLE documents_chunk ALTER COLUMN embedding SET NOT NULL")


def install(schema_editor: Any) -> None:
    """Create the lexical columns, statistics, triggers and indexes; fill them for stored chunks."""
    with schema_editor.connection.cursor() as cursor:
        _require_pgvector(cursor)
        for statement in INSTALL:
            cursor.execute(statement)
        # Stored chunks: rewriting `text` runs the lexeme trigger and the statistics trigger.
        cursor.execute("UPDATE documents_chunk SET text = text WHERE lexemes IS NULL")
        cursor.execute("SELECT DISTINCT dim FROM documents_chunk WHERE dim > 0")
        dims = {row[0] for row in cursor.fetchall()} | {384}
    for dim in sorted(dims):
        ensure_dimension(schema_editor.connection, dim)


def hnsw_index(dim: int) -> str:
    return f"documents_chunk_hnsw_{int(dim)}"


def ensure_dimension(conn: Any, dim: int) -> None:
    if dim <= 0 or dim > HNSW_MAX_DIM:
        return
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [hnsw_index(dim)])
        if cursor.fetchone():
            return
        # Partial and on an expression: each dimension in use gets its own typed index.
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {hnsw_index(dim)} ON documents_chunk "
            f"USING hnsw ((embedding::vector({int(dim)})) vector_cosine_ops) WHERE dim = {int(dim)}"
        )


def _ids(project_ids: list[UUID]) -> list[str]:
    return [str(p) for p in project_ids]


def dense_plan(searched: int, total: int) -> str:
    """How to rank `searched` chunks out of the table's `total`: "exact", "hnsw" or "planner"."""
    if searched <= EXACT_DENSE_MAX:
        return "exact"
    if searched >= HNSW_MIN_SHARE * total:
        return "hnsw"
    return "planner"


def dense_sql(dim: int) -> str:
    """The dense ranking's statement: (vector literal, project ids, depth)."""
    return (
        f"SELECT id, embedding::vector({dim}) <=> %s::vector({dim}) AS distance "
        f"FROM documents_chunk WHERE dim = {dim} AND project_id = ANY(%s::uuid[]) "
        "ORDER BY distance LIMIT %s"
    )


def set_dense_plan(cursor: Any, plan: str, depth: int) -> None:
    """Steer the planner to a dense_plan for the rest of the transaction, in one round trip
    (`set_config(..., true)` is SET LOCAL)."""
    if plan == "exact":
        # No index scan: the projects' rows (a bitmap scan of the project index) and a sort.
        knobs = {"enable_indexscan": "off"}
    else:
        knobs = {
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.ef_search": str(int(max(settings.SEARCH_HNSW_EF, depth))),
        }
    if plan == "hnsw":
        # The graph is the only ordered path left once these are off.
        knobs.update(enable_seqscan="off", enable_bitmapscan="off", enable_sort="off")
    calls = ", ".join("set_config(%s, %s, true)" for _ in knobs)
    cursor.execute(f"SELECT {calls}", [part for pair in knobs.items() for part in pair])


def dense(
    project_ids: list[UUID], vector: np.ndarray[Any, Any], depth: int, *, exact: bool = False
) -> list[tuple[int, float]]:
    """Chunks by cosine similarity to the vector, best first (see dense_plan; `exact` forces a scan)."""
    dim = int(len(vector))
    literal = Vector(np.asarray(vector, dtype=np.float32)).to_text()
    ids = _ids(project_ids)
    with transaction.atomic(), connection.cursor() as cursor:
        plan = "exact"
        if not exact:
            # The statistics the lexical triggers keep exact: one row per project.
            cursor.execute(
                "SELECT coalesce(sum(chunks) FILTER (WHERE project_id = ANY(%s::uuid[])), 0), "
                "coalesce(sum(chunks), 0) FROM documents_lexical_project",
                [ids],
            )
            searched, total = cursor.fetchone()
            plan = dense_plan(int(searched), int(total))
        set_dense_plan(cursor, plan, depth)
        cursor.execute(dense_sql(dim), [literal, ids, depth])
        rows = cursor.fetchall()
        # Inside a caller's transaction this block is a savepoint, and releasing one keeps
        # its SET LOCALs: roll it back (it wrote nothing) so the knobs end here.
        transaction.set_rollback(True)
    # The relaxed scan may hand back near-ties out of order: sort exactly.
    found = [(int(pk), 1.0 - float(distance)) for pk, distance in rows]
    found.sort(key=lambda hit: (-hit[1], hit[0]))
    return found


def _tsquery(terms: list[str]) -> str:
    """A tsquery matching any of the (already normalised) lexemes, each quoted."""
    quoted = ("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
    return " | ".join(quoted)


def candidate_query(df: dict[str, int]) -> str:
    """The tsquery that picks the chunks worth scoring, from each query term's document frequency.

    The rarest terms, OR-ed, while their postings stay within LEXICAL_CANDIDATES (the rarest
    always). When even the rarest term is that common, the chunks holding it and at least one
    of the next rarest: a chunk with one common word only cannot reach the top once thousands
    hold two of the query's words (a minimum-should-match of two, as engines relax to).
    """
    ranked = [term for term, _ in sorted(df.items(), key=lambda kv: (kv[1], kv[0]))]
    if len(ranked) > 1 and df[ranked[0]] > LEXICAL_CANDIDATES:
        return f"{_tsquery(ranked[:1])} & ({_tsquery(ranked[1 : PAIR_TERMS + 1])})"
    chosen: list[str] = []
    postings = 0
    for term in ranked:
        if chosen and postings + df[term] > LEXICAL_CANDIDATES:
            break
        chosen.append(term)
        postings += df[term]
    return _tsquery(chosen)


def lexical(project_ids: list[UUID], query: str, depth: int) -> list[tuple[int, float]]:
    """Chunks by BM25 over the query's lexemes, best first, scored inside PostgreSQL."""
    ids = _ids(project_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH q AS (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))) "
            "SELECT s.project_id, s.chunks, s.length, t.term, t.df "
            "FROM documents_lexical_project s JOIN documents_lexical_term t ON t.project_id = s.project_id "
            "WHERE s.project_id = ANY(%s::uuid[]) AND s.chunks > 0 AND t.df > 0 "
            "AND t.term IN (SELECT lexeme FROM q)",
            [query[:10_000], ids],
        )
        stats = cursor.fetchall()
        if not stats:
            return []
        # idf per project (each project is its own corpus); candidates by document frequency overall.
        per_term: dict[str, int] = {}
        q_projects, q_terms, q_idf = [], [], []
        lengths: dict[str, float] = {}
        for project_id, chunks, length, term, df in stats:
            per_term[term] = per_term.get(term, 0) + df
            q_projects.append(str(project_id))
            q_terms.append(term)
            q_idf.append(float(np.log(1.0 + (chunks - df + 0.5) / (df + 0.5))))
            lengths[str(project_id)] = max(float(length) / max(chunks, 1), 1e-9)
        p_ids, avgdl = zip(*lengths.items(), strict=True)
        cursor.execute(
            # The candidates first, once, through the GIN index: left to itself the planner may
            # estimate the term arrays at one row and scan the project once per query term.
            # Only the query's lexemes leave each tsvector: weight them A (to_tsvector leaves
            # every lexeme at D) and keep the A ones, so the set holds a few lexemes per chunk.
            "WITH c AS MATERIALIZED (SELECT id, project_id, lexical_length, "
            "ts_filter(setweight(lexemes, 'A', %s::text[]), '{a}') AS matched FROM documents_chunk "
            "WHERE project_id = ANY(%s::uuid[]) AND lexemes @@ %s::tsquery), "
            "q(project_id, term, idf) AS (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::float8[])), "
            "p(project_id, avgdl) AS (SELECT * FROM unnest(%s::uuid[], %s::float8[])) "
            f"SELECT c.id, sum(q.idf * cardinality(u.positions) * {K1 + 1} / "
            f"(cardinality(u.positions) + {K1} * (1 - {B} + {B} * c.lexical_length / p.avgdl))) AS score "
            "FROM c JOIN p ON p.project_id = c.project_id "
            "CROSS JOIN LATERAL unnest(c.matched) u "
            "JOIN q ON q.project_id = c.project_id AND q.term = u.lexeme "
            "GROUP BY c.id ORDER BY score DESC, c.id LIMIT %s",
            [
                sorted(per_term),
                ids,
                candidate_query(per_term),
                q_projects,
                q_terms,
                q_idf,
                list(p_ids),
                list(avgdl),
                depth,
            ],
        )
        return [(int(pk), float(score)) for pk, score in cursor.fetchall()]
