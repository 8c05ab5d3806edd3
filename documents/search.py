"""The project search index: dense (cosine) + lexical (BM25) fused by RRF.

Each process keeps one index per project in memory and rebuilds it when the
project's `index_version` (bumped on every content change) moves on, so every
web and worker process notices changes made elsewhere.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from documents import embedder
from documents.dense import DenseScorer
from documents.models import Chunk, DocumentStatus
from documents.ranking import EMPTY, Ranking, best_first
from projects.models import Project

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
# How deep each ranking goes before fusion. Deeper than any page the API
# serves (SEARCH_MAX_K), so the first k hits of a request are the first k of
# any deeper one: a benchmark asking for 200 sees what a user asking for 10 does.
FUSION_DEPTH = 200
MAX_CACHED_PROJECTS = 16


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: str
    document_title: str
    external_id: str
    text: str
    start: int
    end: int
    score: float


def index_text(title: str, text: str) -> str:
    """What is embedded and BM25-indexed for a chunk: the title gives context."""
    return f"{title}\n{text}" if title else text


_stemmer: Any = None


def tokenize(texts: list[str]) -> Any:
    import bm25s
    import Stemmer

    global _stemmer
    if _stemmer is None:
        _stemmer = Stemmer.Stemmer("english")
    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer, show_progress=False)


class ProjectIndex:
    """An immutable snapshot of one project's chunks at one index version."""

    def __init__(self, version: int, rows: list[dict[str, Any]]) -> None:
        self.version = version
        self.rows = rows
        self.size = len(rows)
        dim = max((r["dim"] for r in rows), default=0)
        if rows and dim:
            # The vectors live in the matrix only; the rows keep what a hit shows.
            self.matrix = np.vstack([embedder.from_bytes(r.pop("embedding")) for r in rows])
        else:
            self.matrix = np.zeros((0, dim or 1), dtype=np.float32)
        self._dense = DenseScorer(self.matrix, threads=settings.EMBEDDING_THREADS)
        self._bm25: Any = None
        if rows:
            import bm25s

            corpus = [index_text(r["document__title"], r["text"]) for r in rows]
            self._bm25 = bm25s.BM25()
            self._bm25.index(tokenize(corpus), show_progress=False)

    def dense(self, query_vector: np.ndarray[Any, Any], depth: int) -> Ranking:
        """Chunk positions by cosine similarity to the query vector, best first, with the scores."""
        return self._dense.top(query_vector, depth)

    def lexical(self, query: str, depth: int) -> Ranking:
        """Chunk positions by BM25 score for the query (matches only), best first, with the scores."""
        if self.size == 0 or self._bm25 is None:
            return EMPTY
        tokens = tokenize([query])
        if not tokens.vocab:
            return EMPTY
        # Query terms the corpus has never seen would fail the lookup.
        known = {t: i for t, i in tokens.vocab.items() if t in self._bm25.vocab_dict}
        if not known:
            return EMPTY
        # Scores for every chunk, then the best `depth`, ties to the lower position:
        # bm25s' own retrieve() does the same with a progress bar and thread pool around it.
        scores = self._bm25.get_scores([t for t, _ in sorted(known.items(), key=lambda kv: kv[1])])
        matches = np.flatnonzero(scores > 0)
        return best_first(matches, scores[matches], depth)


def rrf(rankings: list[Any], k: int) -> Ranking:
    """Reciprocal-rank fusion: each item scores the sum of 1/(k + rank) over the rankings
    (rank from 1); best first, ties to the lower item. NumPy, as it runs on every search."""
    rankings = [np.asarray(r) for r in rankings if len(r)]
    if not rankings:
        return EMPTY
    items = np.concatenate(rankings)
    shares = np.concatenate([1.0 / (k + np.arange(1, len(r) + 1, dtype=np.float64)) for r in rankings])
    positions, slot = np.unique(items, return_inverse=True)
    scores = np.zeros(len(positions), dtype=np.float64)
    np.add.at(scores, slot, shares)  # unbuffered, in array order: ranking by ranking
    order = np.lexsort((positions, -scores))
    return positions[order], scores[order]


_cache: OrderedDict[str, ProjectIndex] = OrderedDict()
_cache_lock = threading.Lock()
# One build at a time per project: threads that find the index stale together
# wait for the first one's build instead of each building their own.
_build_locks: dict[str, threading.Lock] = {}


def _load_rows(project_id: Any) -> list[dict[str, Any]]:
    return list(
        Chunk.objects.filter(project_id=project_id, document__status=DocumentStatus.READY)
        # Insertion order: fusion ties go to the chunk indexed first, the same
        # way on every rebuild and every import of the same corpus.
        .order_by("id")
        .values(
            "id",
            "document_id",
            "document__title",
            "document__external_id",
            "text",
            "start",
            "end",
            "embedding",
            "dim",
        )
    )


def _cached(key: str, version: int) -> ProjectIndex | None:
    """The cached index when it is at `version` (or newer: another thread built it meanwhile)."""
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.version >= version:
            _cache.move_to_end(key)
            return cached
    return None


def project_index(project_id: Any, version: int | None = None) -> ProjectIndex:
    """The current index of a project, rebuilt if another process changed it.

    `version` is the project's `index_version` when the caller has just read
    the project row (saves a query); otherwise it is read here.
    """
    key = str(project_id)
    if version is None:
        version = Project.objects.filter(pk=project_id).values_list("index_version", flat=True).first()
    if version is None:
        return ProjectIndex(0, [])
    cached = _cached(key, version)
    if cached is not None:
        return cached
    with _cache_lock:
        build_lock = _build_locks.setdefault(key, threading.Lock())
    with build_lock:
        cached = _cached(key, version)
        if cached is not None:
            return cached
        index = ProjectIndex(version, _load_rows(project_id))
        with _cache_lock:
            _cache[key] = index
            _cache.move_to_end(key)
            while len(_cache) > MAX_CACHED_PROJECTS:
                evicted, _ = _cache.popitem(last=False)
                _build_locks.pop(evicted, None)
    log.info("search index built", extra={"project_id": key, "chunks": index.size, "version": version})
    return index


def search(
    *, project_id: Any, query: str, k: int = 10, mode: str = "hybrid", version: int | None = None
) -> list[Hit]:
    """Top-k chunks of a project for a query (the caller has checked access).

    `version`: the project's `index_version` as the caller just read it, if it did.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    index = project_index(project_id, version)
    if index.size == 0 or not query.strip():
        return []
    depth = max(FUSION_DEPTH, k)
    if mode == "lexical":
        positions, scores = index.lexical(query, depth)
    elif mode == "dense":
        positions, scores = index.dense(embedder.encode([query])[0], depth)
    else:
        dense, _ = index.dense(embedder.encode([query])[0], depth)
        lexical, _ = index.lexical(query, depth)
        positions, scores = rrf([dense, lexical], settings.SEARCH_RRF_K)
    hits = []
    for i, score in zip(positions[:k].tolist(), scores[:k].tolist(), strict=True):
        row = index.rows[i]
        hits.append(
            Hit(
                chunk_id=row["id"],
                document_id=str(row["document_id"]),
                document_title=row["document__title"],
                external_id=row["document__external_id"],
                text=row["text"],
                start=row["start"],
                end=row["end"],
                score=round(score, 6),
            )
        )
    return hits


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _build_locks.clear()
