"""Retrieval benchmark: SciFact through Docent's own import, ingest and search.

    .venv/bin/python bench/retrieval.py [--limit-queries N] [--data-dir DIR]
        [--modes hybrid,dense,lexical] [--fresh] [--no-write]

The corpus is imported into a scratch database (never the user's var/): one
folder per model and chunk settings under bench/.data/, so a re-run with the
same settings reuses the ingested chunks and only measures search. `--fresh`
deletes that folder first; published numbers come from a fresh run, which is
also the only kind that measures ingest throughput.

Every query goes through `documents.search.search` (what the API calls); chunk
hits are folded into documents (first occurrence in rank order) and scored
with nDCG@10 (graded, (2^rel - 1) / log2(rank + 1), ideal from the qrels) and
recall@100 against the BEIR qrels.
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
import shutil
import statistics
import sys
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
# Chunk hits requested per query: enough to fill 100 distinct documents.
CHUNK_DEPTH = 200
# Bump when the stored chunks would differ for the same settings (title handling, ...).
INGEST_FORMAT = 1


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
    """What decides the stored chunks: model, backend, chunk settings, corpus, ingest format."""
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


def setup_django(scratch: Path) -> None:
    """Point Docent at the scratch folder (SQLite, local cache, in-memory broker) and migrate."""
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DOCENT_DATA_DIR"] = str(scratch)
    os.environ["DOCENT_MEDIA_ROOT"] = str(scratch / "media")
    # Whatever the shell points at, the benchmark only touches its own files.
    for name in ("DATABASE_URL", "REDIS_URL", "DOCENT_TASKS_EAGER"):
        os.environ.pop(name, None)
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DOCENT_LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    db_name = Path(str(settings.DATABASES["default"]["NAME"]))
    if scratch.resolve() not in db_name.resolve().parents:
        raise SystemExit(f"refusing to run: database {db_name} is outside {scratch}")
    call_command("migrate", verbosity=0, interactive=False)


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


def ingest(corpus: Path, scratch: Path) -> tuple[Any, IngestStats]:
    """Import the corpus (skipping what is there) and ingest every pending document in-process."""
    from documents import services
    from documents.models import Chunk, Document, DocumentStatus

    user, project = bench_project()
    meta_path = scratch / "ingest.json"
    total = count_corpus(corpus)
    docs = Document.objects.filter(project=project)
    if docs.filter(status=DocumentStatus.READY).count() >= total and meta_path.exists():
        stats = IngestStats(**{**json.loads(meta_path.read_text()), "reused": True})
        print(f"reusing {scratch.name}: {stats.documents} documents, {stats.chunks} chunks", flush=True)
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
            print(f"  {done}/{total} documents ({rate:.1f}/s)", flush=True)

    print(f"importing {corpus} into {scratch.name} ...", flush=True)
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
    print(f"ingested {ready} documents into {stats.chunks} chunks in {seconds:.0f}s", flush=True)
    return project, stats


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def evaluate(
    project: Any,
    queries: list[tuple[str, str]],
    qrels: dict[str, dict[str, int]],
    modes: list[str],
) -> dict[str, dict[str, Any]]:
    from documents import search

    results: dict[str, dict[str, Any]] = {}
    build_started = time.perf_counter()
    search.clear_cache()
    search.project_index(project.pk)
    build_s = time.perf_counter() - build_started
    # Load the encoder outside the timed loop (a server has it warm after its first query).
    search.search(project_id=project.pk, query="warm up", k=10, mode="hybrid")
    for mode in modes:
        ndcgs: list[float] = []
        recalls: list[float] = []
        latencies: list[float] = []
        per_query: dict[str, list[str]] = {}
        for qid, text in queries:
            relevant = qrels.get(qid)
            if not relevant:
                continue
            started = time.perf_counter()
            hits = search.search(project_id=project.pk, query=text, k=CHUNK_DEPTH, mode=mode)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = documents_in_order(h.external_id for h in hits)
            per_query[qid] = ranked[:100]
            ndcgs.append(ndcg_at(ranked, relevant, 10))
            recalls.append(recall_at(ranked, relevant, 100))
        results[mode] = {
            "queries": len(ndcgs),
            "ndcg@10": round(statistics.fmean(ndcgs), 4),
            "recall@100": round(statistics.fmean(recalls), 4),
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p95": round(percentile(latencies, 95), 1),
            "runs": per_query,
            "load_avg": round(os.getloadavg()[0], 1),
        }
        print(
            f"{mode:8s} nDCG@10 {results[mode]['ndcg@10']:.4f}  recall@100 {results[mode]['recall@100']:.4f}"
            f"  p50 {results[mode]['latency_ms_p50']:.1f} ms  p95 {results[mode]['latency_ms_p95']:.1f} ms",
            flush=True,
        )
    results["_index"] = {"build_s": round(build_s, 2)}
    return results


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

TUNING_NOTES = BENCH_DIR / "results" / "retrieval-tuning.md"


def write_report(results: dict[str, Any], stats: IngestStats, context: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = [m for m in ("hybrid", "dense", "lexical") if m in results]
    lines = [
        "# Retrieval benchmark: SciFact",
        "",
        f"- date: {context['date']}",
        f"- machine: {context['machine']}",
        f"- model: {context['model']}; chunks of {context['chunk_tokens']} tokens,"
        f" {context['overlap_tokens']} overlap; RRF k {context['rrf_k']}",
        f"- corpus: {stats.documents} documents -> {stats.chunks} chunks;"
        f" queries: {context['queries']} ({context['split']} split); import {context['import']}",
        f"- command: `{context['command']}`",
        "",
        "| mode | nDCG@10 | recall@100 | latency p50 (ms) | latency p95 (ms) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode in modes:
        r = results[mode]
        lines.append(
            f"| {mode} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['latency_ms_p50']:.1f} | {r['latency_ms_p95']:.1f} |"
        )
    rate = f"{stats.docs_per_s:.1f} docs/s" if stats.docs_per_s else "not measured (incomplete import)"
    when = "an earlier run's import, reused" if stats.reused else "this run's import"
    lines += [
        "",
        f"Ingest (import + extract + chunk + embed + store, in-process, one document at a time): {rate}"
        f" ({stats.created} documents in {stats.seconds:.0f} s, {when}, {stats.measured_at};"
        f" mean load average {stats.load_avg} on {os.cpu_count()} cores).",
        f"Index build on first search (BM25 + embedding matrix): {results['_index']['build_s']:.1f} s.",
        "Latency is one `search()` call with k=200 chunks, including the query encode and",
        "the index-version check against the database; load average after each mode: "
        + ", ".join(f"{m} {results[m]['load_avg']}" for m in modes)
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
        "ingest": stats.__dict__,
        "index_build_s": results["_index"]["build_s"],
        "modes": {m: {k: v for k, v in results[m].items() if k != "runs"} for m in modes},
    }
    (out_dir / "retrieval.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out_dir / 'retrieval.md'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--limit-queries", type=int, default=0, help="only the first N queries (0: all)")
    parser.add_argument("--modes", default="hybrid,dense,lexical", help="comma-separated search modes")
    parser.add_argument("--fresh", action="store_true", help="delete the scratch database and import again")
    parser.add_argument("--split", default="train", help="query split (queries-<split>.jsonl)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print the numbers only")
    parser.add_argument(
        "--runs", type=Path, default=None, help="also write per-query document rankings (JSON)"
    )
    args = parser.parse_args(argv)

    corpus = corpus_path(args.data_dir)
    probe = probe_settings()
    scratch = SCRATCH_DIR / scratch_key(probe, corpus)
    if args.fresh and scratch.exists():
        shutil.rmtree(scratch)
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    (SCRATCH_DIR / ".gitignore").write_text("*\n")
    setup_django(scratch)

    from django.conf import settings

    from documents import embedder

    project, stats = ingest(corpus, scratch)
    queries = load_queries(args.data_dir, args.split)
    if args.limit_queries:
        queries = queries[: args.limit_queries]
    qrels = load_qrels(args.data_dir, args.split)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results = evaluate(project, queries, qrels, modes)

    if args.runs:
        args.runs.write_text(json.dumps({m: results[m]["runs"] for m in modes}))
    if not args.no_write:
        context = {
            "date": datetime.now(UTC).date().isoformat(),
            "machine": f"{os.cpu_count()} cores ({platform.machine()}, {platform.system()}),"
            " shared with other work",
            "model": f"{embedder.model_name()} on {settings.EMBEDDING_BACKEND}",
            "chunk_tokens": settings.CHUNK_TOKENS,
            "overlap_tokens": settings.CHUNK_OVERLAP_TOKENS,
            "rrf_k": settings.SEARCH_RRF_K,
            "queries": len(queries),
            "split": args.split,
            "import": "reused from an earlier run (not --fresh)"
            if stats.reused
            else "fresh (--fresh or first run)",
            "command": " ".join(["bench/retrieval.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        write_report(results, stats, context, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
