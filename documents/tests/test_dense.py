"""Rankings: best-first selection, and the int8 pre-scoring that must rank exactly as float32 does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from documents import dense
from documents.ranking import best_first


@given(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0]), max_size=60), st.integers(1, 30))
def test_best_first_takes_the_highest_scores_ties_to_the_lower_position(
    scores: list[float], depth: int
) -> None:
    positions = np.arange(len(scores))[::-1].copy()  # positions need not come in order
    picked, values = best_first(positions, np.array(scores, dtype=np.float32), depth)
    textbook = sorted(zip(positions.tolist(), scores, strict=True), key=lambda ps: (-ps[1], ps[0]))[:depth]
    assert picked.tolist() == [p for p, _ in textbook]
    assert values.tolist() == [s for _, s in textbook]


def unit_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def scorer() -> dense.DenseScorer:
    # Clustered like real chunk vectors: many near-duplicates make close scores.
    centres = unit_rows(40, 384, seed=1)
    noise = unit_rows(12_000, 384, seed=2)
    matrix = centres[np.arange(12_000) % 40] + 0.35 * noise
    matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    built = dense.DenseScorer(matrix)
    assert built._int8 is not None, "a large index keeps an int8 copy"
    return built


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 10, 100, 200]))
def test_int8_prescoring_ranks_exactly_as_float32(scorer: dense.DenseScorer, seed: int, depth: int) -> None:
    query = unit_rows(1, 384, seed)[0]
    if seed % 2:  # half the queries close to a cluster, where scores crowd together
        query = scorer.matrix[seed % len(scorer.matrix)] + 0.1 * query
        query = (query / np.linalg.norm(query)).astype(np.float32)
    positions, scores = scorer.top(query, depth)
    exact, exact_scores = best_first(np.arange(len(scorer.matrix)), scorer.matrix @ query, depth)
    assert positions.tolist() == exact.tolist()
    np.testing.assert_array_equal(scores, exact_scores)


def test_a_small_index_scores_in_float32_only() -> None:
    small = dense.DenseScorer(unit_rows(100, 8, seed=3))
    assert small._int8 is None
    positions, scores = small.top(small.matrix[7], 3)
    assert positions[0] == 7 and scores[0] == pytest.approx(1.0)
    assert dense.DenseScorer(np.zeros((0, 8), np.float32)).top(np.ones(8, np.float32), 5)[0].size == 0
