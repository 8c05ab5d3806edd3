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

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection

from documents import embedder
from documents.models import Chunk
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
    depth = max(FUSION_DEPTH, k)
    # rank
    vector: np.ndarray[Any, Any] | None = None
    dense: engine.Ranking = []
    lexical: engine.Ranking = []
    found = engine.partitions(ids)  # the searched projects that hold chunks
    if not found:
        return Results()
    if mode in ("dense", "hybrid"):
        vector = embedder.encode([query])[0]
        dense = engine.dense(ids, vector, depth, found=found)
    if mode in ("lexical", "hybrid"):
        lexical = engine.lexical(ids, query, depth, found=found)
    # fuse
    rank_k = settings.SEARCH_RRF_K
    lists = {"hybrid": [dense, lexical], "dense": [dense], "lexical": [lexical]}[mode]
    chunk_ids, fused = rrf([[c for c, _ in ranking] for ranking in lists], rank_k)
    ranked = list(zip(chunk_ids[:k].tolist(), fused[:k].tolist(), strict=True))
    # hydrate (the cut reads titles and texts)
    hits = _hits(ranked, ids)
    if not cut:
        return Results(hits)
    # cut
    signals = weak_hits.Signals(
        mode=mode,
        query=query,
        rank_k=rank_k,
        cosine=dict(dense),
        bm25=dict(lexical),
        cosines=lambda chunk_ids: _cosines(chunk_ids, ids, query, vector),
    )
    kept = weak_hits.cut(hits, signals)
    shown = {hit.chunk_id for hit in kept}
    return Results(kept, weak=[hit for hit in hits if hit.chunk_id not in shown])


# The hits' rows, by chunk id within the searched projects: one plain statement (the ORM's,
# with the model's ordering and an IN list, planned in about 2 ms over the partitioned table).
HYDRATE = (
    'SELECT c.id, c.document_id, d.title, d.external_id, c.project_id, p.title, c.text, c."start", c."end" '
    "FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id "
    "JOIN projects_project p ON p.id = c.project_id WHERE c.id = ANY(%s) AND c.project_id = ANY(%s)"
)


def _hits(ranked: list[tuple[int, float]], project_ids: list[UUID]) -> list[Hit]:
    if not ranked:
        return []
    with connection.cursor() as cursor:
        cursor.execute(HYDRATE, [[c for c, _ in ranked], project_ids])
        rows = {row[0]: row for row in cursor.fetchall()}
    hits = []
    for chunk_id, score in ranked:
        row = rows.get(chunk_id)
        if row is None:  # deleted between ranking and reading: not a hit any more
            continue
        _, document_id, title, external_id, project_id, project_title, text, start, end = row
        hits.append(
            Hit(
                chunk_id=chunk_id,
                document_id=str(document_id),
                document_title=title,
                external_id=external_id,
                project_id=str(project_id),
                project_title=project_title,
                text=text,
                start=start,
                end=end,
                score=round(float(score), 6),
            )
        )
    return hits


def _cosines(
    chunk_ids: list[int], project_ids: list[UUID], query: str, vector: np.ndarray[Any, Any] | None
) -> dict[int, float]:
    """The query's cosine to each of these chunks (for hits the dense ranking did not reach)."""
    if not chunk_ids:
        return {}
    if vector is None:
        vector = embedder.encode([query])[0]
    rows = Chunk.objects.filter(pk__in=chunk_ids, project_id__in=project_ids).values_list("pk", "embedding")
    return {pk: float(vector @ emb) for pk, emb in rows if emb is not None and len(emb) == len(vector)}


def ensure_dimension(dim: int) -> None:
    """Make sure the engine indexes vectors of this dimension (a model change brings a new one)."""
    engine.ensure_dimension(dim)
