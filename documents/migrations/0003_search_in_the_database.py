"""Vectors become pgvector's `vector` (they were float32 bytes in a bytea column).

This migration once also installed a hand-written BM25 (tsvector columns, term statistics,
triggers) and SQLite's FTS5 and sqlite-vec tables; 0005 removes what it installed on
PostgreSQL, and SQLite is no longer a database Docent runs on (`migrate_from_sqlite`
moves an old SQLite data folder over).
"""

from django.db import migrations

import core.vectors


def convert_embeddings(apps, schema_editor):  # type: ignore[no-untyped-def]
    import numpy as np
    from pgvector import Vector

    from documents.search import engine

    with schema_editor.connection.cursor() as cursor:
        engine.require_extensions(cursor)
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'documents_chunk'::regclass AND attname = 'embedding'"
        )
        row = cursor.fetchone()
        if row and row[0].startswith("vector"):
            return
        cursor.execute("ALTER TABLE documents_chunk ADD COLUMN embedding_vector vector")
        last = 0
        while True:
            cursor.execute("SELECT id, embedding FROM documents_chunk WHERE id > %s ORDER BY id LIMIT 2000", [last])
            rows = cursor.fetchall()
            if not rows:
                break
            cursor.executemany(
                "UPDATE documents_chunk SET embedding_vector = %s::vector WHERE id = %s",
                [(Vector(np.frombuffer(bytes(blob), dtype="<f4")).to_text(), pk) for pk, blob in rows],
            )
            last = rows[-1][0]
        cursor.execute("ALTER TABLE documents_chunk DROP COLUMN embedding")
        cursor.execute("ALTER TABLE documents_chunk RENAME COLUMN embedding_vector TO embedding")
        cursor.execute("ALTER TABLE documents_chunk ALTER COLUMN embedding SET NOT NULL")


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_document_list_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="chunk", name="embedding", field=core.vectors.VectorField())
            ],
        ),
        migrations.RunPython(convert_embeddings, migrations.RunPython.noop, elidable=False),
    ]
