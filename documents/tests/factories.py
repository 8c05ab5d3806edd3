from typing import Any

import factory
import numpy as np

from documents.models import Chunk, Document, DocumentStatus
from documents.search.engine import ensure_partitions
from projects.tests.factories import ProjectFactory


class DocumentFactory(factory.django.DjangoModelFactory):
    """A pasted-text document (pending until ingested)."""

    class Meta:
        model = Document

    project = factory.SubFactory(ProjectFactory)
    title = factory.Sequence(lambda n: f"Document {n}")
    pasted_text = "Docent keeps project documents searchable."
    format = "txt"


def unit_vector(dim: int) -> np.ndarray:
    """A fixed L2-normalised embedding (no encoder needed): the first axis."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[0] = 1.0
    return vector


class ChunkFactory(factory.django.DjangoModelFactory):
    """The next chunk of a ready document, with a fixed unit vector of the default dimension,
    stored in its project's partition (made first, as ingest does)."""

    class Meta:
        model = Chunk

    document = factory.SubFactory(DocumentFactory, status=DocumentStatus.READY)
    project = factory.SelfAttribute("document.project")
    title = factory.SelfAttribute("document.title")
    index = factory.LazyAttribute(lambda chunk: chunk.document.chunks.count())
    text = "Docent keeps project documents searchable."
    start = 0
    end = factory.LazyAttribute(lambda chunk: chunk.start + len(chunk.text))
    dim = 384
    embedding = factory.LazyAttribute(lambda chunk: unit_vector(chunk.dim))

    @classmethod
    def _create(cls, model_class: type[Chunk], *args: Any, **kwargs: Any) -> Chunk:
        ensure_partitions([kwargs["project"].pk])
        return super()._create(model_class, *args, **kwargs)
