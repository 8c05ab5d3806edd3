"""Search moves into the database: vectors become pgvector's `vector` on PostgreSQL, and
each engine's lexical and vector index is created and filled (documents/search/)."""

from django.db import migrations

import core.vectors


def to_database_engine(apps, schema_editor):  # type: ignore[no-untyped-def]
    from documents.search import postgres, sqlite

    if schema_editor.connection.vendor == "postgresql":
        postgres.convert_embeddings(schema_editor)
        postgres.install(schema_editor)
    elif schema_editor.connection.vendor == "sqlite":
        sqlite.install(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_document_list_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            # On SQLite the column stays a BLOB; PostgreSQL's is converted in place below.
            state_operations=[
                migrations.AlterField(
                    model_name="chunk", name="embedding", field=core.vectors.VectorField()
                )
            ],
        ),
        migrations.RunPython(to_database_engine, migrations.RunPython.noop, elidable=False),
    ]
