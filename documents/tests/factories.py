import factory

from documents.models import Document
from projects.tests.factories import ProjectFactory


class DocumentFactory(factory.django.DjangoModelFactory):
    """A pasted-text document (pending until ingested)."""

    class Meta:
        model = Document

    project = factory.SubFactory(ProjectFactory)
    title = factory.Sequence(lambda n: f"Document {n}")
    pasted_text = "Docent keeps project documents searchable."
    format = "txt"
