"""Search inside the database: dense (vectors) and lexical (BM25) rankings, fused by RRF.

The engine is the database in use. PostgreSQL: pgvector's HNSW index for the
vectors, and BM25 computed in the database from a tsvector per chunk and term
statistics that triggers keep exact (`postgres.py`). SQLite, the embedded
default: sqlite-vec and FTS5 tables in the same file, kept by triggers
(`sqlite.py`). No process holds a copy of any chunk: a document is searchable
the moment its ingest transaction commits, and gone when its delete does.
Access is part of every query: the engines only ever read the project ids
they are given, and `search_for` gives only the caller's readable ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection

from documents import embedder
from documents.models import Chunk
from projects.access import projects_visible_to

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
# How deep each ranking goes before fusion. Deeper than any page the API
# serves (SEARCH_MAX_K), so the first k hits of a request are the first k of
# any deeper one: a benchmark asking for 100 sees what a user asking for 10 does.
FUSION_DEPTH = 100

Ranking = list[tuple[int, float]]  # (chunk id, score), best first


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
    score: float


def index_text(title: str, text: str) -> str:
    """What is embedded and lexically indexed for a chunk: the title gives context."""
    return f"{title}\n{text}" if title else text


def engine(conn: Any = None) -> ModuleType:
    """The search engine module for a database connection."""
    vendor = (conn or connection).vendor
    if vendor == "postgresql":
        from documents.search import postgres

        return postgres
    if vendor == "sqlite":
        from documents.search import sqlite

        return sqlite
    raise NotImplementedError(f"Docent's search needs PostgreSQL or SQLite, not {vendor}.")


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
    *, user: Any, query: str, k: int = 10, mode: str = "hybrid", project_ids: Iterable[Any] | None = None
) -> list[Hit]:
    """Top-k chunks over the projects the user may read (all of them, or those among `project_ids`)."""
    return search(project_ids=readable_project_ids(user, project_ids), query=query, k=k, mode=mode)


def search(*, project_ids: Sequence[Any], query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
    """Top-k chunks of the given projects for a query; the caller has checked access to them."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if not project_ids or not query.strip() or k <= 0:
        return []
    ids = [p if isinstance(p, UUID) else UUID(str(p)) for p in project_ids]
    depth = max(FUSION_DEPTH, k)
    backend = engine()
    dense: Ranking = []
    lexical: Ranking = []
    if mode in ("dense", "hybrid"):
        dense = backend.dense(ids, embedder.encode([query])[0], depth)
    if mode in ("lexical", "hybrid"):
        lexical = backend.lexical(ids, query, depth)
    if mode == "hybrid":
        chunk_ids, scores = rrf([[c for c, _ in dense], [c for c, _ in lexical]], settings.SEARCH_RRF_K)
        ranked = list(zip(chunk_ids[:k].tolist(), scores[:k].tolist(), strict=True))
    else:
        ranked = (dense or lexical)[:k]
    return _hits(ranked, ids)


def _hits(ranked: Ranking, project_ids: list[UUID]) -> list[Hit]:
    if not ranked:
        return []
    rows = {
        row["id"]: row
        for row in Chunk.objects.filter(pk__in=[c for c, _ in ranked], project_id__in=project_ids).values(
            "id",
            "document_id",
            "document__title",
            "document__external_id",
            "project_id",
            "project__title",
            "text",
            "start",
            "end",
        )
    }
    hits = []
    for chunk_id, score in ranked:
        row = rows.get(chunk_id)
        if row is None:  # deleted between ranking and reading: not a hit any more
            continue
        hits.append(
            Hit(
                chunk_id=chunk_id,
                document_id=str(row["document_id"]),
                document_title=row["document__title"],
                external_id=row["document__external_id"],
                project_id=str(row["project_id"]),
                project_title=row["project__title"],
                text=row["text"],
                start=row["start"],
                end=row["end"],
                score=round(float(score), 6),
            )
        )
    return hits


def ensure_dimension(dim: int) -> None:
    """Make sure the engine indexes vectors of this dimension (a model change brings a new one)."""
    engine().ensure_dimension(connection, dim)
