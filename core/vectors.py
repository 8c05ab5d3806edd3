"""A model field for embedding vectors: pgvector's `vector` type, dimension left open (another
model's vectors fit; the HNSW index is per dimension, documents/search/engine.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import models
from pgvector import Vector


def as_float32(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(value), dtype="<f4")
    if isinstance(value, str):
        return Vector.from_text(value).to_numpy().astype("<f4")
    return np.asarray(value, dtype="<f4").reshape(-1)


class VectorField(models.Field):
    description = "An L2-normalised float32 vector"

    def db_type(self, connection: Any) -> str:
        return "vector"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        return Vector(as_float32(value)).to_text()

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else as_float32(value)

    def to_python(self, value: Any) -> Any:
        return None if value is None else as_float32(value)
