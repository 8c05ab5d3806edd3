"""The weak-hit cut (documents/search/cut.py): what every search leaves out, and why."""

from __future__ import annotations

from collections.abc import Mapping

from documents.search import Hit
from documents.search.cut import Signals, cut


def hit(chunk_id: int, score: float, text: str = "nothing in common", title: str = "Doc") -> Hit:
    return Hit(
        chunk_id=chunk_id,
        document_id="d",
        document_title=title,
        external_id="",
        project_id="p",
        project_title="P",
        text=text,
        start=0,
        end=len(text),
        score=score,
    )


def signals(
    mode: str,
    query: str,
    *,
    cosine: Mapping[int, float] | None = None,
    bm25: Mapping[int, float] | None = None,
) -> Signals:
    return Signals(mode=mode, query=query, rank_k=20, cosine=cosine or {}, bm25=bm25 or {})


def kept_ids(hits: list[Hit], how: Signals) -> list[int]:
    return [h.chunk_id for h in cut(hits, how)]


def test_weak_hybrid_hits_are_cut_relative_to_the_best_one() -> None:
    k = 20
    hits = [
        hit(1, 2 / (k + 1), "coral here"),
        hit(2, 1 / (k + 5), "coral too"),  # one ranking, rank 5: kept
        hit(3, 1 / (k + 30), "coral again"),  # one ranking, rank 30: far weaker
    ]
    assert kept_ids(hits, signals("hybrid", "coral")) == [1, 2]


def test_a_semantic_only_hybrid_hit_needs_a_minimum_cosine() -> None:
    k = 20
    hits = [
        hit(1, 2 / (k + 1), "reef text"),  # found by both rankings: kept whatever its cosine
        hit(2, 1 / (k + 2), "algae leave"),  # no query word, close in meaning: kept
        hit(3, 1 / (k + 3), "tax forms"),  # no query word, unrelated: cut
        hit(4, 1 / (k + 4), "nothing", title="Reef survey"),  # the title has the word: lexical
    ]
    how = signals("hybrid", "reef", cosine={1: 0.05, 2: 0.6, 3: 0.1, 4: 0.0})
    assert kept_ids(hits, how) == [1, 2, 4]


def test_dense_hits_are_cut_by_their_cosine_not_their_rank_score() -> None:
    hits = [hit(1, 1 / 21), hit(2, 1 / 22), hit(3, 1 / 23), hit(4, 1 / 24)]
    how = signals("dense", "zebra", cosine={1: 0.62, 2: 0.4, 3: 0.28, 4: 0.2})
    # 0.28 clears the minimum cosine but is under half the best; 0.2 is under the minimum.
    assert kept_ids(hits, how) == [1, 2]


def test_lexical_hits_are_cut_only_relative_to_the_best_bm25() -> None:
    hits = [hit(1, 1 / 21, "coral"), hit(2, 1 / 22, "coral"), hit(3, 1 / 23, "coral")]
    assert kept_ids(hits, signals("lexical", "coral", bm25={1: 8.0, 2: 2.5, 3: 1.0})) == [1, 2]
    assert cut([], signals("lexical", "coral")) == []
