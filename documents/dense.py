"""Dense ranking: the chunks whose vectors are most similar to a query vector.

Scoring every chunk in float32 reads the whole matrix (17.8 MB for SciFact's
11,607 chunks) on every search, and memory, not arithmetic, is what that costs.
A large index therefore keeps an int8 copy too (a quarter of the bytes, one
scale per chunk) and scores it with ONNX Runtime's int8 kernels; the best few
hundred candidates are then scored again exactly in float32, and the ranking is
made from the exact scores alone. The int8 scores are off by about 0.002 at
most, while the candidate pool is three times deeper than the ranking asked for,
so the exact ranking comes out (tests hold it to the full float32 ranking).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from documents.ranking import EMPTY, Ranking, best_first

log = logging.getLogger(__name__)

# Below this many chunks the float32 product is already cheap: no int8 copy.
INT8_MIN_ROWS = 4096
# Candidates rescored exactly: this many times the depth asked for, and at least POOL_MIN.
# On SciFact the exact top 200 always lay within the int8 top 216 (bench/results/load.md).
POOL_FACTOR = 3
POOL_MIN = 256


class DenseScorer:
    """Cosine ranking over one index's L2-normalised float32 matrix (one row per chunk)."""

    def __init__(self, matrix: np.ndarray[Any, Any], *, threads: int = 1) -> None:
        self.matrix = matrix
        self._int8: Any = None
        if len(matrix) >= INT8_MIN_ROWS:
            try:
                self._int8 = _int8_session(matrix, threads)
            except Exception:  # an ONNX Runtime without the op still ranks, in float32
                log.exception("int8 dense scoring unavailable; scoring in float32")

    def top(self, query_vector: np.ndarray[Any, Any], depth: int) -> Ranking:
        """Chunk positions by cosine similarity, best first, with their exact scores."""
        size = len(self.matrix)
        if size == 0 or depth <= 0:
            return EMPTY
        depth = min(depth, size)
        pool = max(POOL_FACTOR * depth, POOL_MIN)
        if self._int8 is None or pool >= size:
            return best_first(np.arange(size), self.matrix @ query_vector, depth)
        rough = self._int8.run(None, {"query": query_vector.reshape(1, -1).astype(np.float32)})[0][0]
        candidates = np.argpartition(-rough, pool - 1)[:pool]
        return best_first(candidates, self.matrix[candidates] @ query_vector, depth)


def _int8_session(matrix: np.ndarray[Any, Any], threads: int) -> Any:
    """An ONNX Runtime session that scores a float query against the matrix quantised to int8."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rows, dim = matrix.shape
    # One symmetric scale per chunk (its largest component maps to 127).
    scale = np.maximum(np.abs(matrix).max(axis=1), 1e-12) / 127.0
    quantised = np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8)
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["query", "chunks", "scale", "zero"], ["scores"], domain="com.microsoft"
    )
    graph = helper.make_graph(
        [node],
        "dense_int8",
        [helper.make_tensor_value_info("query", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, rows])],
        [
            numpy_helper.from_array(np.ascontiguousarray(quantised.T), "chunks"),
            numpy_helper.from_array(scale.astype(np.float32), "scale"),
            numpy_helper.from_array(np.zeros(rows, dtype=np.int8), "zero"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
