"""Scale benchmark: one project of 1,000,000 chunks on the one stack.

    .venv/bin/python bench/scale.py [--chunks 1000000] [--fresh]
        [--steps build,latency,recall,diskann,ingest,rss] [--queries 300] [--recall-queries 100]
        [--ef 100,200,400] [--diskann-variants partition,typed] [--diskann-list 100,200,400]
        [--diskann-rescore 100] [--build-memory 4GB] [--pg KEY=VALUE ...] [--hnsw-ef N]
        [--abstracts N] [--no-write] [--results-dir DIR] [--render-only]

The database is the private PostgreSQL 17 (pgvector, ParadeDB pg_search) and Valkey that
`make run` starts (`config.servers.Stack`, with config.servers.PG_SETTINGS; `--pg` overrides
one for the run), in a data folder of this benchmark's own, bench/.data/scale/stack-<chunks>,
started at the beginning and stopped at the end. The corpus stays there between runs
(`--fresh` builds it again). Searches run in this process through Django, as the API's do.

The corpus is synthetic but built from real text and real vectors, so that the term
distribution and the vector distribution look like a document collection rather than noise:

1. Base: every SciFact abstract (5,183) is chunked by Docent's own chunker
   (`documents.chunking.chunk_text`, CHUNK_TOKENS / CHUNK_OVERLAP_TOKENS), and each chunk
   is embedded once with `documents.embedder.encode` (title + text, as ingest does).
   Cached in bench/.data/scale/base/.
2. Synthetic chunks (seeded RNG): each takes a run of consecutive sentences from each of 2
   or 3 random base chunks (random abstracts), up to a token budget drawn from the real
   chunk lengths (at most CHUNK_TOKENS); its vector is normalise(sum of the source chunks'
   vectors weighted by the tokens taken + Gaussian noise of norm ~0.3), so no two vectors
   coincide and the neighbourhoods are those of mixed topics, not of 12k points repeated.
   Documents hold 20 chunks each and a random SciFact title; their text is the chunks
   joined, with each chunk's offsets into it.

Build: the project's partition is made by the engine (`engine.ensure_partitions`), then
detached from `documents_chunk`, emptied of its indexes and constraints, and loaded: the
documents through the ORM (bulk_create) and the chunks through COPY in batches of 20,000
rows, each with its document's title as ingest stores it. Then every index the parent
declares is built on the loaded partition, one at a time and timed (the b-trees, the
pg_search BM25 index, the pgvector HNSW index; maintenance_work_mem `--build-memory` for
the session), and the partition is attached again (PostgreSQL adopts the matching indexes
and checks the partition bound and the foreign keys), then VACUUM (ANALYZE). The database
ends as if every chunk had been ingested, only built faster.

Measured (in-process unless said):

- latency: `documents.search.search(k=10, cut=True)` (query encoding included, as in the
  API) for hybrid, dense and lexical at 1 client and at 8 (8 threads, each with its own
  database connection), where a hybrid search's time goes, and one plan of each ranking;
- recall: the exact top 10 of each query (a sequential scan) against the HNSW graph's at
  several hnsw.ef_search values, with the graph query's own latency;
- diskann: pgvectorscale's DiskANN index against those same exact top 10s, at several
  search-list sizes, with its build time and size (`partition`: on the chunk partition's
  vector expression, where it cannot rescore; `typed`: on a copy of the vectors in a
  vector(384) column, where it can); built, measured and dropped;
- ingest: hybrid latency while another process writes documents of 20 chunks the way
  ingest's write phase does;
- rss: a gunicorn web worker's memory (`make serve`'s config.asgi, 1 worker) over 1,000
  searches over HTTP.

Results: bench/results/scale.json and scale.md. The figures from before the one stack
(2026-12-01: PostgreSQL 18 with BM25 in SQL at 1M chunks, SQLite at 100k) stay in
scale.json under `postgres` and `sqlite` and are shown beside the new ones; the analysis
at the end of scale.md is kept on rewrite. `--steps` runs only some steps and keeps the
others' figures. `--abstracts N` (a smoke run) builds the base from the first N abstracts
only, in folders of its own, and never writes bench/results.
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
import re
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
# Under bench/.data/ (ignored by git through the .gitignore this script writes there).
DATA_ROOT = BENCH_DIR / ".data"
SCRATCH = DATA_ROOT / "scale"
RESULTS_DIR = BENCH_DIR / "results"
DATA = Path("/work/shared/data/scifact")
BENCH_EMAIL = "scale-bench@docent.invalid"
PROJECT_TITLE = "Scale benchmark"
SEED = 20261201
CHUNKS_PER_DOC = 20
BATCH_DOCS = 1000  # 20,000 chunks per COPY
NOISE_NORM = 0.3
DIM = 384
DEFAULT_CHUNKS = 1_000_000
STEPS = ("build", "latency", "recall", "diskann", "ingest", "rss")
DISKANN_VARIANTS = ("partition", "typed")
# Issue 22, at 1M chunks on this 2-core machine.
TARGETS = {
    "hybrid_p95_ms": 30.0,
    "hybrid_qps_8": 100.0,
    "recall10": 0.95,
    "rss_mib": 300.0,
    "ingest_p95_change": 0.25,
}
INGEST_PREFIX = "scale-ingest-"
DISKANN_INDEX = "scale_diskann"
DISKANN_TABLE = "scale_diskann_vectors"

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
# Environment: the private servers of the benchmark's data folder
# --------------------------------------------------------------------------


def data_dir(chunks: int, abstracts: int) -> Path:
    return SCRATCH / (f"stack-{chunks}" + (f"-abstracts{abstracts}" if abstracts else ""))


def base_dir(abstracts: int) -> Path:
    return SCRATCH / "base" / (f"first{abstracts}" if abstracts else "all")


def start_stack(folder: Path, overrides: dict[str, str]) -> Any:
    """The private PostgreSQL and Valkey of the folder, started with this run's settings."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from config import servers

    servers.PG_SETTINGS.update(overrides)
    stack = servers.Stack(folder)
    stack.stop()  # left running by a killed run, perhaps with other settings
    started = time.monotonic()
    try:
        stack.start()
    except servers.ServerError as exc:
        raise SystemExit(f"the private servers did not start: {exc}") from None
    say(f"PostgreSQL and Valkey up for {folder} in {time.monotonic() - started:.1f} s")
    return stack


def django_env(folder: Path, servers_env: dict[str, str]) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DOCENT_DATA_DIR": str(folder),
        "DOCENT_MEDIA_ROOT": str(folder / "media"),
        "DOCENT_MODEL_DIR": str(SCRATCH / "models"),
        # Nothing is published to a worker: the benchmark writes its rows itself.
        "CELERY_BROKER_URL": "memory://",
        "DOCENT_LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        **servers_env,  # DATABASE_URL, REDIS_URL: the private servers
    }


def setup_django(folder: Path, servers_env: dict[str, str], hnsw_ef: int = 0) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "DOCENT_TASKS_EAGER", "DOCENT_SEARCH_HNSW_EF"):
        os.environ.pop(name, None)
    os.environ.update(django_env(folder, servers_env))
    if hnsw_ef:
        os.environ["DOCENT_SEARCH_HNSW_EF"] = str(hnsw_ef)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from config import servers

    host = Path(str(settings.DATABASES["default"].get("HOST", "")))
    if host.resolve() != servers.socket_dir(folder).resolve():
        raise SystemExit(f"refusing to run: database {host} is not the private server of {folder}")


def q(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """One statement on Django's connection; its rows (none for a command)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


# --------------------------------------------------------------------------
# The base: real SciFact chunks and their vectors
# --------------------------------------------------------------------------


def load_queries() -> list[str]:
    with (DATA / "queries-train.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def build_base(abstracts: int) -> tuple[list[dict[str, Any]], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(base chunks, their vectors, query vectors), computed once and cached."""
    from django.conf import settings

    from documents import chunking, embedder
    from documents.search import index_text

    folder = base_dir(abstracts)
    folder.mkdir(parents=True, exist_ok=True)
    key = f"{embedder.model_name()}-{settings.EMBEDDING_BACKEND}-{settings.CHUNK_TOKENS}-{settings.CHUNK_OVERLAP_TOKENS}"
    meta_path, vec_path, q_path = folder / "base.json", folder / "base.npy", folder / "queries.npy"
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
            if abstracts and len(titles) >= abstracts:
                break
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
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
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


def base_titles(abstracts: int) -> list[str]:
    return list(json.loads((base_dir(abstracts) / "base.json").read_text())["titles"])


class Synth:
    """Synthetic documents of recombined SciFact sentences with mixed, perturbed vectors."""

    def __init__(
        self, base: list[dict[str, Any]], vectors: np.ndarray[Any, Any], titles: list[str], seed: int
    ) -> None:
        from django.conf import settings

        self.base, self.vectors = base, vectors
        self.titles = titles
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


def vector_text(matrix: np.ndarray[Any, Any]) -> list[str]:
    fmt = "[" + ",".join(["%.7g"] * matrix.shape[1]) + "]"
    return [fmt % tuple(row) for row in matrix.tolist()]


# --------------------------------------------------------------------------
# Fixture: user, project, corpus
# --------------------------------------------------------------------------


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


def detach_for_load(partition: str) -> list[dict[str, str]]:
    """Detach the project's partition and take off its indexes and constraints (the engine
    made them when it made the partition); what to build again, in the order to build it."""
    indexes = q(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname, "
        "pg_get_constraintdef(c.oid), p.inhparent::regclass::text, am.amname "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam "
        "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
        "LEFT JOIN pg_inherits p ON p.inhrelid = i.indexrelid WHERE i.indrelid = %s::regclass",
        [partition],
    )
    foreign = q(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'", [partition]
    )
    q(f"ALTER TABLE documents_chunk DETACH PARTITION {partition}")
    for (name,) in foreign:
        q(f'ALTER TABLE {partition} DROP CONSTRAINT "{name}"')
    rebuild = []
    for index, index_ddl, constraint, constraint_ddl, parent, method in indexes:
        if constraint:
            q(f'ALTER TABLE {partition} DROP CONSTRAINT "{constraint}"')
            ddl = f'ALTER TABLE {partition} ADD CONSTRAINT "{constraint}" {constraint_ddl}'
        else:
            q(f'DROP INDEX "{index}"')
            ddl = index_ddl
        rebuild.append({"name": parent or index, "method": method, "ddl": ddl})
    q(f"TRUNCATE {partition}")
    # The cheap b-trees first, then the BM25 index, the vector graph last.
    order = {"btree": 0, "bm25": 1}
    return sorted(rebuild, key=lambda item: order.get(item["method"], 2))


def build(args: argparse.Namespace, base: Any, vectors: Any, password: str) -> dict[str, Any]:
    from django.db import connection, transaction

    from documents import search
    from documents.search import engine

    chunks = args.chunks
    info: dict[str, Any] = {
        "chunks_target": chunks,
        "method": "detached partition: COPY, then indexes, then ATTACH",
    }
    user, project = ensure_user_project(password)
    engine.ensure_partitions([project.pk])
    search.ensure_dimension(DIM)
    partition = engine.partition_name(project.pk)
    rebuild = detach_for_load(partition)
    say(f"build: {partition} detached, {len(rebuild)} indexes to build after the load")
    synth = Synth(base, vectors, base_titles(args.abstracts), SEED)
    n_docs = math.ceil(chunks / CHUNKS_PER_DOC)
    progress = Progress("load chunks (COPY)", chunks)
    started = time.monotonic()
    done = 0
    copy_sql = (
        f'COPY {partition} (document_id, project_id, title, "index", text, start, "end", '
        "token_count, embedding, dim) FROM STDIN"
    )
    for batch_start in range(0, n_docs, BATCH_DOCS):
        docs: list[dict[str, Any]] = []
        for _ in range(batch_start, min(batch_start + BATCH_DOCS, n_docs)):
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
                        copy.write_row((doc.pk, project.pk, doc.title, i, text, a, b, tok, vec, DIM))
        done += sum(len(d["chunks"]) for d in docs)
        progress(done)
    info["load_s"] = round(time.monotonic() - started, 1)
    say(f"build: loaded {done:,} chunks in {info['load_s']} s")
    builds: dict[str, float] = {}
    q(f"SET maintenance_work_mem = '{args.build_memory}'")
    info["maintenance_work_mem"] = args.build_memory
    info["max_parallel_maintenance_workers"] = q("SHOW max_parallel_maintenance_workers")[0][0]
    for item in rebuild:
        say(f"build: {item['name']} ({item['method']})")
        watcher = IndexProgress()
        watcher.start()
        started = time.monotonic()
        q(item["ddl"])
        builds[item["name"]] = round(time.monotonic() - started, 1)
        watcher.stop()
        say(f"build: {item['name']} in {builds[item['name']]} s")
    q("RESET maintenance_work_mem")
    info["index_build_s"] = builds
    started = time.monotonic()
    q(f"ALTER TABLE documents_chunk ATTACH PARTITION {partition} FOR VALUES IN (%s)", [str(project.pk)])
    info["attach_s"] = round(time.monotonic() - started, 1)
    attached = q(
        "SELECT count(*) FROM pg_index i JOIN pg_inherits p ON p.inhrelid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass",
        [partition],
    )[0][0]
    total = q("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [partition])[0][0]
    if attached != len(rebuild) or total != len(rebuild):
        raise SystemExit(f"{partition}: {total} indexes, {attached} attached, expected {len(rebuild)}")
    say(f"build: attached in {info['attach_s']} s, its {attached} indexes adopted by the parent's")
    started = time.monotonic()
    q(f"VACUUM (ANALYZE) {partition}")
    q("VACUUM (ANALYZE) documents_document")
    info["vacuum_analyze_s"] = round(time.monotonic() - started, 1)
    say(f"build: VACUUM ANALYZE in {info['vacuum_analyze_s']} s")
    return info


class IndexProgress(threading.Thread):
    """Prints pg_stat_progress_create_index every 30 s while an index builds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
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


def corpus_facts(project_id: Any) -> dict[str, Any]:
    from documents.models import Document
    from documents.search import engine

    partition = engine.partition_name(project_id)
    facts: dict[str, Any] = {"documents": Document.objects.filter(project_id=project_id).count()}
    facts["chunks"], chars, longest = q(
        f"SELECT count(*), avg(length(text))::float8, max(length(text)) FROM {partition}"
    )[0]
    facts["avg_chunk_chars"] = round(float(chars or 0), 1)
    facts["max_chunk_chars"] = int(longest or 0)
    facts["database_bytes"] = int(q("SELECT pg_database_size(current_database())")[0][0])
    # The partition and its indexes under the names of the parent's (the engine's) indexes.
    rows = q(
        "SELECT coalesce(p.inhparent::regclass::text, c.relname), pg_relation_size(c.oid), "
        "pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_inherits p ON p.inhrelid = c.oid WHERE n.nspname = 'public' "
        "AND c.relkind IN ('r', 'i') AND c.relname LIKE 'documents_%%' "
        "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 12"
    )
    facts["relations"] = {
        ("documents_chunk (the partition)" if name == "documents_chunk" else name): {
            "bytes": int(b),
            "total_bytes": int(t),
        }
        for name, b, t in rows
    }
    facts["chunk_toast_bytes"] = int(
        q("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = %s", [partition])[0][0] or 0
    )
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
        for query in queries:
            t = time.perf_counter()
            search(project_ids=[project_id], query=query, k=10, mode=mode, cut=True)
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
                        query = pending.pop()
                    t = time.perf_counter()
                    search(project_ids=[project_id], query=query, k=10, mode=mode, cut=True)
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
    """A hybrid search's parts, timed one by one as search() runs them (1 client): the query's
    embedding, then the one statement that ranks, fuses and hydrates, then the cut."""
    from django.conf import settings

    from documents import embedder
    from documents.search import FUSION_DEPTH, _hit, engine
    from documents.search import cut as weak_hits

    parts: dict[str, list[float]] = {"encode": [], "rank_fuse_hydrate_db": [], "cut": []}
    for query in queries[:n]:
        t0 = time.perf_counter()
        vector = embedder.encode([query])[0]
        t1 = time.perf_counter()
        rows = engine.ranked(
            [project_id], vector=vector, query=query, depth=FUSION_DEPTH, k=10, rank_k=settings.SEARCH_RRF_K
        )
        t2 = time.perf_counter()
        signals = weak_hits.Signals(
            mode="hybrid",
            query=query,
            rank_k=settings.SEARCH_RRF_K,
            cosine={r.chunk_id: r.cosine for r in rows if r.cosine is not None},
            bm25={r.chunk_id: r.bm25 for r in rows if r.bm25 is not None},
        )
        weak_hits.cut([_hit(r) for r in rows], signals)
        t3 = time.perf_counter()
        for key, a, b in (("encode", t0, t1), ("rank_fuse_hydrate_db", t1, t2), ("cut", t2, t3)):
            parts[key].append((b - a) * 1000)
    return {k: [round(percentile(v, 50), 1), round(percentile(v, 95), 1)] for k, v in parts.items()}


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


def plans(project_id: Any, query: str) -> dict[str, list[str]]:
    """The plan of each ranking for one query, as the engine runs them."""
    from django.db import connection

    from documents import embedder
    from documents.search import FUSION_DEPTH, engine

    out = {}
    for name, marker, run in (
        ("lexical", "paradedb.score", lambda: engine.lexical([project_id], query, FUSION_DEPTH)),
        (
            "dense",
            "ORDER BY distance",
            lambda: engine.dense([project_id], embedder.encode([query])[0], FUSION_DEPTH),
        ),
    ):
        capture = PlanCapture(marker)
        with connection.execute_wrapper(capture):
            run()
        out[name] = capture.plans
    return out


def step_latency(project_id: Any, queries: list[str], n: int) -> dict[str, Any]:
    from documents import embedder

    say("latency: warming up")
    timed_searches(project_id, queries[-20:], "hybrid", 1)
    # The query encoder alone, for where the time goes.
    ms = []
    for query in queries[:100]:
        t = time.perf_counter()
        embedder.encode([query])
        ms.append((time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {
        "encode_query": summary(ms),
        "queries": n,
        "cut": True,
        "breakdown": breakdown(project_id, queries),
    }
    say(f"  hybrid, where the time goes (p50/p95 ms): {out['breakdown']}")
    for clients in (1, 8):
        for mode in ("hybrid", "dense", "lexical"):
            say(f"latency: {mode} at {clients} client(s) over {n} queries")
            result = timed_searches(project_id, queries[:n], mode, clients)
            out[f"{mode}_{clients}"] = result
            say(f"  {mode}@{clients}: {result}")
    out["plans"] = plans(project_id, queries[0])
    return out


def literal(vector: np.ndarray[Any, Any]) -> str:
    from pgvector import Vector

    return Vector(np.asarray(vector, dtype=np.float32)).to_text()


def exact_top10(project_id: Any, folder: Path, qvecs: np.ndarray[Any, Any], n: int) -> list[list[int]]:
    """Each query's exact 10 nearest chunks (a sequential scan and a sort), kept in the data folder."""
    from django.db import connection, transaction

    from documents.search import engine

    path = folder / "exact-top10.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if stored.get("project") == str(project_id) and len(stored.get("top10", [])) >= n:
        return [list(row) for row in stored["top10"][:n]]
    partition = engine.partition_name(project_id)
    say(f"exact: top 10 of {n} queries by sequential scan")
    sql = (
        f"SELECT id FROM {partition} WHERE dim = {DIM} "
        f"ORDER BY embedding::vector({DIM}) <=> %s::vector({DIM}), id LIMIT 10"
    )
    top: list[list[int]] = []
    ms: list[float] = []
    progress = Progress("exact scans", n)
    for i in range(n):
        t = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")  # every row, sorted: the truth
            cursor.execute(sql, [literal(qvecs[i])])
            top.append([int(r[0]) for r in cursor.fetchall()])
        ms.append((time.perf_counter() - t) * 1000)
        progress(i + 1)
    path.write_text(json.dumps({"project": str(project_id), "top10": top, "exact_scan": summary(ms)}))
    return top


def ann_sweep(
    sql: str,
    qvecs: np.ndarray[Any, Any],
    exact: list[list[int]],
    depth: int,
    settings: dict[str, str],
    hide: str = "",
) -> dict[str, Any]:
    """recall@10 and latency of one approximate index over the queries, in one transaction
    with these settings (SET LOCAL), and `hide` (an index) dropped in it and back at the end."""
    from django.db import connection, transaction

    hits, ms = [], []
    with transaction.atomic(), connection.cursor() as cursor:
        if hide:
            # Rolled back below: the index is back, and never had to be built again.
            cursor.execute(f"DROP INDEX {hide}")
        # The graph's path, not the scan's, whatever the planner would price.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(max(depth, 40))])
        for name, value in settings.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        cursor.execute(sql, [literal(qvecs[len(exact)]), depth])  # warm
        cursor.fetchall()
        for i, truth in enumerate(exact):
            t = time.perf_counter()
            cursor.execute(sql, [literal(qvecs[i]), depth])
            rows = cursor.fetchall()
            ms.append((time.perf_counter() - t) * 1000)
            # As the engine does: the relaxed scans may hand back near-ties out of order.
            top = [int(pk) for pk, _ in sorted(rows, key=lambda r: (float(r[1]), int(r[0])))[:10]]
            hits.append(len(set(top) & set(truth)) / max(len(truth), 1))
        transaction.set_rollback(True)
    row: dict[str, Any] = {
        "recall10": round(float(np.mean(hits)), 4),
        "min_recall10": round(float(np.min(hits)), 2),
    }
    row.update({f"db_{k}": v for k, v in summary(ms).items() if k in ("p50_ms", "p95_ms")})
    return row


def dense_sql(table: str, column: str, where: str = "") -> str:
    return (
        f"SELECT id, {column} <=> %s::vector({DIM}) AS distance FROM {table} {where} "
        "ORDER BY distance LIMIT %s"
    )


def step_recall(
    project_id: Any, folder: Path, qvecs: np.ndarray[Any, Any], n: int, efs: list[int]
) -> dict[str, Any]:
    from documents.search import FUSION_DEPTH, engine

    exact = exact_top10(project_id, folder, qvecs, n)
    stored = json.loads((folder / "exact-top10.json").read_text())
    partition = engine.partition_name(project_id)
    sql = dense_sql(partition, f"embedding::vector({DIM})", f"WHERE dim = {DIM}")
    out: dict[str, Any] = {
        "queries": n,
        "depth": FUSION_DEPTH,
        "exact_scan": stored.get("exact_scan"),
        "ef": {},
    }
    for ef in efs:
        row = ann_sweep(sql, qvecs, exact, FUSION_DEPTH, {"hnsw.ef_search": str(max(ef, FUSION_DEPTH))})
        out["ef"][str(ef)] = row
        say(f"recall: HNSW ef_search {ef}: {row}")
    # And as search() runs it: engine.dense at the configured SEARCH_HNSW_EF.
    from django.conf import settings

    hits, ms = [], []
    for i, truth in enumerate(exact):
        t = time.perf_counter()
        found = engine.dense([project_id], qvecs[i], FUSION_DEPTH)
        ms.append((time.perf_counter() - t) * 1000)
        hits.append(len({c for c, _ in found[:10]} & set(truth)) / max(len(truth), 1))
    out["engine"] = {
        "hnsw_ef": settings.SEARCH_HNSW_EF,
        "recall10": round(float(np.mean(hits)), 4),
        "min_recall10": round(float(np.min(hits)), 2),
        **{f"db_{k}": v for k, v in summary(ms).items() if k in ("p50_ms", "p95_ms")},
    }
    say(f"recall: engine.dense (SEARCH_HNSW_EF {settings.SEARCH_HNSW_EF}): {out['engine']}")
    return out


def drop_diskann() -> None:
    q(f"DROP INDEX IF EXISTS {DISKANN_INDEX}")
    q(f"DROP TABLE IF EXISTS {DISKANN_TABLE}")


def step_diskann(
    project_id: Any, folder: Path, qvecs: np.ndarray[Any, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """pgvectorscale's DiskANN against the same exact top 10s as HNSW: built, measured, dropped."""
    from documents.search import FUSION_DEPTH, engine

    exact = exact_top10(project_id, folder, qvecs, args.recall_queries)
    partition = engine.partition_name(project_id)
    q("CREATE EXTENSION IF NOT EXISTS vectorscale")
    out: dict[str, Any] = {
        "queries": len(exact),
        "depth": FUSION_DEPTH,
        "vectorscale": q("SELECT extversion FROM pg_extension WHERE extname = 'vectorscale'")[0][0],
        "maintenance_work_mem": args.build_memory,
        "variants": {},
    }
    drop_diskann()
    for variant in args.diskann_variants:
        info: dict[str, Any] = {}
        if variant == "partition":
            # On the partition's vector expression, as the HNSW index is. pgvectorscale 0.9
            # rescores by reading the indexed column from the row, which an expression is not
            # (its scan fails with "attnum > 0"): the order is the quantised one.
            info["how"] = (
                f"on the partition: ((embedding::vector({DIM})) vector_cosine_ops) WHERE dim = {DIM}, "
                "storage memory_optimized (SBQ), no rescoring (an expression cannot be rescored)"
            )
            ddl = (
                f"CREATE INDEX {DISKANN_INDEX} ON {partition} USING diskann "
                f"((embedding::vector({DIM})) vector_cosine_ops) WHERE dim = {DIM}"
            )
            sql = dense_sql(partition, f"embedding::vector({DIM})", f"WHERE dim = {DIM}")
            knobs = {"diskann.query_rescore": "0"}
            hide = "documents_chunk_hnsw_384"
        else:
            info["how"] = (
                f"on a copy of the vectors in a vector({DIM}) column ({DISKANN_TABLE}), "
                f"storage memory_optimized (SBQ), rescoring {args.diskann_rescore}"
            )
            started = time.monotonic()
            q(
                f"CREATE TABLE {DISKANN_TABLE} AS SELECT id, embedding::vector({DIM}) AS embedding "
                f"FROM {partition} WHERE dim = {DIM}"
            )
            q(f"VACUUM (ANALYZE) {DISKANN_TABLE}")
            info["copy_s"] = round(time.monotonic() - started, 1)
            info["table_bytes"] = int(q("SELECT pg_total_relation_size(%s::regclass)", [DISKANN_TABLE])[0][0])
            ddl = (
                f"CREATE INDEX {DISKANN_INDEX} ON {DISKANN_TABLE} USING diskann (embedding vector_cosine_ops)"
            )
            sql = dense_sql(DISKANN_TABLE, "embedding")
            knobs = {"diskann.query_rescore": str(args.diskann_rescore)}
            hide = ""
        say(f"diskann ({variant}): building")
        q(f"SET maintenance_work_mem = '{args.build_memory}'")
        watcher = IndexProgress()
        watcher.start()
        started = time.monotonic()
        try:
            q(ddl)
        finally:
            watcher.stop()
            q("RESET maintenance_work_mem")
        info["build_s"] = round(time.monotonic() - started, 1)
        info["index_bytes"] = int(q("SELECT pg_relation_size(%s::regclass)", [DISKANN_INDEX])[0][0])
        say(f"diskann ({variant}): built in {info['build_s']} s, {info['index_bytes'] / 2**20:,.0f} MB")
        info["search_list"] = {}
        for size in args.diskann_list:
            row = ann_sweep(
                sql,
                qvecs,
                exact,
                FUSION_DEPTH,
                {**knobs, "diskann.query_search_list_size": str(max(size, FUSION_DEPTH))},
                hide=hide,
            )
            info["search_list"][str(size)] = row
            say(f"diskann ({variant}): search list {size}: {row}")
        out["variants"][variant] = info
        drop_diskann()
    return out


def step_ingest(
    args: argparse.Namespace, folder: Path, project_id: Any, queries: list[str], n_ingest: int, n_queries: int
) -> dict[str, Any]:
    from documents.models import Document
    from documents.search import engine

    say("ingest: baseline hybrid p95 (1 client)")
    before = timed_searches(project_id, queries[:n_queries], "hybrid", 1)
    say(f"  before: {before}")
    log_path = folder / "ingest-worker.log"
    cmd = [sys.executable, str(Path(__file__)), "--chunks", str(args.chunks), "--abstracts", str(args.abstracts),
           "--ingest-worker", str(n_ingest)]  # fmt: skip
    with log_path.open("wb") as log:
        # This process's environment: DATABASE_URL and REDIS_URL name the same private servers.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
        # Wait for the worker to have made its documents and begun writing.
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
            query = queries[i % len(queries)]
            i += 1
            t = time.perf_counter()
            search(project_ids=[project_id], query=query, k=10, mode="hybrid", cut=True)
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
    q(f"VACUUM (ANALYZE) {engine.partition_name(project_id)}")
    out["cleanup_s"] = round(time.monotonic() - started, 1)
    say(f"ingest: removed the ingested documents (and vacuumed) in {out['cleanup_s']} s")
    return out


def ingest_worker(abstracts: int, n_chunks: int) -> None:
    """Run in a separate process: documents of 20 chunks, one at a time, as ingest's write phase stores them."""
    from django.db import transaction
    from django.utils import timezone

    from documents import search
    from documents.models import Chunk, Document, DocumentStatus

    base, vectors, _ = build_base(abstracts)
    _, project = ensure_user_project(None)
    synth = Synth(base, vectors, base_titles(abstracts), SEED + 1)
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
        search.engine.ensure_partitions([project.pk])
        search.ensure_dimension(DIM)
        with transaction.atomic():
            current = Document.objects.select_for_update().filter(pk=doc.pk, attempts=1).first()
            assert current is not None
            Chunk.objects.filter(project_id=project.pk, document_id=doc.pk).delete()
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document_id=doc.pk,
                        project_id=project.pk,
                        title=d["title"],
                        index=i,
                        text=text,
                        start=a,
                        end=b,
                        token_count=tok,
                        embedding=vec,
                        dim=DIM,
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


def step_rss(
    folder: Path, project_id: Any, queries: list[str], password: str, n: int, mode: str
) -> dict[str, Any]:
    from load import call, free_port, process_tree, rate_limit_knobs

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    # This process's environment (DATABASE_URL and REDIS_URL: the same private servers).
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    env.update(django_env(folder, {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL")}))
    env.update(rate_limit_knobs())
    env.update(
        {
            "DOCENT_PRODUCTION": "true",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DOCENT_SSL_REDIRECT": "false",
            "DOCENT_SECURE_COOKIES": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DOCENT_STATIC_MANIFEST": "false",  # no collectstatic here: the API serves no page
            "WEB_CONCURRENCY": "1",
            "DOCENT_WEB_THREADS": "1",
            "DOCENT_BIND": f"127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("CELERY_BROKER_URL", None)
    log_path = folder / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.asgi", "--config", "config/gunicorn.py",
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
            if status != 200 or not body.get("results"):
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
                "app": "config.asgi (config/gunicorn.py), 1 worker x 1 thread",
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
# The run, in this process
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
        "pgvector_py": package_version("pgvector"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def server_facts() -> dict[str, Any]:
    out: dict[str, Any] = {"postgresql": q("SELECT version()")[0][0].split(" on ")[0]}
    for name, version in q("SELECT extname, extversion FROM pg_extension"):
        out[name] = version
    for name in ("shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
                 "max_parallel_workers_per_gather", "max_parallel_maintenance_workers", "fsync",
                 "autovacuum", "jit"):  # fmt: skip
        out[name] = q(f"SHOW {name}")[0][0]
    return out


def run(args: argparse.Namespace, stack: Any, folder: Path) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    state_file = folder / "scale-state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    password = state.get("password") or secrets.token_urlsafe(16)
    started = time.monotonic()
    base, vectors, qvecs = build_base(args.abstracts)
    base_s = round(time.monotonic() - started, 1)
    out: dict[str, Any] = {
        "backend": "stack",
        "chunks": args.chunks,
        "abstracts": args.abstracts or None,
        "machine": machine(),
        "server": server_facts(),
        "pg_overrides": dict(args.pg),
    }
    if state.get("built") == args.chunks:
        say(f"reusing the corpus of {args.chunks:,} chunks ({folder})")
        _, project = ensure_user_project(password)
        out["build"] = {**state.get("build", {}), "reused": True}
    else:
        if "build" not in args.steps:
            raise SystemExit(f"no corpus of {args.chunks:,} chunks in {folder}: run the build step")
        say(f"building {args.chunks:,} chunks")
        build_info = build(args, base, vectors, password)
        build_info["base"] = {
            "chunks": len(base),
            "abstracts": len(base_titles(args.abstracts)),
            "seconds_incl_cache": base_s,
        }
        _, project = ensure_user_project(password)
        state = {"built": args.chunks, "password": password, "project": str(project.pk), "build": build_info}
        state_file.write_text(json.dumps(state, indent=2))
        out["build"] = build_info
    drop_diskann()  # left by a killed run: HNSW alone must serve the other steps
    out["corpus"] = corpus_facts(project.pk)
    say(f"corpus {json.dumps({k: v for k, v in out['corpus'].items() if k != 'relations'})}")
    queries = load_queries()
    rng = random.Random(SEED)
    shuffled = queries[:]
    rng.shuffle(shuffled)
    order = {query: i for i, query in enumerate(queries)}
    shuffled_vecs = qvecs[[order[query] for query in shuffled]]
    steps: list[tuple[str, Any]] = [
        ("latency", lambda: step_latency(project.pk, shuffled, args.queries)),
        ("recall", lambda: step_recall(project.pk, folder, shuffled_vecs, args.recall_queries, args.ef)),
        ("diskann", lambda: step_diskann(project.pk, folder, shuffled_vecs, args)),
        ("ingest", lambda: step_ingest(args, folder, project.pk, shuffled, args.ingest_chunks, args.queries)),
        (
            "rss",
            lambda: step_rss(folder, project.pk, shuffled, password, args.rss_searches, args.rss_mode),
        ),
    ]
    for name, step in steps:
        if name not in args.steps:
            continue
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        out[name] = step()
        out[name]["seconds"] = round(time.monotonic() - started, 1)
        # The machine is shared: the 1-minute load average around each step, for context.
        out[name]["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if name in ("latency", "ingest", "rss"):
            from django.conf import settings

            out[name]["hnsw_ef"] = settings.SEARCH_HNSW_EF
        if writes(args):
            write_results({**out, "partial": True}, command_line(), args.results_dir)
    return out


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def command_line() -> str:
    return ".venv/bin/python bench/scale.py " + " ".join(sys.argv[1:])


def writes(args: argparse.Namespace) -> bool:
    """Whether this run writes results: never with --no-write, and a smoke run (--abstracts)
    only into a folder named with --results-dir."""
    return not args.no_write and (not args.abstracts or args.results_dir.resolve() != RESULTS_DIR.resolve())


def load_results(results_dir: Path) -> dict[str, Any]:
    path = results_dir / "scale.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_results(result: dict[str, Any], command: str, results_dir: Path) -> None:
    doc = load_results(results_dir)
    old = doc.get("stack", {})
    same = old.get("chunks") == result["chunks"] and old.get("abstracts") == result.get("abstracts")
    # Steps not run this time keep their figures.
    merged = {**old, **result} if same else dict(result)
    commands = list(old.get("commands", [])) if same else []
    if command not in commands:
        commands.append(command)
    merged["commands"] = commands[-6:]
    doc["stack"] = merged
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "scale.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = results_dir / "scale.md"
    md.write_text(render(doc, md))
    say(f"wrote {results_dir / 'scale.json'} and {md}")


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


def dash(value: Any, suffix: str = "") -> str:
    return "–" if value is None else f"{value}{suffix}"


ANALYSIS_MARKER = (
    "<!-- analysis: everything below this line is kept when bench/scale.py rewrites the file -->"
)


def short_plan(plan: str) -> list[str]:
    """An EXPLAIN output without the 384 numbers of a query vector."""
    plan = re.sub(r"'\[[-0-9.,e]+\]'", "'[query vector]'", plan)
    return plan.splitlines()


def render(doc: dict[str, Any], md: Path) -> str:
    now, pg, lite = doc.get("stack", {}), doc.get("postgres", {}), doc.get("sqlite", {})
    columns = [
        (f"now: one stack, {now.get('chunks', 0):,} chunks", now),
        (f"2026-12-01: PostgreSQL 18, BM25 in SQL, {pg.get('chunks', 0):,}", pg),
        (f"2026-12-01: SQLite, {lite.get('chunks', 0):,}", lite),
    ]
    lines = [
        "# Scale benchmark",
        "",
        "Generated by `bench/scale.py`; see its docstring for how the corpus is made and built.",
        "The one stack: the private PostgreSQL 17 with ParadeDB pg_search (BM25) and pgvector (HNSW)",
        "that `make run` starts, chunks partitioned by project (documents/search/engine.py). Beside it,",
        "kept for comparison, the figures of 2026-12-01, before the one stack: PostgreSQL 18 with a",
        "BM25 written in SQL over tsvectors, and SQLite (FTS5, sqlite-vec).",
        "",
        "Run from scratch: `.venv/bin/python bench/scale.py --fresh` (the corpus is reused without",
        "`--fresh`; `--steps` reruns some steps and keeps the others' figures). The new figures come",
        "from these runs, in order:",
        "",
        "```",
        *now.get("commands", []),
        "```",
        "",
    ]
    m = now.get("machine") or pg.get("machine", {})
    lines.append(
        f"Machine: {m.get('nproc')} cores ({m.get('cpu')}), {m.get('memory_gib')} GiB; measured {m.get('date')}; "
        f"Python {m.get('python')}, onnxruntime {m.get('onnxruntime') or '–'}."
    )
    if now.get("server"):
        s = now["server"]
        lines.append(
            f"Server: {s.get('postgresql')}, pgvector {s.get('vector')}, pg_search {s.get('pg_search')}; "
            f"shared_buffers {s.get('shared_buffers')}, work_mem {s.get('work_mem')}, effective_cache_size "
            f"{s.get('effective_cache_size')}, max_parallel_workers_per_gather {s.get('max_parallel_workers_per_gather')}, "
            f"fsync {s.get('fsync')}, autovacuum {s.get('autovacuum')}, jit {s.get('jit')} "
            f"(config.servers.PG_SETTINGS{'; overridden: ' + str(now['pg_overrides']) if now.get('pg_overrides') else ''}); "
            f"index builds with maintenance_work_mem {get(now, 'build', 'maintenance_work_mem')} and "
            f"{get(now, 'build', 'max_parallel_maintenance_workers')} parallel maintenance workers."
        )
    hybrid_1 = get(now, "latency", "hybrid_1", "p95_ms")
    qps_8 = get(now, "latency", "hybrid_8", "qps")
    rec = get(now, "recall", "engine", "recall10")
    rec_ef = get(now, "recall", "engine", "hnsw_ef")
    rss = get(now, "rss", "rss_mib")
    change = get(now, "ingest", "p95_change")
    old_change = get(pg, "ingest", "p95_change")
    lines += [
        "",
        "## Targets (issue 22)",
        "",
        "| target | now | 2026-12-01, PostgreSQL 1M | verdict (now) |",
        "| --- | --- | --- | --- |",
        f"| hybrid p95 at 1 client <= {TARGETS['hybrid_p95_ms']:g} ms | {dash(hybrid_1, ' ms')} | "
        f"{dash(get(pg, 'latency', 'hybrid_1', 'p95_ms'), ' ms')} | "
        f"{verdict(None if hybrid_1 is None else hybrid_1 <= TARGETS['hybrid_p95_ms'])} |",
        f"| hybrid searches/s at 8 clients >= {TARGETS['hybrid_qps_8']:g} | {dash(qps_8)} | "
        f"{dash(get(pg, 'latency', 'hybrid_8', 'qps'))} | "
        f"{verdict(None if qps_8 is None else qps_8 >= TARGETS['hybrid_qps_8'])} |",
        f"| dense recall@10 against exact >= {TARGETS['recall10']} (search's own ef_search) | "
        f"{dash(rec)}{f' (ef_search {rec_ef})' if rec_ef else ''} | "
        f"{dash(get(pg, 'recall', 'ef', '400', 'recall10'))} (ef_search 400) | "
        f"{verdict(None if rec is None else rec >= TARGETS['recall10'])} |",
        f"| web worker RSS after 1,000 searches <= {TARGETS['rss_mib']:g} MB | {dash(rss, ' MiB')} | "
        f"{dash(get(pg, 'rss', 'rss_mib'), ' MiB')} | {verdict(None if rss is None else rss <= TARGETS['rss_mib'])} |",
        f"| ingest moves hybrid p95 by < 25% | {'–' if change is None else f'{change:+.0%}'} | "
        f"{'–' if old_change is None else f'{old_change:+.0%}'} | "
        f"{verdict(None if change is None else abs(change) < TARGETS['ingest_p95_change'])} |",
        "",
        "## Corpus and build",
        "",
        "| | " + " | ".join(name for name, _ in columns) + " |",
        "| --- | --- | --- | --- |",
    ]

    def row(label: str, fn: Any) -> str:
        cells = []
        for _, r in columns:
            try:
                value = fn(r) if r else None
            except (KeyError, TypeError):
                value = None
            cells.append("–" if value is None else str(value))
        return f"| {label} | " + " | ".join(cells) + " |"

    def builds(r: dict[str, Any]) -> str | None:
        found = get(r, "build", "index_build_s") or {}
        return ", ".join(f"`{k}` {v} s" for k, v in found.items()) or None

    lines += [
        row("chunks", lambda r: f"{get(r, 'corpus', 'chunks'):,}"),
        row("documents", lambda r: f"{get(r, 'corpus', 'documents'):,}"),
        row(
            "chunk length, mean / longest",
            lambda r: (
                f"{get(r, 'corpus', 'avg_chunk_chars')} / {dash(get(r, 'corpus', 'max_chunk_chars'))} chars"
            ),
        ),  # fmt: skip
        row("load", lambda r: dash(get(r, "build", "load_s"), " s")),
        row("index builds", builds),
        row("attach the partition", lambda r: dash(get(r, "build", "attach_s"), " s")),
        row("VACUUM ANALYZE", lambda r: dash(get(r, "build", "vacuum_analyze_s"), " s")),
        row("database size", lambda r: mb(get(r, "corpus", "database_bytes"))),
        row(
            "largest relations",
            lambda r: (
                ", ".join(
                    f"`{k}` {mb(v.get('bytes'))}"
                    for k, v in list((get(r, "corpus", "relations") or {}).items())[:7]
                )
                + (
                    f"; chunk TOAST {mb(get(r, 'corpus', 'chunk_toast_bytes'))}"
                    if get(r, "corpus", "chunk_toast_bytes")
                    else ""
                )
                or None
            ),
        ),
        "",
        "Load, then: now, the partition detached while COPY fills it and its indexes are built after",
        "(the BM25 index is pg_search's); 2026-12-01, COPY through the triggers that kept the SQL",
        "BM25's lexemes and statistics, the HNSW and GIN indexes built after; SQLite, the ORM with",
        "triggers filling FTS5 and vec0.",
        "",
        "## Search latency (`documents.search.search`, k=10, in-process, query encoding included)",
        "",
        "8 clients = 8 threads of one process, each with its own database connection (the encoder and",
        "the database release the GIL); the same cores serve the clients and the database.",
        "",
        "| run | mode | 1 client p50 | 1 client p95 | 8 clients p50 | 8 clients p95 | 8 clients q/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in columns:
        for key in sorted(k for k in r if k.startswith("latency")):
            lat = r[key]
            for mode in ("hybrid", "dense", "lexical"):
                a, b = lat.get(f"{mode}_1") or {}, lat.get(f"{mode}_8") or {}
                if a or b:
                    how = f" (ef_search {lat['hnsw_ef']})" if mode != "lexical" and lat.get("hnsw_ef") else ""
                    lines.append(
                        f"| {name}{how} | {mode} | {a.get('p50_ms')} ms | {a.get('p95_ms')} ms | "
                        f"{b.get('p50_ms')} ms | {b.get('p95_ms')} ms | {b.get('qps')} |"
                    )
            if lat.get("encode_query"):
                e = lat["encode_query"]
                lines.append(
                    f"| {name} | (query encoding alone) | {e['p50_ms']} ms | {e['p95_ms']} ms | | | |"
                )
    parts = get(now, "latency", "breakdown")
    if parts:
        lines += ["", "Where a hybrid search's time goes now (1 client, p50 / p95 ms): "
                  + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in parts.items()) + "."]  # fmt: skip
    lines += [
        "",
        "## Dense: HNSW and DiskANN against the exact top 10",
        "",
        "recall@10: the share of a query's exact 10 nearest chunks (a sequential scan) that the index",
        "returns in its first 10, over the same queries for every row; latency: the index query alone",
        "(depth 100, the depth search() asks for), in the database session, over those queries.",
        "",
        "| run | index | build | size | knob | recall@10 | worst query | p50 | p95 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in ((columns[0][0], now), (columns[1][0], pg)):
        rc = r.get("recall") or {}
        hnsw_build = next(
            (v for k, v in (get(r, "build", "index_build_s") or {}).items() if "hnsw" in k), None
        )
        hnsw_size = next(
            (v.get("bytes") for k, v in (get(r, "corpus", "relations") or {}).items() if "hnsw" in k), None
        )
        for ef, row_ in (rc.get("ef") or {}).items():
            lines.append(
                f"| {name} | HNSW (pgvector) | {dash(hnsw_build, ' s')} | {mb(hnsw_size)} | ef_search {ef} | "
                f"{row_['recall10']} | {row_['min_recall10']} | {row_['db_p50_ms']} ms | {row_['db_p95_ms']} ms |"
            )
        if rc.get("engine"):
            e = rc["engine"]
            lines.append(
                f"| {name} | HNSW through `engine.dense` | | | ef_search {e['hnsw_ef']} | {e['recall10']} | "
                f"{e['min_recall10']} | {e['db_p50_ms']} ms | {e['db_p95_ms']} ms |"
            )
        for variant, info in (get(r, "diskann", "variants") or {}).items():
            for size, row_ in info.get("search_list", {}).items():
                lines.append(
                    f"| {name} | DiskANN ({variant}) | {info['build_s']} s | {mb(info['index_bytes'])} | "
                    f"search list {size} | {row_['recall10']} | {row_['min_recall10']} | "
                    f"{row_['db_p50_ms']} ms | {row_['db_p95_ms']} ms |"
                )
    exact = get(now, "recall", "exact_scan") or get(pg, "recall", "exact_scan")
    if exact:
        lines += ["", f"An exact scan (the reference): p50 {exact['p50_ms']} ms."]
    for variant, info in (get(now, "diskann", "variants") or {}).items():
        extra = (
            f"; copying the vectors took {info['copy_s']} s ({mb(info.get('table_bytes'))})"
            if "copy_s" in info
            else ""
        )
        lines.append(f"DiskANN ({variant}): {info['how']}{extra}.")
    if get(now, "diskann", "vectorscale"):
        lines.append(f"pgvectorscale {now['diskann']['vectorscale']}.")
    for kind in ("lexical", "dense"):
        plan = (get(now, "latency", "plans", kind) or [None])[0]
        if plan:
            lines += ["", f"A {kind} ranking's plan now:", "", "```", *short_plan(plan), "```"]
    lines += ["", "## Search while ingesting (hybrid, 1 client)", ""]
    lines += ["Another process writes documents of 20 chunks, one transaction each, as ingest's write",
              "phase does (vectors precomputed: the encoder's CPU is not part of it).", ""]  # fmt: skip
    lines += ["| run | p50 before | p95 before | p50 during | p95 during | p95 change | ingest rate | per-document write p50 / p95 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in columns:
        ing = r.get("ingest")
        if ing:
            w = ing["ingest"]
            lines.append(f"| {name} | {ing['before']['p50_ms']} ms | {ing['before']['p95_ms']} ms | "
                         f"{ing['during']['p50_ms']} ms | {ing['during']['p95_ms']} ms | {ing['p95_change']:+.0%} | "
                         f"{w['chunks']:,} chunks in {w['seconds']} s ({w['chunks_per_s']}/s) | "
                         f"{w['document_write']['p50_ms']} / {w['document_write']['p95_ms']} ms |")  # fmt: skip
    lines += ["", "## Web worker memory (gunicorn, config/gunicorn.py, 1 worker, 1 thread)", ""]
    lines += ["| run | RSS booted | RSS after 1 / 10 / 100 / 500 / 1,000 searches | peak (VmHWM) | HTTP search p50 / p95 |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in columns:
        rs = r.get("rss")
        if rs:
            seq = " / ".join(f"{v}" for v in rs["rss_mib_after_searches"].values())
            lines.append(f"| {name} | {rs['rss_mib_booted']} MiB | {seq} MiB | {rs['hwm_mib']} MiB | "
                         f"{rs['mode']}: {rs['http']['p50_ms']} / {rs['http']['p95_ms']} ms |")  # fmt: skip
    lx = pg.get("lexical")
    if lx:
        lines += [
            "",
            "## 2026-12-01 only: the SQL BM25's candidate budget (PostgreSQL, 1M chunks)",
            "",
            f"The engine of then ranked at most LEXICAL_CANDIDATES chunks (default {lx['default']:,});",
            "overlap@10 is against the largest budget measured. pg_search has no such budget.",
            "",
            "| LEXICAL_CANDIDATES | overlap@10 | p50 | p95 | p99 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for value, row_ in lx["values"].items():
            overlap = next(v for k, v in row_.items() if k.startswith("overlap10"))
            lines.append(
                f"| {int(value):,} | {overlap} | {row_['p50_ms']} ms | {row_['p95_ms']} ms | {row_['p99_ms']} ms |"
            )
    if pg.get("commands") or lite.get("commands"):
        lines += ["", "The 2026-12-01 figures came from these runs of the script of then:", "", "```"]
        lines += [*pg.get("commands", []), *lite.get("commands", []), "```"]
    body = "\n".join(lines) + "\n"
    kept = ""
    if md.exists():
        text = md.read_text()
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
    parser.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS, help="corpus size (default 1,000,000)")
    parser.add_argument("--fresh", action="store_true", help="build the corpus again even if one is stored")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {','.join(STEPS)}")
    parser.add_argument("--queries", type=int, default=300, help="queries per latency figure")
    # Each exact scan of 1M chunks takes a few seconds on 2 cores (kept in the data folder).
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--ef", default="100,200,400", help="hnsw.ef_search values to sweep")
    parser.add_argument(
        "--diskann-variants", default=",".join(DISKANN_VARIANTS), help="comma-separated: partition, typed"
    )
    parser.add_argument("--diskann-list", default="100,200,400", help="diskann.query_search_list_size values")
    parser.add_argument("--diskann-rescore", type=int, default=100, help="diskann.query_rescore (typed)")
    parser.add_argument(
        "--build-memory",
        default="4GB",
        help="maintenance_work_mem of the index builds (HNSW wants ~2 GB at 1M)",
    )
    parser.add_argument(
        "--pg", action="append", default=[], metavar="KEY=VALUE", help="a PostgreSQL setting for this run"
    )
    parser.add_argument("--ingest-chunks", type=int, default=10_000)
    parser.add_argument("--rss-searches", type=int, default=1000)
    parser.add_argument("--rss-mode", default="hybrid", choices=("hybrid", "dense", "lexical"))
    parser.add_argument("--hnsw-ef", type=int, default=0, help="DOCENT_SEARCH_HNSW_EF for this run")
    parser.add_argument(
        "--abstracts",
        type=int,
        default=0,
        help="build the base from the first N abstracts only (a smoke run)",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where scale.json and scale.md are"
    )
    parser.add_argument("--render-only", action="store_true", help="rewrite scale.md from scale.json")
    parser.add_argument("--ingest-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = [s for s in args.steps.split(",") if s]
    unknown = set(args.steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}")
    args.ef = [int(x) for x in args.ef.split(",") if x]
    args.diskann_list = [int(x) for x in args.diskann_list.split(",") if x]
    args.diskann_variants = [v for v in args.diskann_variants.split(",") if v]
    if set(args.diskann_variants) - set(DISKANN_VARIANTS):
        parser.error(f"unknown DiskANN variants {sorted(set(args.diskann_variants) - set(DISKANN_VARIANTS))}")
    pg: dict[str, str] = {}
    for item in args.pg:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--pg needs KEY=VALUE, got {item!r}")
        pg[key] = value
    args.pg = pg
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        md = args.results_dir / "scale.md"
        md.write_text(render(load_results(args.results_dir), md))
        return 0
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    folder = data_dir(args.chunks, args.abstracts)
    if args.ingest_worker:
        # A child of step_ingest: the servers are up, their URLs in the environment.
        setup_django(folder, {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL")})
        ingest_worker(args.abstracts, args.ingest_worker)
        return 0
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    (DATA_ROOT / ".gitignore").write_text("*\n")
    from config.servers import Stack

    if args.fresh and "build" in args.steps and folder.exists():
        Stack(folder).stop()
        shutil.rmtree(folder)
    state_file = folder / "scale-state.json"
    if "build" in args.steps and folder.exists():
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if state.get("built") != args.chunks:
            # A build that did not finish: start again from an empty data folder.
            Stack(folder).stop()
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stack = start_stack(folder, args.pg)
    started = time.monotonic()
    try:
        setup_django(folder, stack.environment(), args.hnsw_ef)
        result = run(args, stack, folder)
    finally:
        stack.stop()
        say("PostgreSQL and Valkey stopped")
    result["seconds"] = round(time.monotonic() - started, 1)
    result["partial"] = False
    say(f"done in {result['seconds']} s")
    if writes(args):
        write_results(result, command_line(), args.results_dir)
    else:
        print(json.dumps(result, indent=2, default=str))
        if not args.no_write:
            say(
                "an --abstracts run is a smoke run: bench/results left alone (use --results-dir to write elsewhere)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
