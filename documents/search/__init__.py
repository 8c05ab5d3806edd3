"""Search: one pipeline for the API, the pages, the agents and cross-project search.

    rank -> fuse -> cut -> hydrate

- rank: the database ranks the chunks of the searched projects twice (`engine.py`):
  by meaning (pgvector, cosine to the query's embedding) and by words (pg_search,
  BM25 over the chunk's title and text). Access is part of every query: the engine
  reads only the partitions of the project ids it is given, and `search_for` gives
  only the caller's readable ones.
- fuse: reciprocal-rank fusion of the two lists (hybrid), or one list alone.
- cut: hits too weak to show are left out (`cut.py`), and counted.
- hydrate: the kept chunks with their document and project.

A hit's `score` is its fused rank score, sum of 1/(DOCENT_SEARCH_RRF_K + rank) over
the rankings that found it: it depends only on where the hit ranks among the
searched projects' own chunks, never on engine scores. Each project is also ranked
against its own statistics (engine.py), so nothing a search returns, its scores, its
order or what it cuts, depends on documents the caller cannot read.

No process holds a copy of any chunk: a document is searchable the moment its ingest
transaction commits, and gone when its delete does.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import ProgrammingError, connection

from core import metrics
from documents import embedder, locations
from documents.search import cut as weak_hits
from documents.search import engine
from projects.access import projects_visible_to

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
# How deep each ranking goes before fusion. Deeper than any page the API serves
# (SEARCH_MAX_K), so the first k hits of a request are the first k of any deeper one:
# a benchmark asking for 100 sees what a user asking for 10 does.
FUSION_DEPTH = 100
# Longest query read; the rest is ignored (the API and pages refuse longer ones first).
QUERY_MAX = 10_000


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: str
    document_title: str
    external_id: str
    project_id: str
    project_title: str
    text: str
    start: int
    end: int
    score: float  # the fused rank score (see the module's docstring)
    location: dict[str, Any] | None = None  # where the passage is in the file (documents.locations)
    document_format: str = ""


@dataclass(frozen=True)
class Results:
    hits: list[Hit] = field(default_factory=list)
    weak: list[Hit] = field(default_factory=list)  # what the cut left out, best first

    @property
    def left_out(self) -> int:
        return len(self.weak)

    def __iter__(self) -> Any:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: int) -> Hit:
        return self.hits[index]


def index_text(title: str, text: str) -> str:
    """What is embedded for a chunk: the title gives context (the lexical index reads both too)."""
    return f"{title}\n{text}" if title else text


def rrf(rankings: Iterable[Sequence[Any]], k: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Reciprocal-rank fusion: each item scores the sum of 1/(k + rank) over the rankings
    (rank from 1); best first, ties to the lower item."""
    arrays = [np.asarray(r) for r in rankings if len(r)]
    if not arrays:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    items = np.concatenate(arrays)
    shares = np.concatenate([1.0 / (k + np.arange(1, len(r) + 1, dtype=np.float64)) for r in arrays])
    unique, slot = np.unique(items, return_inverse=True)
    scores = np.zeros(len(unique), dtype=np.float64)
    np.add.at(scores, slot, shares)  # unbuffered, in array order: ranking by ranking
    order = np.lexsort((unique, -scores))
    return unique[order], scores[order]


def readable_project_ids(user: Any, within: Iterable[Any] | None = None) -> list[UUID]:
    """The projects the user may read, optionally only among `within`."""
    rows = projects_visible_to(user)
    if within is not None:
        wanted = [w for w in within if w is not None]
        if not wanted:
            return []
        rows = rows.filter(pk__in=wanted)
    return sorted(rows.values_list("pk", flat=True).distinct())


def search_for(
    *,
    user: Any,
    query: str,
    k: int = 10,
    mode: str = "hybrid",
    project_ids: Iterable[Any] | None = None,
    cut: bool = True,
) -> Results:
    """Top-k chunks over the projects the user may read (all of them, or those among `project_ids`)."""
    return search(project_ids=readable_project_ids(user, project_ids), query=query, k=k, mode=mode, cut=cut)


@metrics.search_timer
def search(
    *, project_ids: Sequence[Any], query: str, k: int = 10, mode: str = "hybrid", cut: bool = True
) -> Results:
    """Top-k chunks of the given projects for a query; the caller has checked access to them.

    With `cut` (what people are shown) hits too weak to show are left out; benchmarks of the
    ranking itself turn it off.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    query = query.replace("\x00", " ")[:QUERY_MAX]
    if not project_ids or not query.strip() or k <= 0:
        return Results()
    ids = [p if isinstance(p, UUID) else UUID(str(p)) for p in project_ids]
    if not engine.partitions(ids):  # none of the projects holds a chunk yet
        return Results()
    vector = embedder.encode([query])[0] if mode in ("dense", "hybrid") else None
    # rank, fuse and hydrate: one statement
    rank = functools.partial(
        engine.ranked,
        ids,
        vector=vector,
        query=query if mode in ("lexical", "hybrid") else "",
        depth=max(FUSION_DEPTH, k),
        k=k,
        rank_k=settings.SEARCH_RRF_K,
    )
    try:
        rows = rank()
    except ProgrammingError:
        # A partition dropped since this process saw it: its project was deleted meanwhile.
        engine.forget_partitions()
        if connection.in_atomic_block:  # the caller's transaction is spoilt: let it say so
            raise
        rows = rank()
    hits = [_hit(row) for row in rows]
    if not cut:
        return Results(hits)
    # cut
    signals = weak_hits.Signals(
        mode=mode,
        query=query,
        rank_k=settings.SEARCH_RRF_K,
        cosine={row.chunk_id: row.cosine for row in rows if row.cosine is not None},
        bm25={row.chunk_id: row.bm25 for row in rows if row.bm25 is not None},
    )
    kept = weak_hits.cut(hits, signals)
    shown = {hit.chunk_id for hit in kept}
    return Results(kept, weak=[hit for hit in hits if hit.chunk_id not in shown])


def _hit(row: engine.Row) -> Hit:
    return Hit(
        chunk_id=row.chunk_id,
        document_id=row.document_id,
        document_title=row.document_title,
        external_id=row.external_id,
        project_id=row.project_id,
        project_title=row.project_title,
        text=row.text,
        start=row.start,
        end=row.end,
        score=round(row.score, 6),
        location=locations.place_of(row.locations),
        document_format=row.document_format,
    )


def ensure_dimension(dim: int) -> None:
    """Make sure the engine indexes vectors of this dimension (a model change brings a new one)."""
    engine.ensure_dimension(dim)
