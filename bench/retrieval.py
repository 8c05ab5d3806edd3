"""Retrieval benchmark: SciFact through Docent's own import, ingest and search, per database engine.

    .venv/bin/python bench/retrieval.py [--backend sqlite|postgres|both] [--fresh]
        [--limit-queries N] [--data-dir DIR] [--modes hybrid,dense,lexical] [--no-write]

Each backend gets its own scratch database, never the user's: SQLite in a
folder under bench/.data/ named by the model and chunk settings, PostgreSQL in
a `docent_bench_<same key>` database on the pgvector server of
tests/pgvector_server.py (started if it is not up). A re-run with the same
settings reuses the ingested chunks and only measures search; `--fresh`
deletes the folder and drops the database first. Published numbers come from a
fresh run, which is also the only kind that measures ingest throughput.

Django reads its settings once per process, so each backend runs in a child
process (`--backend X --worker-output FILE`) and this one merges their results
into one report.

Every query goes through `documents.search.search` (what the API calls); chunk
hits are folded into documents (first occurrence in rank order) and scored
with nDCG@10 (graded, (2^rel - 1) / log2(rank + 1), ideal from the qrels) and
recall@100 against the BEIR qrels. nDCG@10 comes from a request for
`FUSION_DEPTH` chunks, the largest page whose ranking is the head of what any
API request sees; recall@100 from a request for 200, enough to fill 100
documents. Each half of the claims (even and odd query ids) is scored on its
own as well: the defaults were tuned on the whole train split, so a gap
between the halves would say how much of the figure is fitted.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
SCRATCH_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATA = Path("/work/shared/data/scifact")
PROJECT_TITLE = "SciFact benchmark"
BENCH_EMAIL = "bench@docent.invalid"
BACKENDS = ("sqlite", "postgres")
MODES = ("hybrid", "dense", "lexical")
# Chunk hits requested for recall@100: enough to fill 100 distinct documents.
CHUNK_DEPTH = 200
# Bump when the stored chunks would differ for the same settings (title handling, ...).
INGEST_FORMAT = 1
# Only databases with this prefix are ever created, migrated or dropped on the server.
PG_PREFIX = "docent_bench_"


# --------------------------------------------------------------------------
# Metrics (pure functions, no Django)
# --------------------------------------------------------------------------


def documents_in_order(external_ids: Iterable[str]) -> list[str]:
    """Chunk hits -> documents: each document at the rank of its first chunk."""
    seen: set[str] = set()
    out: list[str] = []
    for ext in external_ids:
        if ext not in seen:
            seen.add(ext)
            out.append(ext)
    return out


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(
        (2 ** relevant.get(doc, 0) - 1) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1)
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {doc for doc, rel in relevant.items() if rel > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def load_queries(data_dir: Path, split: str = "train") -> list[tuple[str, str]]:
    with (data_dir / f"queries-{split}.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [(str(row["_id"]), row["text"]) for row in rows]


def load_qrels(data_dir: Path, split: str = "train") -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with (data_dir / f"qrels-{split}.tsv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def corpus_path(data_dir: Path) -> Path:
    for name in ("corpus.jsonl.gz", "corpus.jsonl"):
        if (data_dir / name).exists():
            return data_dir / name
    raise SystemExit(f"no corpus.jsonl[.gz] in {data_dir}")


def count_corpus(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def half_of(qid: str, position: int) -> int:
    """0 for even query ids, 1 for odd ones (position in the file for a non-numeric id)."""
    return int(qid) % 2 if qid.isdigit() else position % 2


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# --------------------------------------------------------------------------
# Scratch environment
# --------------------------------------------------------------------------


def probe_settings() -> Any:
    """Docent's settings as the environment makes them, without configuring Django."""
    spec = importlib.util.spec_from_file_location("_bench_settings_probe", ROOT / "config" / "settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scratch_key(probe: Any, corpus: Path) -> str:
    """What decides the stored chunks: model, embedding backend, chunk settings, corpus, ingest format."""
    stat = corpus.stat()
    parts = [
        probe.EMBEDDING_MODEL or "all-MiniLM-L6-v2",
        probe.EMBEDDING_BACKEND,
        str(probe.CHUNK_TOKENS),
        str(probe.CHUNK_OVERLAP_TOKENS),
        f"{corpus.resolve()}:{stat.st_size}",
        str(INGEST_FORMAT),
    ]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]
    return f"{probe.EMBEDDING_BACKEND}-chunk{probe.CHUNK_TOKENS}-overlap{probe.CHUNK_OVERLAP_TOKENS}-{digest}"


def scratch_dir(backend: str, key: str) -> Path:
    """Files of one backend's run: the SQLite database itself, or PostgreSQL's media and ingest record."""
    return SCRATCH_DIR / (key if backend == "sqlite" else f"{key}-postgres")


def pg_database(key: str) -> str:
    return (PG_PREFIX + re.sub(r"[^a-z0-9]+", "_", key.lower()))[:63]


def pg_scratch(key: str, *, fresh: bool) -> str:
    """DATABASE_URL of this key's database on the pgvector server, created (or, fresh, recreated)."""
    import psycopg
    from psycopg import sql

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.pgvector_server import ensure_running

    server = ensure_running()
    name = pg_database(key)
    assert name.startswith(PG_PREFIX)
    with psycopg.connect(server, autocommit=True) as conn:
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.rsplit("/", 1)[0] + "/" + name


def setup_django(backend: str, scratch: Path, database_url: str = "") -> None:
    """Point Docent at the scratch database (local cache, in-memory broker) and migrate."""
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DOCENT_DATA_DIR"] = str(scratch)
    os.environ["DOCENT_MEDIA_ROOT"] = str(scratch / "media")
    # Whatever the shell points at, the benchmark only touches its own database and files.
    for name in ("DATABASE_URL", "REDIS_URL", "DOCENT_TASKS_EAGER"):
        os.environ.pop(name, None)
    if backend == "postgres":
        os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DOCENT_LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    name = str(settings.DATABASES["default"]["NAME"])
    if backend == "postgres":
        if connection.vendor != "postgresql" or not name.startswith(PG_PREFIX):
            raise SystemExit(f"refusing to run: database {name} is not a {PG_PREFIX}* scratch database")
    elif connection.vendor != "sqlite" or scratch.resolve() not in Path(name).resolve().parents:
        raise SystemExit(f"refusing to run: database {name} is outside {scratch}")
    call_command("migrate", verbosity=0, interactive=False)


def engine_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            )
            server, vector = cursor.fetchone()
            return f"PostgreSQL {server.split()[0]} + pgvector {vector}"
        cursor.execute("SELECT sqlite_version(), vec_version()")
        server, vector = cursor.fetchone()
        return f"SQLite {server} (FTS5) + sqlite-vec {vector.lstrip('v')}"


def search_code_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "documents" / "search").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------


@dataclass
class IngestStats:
    documents: int = 0
    created: int = 0
    chunks: int = 0
    seconds: float = 0.0
    docs_per_s: float | None = None
    measured_at: str = ""
    failed: list[str] = field(default_factory=list)
    reused: bool = False
    # 1-minute load average sampled every 250 documents: the machine is shared.
    load_avg: float | None = None


def bench_project() -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    from projects.models import Project
    from projects.services import project_create

    user_model = get_user_model()
    user = user_model.objects.filter(email=BENCH_EMAIL).first()
    if user is None:
        user = user_model.objects.create_user(email=BENCH_EMAIL, password=None)
    project = Project.objects.filter(title=PROJECT_TITLE, created_by=user).first()
    if project is None:
        project = project_create(user=user, title=PROJECT_TITLE)
    return user, project


def ingest(corpus: Path, scratch: Path, label: str) -> tuple[Any, IngestStats]:
    """Import the corpus (skipping what is there) and ingest every pending document in-process."""
    from documents import services
    from documents.models import Chunk, Document, DocumentStatus

    user, project = bench_project()
    meta_path = scratch / "ingest.json"
    total = count_corpus(corpus)
    docs = Document.objects.filter(project=project)
    if docs.filter(status=DocumentStatus.READY).count() >= total and meta_path.exists():
        stats = IngestStats(**{**json.loads(meta_path.read_text()), "reused": True})
        print(f"{label}: reusing {stats.documents} documents, {stats.chunks} chunks", flush=True)
        return project, stats

    started = time.perf_counter()
    done = 0
    loads: list[float] = []

    def progress(event: Any) -> None:
        nonlocal done
        done += 1
        if done % 250 == 0:
            loads.append(os.getloadavg()[0])
            rate = done / (time.perf_counter() - started)
            print(f"  {label}: {done}/{total} documents ({rate:.1f}/s, load {loads[-1]:.1f})", flush=True)

    print(f"{label}: importing {corpus} ...", flush=True)
    report = services.documents_import(
        user=user, project=project, paths=[corpus], progress=progress, sync=True
    )
    # Left over from an interrupted run: created but never ingested.
    for pk in docs.filter(status=DocumentStatus.PENDING).values_list("pk", flat=True):
        services.document_ingest(document_id=pk)
    seconds = time.perf_counter() - started

    ready = docs.filter(status=DocumentStatus.READY).count()
    failed = list(docs.filter(status=DocumentStatus.FAILED).values_list("external_id", flat=True))
    stats = IngestStats(
        documents=ready,
        created=report.created,
        chunks=Chunk.objects.filter(project=project).count(),
        seconds=round(seconds, 1),
        # Only a complete import from nothing measures throughput.
        docs_per_s=round(report.created / seconds, 2) if report.created == total else None,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        failed=failed + [label for label, _ in report.failed],
        load_avg=round(statistics.fmean(loads), 1) if loads else None,
    )
    meta_path.write_text(json.dumps({k: v for k, v in stats.__dict__.items() if k != "reused"}, indent=2))
    print(f"{label}: ingested {ready} documents into {stats.chunks} chunks in {seconds:.0f}s", flush=True)
    return project, stats


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def evaluate(
    project: Any,
    queries: list[tuple[str, str]],
    qrels: dict[str, dict[str, int]],
    modes: list[str],
    label: str = "",
) -> dict[str, dict[str, Any]]:
    from documents import search

    page = search.FUSION_DEPTH
    results: dict[str, dict[str, Any]] = {}
    # Load the encoder outside the timed loop (a server has it warm after its first query).
    search.search(project_ids=[project.pk], query="warm up", k=10, mode="hybrid")
    for mode in modes:
        ndcgs: dict[str, float] = {}
        deep_ndcgs: list[float] = []
        recalls: list[float] = []
        latencies: list[float] = []
        halves: dict[str, int] = {}
        per_query: dict[str, list[str]] = {}
        for position, (qid, text) in enumerate(queries):
            relevant = qrels.get(qid)
            if not relevant:
                continue
            started = time.perf_counter()
            hits = search.search(project_ids=[project.pk], query=text, k=page, mode=mode)
            latencies.append((time.perf_counter() - started) * 1000)
            ndcgs[qid] = ndcg_at(documents_in_order(h.external_id for h in hits), relevant, 10)
            halves[qid] = half_of(qid, position)
            deep = search.search(project_ids=[project.pk], query=text, k=CHUNK_DEPTH, mode=mode)
            ranked = documents_in_order(h.external_id for h in deep)
            per_query[qid] = ranked[:100]
            deep_ndcgs.append(ndcg_at(ranked, relevant, 10))
            recalls.append(recall_at(ranked, relevant, 100))
        results[mode] = {
            "queries": len(ndcgs),
            "ndcg@10": round(statistics.fmean(ndcgs.values()), 4),
            "ndcg@10_halves": [
                round(statistics.fmean(v for q, v in ndcgs.items() if halves[q] == h), 4) for h in (0, 1)
            ],
            "ndcg@10_k200": round(statistics.fmean(deep_ndcgs), 4),
            "recall@100": round(statistics.fmean(recalls), 4),
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p95": round(percentile(latencies, 95), 1),
            "load_avg": load_average(),
            "runs": per_query,
        }
        print(row_text(label, mode, results[mode]), flush=True)
    return results


def row_text(backend: str, mode: str, r: dict[str, Any]) -> str:
    even, odd = r["ndcg@10_halves"]
    return (
        f"{backend:8s} {mode:8s} nDCG@10 {r['ndcg@10']:.4f} (even {even:.4f}, odd {odd:.4f})"
        f"  recall@100 {r['recall@100']:.4f}  p50 {r['latency_ms_p50']:.1f} ms"
        f"  p95 {r['latency_ms_p95']:.1f} ms"
    )


def run_backend(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """One backend end to end in this process: scratch database, ingest, search, figures."""
    corpus = corpus_path(args.data_dir)
    key = scratch_key(probe_settings(), corpus)
    scratch = scratch_dir(backend, key)
    if args.fresh and scratch.exists():
        shutil.rmtree(scratch)
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    (SCRATCH_DIR / ".gitignore").write_text("*\n")
    load_at_start = load_average()
    setup_django(backend, scratch, pg_scratch(key, fresh=args.fresh) if backend == "postgres" else "")

    from django.conf import settings

    from documents import embedder, search

    # Hashed as the engine is imported, not after the run: the files may change meanwhile.
    search.engine()
    code = search_code_digest()
    project, stats = ingest(corpus, scratch, backend)
    queries = load_queries(args.data_dir, args.split)
    if args.limit_queries:
        queries = queries[: args.limit_queries]
    qrels = load_qrels(args.data_dir, args.split)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    return {
        "backend": backend,
        "engine": engine_version(),
        # The tree is often uncommitted while the engines change: name the code that ran.
        "search_code_sha256": code,
        "database": str(settings.DATABASES["default"]["NAME"]),
        "load_avg_at_start": load_at_start,
        "ingest": stats.__dict__,
        "modes": evaluate(project, queries, qrels, modes, backend),
        "settings": {
            "model": f"{embedder.model_name()} on {settings.EMBEDDING_BACKEND}",
            "chunk_tokens": settings.CHUNK_TOKENS,
            "overlap_tokens": settings.CHUNK_OVERLAP_TOKENS,
            "rrf_k": settings.SEARCH_RRF_K,
            "fusion_depth": search.FUSION_DEPTH,
            "hnsw_ef_search": settings.SEARCH_HNSW_EF,
        },
        "queries": len(queries),
    }


def run_in_child(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """`run_backend` in a fresh process: Django's settings (the database) are fixed once per process."""
    with tempfile.TemporaryDirectory(prefix="docent-bench-") as tmp:
        out = Path(tmp) / f"{backend}.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--backend",
            backend,
            "--worker-output",
            str(out),
            "--data-dir",
            str(args.data_dir),
            "--limit-queries",
            str(args.limit_queries),
            "--modes",
            args.modes,
            "--split",
            args.split,
            *(["--fresh"] if args.fresh else []),
        ]
        done = subprocess.run(command, check=False, cwd=ROOT)  # noqa: S603 (this script, our arguments)
        if done.returncode != 0:
            raise SystemExit(f"the {backend} run failed (exit {done.returncode})")
        return json.loads(out.read_text())


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

TUNING_NOTES = BENCH_DIR / "results" / "retrieval-tuning.md"


def write_report(runs: list[dict[str, Any]], context: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    first = runs[0]
    s = first["settings"]
    stats = first["ingest"]
    lines = [
        "# Retrieval benchmark: SciFact",
        "",
        f"- date: {context['date']}",
        f"- machine: {context['machine']}; load average (1 min) at the start of each backend: "
        + ", ".join(f"{r['backend']} {r['load_avg_at_start']}" for r in runs),
        "- engines: " + "; ".join(f"{r['backend']}: {r['engine']}" for r in runs),
        f"- model: {s['model']}; chunks of {s['chunk_tokens']} tokens, {s['overlap_tokens']} overlap;"
        f" RRF k {s['rrf_k']} over the top {s['fusion_depth']} of each ranking;"
        f" HNSW ef_search {s['hnsw_ef_search']} (PostgreSQL)",
        f"- corpus: {stats['documents']} documents -> {stats['chunks']} chunks;"
        f" queries: {first['queries']} ({context['split']} split); even / odd: the claims with even / odd ids",
        f"- command: `{context['command']}`",
        "",
        "| backend | mode | nDCG@10 | even ids | odd ids | recall@100 | latency p50 (ms) | latency p95 (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        for mode in (m for m in MODES if m in run["modes"]):
            r = run["modes"][mode]
            even, odd = r["ndcg@10_halves"]
            lines.append(
                f"| {run['backend']} | {mode} | {r['ndcg@10']:.4f} | {even:.4f} | {odd:.4f} |"
                f" {r['recall@100']:.4f} | {r['latency_ms_p50']:.1f} | {r['latency_ms_p95']:.1f} |"
            )
    lines += [
        "",
        "Ingest (import + extract + chunk + embed + store, in-process, one document at a time):",
        "",
    ]
    for run in runs:
        st = run["ingest"]
        rate = f"{st['docs_per_s']:.1f} docs/s" if st["docs_per_s"] else "not measured (incomplete import)"
        when = "an earlier run's import, reused" if st["reused"] else "this run's import"
        lines.append(
            f"- {run['backend']}: {rate} ({st['created']} documents in {st['seconds']:.0f} s, {when},"
            f" {st['measured_at']}; mean load average {st['load_avg']} on {os.cpu_count()} cores)"
        )
    lines += [
        "",
        f"Latency is one `search()` call for k={s['fusion_depth']} chunks (the API's largest page),"
        " including the query encode and the SQL; load average after each backend and mode: "
        + "; ".join(
            f"{run['backend']} " + ", ".join(f"{m} {run['modes'][m]['load_avg']}" for m in run["modes"])
            for run in runs
        )
        + ".",
        "",
        "Public reference points on SciFact: BM25 nDCG@10 0.665-0.679, all-MiniLM-L6-v2 dense ~0.645.",
        "",
    ]
    if TUNING_NOTES.exists():
        lines += [TUNING_NOTES.read_text().strip(), ""]
    (out_dir / "retrieval.md").write_text("\n".join(lines))
    payload = {
        **context,
        "backends": {
            run["backend"]: {
                **{k: v for k, v in run.items() if k not in ("backend", "modes")},
                "modes": {m: {k: v for k, v in r.items() if k != "runs"} for m, r in run["modes"].items()},
            }
            for run in runs
        },
    }
    (out_dir / "retrieval.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out_dir / 'retrieval.md'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--limit-queries", type=int, default=0, help="only the first N queries (0: all)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated search modes")
    parser.add_argument("--fresh", action="store_true", help="delete the scratch databases and import again")
    parser.add_argument("--split", default="train", help="query split (queries-<split>.jsonl)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print the numbers only")
    parser.add_argument(
        "--runs", type=Path, default=None, help="also write per-query document rankings (JSON)"
    )
    # A child run: one backend, its results as JSON to this file, no report.
    parser.add_argument("--worker-output", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker_output:
        if args.backend == "both":
            parser.error("--worker-output needs one --backend")
        args.worker_output.write_text(json.dumps(run_backend(args, args.backend)))
        return 0

    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    runs = [run_in_child(args, backend) for backend in backends]
    print()
    for run in runs:
        for mode, r in run["modes"].items():
            print(row_text(run["backend"], mode, r))
    for run in runs:
        rate = run["ingest"]["docs_per_s"]
        print(f"{run['backend']:8s} ingest {f'{rate:.1f} docs/s' if rate else 'not measured (reused)'}")

    if args.runs:
        args.runs.write_text(
            json.dumps({run["backend"]: {m: r["runs"] for m, r in run["modes"].items()} for run in runs})
        )
    if not args.no_write:
        context = {
            "date": datetime.now(UTC).date().isoformat(),
            "machine": f"{os.cpu_count()} cores ({platform.machine()}, {platform.system()}),"
            " shared with other work",
            "split": args.split,
            "command": " ".join(["bench/retrieval.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        write_report(runs, context, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
