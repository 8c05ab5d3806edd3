"""Rankings as NumPy arrays: chunk positions best first, with their scores."""

from __future__ import annotations

from typing import Any

import numpy as np

Ranking = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
EMPTY: Ranking = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def best_first(positions: np.ndarray[Any, Any], scores: np.ndarray[Any, Any], depth: int) -> Ranking:
    """The `depth` best of the given positions by score, best first, ties to the lower position."""
    if len(positions) > depth:
        kth = np.partition(scores, len(scores) - depth)[len(scores) - depth]  # the depth-th best
        tied = np.flatnonzero(scores == kth)
        keep = np.concatenate(
            [np.flatnonzero(scores > kth), tied[np.argsort(positions[tied], kind="stable")]]
        )
        positions, scores = positions[keep[:depth]], scores[keep[:depth]]
    order = np.lexsort((positions, -scores))
    return positions[order].astype(np.int64), scores[order]
