"""Scale benchmark: one big project on PostgreSQL + pgvector (1M chunks) and SQLite (100k).

    .venv/bin/python bench/scale.py [--backend postgres|sqlite|both] [--chunks N] [--fresh]
        [--steps build,latency,recall,lexical,ingest,rss] [--queries 300] [--recall-queries 100]
        [--ef 100,200,400] [--candidates 1000,2000,5000,20000,50000] [--hnsw-ef N]
        [--lexical-candidates N] [--latency-key NAME] [--no-write] [--render-only]

A full run (both backends, from scratch) takes about an hour on 2 cores: the
base encoding ~15 min (cached afterwards), the PostgreSQL load ~18 min and its
HNSW build ~12 min, 100 exact scans ~9 min for recall.

The corpus is synthetic but built from real text and real vectors, so that
the term distribution and the vector distribution look like a document
collection rather than noise:

1. Base: every SciFact abstract (5,183) is chunked by Docent's own chunker
   (`documents.chunking.chunk_text`, CHUNK_TOKENS / CHUNK_OVERLAP_TOKENS), and
   each chunk is embedded once with `documents.embedder.encode` (title + text,
   as ingest does). Cached in bench/.data/scale/base/.
2. Synthetic chunks (seeded RNG): each takes a run of consecutive sentences
   from each of 2 or 3 random base chunks (random abstracts), up to a token
   budget drawn from the real chunk lengths (at most CHUNK_TOKENS); its vector
   is normalise(sum of the source chunks' vectors weighted by the tokens taken
   + Gaussian noise of norm ~0.3), so no two vectors coincide and the
   neighbourhoods are those of mixed topics, not of 12k points repeated.
   Documents hold 20 chunks each and a random SciFact title; their text is the
   chunks joined, with each chunk's offsets into it.

Loading: PostgreSQL gets the documents through the ORM (bulk_create) and the
chunks through COPY in batches of 20,000 rows, so the row trigger computes
every chunk's lexemes and the statement trigger the per-project term
statistics exactly as for an ingest; the HNSW and GIN indexes are dropped
before the load and built after it (the "index build"), then VACUUM ANALYZE.
SQLite gets everything through the ORM in transactions of 100 documents
(the triggers fill FTS5 and vec0).

Measured per backend (in-process unless said): search p50/p95 through
`documents.search.search(k=10)` (query encoding included, as in the API) for
hybrid, dense and lexical at 1 client and at 8 clients (8 threads, each with
its own database connection); dense recall@10 of HNSW against an exact scan at
several hnsw.ef_search values; lexical latency against LEXICAL_CANDIDATES;
hybrid p95 while another process ingests 10,000 chunks the way
`document_ingest`'s write phase does; and the RSS of a gunicorn web worker
(config/gunicorn.py, 1 worker) after 1,000 searches over HTTP.

Results: bench/results/scale.json and scale.md (each backend's section is
replaced when it is measured again; `--steps` runs only some steps and keeps
the others' figures).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
SCRATCH = BENCH_DIR / ".data" / "scale"
BASE_DIR = SCRATCH / "base"
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_JSON = RESULTS_DIR / "scale.json"
RESULTS_MD = RESULTS_DIR / "scale.md"
DATA = Path("/work/shared/data/scifact")
PG_SERVER = "postgresql://postgres@127.0.0.1:5433"
BENCH_EMAIL = "scale-bench@docent.invalid"
PROJECT_TITLE = "Scale benchmark"
SEED = 20261201
CHUNKS_PER_DOC = 20
PG_BATCH_DOCS = 1000  # 20,000 chunks per COPY
SQLITE_BATCH_DOCS = 100
NOISE_NORM = 0.3
DEFAULT_CHUNKS = {"postgres": 1_000_000, "sqlite": 100_000}
STEPS = ("build", "latency", "recall", "lexical", "ingest", "rss")
TARGETS = {"pg_hybrid_p95_ms": 50.0, "recall10": 0.95, "rss_mib": 300.0, "ingest_p95_change": 0.25}
INGEST_PREFIX = "scale-ingest-"

sys.path.insert(0, str(BENCH_DIR))
from retrieval import percentile  # noqa: E402 (the benchmarks share one definition)


def say(message: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}", flush=True)


def summary(ms: list[float]) -> dict[str, Any]:
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "mean_ms": round(sum(ms) / len(ms), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
    }


class Progress:
    """A line every `every` seconds for long loops."""

    def __init__(self, label: str, total: int, every: float = 15.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.started = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every or done >= self.total:
            self.last = now
            elapsed = now - self.started
            rate = done / elapsed if elapsed > 0 else 0
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            say(f"  {self.label}: {done:,}/{self.total:,} ({rate:,.0f}/s, {elapsed:.0f} s, eta {eta:.0f} s)")


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def db_name(chunks: int) -> str:
    return f"docent_scale_{chunks}"


def data_dir(backend: str, chunks: int) -> Path:
    return SCRATCH / f"{backend}-{chunks}"


def django_env(backend: str, chunks: int) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DOCENT_DATA_DIR": str(data_dir(backend, chunks)),
        "DOCENT_MODEL_DIR": str(SCRATCH / "models"),
        "CELERY_BROKER_URL": "memory://",
        "DOCENT_LOG_LEVEL": "WARNING",
        "DEBUG": "false",
    }
    if backend == "postgres":
        env["DATABASE_URL"] = f"{PG_SERVER}/{db_name(chunks)}"
    return env


def setup_django(backend: str, chunks: int) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "DOCENT_TASKS_EAGER", "DOCENT_SEARCH_HNSW_EF"):
        os.environ.pop(name, None)
    os.environ.update(django_env(backend, chunks))
    if os.environ.get("SCALE_HNSW_EF"):
        os.environ["DOCENT_SEARCH_HNSW_EF"] = os.environ["SCALE_HNSW_EF"]
    data_dir(backend, chunks).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def admin_connect(dbname: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=True)


# --------------------------------------------------------------------------
# The base: real SciFact chunks and their vectors
# --------------------------------------------------------------------------


def load_queries() -> list[str]:
    with (DATA / "queries-train.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def build_base() -> tuple[list[dict[str, Any]], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(base chunks, their vectors, query vectors), computed once and cached."""
    from django.conf import settings

    from documents import chunking, embedder
    from documents.search import index_text

    BASE_DIR.mkdir(parents=True, exist_ok=True)
    key = f"{embedder.model_name()}-{settings.CHUNK_TOKENS}-{settings.CHUNK_OVERLAP_TOKENS}"
    meta_path, vec_path, q_path = BASE_DIR / "base.json", BASE_DIR / "base.npy", BASE_DIR / "queries.npy"
    if meta_path.exists() and vec_path.exists() and q_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return meta["chunks"], np.load(vec_path), np.load(q_path)
    say("base: chunking SciFact with Docent's chunker")
    path = DATA / "corpus.jsonl.gz" if (DATA / "corpus.jsonl.gz").exists() else DATA / "corpus.jsonl"
    opener = gzip.open if path.suffix == ".gz" else open
    base: list[dict[str, Any]] = []
    texts: list[str] = []
    titles: list[str] = []
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            title, text = row.get("title", "") or "", row.get("text", "") or ""
            if not text.strip():
                continue
            titles.append(title)
            spans = chunking.chunk_text(
                text, max_tokens=settings.CHUNK_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS
            )
            for span in spans:
                sentences = [span.text[a:b] for a, b in chunking.split_sentences(span.text)]
                base.append({"title": len(titles) - 1, "sentences": sentences, "tokens": span.token_count})
                texts.append(index_text(title, span.text))
    all_sentences = [s for c in base for s in c["sentences"]]
    counts = chunking.count_tokens_batch(all_sentences)
    at = 0
    for c in base:
        c["sentence_tokens"] = counts[at : at + len(c["sentences"])]
        at += len(c["sentences"])
    say(
        f"base: {len(titles):,} abstracts -> {len(base):,} chunks, {len(all_sentences):,} sentences; encoding"
    )
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    progress = Progress("encode base chunks", len(texts))
    step = 256
    for i in range(0, len(texts), step):
        vectors[i : i + step] = embedder.encode(texts[i : i + step])
        progress(min(i + step, len(texts)))
    queries = load_queries()
    say(f"base: encoding {len(queries)} queries")
    qv = embedder.encode(queries)
    np.save(vec_path, vectors)
    np.save(q_path, qv)
    meta_path.write_text(json.dumps({"key": key, "titles": titles, "chunks": base}))
    return base, vectors, qv


def base_titles() -> list[str]:
    return list(json.loads((BASE_DIR / "base.json").read_text())["titles"])


class Synth:
    """Synthetic documents of recombined SciFact sentences with mixed, perturbed vectors."""

    def __init__(self, base: list[dict[str, Any]], vectors: np.ndarray[Any, Any], seed: int) -> None:
        from django.conf import settings

        self.base, self.vectors = base, vectors
        self.titles = base_titles()
        self.rng = np.random.default_rng(seed)
        self.max_tokens = settings.CHUNK_TOKENS
        self.lengths = np.array([c["tokens"] for c in base])
        self.sigma = NOISE_NORM / math.sqrt(vectors.shape[1])

    def chunk(self) -> tuple[str, int, np.ndarray[Any, Any]]:
        rng = self.rng
        budget = int(min(self.max_tokens, max(40, self.lengths[rng.integers(len(self.lengths))])))
        n_sources = int(rng.integers(2, 4))
        sources = rng.integers(len(self.base), size=n_sources)
        parts: list[str] = []
        weights: list[float] = []
        used: list[int] = []
        tokens = 0
        share = budget / n_sources
        for s in sources:
            c = self.base[int(s)]
            sents, toks = c["sentences"], c["sentence_tokens"]
            if not sents:
                continue
            i = int(rng.integers(len(sents)))
            taken = 0
            while i < len(sents) and taken < share and tokens + toks[i] <= budget:
                parts.append(sents[i])
                taken += toks[i]
                tokens += toks[i]
                i += 1
            if taken:
                weights.append(float(taken))
                used.append(int(s))
        if not parts:  # every source sentence over the budget: take one whole base chunk
            c = self.base[int(sources[0])]
            parts, weights, used, tokens = (
                [c["sentences"][0]],
                [1.0],
                [int(sources[0])],
                c["sentence_tokens"][0],
            )
        w = np.asarray(weights, dtype=np.float32)
        v = (w[:, None] * self.vectors[used]).sum(axis=0) / w.sum()
        v = v + rng.normal(0.0, self.sigma, size=v.shape).astype(np.float32)
        v /= np.linalg.norm(v)
        return " ".join(parts), tokens, v.astype(np.float32)

    def document(self, n_chunks: int) -> dict[str, Any]:
        title = self.titles[int(self.rng.integers(len(self.titles)))]
        texts, offsets, tokens, vectors = [], [], [], []
        at = 0
        for _ in range(n_chunks):
            text, tok, v = self.chunk()
            offsets.append((at, at + len(text)))
            at += len(text) + 2
            texts.append(text)
            tokens.append(tok)
            vectors.append(v)
        return {
            "title": title,
            "text": "\n\n".join(texts),
            "chunks": list(zip(texts, offsets, tokens, strict=True)),
            "vectors": np.stack(vectors),
        }


# --------------------------------------------------------------------------
# Fixture: user, project, corpus
# --------------------------------------------------------------------------


def state_path(backend: str, chunks: int) -> Path:
    return data_dir(backend, chunks) / "scale-state.json"


def ensure_user_project(password: str | None) -> tuple[Any, Any]:
    """The bench user (its password set unless None) and its project."""
    from django.contrib.auth import get_user_model

    from projects.models import Membership, Role
    from projects.services import project_create

    user_model = get_user_model()
    user = user_model.objects.filter(email=BENCH_EMAIL).first()
    if user is None:
        user = user_model.objects.create_user(email=BENCH_EMAIL, password=password)
    elif password is not None:
        user.set_password(password)
        user.save()
    membership = Membership.objects.filter(user=user, role=Role.OWNER, project__title=PROJECT_TITLE).first()
    project = membership.project if membership else project_create(user=user, title=PROJECT_TITLE)
    return user, project


def new_documents(project: Any, user: Any, docs: list[dict[str, Any]], start: int) -> list[Any]:
    from documents.models import Document, DocumentStatus

    rows = []
    for n, d in enumerate(docs, start=start):
        digest = hashlib.sha256(d["text"].encode()).hexdigest()
        rows.append(
            Document(
                project=project,
                title=d["title"],
                external_id=f"scale-{n}",
                source="bench/scale.py",
                format="txt",
                size_bytes=len(d["text"].encode()),
                text=d["text"],
                content_hash=digest,
                indexed_hash=digest,
                status=DocumentStatus.READY,
                chunk_count=len(d["chunks"]),
                uploaded_by=user,
            )
        )
    return Document.objects.bulk_create(rows, batch_size=500)


def vector_text(matrix: np.ndarray[Any, Any]) -> list[str]:
    fmt = "[" + ",".join(["%.7g"] * matrix.shape[1]) + "]"
    return [fmt % tuple(row) for row in matrix.tolist()]


def build_postgres(chunks: int, base: Any, vectors: Any, password: str) -> dict[str, Any]:
    from django.db import connection, transaction

    from documents.search import postgres

    info: dict[str, Any] = {"chunks_target": chunks}
    user, project = ensure_user_project(password)
    hnsw = postgres.hnsw_index(384)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'documents_chunk' "
            "AND indexname IN (%s, 'documents_chunk_lexemes')",
            [hnsw],
        )
        defs = dict(cursor.fetchall())
        for name in defs:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
    say(f"postgres: dropped {sorted(defs)} for the load")
    synth = Synth(base, vectors, SEED)
    n_docs = math.ceil(chunks / CHUNKS_PER_DOC)
    progress = Progress("load chunks (COPY)", chunks)
    started = time.monotonic()
    done = 0
    copy_sql = (
        'COPY documents_chunk (document_id, project_id, "index", text, start, "end", token_count, embedding, dim) '
        "FROM STDIN"
    )
    for batch_start in range(0, n_docs, PG_BATCH_DOCS):
        docs = []
        for _ in range(batch_start, min(batch_start + PG_BATCH_DOCS, n_docs)):
            docs.append(
                synth.document(min(CHUNKS_PER_DOC, chunks - done - sum(len(d["chunks"]) for d in docs)))
            )
        with transaction.atomic():
            rows = new_documents(project, user, docs, batch_start)
            with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for doc, d in zip(rows, docs, strict=True):
                    for i, ((text, (a, b), tok), vec) in enumerate(
                        zip(d["chunks"], vector_text(d["vectors"]), strict=True)
                    ):
                        copy.write_row((doc.pk, project.pk, i, text, a, b, tok, vec, 384))
        done += sum(len(d["chunks"]) for d in docs)
        progress(done)
    info["load_s"] = round(time.monotonic() - started, 1)
    say(f"postgres: loaded {done:,} chunks in {info['load_s']} s")
    builds: dict[str, float] = {}
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '8GB'")
        for name, ddl in sorted(defs.items(), key=lambda kv: kv[0] == hnsw):
            say(f"postgres: building {name} (progress from pg_stat_progress_create_index)")
            watcher = IndexProgress(db_name(chunks))
            watcher.start()
            started = time.monotonic()
            cursor.execute(ddl)
            builds[name] = round(time.monotonic() - started, 1)
            watcher.stop()
            say(f"postgres: {name} built in {builds[name]} s")
    info["index_build_s"] = builds
    info["maintenance_work_mem"] = "8GB (SET for the build session)"
    started = time.monotonic()
    with admin_connect(db_name(chunks)) as conn:
        conn.execute("VACUUM (ANALYZE)")
    info["vacuum_analyze_s"] = round(time.monotonic() - started, 1)
    say(f"postgres: VACUUM ANALYZE in {info['vacuum_analyze_s']} s")
    info["statistics_check"] = check_pg_statistics(project.pk)
    return info


class IndexProgress(threading.Thread):
    """Prints pg_stat_progress_create_index every 30 s while an index builds."""

    def __init__(self, dbname: str) -> None:
        super().__init__(daemon=True)
        self.dbname = dbname
        self.halt = threading.Event()

    def run(self) -> None:
        with admin_connect(self.dbname) as conn:
            while not self.halt.wait(30):
                row = conn.execute(
                    "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total "
                    "FROM pg_stat_progress_create_index"
                ).fetchone()
                if row:
                    say(f"  index build: {row[0]} tuples {row[1]:,}/{row[2]:,} blocks {row[3]:,}/{row[4]:,}")

    def stop(self) -> None:
        self.halt.set()
        self.join()


def check_pg_statistics(project_id: Any) -> dict[str, Any]:
    """The trigger-kept BM25 statistics against a recount from the chunks."""
    from django.db import connection, transaction

    say("postgres: checking the lexical statistics against a full recount")
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.chunks, s.length, (SELECT count(*) FROM documents_chunk WHERE project_id = %s), "
            "(SELECT sum(lexical_length) FROM documents_chunk WHERE project_id = %s) "
            "FROM documents_lexical_project s WHERE s.project_id = %s",
            [project_id, project_id, project_id],
        )
        chunks, length, real_chunks, real_length = cursor.fetchone()
        cursor.execute("SET LOCAL work_mem = '512MB'")
        cursor.execute(
            "WITH r AS (SELECT u.lexeme AS term, count(*) AS df FROM documents_chunk c, unnest(c.lexemes) u "
            "WHERE c.project_id = %s GROUP BY 1), "
            "t AS (SELECT term, df FROM documents_lexical_term WHERE project_id = %s AND df > 0) "
            "SELECT count(*) FILTER (WHERE r.df IS DISTINCT FROM t.df), count(r.term), count(t.term) "
            "FROM r FULL JOIN t ON t.term = r.term",
            [project_id, project_id],
        )
        wrong, recounted, stored = cursor.fetchone()
    out = {
        "project_chunks": int(chunks),
        "recount_chunks": int(real_chunks),
        "project_length": int(length),
        "recount_length": int(real_length or 0),
        "terms_stored": int(stored),
        "terms_recounted": int(recounted),
        "terms_wrong": int(wrong),
        "seconds": round(time.monotonic() - started, 1),
    }
    out["ok"] = chunks == real_chunks and length == real_length and wrong == 0 and stored == recounted
    say(f"postgres: statistics {'OK' if out['ok'] else 'WRONG'}: {out}")
    return out


def build_sqlite(chunks: int, base: Any, vectors: Any, password: str) -> dict[str, Any]:
    from django.db import transaction

    from documents.models import Chunk

    info: dict[str, Any] = {"chunks_target": chunks}
    user, project = ensure_user_project(password)
    synth = Synth(base, vectors, SEED)
    n_docs = math.ceil(chunks / CHUNKS_PER_DOC)
    progress = Progress("load chunks (ORM, triggers fill FTS5 + vec0)", chunks)
    started = time.monotonic()
    done = 0
    for batch_start in range(0, n_docs, SQLITE_BATCH_DOCS):
        docs = []
        for _ in range(batch_start, min(batch_start + SQLITE_BATCH_DOCS, n_docs)):
            docs.append(
                synth.document(min(CHUNKS_PER_DOC, chunks - done - sum(len(d["chunks"]) for d in docs)))
            )
        with transaction.atomic():
            rows = new_documents(project, user, docs, batch_start)
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document_id=doc.pk,
                        project_id=project.pk,
                        index=i,
                        text=text,
                        start=a,
                        end=b,
                        token_count=tok,
                        embedding=vec,
                        dim=384,
                    )
                    for doc, d in zip(rows, docs, strict=True)
                    for i, ((text, (a, b), tok), vec) in enumerate(
                        zip(d["chunks"], d["vectors"], strict=True)
                    )
                ],
                batch_size=500,
            )
        done += sum(len(d["chunks"]) for d in docs)
        progress(done)
    info["load_s"] = round(time.monotonic() - started, 1)
    info["index_build_s"] = {"(inline: triggers fill FTS5 + vec0 during the load)": info["load_s"]}
    say(f"sqlite: loaded {done:,} chunks in {info['load_s']} s")
    return info


def corpus_facts(backend: str, project_id: Any) -> dict[str, Any]:
    from django.db import connection

    from documents.models import Chunk, Document

    facts: dict[str, Any] = {
        "documents": Document.objects.filter(project_id=project_id).count(),
        "chunks": Chunk.objects.filter(project_id=project_id).count(),
    }
    with connection.cursor() as cursor:
        if backend == "postgres":
            cursor.execute("SELECT pg_database_size(current_database())")
            facts["database_bytes"] = int(cursor.fetchone()[0])
            cursor.execute(
                "SELECT c.relname, pg_relation_size(c.oid), pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'i') AND (c.relname LIKE 'documents_%%') "
                "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 14"
            )
            facts["relations"] = {
                name: {"bytes": int(b), "total_bytes": int(t)} for name, b, t in cursor.fetchall()
            }
            cursor.execute(
                "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'documents_chunk'"
            )
            facts["chunk_toast_bytes"] = int(cursor.fetchone()[0] or 0)
            cursor.execute(
                "SELECT avg(lexical_length)::float8, avg(length(text))::float8 FROM documents_chunk"
            )
            tokens, chars = cursor.fetchone()
            facts["avg_lexical_length"] = round(tokens, 1)
            facts["avg_chunk_chars"] = round(chars, 1)
            cursor.execute("SELECT count(*) FROM documents_lexical_term")
            facts["lexical_terms"] = int(cursor.fetchone()[0])
        else:
            from django.conf import settings

            path = Path(settings.DATABASES["default"]["NAME"])
            facts["database_bytes"] = sum(
                p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()
            )
            try:
                cursor.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 14")
                facts["relations"] = {name: {"bytes": int(b)} for name, b in cursor.fetchall()}
            except Exception:  # noqa: BLE001 - this SQLite was built without the dbstat table
                facts["relations"] = {}
            cursor.execute("SELECT avg(length(text)) FROM documents_chunk")
            facts["avg_chunk_chars"] = round(float(cursor.fetchone()[0]), 1)
    return facts


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------


def timed_searches(project_id: Any, queries: list[str], mode: str, clients: int) -> dict[str, Any]:
    from django.db import connection

    from documents.search import search

    if clients == 1:
        ms = []
        started = time.monotonic()
        for q in queries:
            t = time.perf_counter()
            search(project_ids=[project_id], query=q, k=10, mode=mode)
            ms.append((time.perf_counter() - t) * 1000)
        wall = time.monotonic() - started
    else:
        lock = threading.Lock()
        pending = list(reversed(queries))
        ms = []

        def client(_: int) -> None:
            try:
                while True:
                    with lock:
                        if not pending:
                            return
                        q = pending.pop()
                    t = time.perf_counter()
                    search(project_ids=[project_id], query=q, k=10, mode=mode)
                    elapsed = (time.perf_counter() - t) * 1000
                    with lock:
                        ms.append(elapsed)
            finally:
                connection.close()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(client, range(clients)))
        wall = time.monotonic() - started
    out = summary(ms)
    out["qps"] = round(len(ms) / wall, 1)
    return out


def breakdown(project_id: Any, queries: list[str], n: int = 100) -> dict[str, Any]:
    """A hybrid search's parts, timed one by one as search() runs them (1 client)."""
    from django.conf import settings

    from documents import embedder
    from documents.search import FUSION_DEPTH, _hits, engine, rrf

    backend = engine()
    parts: dict[str, list[float]] = {"encode": [], "dense_db": [], "lexical_db": [], "fuse_and_fetch": []}
    for q in queries[:n]:
        t0 = time.perf_counter()
        vector = embedder.encode([q])[0]
        t1 = time.perf_counter()
        dense = backend.dense([project_id], vector, FUSION_DEPTH)
        t2 = time.perf_counter()
        lexical = backend.lexical([project_id], q, FUSION_DEPTH)
        t3 = time.perf_counter()
        ids, scores = rrf([[c for c, _ in dense], [c for c, _ in lexical]], settings.SEARCH_RRF_K)
        _hits(list(zip(ids[:10].tolist(), scores[:10].tolist(), strict=True)), [project_id])
        t4 = time.perf_counter()
        for key, a, b in (
            ("encode", t0, t1),
            ("dense_db", t1, t2),
            ("lexical_db", t2, t3),
            ("fuse_and_fetch", t3, t4),
        ):
            parts[key].append((b - a) * 1000)
    return {k: [round(percentile(v, 50), 1), round(percentile(v, 95), 1)] for k, v in parts.items()}


def step_latency(backend: str, project_id: Any, queries: list[str], n: int) -> dict[str, Any]:
    from documents import embedder

    say(f"latency: warming up ({backend})")
    timed_searches(project_id, queries[-20:], "hybrid", 1)
    # The query encoder alone, for where the time goes.
    ms = []
    for q in queries[:100]:
        t = time.perf_counter()
        embedder.encode([q])
        ms.append((time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {
        "encode_query": summary(ms),
        "queries": n,
        "breakdown": breakdown(project_id, queries),
    }
    say(f"  hybrid, where the time goes (p50/p95 ms): {out['breakdown']}")
    for clients in (1, 8):
        for mode in ("hybrid", "dense", "lexical"):
            say(f"latency: {mode} at {clients} client(s) over {n} queries")
            result = timed_searches(project_id, queries[:n], mode, clients)
            out[f"{mode}_{clients}"] = result
            say(f"  {mode}@{clients}: {result}")
    return out


def step_recall(project_id: Any, qvecs: np.ndarray[Any, Any], n: int, efs: list[int]) -> dict[str, Any]:
    from django.test import override_settings

    from documents.search import FUSION_DEPTH, postgres

    say(f"recall: exact top-10 for {n} queries (sequential scans)")
    exact: list[list[int]] = []
    exact_ms: list[float] = []
    progress = Progress("exact scans", n)
    for i in range(n):
        t = time.perf_counter()
        exact.append([c for c, _ in postgres.dense([project_id], qvecs[i], 10, exact=True)])
        exact_ms.append((time.perf_counter() - t) * 1000)
        progress(i + 1)
    out: dict[str, Any] = {"queries": n, "depth": FUSION_DEPTH, "exact_scan": summary(exact_ms), "ef": {}}
    for ef in efs:
        with override_settings(SEARCH_HNSW_EF=ef):
            postgres.dense([project_id], qvecs[n], FUSION_DEPTH)  # warm
            hits, ms = [], []
            for i in range(n):
                t = time.perf_counter()
                found = postgres.dense([project_id], qvecs[i], FUSION_DEPTH)
                ms.append((time.perf_counter() - t) * 1000)
                top = {c for c, _ in found[:10]}
                hits.append(len(top & set(exact[i])) / max(len(exact[i]), 1))
        row = {"recall10": round(float(np.mean(hits)), 4), "min_recall10": round(float(np.min(hits)), 2)}
        row.update({f"db_{k}": v for k, v in summary(ms).items() if k in ("p50_ms", "p95_ms")})
        out["ef"][str(ef)] = row
        say(f"recall: ef_search {ef}: {row}")
    return out


class PlanCapture:
    """An execute wrapper that records EXPLAIN (ANALYZE, BUFFERS) of statements containing a marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.plans: list[str] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.marker in sql and not many:
            cursor = context["cursor"].cursor  # the driver's cursor: no wrappers again
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            self.plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, many, context)


LEXICAL_WHERE = "WHERE c.project_id = ANY(%s::uuid[]) AND c.lexemes @@ %s::tsquery "


class MaterializedCandidates:
    """Rewrites the engine's BM25 statement so the candidate chunks are read once (bitmap scan
    on the GIN index) before the join with the query terms: `WITH c AS MATERIALIZED (...)`.

    As written, the planner may estimate the join of the per-project and per-term arrays at
    one row and run the chunk scan (by project_id, tsquery as a filter) once per query term:
    a full scan of the project per term. This is a measurement aid, not Docent's code; the
    report says which figures were taken with it.
    """

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "CROSS JOIN LATERAL unnest" in sql and LEXICAL_WHERE in sql and sql.startswith("WITH "):
            sql = sql.replace(LEXICAL_WHERE, "").replace("FROM documents_chunk c JOIN p", "FROM c JOIN p")
            sql = (
                "WITH c AS MATERIALIZED (SELECT id, project_id, lexemes, lexical_length FROM documents_chunk "
                "WHERE project_id = ANY(%s::uuid[]) AND lexemes @@ %s::tsquery), " + sql[len("WITH ") :]  # noqa: S608 (the engine's own SQL)
            )
            params = [params[-3], params[-2], *params[:-3], params[-1]]
        return execute(sql, params, many, context)


def install_lexical_fix() -> None:
    """Every `postgres.lexical` call of this process (any thread) runs with the rewrite."""
    from django.db import connection

    from documents.search import postgres

    original = postgres.lexical
    if getattr(original, "_scale_fix", False):
        return

    def lexical(*args: Any, **kwargs: Any) -> Any:
        with connection.execute_wrapper(MaterializedCandidates()):
            return original(*args, **kwargs)

    lexical._scale_fix = True  # type: ignore[attr-defined]
    lexical.__wrapped_original__ = original  # type: ignore[attr-defined]
    postgres.lexical = lexical


def lexical_as_is(project_id: Any, queries: list[str], n: int, timeout_s: int) -> dict[str, Any]:
    """The engine's lexical query exactly as written, on a few queries, with a statement timeout."""
    from django.db import connection, transaction
    from django.db.utils import OperationalError

    from documents.search import postgres

    original = getattr(postgres.lexical, "__wrapped_original__", None) or postgres.lexical
    ms: list[float] = []
    timeouts = 0
    for q in queries[:n]:
        t = time.perf_counter()
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = '{int(timeout_s)}s'")
                original([project_id], q, 100)
        except OperationalError:
            timeouts += 1
        ms.append((time.perf_counter() - t) * 1000)
    return {**summary(ms), "timeouts": timeouts, "timeout_s": timeout_s}


def step_lexical(
    project_id: Any, queries: list[str], n: int, candidates: list[int], args: Any
) -> dict[str, Any]:
    from django.db import connection

    from documents.search import postgres

    original = postgres.LEXICAL_CANDIDATES
    out: dict[str, Any] = {"queries": n, "default": original, "values": {}, "fix": bool(args.lexical_fix)}
    if args.as_is_queries:
        say(f"lexical: the engine as written, {args.as_is_queries} queries, timeout {args.as_is_timeout} s")
        out["as_is"] = lexical_as_is(project_id, queries, args.as_is_queries, args.as_is_timeout)
        say(f"  as is: {out['as_is']}")
    reference = max(candidates)
    results: dict[int, list[list[int]]] = {}
    times: dict[int, list[float]] = {}
    try:
        for value in sorted(candidates, reverse=True):
            postgres.LEXICAL_CANDIDATES = value
            say(f"lexical: LEXICAL_CANDIDATES={value:,} over {n} queries")
            postgres.lexical([project_id], queries[n], 100)  # warm
            ranked, ms = [], []
            progress = Progress(f"lexical {value:,}", n, every=30)
            for i, q in enumerate(queries[:n]):
                t = time.perf_counter()
                ranked.append([c for c, _ in postgres.lexical([project_id], q, 100)])
                ms.append((time.perf_counter() - t) * 1000)
                progress(i + 1)
            results[value], times[value] = ranked, ms
        for value in sorted(candidates):
            agree = [
                len(set(a[:10]) & set(b[:10])) / max(len(b[:10]), 1)
                for a, b in zip(results[value], results[reference], strict=True)
            ]
            row = {"overlap10_vs_" + str(reference): round(float(np.mean(agree)), 4)}
            row.update(
                {k: v for k, v in summary(times[value]).items() if k in ("p50_ms", "p95_ms", "p99_ms")}
            )
            out["values"][str(value)] = row
            say(f"lexical: {value:,}: {row}")
        # The slowest query at the default, explained.
        postgres.LEXICAL_CANDIDATES = original
        ms_default = times.get(original) or times[reference]
        slowest = int(np.argmax(ms_default))
        engine_lexical = getattr(postgres.lexical, "__wrapped_original__", postgres.lexical)
        capture = PlanCapture("CROSS JOIN LATERAL unnest")
        if args.lexical_fix:
            with connection.execute_wrapper(MaterializedCandidates()), connection.execute_wrapper(capture):
                engine_lexical([project_id], queries[slowest], 100)
        else:
            with connection.execute_wrapper(capture):
                engine_lexical([project_id], queries[slowest], 100)
        out["slowest"] = {
            "query": queries[slowest],
            "ms": round(ms_default[slowest], 1),
            "plan": capture.plans,
        }
        if args.as_is_queries:
            # The same query as written, explained (bounded by the statement timeout).
            from django.db import transaction

            capture = PlanCapture("CROSS JOIN LATERAL unnest")
            try:
                with transaction.atomic(), connection.execute_wrapper(capture):
                    with connection.cursor() as cursor:
                        cursor.execute(f"SET LOCAL statement_timeout = '{int(args.as_is_timeout) * 3}s'")
                    engine_lexical([project_id], queries[slowest], 100)
            except Exception as exc:  # noqa: BLE001 - a timeout leaves the plan out
                capture.plans.append(f"(not explained: {type(exc).__name__})")
            out["slowest"]["plan_as_is"] = capture.plans
    finally:
        postgres.LEXICAL_CANDIDATES = original
    # A typical dense plan too.
    from documents import embedder

    capture = PlanCapture("ORDER BY distance")
    with connection.execute_wrapper(capture):
        postgres.dense([project_id], embedder.encode([queries[0]])[0], 100)
    out["dense_plan"] = capture.plans
    return out


def step_ingest(
    backend: str, chunks: int, project_id: Any, queries: list[str], n_ingest: int, n_queries: int
) -> dict[str, Any]:
    from documents.models import Document

    say("ingest: baseline hybrid p95 (1 client)")
    before = timed_searches(project_id, queries[:n_queries], "hybrid", 1)
    say(f"  before: {before}")
    log_path = data_dir(backend, chunks) / "ingest-worker.log"
    env = {**os.environ, **django_env(backend, chunks)}
    cmd = [sys.executable, str(Path(__file__)), "--backend", backend, "--chunks", str(chunks),
           "--ingest-worker", str(n_ingest)]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        # Wait for the worker to have encoded nothing and begun writing.
        deadline = time.monotonic() + 120
        while "writing" not in log_path.read_text(errors="replace") and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        ms: list[float] = []
        started = time.monotonic()
        from documents.search import search

        i = 0
        while proc.poll() is None:
            q = queries[i % len(queries)]
            i += 1
            t = time.perf_counter()
            search(project_ids=[project_id], query=q, k=10, mode="hybrid")
            ms.append((time.perf_counter() - t) * 1000)
        wall = time.monotonic() - started
    worker = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"ingest worker failed:\n{worker[-3000:]}")
    report = json.loads(worker.strip().splitlines()[-1])
    during = summary(ms)
    during["qps"] = round(len(ms) / wall, 1) if wall > 0 else None
    change = (during["p95_ms"] - before["p95_ms"]) / before["p95_ms"]
    out = {"before": before, "during": during, "p95_change": round(change, 3), "ingest": report}
    say(f"ingest: during {during}; p95 change {change:+.1%}; worker {report}")
    # Back to the corpus size of the benchmark.
    started = time.monotonic()
    Document.objects.filter(project_id=project_id, external_id__startswith=INGEST_PREFIX).delete()
    if backend == "postgres":
        with admin_connect(db_name(chunks)) as conn:
            conn.execute("VACUUM (ANALYZE) documents_chunk")
    out["cleanup_s"] = round(time.monotonic() - started, 1)
    say(f"ingest: removed the ingested documents (and vacuumed) in {out['cleanup_s']} s")
    return out


def ingest_worker(backend: str, chunks: int, n_chunks: int) -> None:
    """Run in a separate process: documents of 20 chunks, one at a time, as document_ingest writes them."""
    from django.db import transaction
    from django.utils import timezone

    from documents import search
    from documents.models import Chunk, Document, DocumentStatus

    base, vectors, _ = build_base()
    _, project = ensure_user_project(None)
    synth = Synth(base, vectors, SEED + 1)
    docs = [synth.document(CHUNKS_PER_DOC) for _ in range(math.ceil(n_chunks / CHUNKS_PER_DOC))]
    print("writing", flush=True)
    started = time.monotonic()
    ms: list[float] = []
    for n, d in enumerate(docs):
        t = time.perf_counter()
        # As an upload: the document row, then (after extraction and encoding) the write phase.
        doc = Document.objects.bulk_create(
            [
                Document(
                    project=project,
                    title=d["title"],
                    external_id=f"{INGEST_PREFIX}{n}",
                    status=DocumentStatus.PROCESSING,
                    attempts=1,
                )
            ]  # fmt: skip
        )[0]
        with transaction.atomic():
            current = Document.objects.select_for_update().filter(pk=doc.pk, attempts=1).first()
            search.ensure_dimension(384)
            Chunk.objects.filter(document_id=doc.pk).delete()
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document_id=doc.pk,
                        project_id=project.pk,
                        index=i,
                        text=text,
                        start=a,
                        end=b,
                        token_count=tok,
                        embedding=vec,
                        dim=384,
                    )  # fmt: skip
                    for i, ((text, (a, b), tok), vec) in enumerate(
                        zip(d["chunks"], d["vectors"], strict=True)
                    )
                ],
                batch_size=500,
            )
            current.chunk_count = len(d["chunks"])
            current.text = d["text"]
            current.status = DocumentStatus.READY
            current.status_changed_at = timezone.now()
            current.save(update_fields=["text", "status", "chunk_count", "status_changed_at", "updated_at"])
        ms.append((time.perf_counter() - t) * 1000)
        if n % 50 == 0:
            print(f"{n} documents", flush=True)
    wall = time.monotonic() - started
    total = sum(len(d["chunks"]) for d in docs)
    print(json.dumps({"documents": len(docs), "chunks": total, "seconds": round(wall, 1),
                      "chunks_per_s": round(total / wall, 1), "document_write": summary(ms)}))  # fmt: skip


GUNICORN_FIX = """
import os, sys
from config.gunicorn import *  # noqa: F403
from config import gunicorn as _base


def post_worker_init(worker):
    _base.post_worker_init(worker)
    sys.path.insert(0, {bench!r})
    import scale
    from documents.search import postgres

    postgres.LEXICAL_CANDIDATES = int(os.environ["SCALE_LEXICAL_CANDIDATES"])
    scale.install_lexical_fix()
"""


def step_rss(
    backend: str,
    chunks: int,
    project_id: Any,
    queries: list[str],
    password: str,
    n: int,
    mode: str,
    fix: bool,
) -> dict[str, Any]:
    from load import call, free_port, process_tree, rate_limit_knobs

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_") and k != "DATABASE_URL"}
    env.update(django_env(backend, chunks))
    env.update(rate_limit_knobs())
    env.update(
        {
            "DOCENT_PRODUCTION": "true",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DOCENT_SSL_REDIRECT": "false",
            "DOCENT_SECURE_COOKIES": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DOCENT_STATIC_ROOT": str(data_dir(backend, chunks) / "static"),
            "WEB_CONCURRENCY": "1",
            "DOCENT_WEB_THREADS": "1",
            "DOCENT_BIND": f"127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("CELERY_BROKER_URL", None)
    config = "config/gunicorn.py"
    if fix:
        # The same settings, plus the lexical rewrite (and candidates) installed in the worker.
        config = str(data_dir(backend, chunks) / "gunicorn_scale.py")
        Path(config).write_text(GUNICORN_FIX.format(bench=str(BENCH_DIR)))
        from documents.search import postgres

        env["SCALE_LEXICAL_CANDIDATES"] = str(postgres.LEXICAL_CANDIDATES)
    log_path = data_dir(backend, chunks) / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--config", config,
             "--bind", f"127.0.0.1:{port}"],  # fmt: skip
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                status, _ = call("GET", f"{base_url}/healthz", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer /healthz")
            time.sleep(0.3)
        workers = process_tree(proc.pid)[1:]
        assert len(workers) == 1, workers
        worker = workers[0]
        status, body = call(
            "POST", f"{base_url}/api/v1/auth/token", body={"email": BENCH_EMAIL, "password": password}
        )
        if status != 200:
            raise SystemExit(f"token: {status} {body}")
        token = body["access"]
        out: dict[str, Any] = {"rss_mib_booted": rss_kib(worker)["VmRSS"] / 1024}
        paths = [f"/api/v1/projects/{project_id}/search/?q={urllib.parse.quote_plus(q)}&k=10&mode={mode}"
                 for q in queries]  # fmt: skip
        ms: list[float] = []
        progress = Progress("HTTP searches", n, every=30)
        samples = {}
        for i in range(n):
            t = time.perf_counter()
            status, body = call("GET", base_url + paths[i % len(paths)], token=token, timeout=120)
            ms.append((time.perf_counter() - t) * 1000)
            if status != 200 or len(body.get("results", [])) != 10:
                raise SystemExit(f"search over HTTP: {status} {str(body)[:300]}")
            if i + 1 in (1, 10, 100, 500, n):
                samples[str(i + 1)] = round(rss_kib(worker)["VmRSS"] / 1024, 1)
            progress(i + 1)
        mem = rss_kib(worker)
        out.update(
            {
                "searches": n,
                "rss_mib_after_searches": samples,
                "rss_mib": round(mem["VmRSS"] / 1024, 1),
                "hwm_mib": round(mem["VmHWM"] / 1024, 1),
                "mode": mode,
                "gunicorn_config": config,
                "http": summary(ms),
                "worker_pid": worker,
            }
        )
        out["rss_mib_booted"] = round(out["rss_mib_booted"], 1)
        say(f"rss: {out}")
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# --------------------------------------------------------------------------
# One backend, in this process
# --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from load import cpu_model, memory_gib, package_version

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "onnxruntime": package_version("onnxruntime"),
        "torch_installed": bool(package_version("torch")),
        "pgvector_py": package_version("pgvector"),
    }


def run_backend(args: argparse.Namespace) -> dict[str, Any]:
    backend, chunks = args.backend, args.chunks
    state_file = state_path(backend, chunks)
    if args.fresh and "build" in args.steps:
        if backend == "postgres":
            with admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name(chunks)}" WITH (FORCE)')
        shutil.rmtree(data_dir(backend, chunks), ignore_errors=True)
    if backend == "postgres":
        with admin_connect() as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name(chunks)]).fetchone():
                conn.execute(f'CREATE DATABASE "{db_name(chunks)}"')
    if args.hnsw_ef:
        os.environ["SCALE_HNSW_EF"] = str(args.hnsw_ef)
    setup_django(backend, chunks)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    password = state.get("password") or secrets.token_urlsafe(16)
    started = time.monotonic()
    base, vectors, qvecs = build_base()
    base_s = round(time.monotonic() - started, 1)
    out: dict[str, Any] = {"backend": backend, "chunks": chunks, "machine": machine()}
    if args.lexical_candidates and backend == "postgres":
        from documents.search import postgres

        out["lexical_candidates_override"] = args.lexical_candidates
        postgres.LEXICAL_CANDIDATES = args.lexical_candidates
    if args.lexical_fix and backend == "postgres":
        install_lexical_fix()
        out["lexical_fix"] = "in-process rewrite: WITH c AS MATERIALIZED (candidates) (bench/scale.py)"
    if backend == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = 'vector')")
            version, vector_version = cursor.fetchone()
            out["server"] = {"postgresql": version.split(" on ")[0], "pgvector": vector_version}
            for name in ("shared_buffers", "work_mem", "maintenance_work_mem", "max_parallel_workers_per_gather",
                         "max_parallel_maintenance_workers", "fsync", "autovacuum"):  # fmt: skip
                cursor.execute(f"SHOW {name}")
                out["server"][name] = cursor.fetchone()[0]
    if state.get("built") == chunks:
        say(f"{backend}: reusing the corpus of {chunks:,} chunks ({state_file})")
        _, project = ensure_user_project(password)
        out["build"] = {**state.get("build", {}), "reused": True}
    else:
        if "build" not in args.steps:
            raise SystemExit(f"no corpus of {chunks:,} chunks stored for {backend}: run the build step")
        say(f"{backend}: building {chunks:,} chunks")
        build = (
            build_postgres(chunks, base, vectors, password)
            if backend == "postgres"
            else build_sqlite(chunks, base, vectors, password)
        )
        build["base"] = {"chunks": len(base), "abstracts": len(base_titles()), "seconds_incl_cache": base_s}
        _, project = ensure_user_project(password)
        state = {"built": chunks, "password": password, "project": str(project.pk), "build": build}
        state_file.write_text(json.dumps(state, indent=2))
        out["build"] = build
    out["corpus"] = corpus_facts(backend, project.pk)
    say(f"{backend}: corpus {json.dumps({k: v for k, v in out['corpus'].items() if k != 'relations'})}")
    queries = load_queries()
    rng = random.Random(SEED)
    shuffled = queries[:]
    rng.shuffle(shuffled)
    order = {q: i for i, q in enumerate(queries)}
    shuffled_vecs = qvecs[[order[q] for q in shuffled]]
    steps: list[tuple[str, Any]] = [
        ("latency", lambda: step_latency(backend, project.pk, shuffled, args.queries)),
        ("recall", lambda: step_recall(project.pk, shuffled_vecs, args.recall_queries, args.ef)),
        ("lexical", lambda: step_lexical(project.pk, shuffled, args.lexical_queries, args.candidates, args)),
        (
            "ingest",
            lambda: step_ingest(backend, chunks, project.pk, shuffled, args.ingest_chunks, args.queries),
        ),
        (
            "rss",
            lambda: step_rss(
                backend,
                chunks,
                project.pk,
                shuffled,
                password,
                args.rss_searches,
                args.rss_mode,
                bool(args.lexical_fix and backend == "postgres"),
            ),
        ),
    ]
    for name, run in steps:
        if name not in args.steps or (name in ("recall", "lexical") and backend != "postgres"):
            continue
        key = args.latency_key if name == "latency" and args.latency_key else name
        load_before = os.getloadavg()[0]
        out[key] = run()
        # The machine is shared: the 1-minute load average around each step, for context.
        out[key]["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if name in ("latency", "ingest", "rss"):
            out[key]["lexical_fix"] = bool(args.lexical_fix and backend == "postgres")
            if backend == "postgres":
                from django.conf import settings

                from documents.search import postgres

                out[key]["lexical_candidates"] = postgres.LEXICAL_CANDIDATES
                out[key]["hnsw_ef"] = settings.SEARCH_HNSW_EF
        if not args.no_write:
            write_results(
                {**out, "partial": True}, ".venv/bin/python bench/scale.py " + " ".join(sys.argv[1:])
            )
    return out


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def load_results() -> dict[str, Any]:
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {}


def write_results(result: dict[str, Any], command: str) -> None:
    doc = load_results()
    old = doc.get(result["backend"], {})
    # Steps not run this time keep their figures.
    merged = {**old, **result} if old.get("chunks") == result["chunks"] else dict(result)
    commands = list(old.get("commands", [])) if old.get("chunks") == result["chunks"] else []
    if command not in commands:
        commands.append(command)
    merged["commands"] = commands[-5:]
    doc[result["backend"]] = merged
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(doc, indent=2) + "\n")
    RESULTS_MD.write_text(render(doc))
    say(f"wrote {RESULTS_JSON.relative_to(ROOT)} and {RESULTS_MD.relative_to(ROOT)}")


def mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1024 / 1024:,.0f} MB"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**not met**")


def get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


ANALYSIS_MARKER = (
    "<!-- analysis: everything below this line is kept when bench/scale.py rewrites the file -->"
)


def short_plan(plan: str) -> list[str]:
    """An EXPLAIN output without the 384 numbers of a query vector or the BM25 expression."""
    import re

    plan = re.sub(r"'\[[-0-9.,e]+\]'", "'[query vector]'", plan)
    plan = re.sub(
        r"Sort Key: \(sum\(.*\)\) DESC, c\.id", "Sort Key: (sum(<BM25 of each term>)) DESC, c.id", plan
    )
    return plan.splitlines()


def render(doc: dict[str, Any]) -> str:
    pg, lite = doc.get("postgres", {}), doc.get("sqlite", {})
    lines = [
        "# Scale benchmark",
        "",
        "Generated by `bench/scale.py`; see its docstring for how the corpus is made.",
        "",
    ]
    lines += [
        "From scratch, both backends: `.venv/bin/python bench/scale.py --fresh` (the corpus is reused",
        "without `--fresh`; `--steps` reruns some steps and keeps the other figures). The figures below",
        "come from these runs, in order:",
        "",
        "```",
    ]
    for r in (pg, lite):
        lines.extend(r.get("commands", []))
    lines += ["```", ""]
    m = (pg or lite).get("machine", {})
    lines += [
        f"Machine: {m.get('nproc')} cores ({m.get('cpu')}), {m.get('memory_gib')} GiB; measured {m.get('date')}; "
        f"Python {m.get('python')}, onnxruntime {m.get('onnxruntime') or '–'}, torch installed: {m.get('torch_installed')}.",
    ]
    if pg.get("server"):
        s = pg["server"]
        lines.append(
            f"PostgreSQL: {s.get('postgresql')}, pgvector {s.get('pgvector')}; shared_buffers {s.get('shared_buffers')}, "
            f"work_mem {s.get('work_mem')}, max_parallel_workers_per_gather {s.get('max_parallel_workers_per_gather')}, "
            f"fsync {s.get('fsync')}, autovacuum {s.get('autovacuum')}; index build with "
            f"maintenance_work_mem {get(pg, 'build', 'maintenance_work_mem') or s.get('maintenance_work_mem')}."
        )
    lines += ["", "## Targets", "", "| target | figure | verdict |", "| --- | --- | --- |"]
    p95 = get(pg, "latency", "hybrid_1", "p95_ms")
    lines.append(f"| PostgreSQL hybrid p95 at 1 client <= {TARGETS['pg_hybrid_p95_ms']:.0f} ms | "
                 f"{p95 if p95 is not None else '–'} ms | {verdict(None if p95 is None else p95 <= TARGETS['pg_hybrid_p95_ms'])} |")  # fmt: skip
    default_ef = None
    ef_rows = get(pg, "recall", "ef") or {}
    if ef_rows:
        default_ef = ef_rows.get("100") or next(iter(ef_rows.values()))
    rec = default_ef["recall10"] if default_ef else None
    lines.append(f"| dense recall@10 >= {TARGETS['recall10']} (ef_search 100, the default) | {rec if rec is not None else '–'} | "
                 f"{verdict(None if rec is None else rec >= TARGETS['recall10'])} |")  # fmt: skip
    for name, r in (("SQLite", lite), ("PostgreSQL", pg)):
        rss = get(r, "rss", "rss_mib")
        lines.append(f"| web worker RSS after 1,000 searches <= {TARGETS['rss_mib']:.0f} MB ({name}, {r.get('chunks', 0):,} chunks) | "
                     f"{rss if rss is not None else '–'} MiB | {verdict(None if rss is None else rss <= TARGETS['rss_mib'])} |")  # fmt: skip
    for name, r in (("PostgreSQL", pg), ("SQLite", lite)):
        ch = get(r, "ingest", "p95_change")
        lines.append(f"| ingest moves search p95 by < 25% ({name}) | {'–' if ch is None else f'{ch:+.0%}'} | "
                     f"{verdict(None if ch is None else abs(ch) < TARGETS['ingest_p95_change'])} |")  # fmt: skip
    lines += [
        "",
        "## Corpus and build",
        "",
        "| | PostgreSQL + pgvector | SQLite (sqlite-vec + FTS5) |",
        "| --- | --- | --- |",
    ]

    def both(fn: Any) -> str:
        return " | ".join(str(fn(r)) if r else "–" for r in (pg, lite))

    def num(*keys: str) -> Any:
        return lambda r: f"{get(r, *keys) or 0:,}"

    def unit(suffix: str, *keys: str) -> Any:
        return lambda r: "–" if get(r, *keys) is None else f"{get(r, *keys)}{suffix}"

    def builds(r: dict[str, Any]) -> str:
        return ", ".join(f"{k}: {v} s" for k, v in (get(r, "build", "index_build_s") or {}).items())

    lines.append(f"| chunks | {both(num('corpus', 'chunks'))} |")
    lines.append(f"| documents | {both(num('corpus', 'documents'))} |")
    lines.append(f"| mean chunk length | {both(unit(' chars', 'corpus', 'avg_chunk_chars'))} |")
    lines.append(f"| load (rows + lexemes + statistics) | {both(unit(' s', 'build', 'load_s'))} |")
    lines.append(f"| index build | {both(builds)} |")
    lines.append(f"| VACUUM ANALYZE | {both(unit(' s', 'build', 'vacuum_analyze_s'))} |")
    lines.append(f"| database size | {both(lambda r: mb(get(r, 'corpus', 'database_bytes')))} |")
    for r, name in ((pg, "PostgreSQL"), (lite, "SQLite")):
        rel = get(r, "corpus", "relations") or {}
        if rel:
            parts = ", ".join(f"`{k}` {mb(v.get('bytes'))}" for k, v in list(rel.items())[:8])
            toast = get(r, "corpus", "chunk_toast_bytes")
            if toast:
                parts += f"; `documents_chunk` TOAST (text, lexemes) {mb(toast)}"
            lines.append(
                f"| {name} largest relations | {parts} | |"
                if name == "PostgreSQL"
                else f"| {name} largest tables | | {parts} |"
            )
    chk = get(pg, "build", "statistics_check")
    if chk:
        lines.append(f"| BM25 statistics vs recount | {'exact' if chk.get('ok') else '**wrong**'} "
                     f"({chk['terms_stored']:,} terms, {chk['project_chunks']:,} chunks, {chk['terms_wrong']} wrong) | – |")  # fmt: skip
    lines += [
        "",
        "## Search latency (`documents.search.search`, k=10, in-process, query encoding included)",
        "",
    ]
    lines += ["8 clients = 8 threads of one process, each with its own database connection (the encoder and",
              "the database release the GIL); the same 2 cores serve the clients and the database.", ""]  # fmt: skip
    lines += ["| backend | mode | 1 client p50 | 1 client p95 | 8 clients p50 | 8 clients p95 | 8 clients q/s |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in (("PostgreSQL", pg), ("SQLite", lite)):
        for key in sorted(k for k in r if k.startswith("latency")):
            lat = r[key]
            how = ""
            if name == "PostgreSQL":
                how = (
                    f" ({'rewritten' if lat.get('lexical_fix') else 'as written'}, "
                    f"LEXICAL_CANDIDATES {lat.get('lexical_candidates'):,})"
                )
            dense_how = f" (SEARCH_HNSW_EF {lat['hnsw_ef']})" if lat.get("hnsw_ef") else ""
            for mode in ("hybrid", "dense", "lexical"):
                a, b = lat.get(f"{mode}_1") or {}, lat.get(f"{mode}_8") or {}
                if a or b:
                    lines.append(
                        f"| {name} {r.get('chunks', 0):,}{how if mode != 'dense' else dense_how} | {mode} | "
                        f"{a.get('p50_ms')} ms | {a.get('p95_ms')} ms | "
                        f"{b.get('p50_ms')} ms | {b.get('p95_ms')} ms | {b.get('qps')} |"
                    )
            if lat.get("encode_query"):
                e = lat["encode_query"]
                lines.append(
                    f"| {name} | (query encoding alone) | {e['p50_ms']} ms | {e['p95_ms']} ms | | | |"
                )
    rc = pg.get("recall")
    if rc:
        lines += [
            "",
            f"## Dense recall@10 (PostgreSQL, HNSW vs exact scan, {rc['queries']} queries, depth {rc['depth']})",
            "",
        ]
        lines += [f"Exact scan: p50 {rc['exact_scan']['p50_ms']} ms. ef_search is max(SEARCH_HNSW_EF, depth) and "
                  "search() asks for depth 100, so values under 100 change nothing.", ""]  # fmt: skip
        lines += [
            "| SEARCH_HNSW_EF | recall@10 | worst query | dense DB p50 | dense DB p95 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for ef, row in rc["ef"].items():
            lines.append(
                f"| {ef} | {row['recall10']} | {row['min_recall10']} | {row['db_p50_ms']} ms | {row['db_p95_ms']} ms |"
            )
    lx = pg.get("lexical")
    if lx:
        lines += [
            "",
            f"## Lexical candidates (PostgreSQL, `postgres.lexical` depth 100, {lx['queries']} queries)",
            "",
        ]
        lines += [
            f"Default LEXICAL_CANDIDATES = {lx['default']:,}. Overlap@10 is against the largest value measured.",
            "",
        ]
        lines += ["| LEXICAL_CANDIDATES | overlap@10 | p50 | p95 | p99 |", "| --- | --- | --- | --- | --- |"]
        for value, row in lx["values"].items():
            overlap = next(v for k, v in row.items() if k.startswith("overlap10"))
            lines.append(
                f"| {int(value):,} | {overlap} | {row['p50_ms']} ms | {row['p95_ms']} ms | {row['p99_ms']} ms |"
            )
        if lx.get("slowest"):
            s = lx["slowest"]
            lines += ["", f"Slowest lexical query at the default ({s['ms']} ms): “{s['query']}”", "", "```"]
            lines += short_plan(s["plan"][0]) if s["plan"] else []
            lines += ["```"]
        if lx.get("dense_plan"):
            lines += ["", "A dense query's plan:", "", "```", *short_plan(lx["dense_plan"][0]), "```"]
    lines += ["", "## Search while ingesting (hybrid, 1 client)", ""]
    lines += ["Another process writes documents of 20 chunks, one transaction each, as `document_ingest`'s",
              "write phase does (vectors precomputed: the encoder's CPU is not part of it).", ""]  # fmt: skip
    lines += ["| backend | p50 before | p95 before | p50 during | p95 during | p95 change | ingest rate | per-document write p50 / p95 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in (("PostgreSQL", pg), ("SQLite", lite)):
        ing = r.get("ingest")
        if ing:
            w = ing["ingest"]
            lines.append(f"| {name} {r['chunks']:,} | {ing['before']['p50_ms']} ms | {ing['before']['p95_ms']} ms | "
                         f"{ing['during']['p50_ms']} ms | {ing['during']['p95_ms']} ms | {ing['p95_change']:+.0%} | "
                         f"{w['chunks']:,} chunks in {w['seconds']} s ({w['chunks_per_s']}/s) | "
                         f"{w['document_write']['p50_ms']} / {w['document_write']['p95_ms']} ms |")  # fmt: skip
    lines += ["", "## Web worker memory (gunicorn, config/gunicorn.py, 1 worker, 1 thread)", ""]
    lines += ["| backend | chunks | RSS booted | RSS after 1 / 10 / 100 / 500 / 1,000 searches | peak (VmHWM) | HTTP search p50 / p95 |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in (("SQLite", lite), ("PostgreSQL", pg)):
        rs = r.get("rss")
        if rs:
            seq = " / ".join(f"{v}" for v in rs["rss_mib_after_searches"].values())
            lines.append(f"| {name} | {r['chunks']:,} | {rs['rss_mib_booted']} MiB | {seq} MiB | {rs['hwm_mib']} MiB | "
                         f"{rs['mode']}: {rs['http']['p50_ms']} / {rs['http']['p95_ms']} ms |")  # fmt: skip
    body = "\n".join(lines) + "\n"
    kept = ""
    if RESULTS_MD.exists():
        text = RESULTS_MD.read_text()
        if ANALYSIS_MARKER in text:
            kept = text.split(ANALYSIS_MARKER, 1)[1]
    return body + "\n" + ANALYSIS_MARKER + (kept or "\n")


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument(
        "--chunks", type=int, default=0, help="corpus size (default 1M PostgreSQL, 100k SQLite)"
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the corpus even if one is stored")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {','.join(STEPS)}")
    parser.add_argument("--queries", type=int, default=300, help="queries per latency figure")
    # Each exact scan of 1M chunks takes ~5 s on 2 cores.
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--lexical-queries", type=int, default=100)
    parser.add_argument("--ef", default="100,200,400")
    parser.add_argument("--candidates", default="1000,2000,5000,20000,50000")
    parser.add_argument("--ingest-chunks", type=int, default=10_000)
    parser.add_argument("--rss-searches", type=int, default=1000)
    parser.add_argument(
        "--lexical-fix",
        action="store_true",
        help="rewrite the BM25 statement to MATERIALIZED candidates in-process (a no-op once the "
        "engine's statement materializes them itself, as it does since this benchmark's first run)",
    )
    parser.add_argument(
        "--as-is-queries",
        type=int,
        default=0,
        help="lexical queries timed as written, with a statement timeout",
    )
    parser.add_argument("--as-is-timeout", type=int, default=60)
    parser.add_argument("--rss-mode", default="hybrid", choices=("hybrid", "dense", "lexical"))
    parser.add_argument(
        "--lexical-candidates", type=int, default=0, help="override LEXICAL_CANDIDATES in-process"
    )
    parser.add_argument("--latency-key", default="", help="store the latency step under another name")
    parser.add_argument("--hnsw-ef", type=int, default=0, help="DOCENT_SEARCH_HNSW_EF for this run")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite scale.md from scale.json")
    parser.add_argument("--ingest-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = [s for s in args.steps.split(",") if s]
    unknown = set(args.steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}")
    args.ef = [int(x) for x in args.ef.split(",") if x]
    args.candidates = [int(x) for x in args.candidates.split(",") if x]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        RESULTS_MD.write_text(render(load_results()))
        return 0
    if args.backend == "both":
        rest, skip = [], False
        for item in sys.argv[1:]:
            if skip:
                skip = False
            elif item == "--backend":
                skip = True
            elif not item.startswith("--backend="):
                rest.append(item)
        for backend in ("sqlite", "postgres"):
            cmd = [sys.executable, str(Path(__file__)), "--backend", backend, *rest]
            say(f"== {backend}: {' '.join(cmd[1:])}")
            rc = subprocess.call(cmd, cwd=ROOT)
            if rc:
                return rc
        return 0
    if not args.chunks:
        args.chunks = DEFAULT_CHUNKS[args.backend]
    if args.ingest_worker:
        setup_django(args.backend, args.chunks)
        ingest_worker(args.backend, args.chunks, args.ingest_worker)
        return 0
    command = ".venv/bin/python bench/scale.py " + " ".join(sys.argv[1:])
    started = time.monotonic()
    result = run_backend(args)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["partial"] = False
    say(f"{args.backend}: done in {result['seconds']} s")
    if args.no_write:
        print(json.dumps(result, indent=2, default=str))
    else:
        write_results(result, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
