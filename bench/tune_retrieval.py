"""Offline tuning of chunking, BM25 and fusion on SciFact, without the database.

    .venv/bin/python bench/tune_retrieval.py encode --chunk-tokens 200 --overlap 40
    .venv/bin/python bench/tune_retrieval.py sweep --chunk-tokens 200 --overlap 40

`encode` chunks the corpus with Docent's chunker and embeds `index_text(title,
chunk)` in large batches (much faster than ingest, same vectors), caching them
under bench/.data/tune/. `sweep` then scores fusion and BM25 variants from the
cache in seconds, using the same functions `documents.search` uses. The
numbers to publish come from bench/retrieval.py, which goes through the real
import, ingest and `search()`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.retrieval import (  # noqa: E402
    DEFAULT_DATA,
    SCRATCH_DIR,
    documents_in_order,
    load_qrels,
    load_queries,
    ndcg_at,
    recall_at,
)

TUNE_DIR = SCRATCH_DIR / "tune"


def setup() -> None:
    TUNE_DIR.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DOCENT_DATA_DIR"] = str(TUNE_DIR)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DOCENT_LOG_LEVEL", "WARNING")
    import django

    django.setup()


def load_corpus(data_dir: Path) -> list[dict[str, str]]:
    with gzip.open(data_dir / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def chunk_rows(corpus: list[dict[str, str]], tokens: int, overlap: int) -> list[dict[str, Any]]:
    from documents import chunking, extraction

    rows = []
    for doc in corpus:
        text = extraction.normalise(doc["text"])
        title = " ".join(doc["title"].split()) or doc["_id"]
        for span in chunking.chunk_text(text, max_tokens=tokens, overlap_tokens=overlap):
            rows.append({"ext": str(doc["_id"]), "title": title, "text": span.text})
    return rows


def cache_name(tokens: int, overlap: int) -> Path:
    return TUNE_DIR / f"chunks-{tokens}-{overlap}"


def encode(args: argparse.Namespace) -> None:
    from documents import embedder
    from documents.search import index_text

    corpus = load_corpus(args.data_dir)
    rows = chunk_rows(corpus, args.chunk_tokens, args.overlap)
    base = cache_name(args.chunk_tokens, args.overlap)
    (base.with_suffix(".json")).write_text(json.dumps(rows))
    print(f"{len(rows)} chunks from {len(corpus)} documents", flush=True)
    texts = [index_text(r["title"], r["text"]) for r in rows]
    started = time.perf_counter()
    parts = []
    step = 1024
    for i in range(0, len(texts), step):
        parts.append(embedder.encode(texts[i : i + step]))
        print(f"  {i + step}/{len(texts)} in {time.perf_counter() - started:.0f}s", flush=True)
    np.save(base.with_suffix(".npy"), np.vstack(parts))
    queries = load_queries(args.data_dir, "train")
    qpath = TUNE_DIR / "queries-train.npy"
    if not qpath.exists():
        np.save(qpath, embedder.encode([t for _, t in queries]))


# --------------------------------------------------------------------------


def evaluate(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> tuple[float, float]:
    ndcg = [ndcg_at(r, qrels[q], 10) for q, r in runs.items()]
    recall = [recall_at(r, qrels[q], 100) for q, r in runs.items()]
    return float(np.mean(ndcg)), float(np.mean(recall))


def sweep(args: argparse.Namespace) -> None:
    import bm25s

    from documents import search
    from documents.search import index_text

    base = cache_name(args.chunk_tokens, args.overlap)
    rows = json.loads(base.with_suffix(".json").read_text())
    matrix = np.load(base.with_suffix(".npy"))
    queries = load_queries(args.data_dir, "train")
    qvecs = np.load(TUNE_DIR / "queries-train.npy")
    qrels = load_qrels(args.data_dir, "train")
    keep = [i for i, (q, _) in enumerate(queries) if q in qrels]
    if args.limit_queries:
        keep = keep[: args.limit_queries]
    ext = [r["ext"] for r in rows]
    depth = args.depth
    corpus = [index_text(r["title"], r["text"]) for r in rows]
    print(f"{len(rows)} chunks, {len(keep)} queries", flush=True)

    def to_docs(ranked: list[int]) -> list[str]:
        return documents_in_order(ext[i] for i in ranked)[:100]

    def dense_of(qi: int) -> list[tuple[int, float]]:
        scores = matrix @ qvecs[qi]
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]

    dense = {qi: dense_of(qi) for qi in keep}

    def lexical_runs(**bm25_kwargs: Any) -> dict[int, list[tuple[int, float]]]:
        retriever = bm25s.BM25(**bm25_kwargs)
        retriever.index(search.tokenize(corpus), show_progress=False)
        out = {}
        for qi in keep:
            tokens = search.tokenize([queries[qi][1]])
            known = {t: i for t, i in tokens.vocab.items() if t in retriever.vocab_dict}
            if not known:
                out[qi] = []
                continue
            ids = [[t for t, _ in sorted(known.items(), key=lambda kv: kv[1])]]
            docs, scores = retriever.retrieve(ids, k=depth, show_progress=False, n_threads=1)
            out[qi] = [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
        return out

    def report(name: str, ranked: dict[int, list[int]]) -> None:
        ndcg, recall = evaluate({queries[qi][0]: to_docs(r) for qi, r in ranked.items()}, qrels)
        print(f"{name:55s} nDCG@10 {ndcg:.4f}  R@100 {recall:.4f}", flush=True)

    report("dense", {qi: [i for i, _ in r] for qi, r in dense.items()})
    lexical_variants = {"bm25 lucene k1=1.5 b=0.75": {}}
    if args.bm25_grid:
        for k1 in (0.9, 1.2, 1.5):
            for b in (0.5, 0.75, 0.9):
                lexical_variants[f"bm25 lucene k1={k1} b={b}"] = {"k1": k1, "b": b}
    lexical_by: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for name, kwargs in lexical_variants.items():
        lexical_by[name] = lexical_runs(**kwargs)
        report(name, {qi: [i for i, _ in r] for qi, r in lexical_by[name].items()})
    lexical = lexical_by["bm25 lucene k1=1.5 b=0.75"]

    for k in (10, 20, 40, 60, 100):
        report(
            f"rrf k={k}",
            {
                qi: search.rrf([[i for i, _ in dense[qi]], [i for i, _ in lexical[qi]]], k)[0].tolist()
                for qi in keep
            },
        )
    for norm in ("minmax", "max", "zscore"):
        for w in (0.3, 0.4, 0.5, 0.6, 0.7):
            report(
                f"score fusion {norm} dense weight {w}",
                {qi: convex(dense[qi], lexical[qi], w, norm) for qi in keep},
            )
    for k in (20, 60):
        for w in (1.5, 2.0):
            report(
                f"weighted rrf k={k} dense x{w}",
                {qi: weighted_rrf(dense[qi], lexical[qi], k, w) for qi in keep},
            )


def _normalise(scores: np.ndarray, how: str) -> np.ndarray:
    if len(scores) == 0:
        return scores
    if how == "minmax":
        spread = scores.max() - scores.min()
        return (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    if how == "max":
        return scores / scores.max() if scores.max() > 0 else scores
    std = scores.std()
    return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)


def convex(dense: list[tuple[int, float]], lexical: list[tuple[int, float]], w: float, how: str) -> list[int]:
    """w * normalised dense + (1 - w) * normalised BM25; missing from a list = that list's floor."""
    fused: dict[int, float] = {}
    for weight, ranking in ((w, dense), (1 - w, lexical)):
        if not ranking:
            continue
        ids = [i for i, _ in ranking]
        normed = _normalise(np.array([s for _, s in ranking], dtype=np.float64), how)
        floor = float(normed.min())
        for i, s in zip(ids, normed, strict=True):
            fused[i] = fused.get(i, 0.0) + weight * (float(s) - floor)
    return [i for i, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]


def weighted_rrf(
    dense: list[tuple[int, float]], lexical: list[tuple[int, float]], k: int, w: float
) -> list[int]:
    fused: dict[int, float] = {}
    for weight, ranking in ((w, dense), (1.0, lexical)):
        for rank, (i, _) in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + weight / (k + rank)
    return [i for i, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["encode", "sweep"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--chunk-tokens", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=40)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--limit-queries", type=int, default=0)
    parser.add_argument("--bm25-grid", action="store_true")
    args = parser.parse_args()
    setup()
    encode(args) if args.action == "encode" else sweep(args)


if __name__ == "__main__":
    main()
