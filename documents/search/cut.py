"""The weak-hit cut: the hits too weak to show, left out of every search's results.

A ranking always returns k hits, even when only two of them are about the query. The
cut keeps a hit when it is close enough to the best one in its mode's own measure, and
drops purely semantic matches (no query word in them, found by the dense ranking alone)
that are not similar enough in meaning. The measures are read from the rankings of this
one search, never returned: the fused rank score (hybrid), the cosine to the query
(dense), the BM25 score (lexical, against the project's own statistics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from documents.search import text as search_text

if TYPE_CHECKING:
    from documents.search import Hit


@dataclass(frozen=True)
class Rule:
    """When a hit is too weak to show, in one search mode.

    relative: a hit is kept when its measure is at least this fraction of the best
        shown hit's (fused rank score, cosine or BM25).
    min_cosine: a hit that no query word explains (a purely semantic match) is kept
        only when the query and the chunk are at least this similar in meaning.
    """

    relative: float
    min_cosine: float | None


# Why these numbers (all-MiniLM-L6-v2, SEARCH_RRF_K = 20):
# - hybrid 0.3: the best hit is usually first in both rankings, 2/21 ~ 0.095; a hit one
#   ranking alone finds scores 1/(20 + rank), under 0.3 of that beyond rank 15. Hits
#   both rankings find stay above it down to about rank 50 in each, so the cut takes the
#   deep one-ranking tail, not passages that meaning and keywords agree on.
# - dense 0.5: a cosine half the best one's is another topic (relevant passages measured
#   0.41-0.61 against their query, unrelated ones -0.1-0.21).
# - lexical 0.25: BM25 adds up over matched words, so a quarter of the best score is a
#   chunk sharing one minor word of a longer query.
# - min_cosine 0.25: unrelated texts and gibberish queries ("xqzv blorf") measured up to
#   0.21, loosely related ones 0.25-0.27; a semantic-only hit below that is noise that
#   the ranking returned only because it always returns k hits.
RULES: Mapping[str, Rule] = {
    "hybrid": Rule(relative=0.3, min_cosine=0.25),
    "dense": Rule(relative=0.5, min_cosine=0.25),
    "lexical": Rule(relative=0.25, min_cosine=None),
}


@dataclass(frozen=True)
class Signals:
    """What one search knows about its candidates, for the cut."""

    mode: str
    query: str
    rank_k: int
    cosine: Mapping[int, float]  # chunk id -> cosine to the query (every hit, when it was embedded)
    bm25: Mapping[int, float]  # chunk id -> BM25, for the hits the lexical ranking found


def _measure(hit: Hit, signals: Signals) -> float:
    if signals.mode == "dense":
        return signals.cosine.get(hit.chunk_id, 0.0)
    if signals.mode == "lexical":
        return signals.bm25.get(hit.chunk_id, 0.0)
    return hit.score


def cut(hits: Sequence[Hit], signals: Signals) -> list[Hit]:
    """The hits worth showing, in their order."""
    rule = RULES[signals.mode]
    kept = list(hits)
    if rule.min_cosine is not None:
        kept = _cut_semantic_only(kept, signals, rule.min_cosine)
    if kept:
        best = _measure(kept[0], signals)
        if best > 0:
            kept = [hit for hit in kept if _measure(hit, signals) >= best * rule.relative]
    return kept


def _cut_semantic_only(hits: list[Hit], signals: Signals, least: float) -> list[Hit]:
    terms = search_text.query_terms(signals.query)
    # One ranking alone gives at most 1/(k + 1): a fused score above it was found by both.
    single_ranking_max = 1.0 / (signals.rank_k + 1)
    unexplained = [
        hit
        for hit in hits
        if not search_text.explains(terms, hit.document_title, hit.text)
        and not (signals.mode == "hybrid" and hit.score > single_ranking_max)
    ]
    if not unexplained:
        return hits
    weak = {hit.chunk_id for hit in unexplained if signals.cosine.get(hit.chunk_id, 0.0) < least}
    return [hit for hit in hits if hit.chunk_id not in weak]
