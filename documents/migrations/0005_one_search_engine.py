"""One search engine: chunks partitioned by project, ranked by pg_search (BM25) and pgvector.

- Removes the hand-written BM25 of 0003 (each chunk's tsvector and length, the per-project
  term statistics and the triggers that kept them), where a database has it.
- Turns `documents_chunk` into a table partitioned by project, one partition per project
  with chunks (documents/search/engine.py), moving the stored chunks project by project
  and giving each its document's title: nothing is embedded again, and the database is
  searchable as soon as this commits.
- Builds the BM25 index (pg_search, DOCENT_SEARCH_LANGUAGE) and the HNSW index of the
  dimensions in use on the partitioned table: every partition gets its own.

The chunk table keeps no foreign-key constraints in the database: attaching a partition
would clone them, and cloning one takes a lock on documents and projects that stops every
upload on the instance for the moment (and deadlocked with an import in a test). Chunks
are written only for documents the ingest holds locked, and go with their document or
project through Django's cascade, which names the project (one partition).
"""

from uuid import UUID

import django.db.models.deletion
from django.db import migrations, models

LEXICAL_LEFTOVERS = [
    "DROP TRIGGER IF EXISTS documents_chunk_lexemes ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_add ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_remove ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_update_old ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_lexical_update_new ON documents_chunk",
    "DROP TRIGGER IF EXISTS documents_document_retitle ON documents_document",
    "DROP FUNCTION IF EXISTS documents_chunk_lexemes()",
    "DROP FUNCTION IF EXISTS documents_lexical_add()",
    "DROP FUNCTION IF EXISTS documents_lexical_remove()",
    "DROP FUNCTION IF EXISTS documents_document_retitle()",
    "DROP TABLE IF EXISTS documents_lexical_term",
    "DROP TABLE IF EXISTS documents_lexical_project",
    "DROP INDEX IF EXISTS documents_chunk_lexemes",
    "ALTER TABLE documents_chunk DROP COLUMN IF EXISTS lexemes",
    "ALTER TABLE documents_chunk DROP COLUMN IF EXISTS lexical_length",
]

COLUMNS = (
    "id bigint NOT NULL DEFAULT nextval('documents_chunk_ids'), "
    "document_id uuid NOT NULL, project_id uuid NOT NULL, "
    "title varchar(300) NOT NULL DEFAULT '', "
    '"index" integer NOT NULL CHECK ("index" >= 0), text text NOT NULL, '
    '"start" integer NOT NULL CHECK ("start" >= 0), "end" integer NOT NULL CHECK ("end" >= 0), '
    "token_count integer NOT NULL DEFAULT 0 CHECK (token_count >= 0), "
    "embedding vector NOT NULL, dim smallint NOT NULL DEFAULT 0 CHECK (dim >= 0)"
)
COPY = (
    'INSERT INTO documents_chunk_partitioned (id, document_id, project_id, title, "index", text, '
    '"start", "end", token_count, embedding, dim) '
    'SELECT c.id, c.document_id, c.project_id, d.title, c."index", c.text, c."start", c."end", '
    "c.token_count, c.embedding, c.dim FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id "
    "WHERE c.project_id = %s"
)
CONSTRAINTS = [
    "ALTER TABLE documents_chunk ADD CONSTRAINT documents_chunk_pkey PRIMARY KEY (project_id, id)",
    'ALTER TABLE documents_chunk ADD CONSTRAINT unique_chunk_index UNIQUE (project_id, document_id, "index")',
    # `id` is the model's primary key: the admin and the hydration of hits look chunks up by it.
    "CREATE INDEX IF NOT EXISTS documents_chunk_id ON documents_chunk (id)",
    'CREATE INDEX IF NOT EXISTS documents_chunk_document ON documents_chunk (document_id, "index")',
]


def _partitioned(cursor) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'documents_chunk'::regclass")
    return cursor.fetchone()[0] == "p"


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    from documents.search import engine

    with schema_editor.connection.cursor() as cursor:
        engine.require_extensions(cursor)
        for statement in LEXICAL_LEFTOVERS:
            cursor.execute(statement)
        if not _partitioned(cursor):
            # A sequence of its own (the old one may be an identity column's), past every stored id:
            # citations name chunks by id, so the ids stay.
            cursor.execute("CREATE SEQUENCE IF NOT EXISTS documents_chunk_ids")
            cursor.execute(
                "SELECT setval('documents_chunk_ids', coalesce(max(id), 0) + 1, false) FROM documents_chunk"
            )
            cursor.execute(
                f"CREATE TABLE documents_chunk_partitioned ({COLUMNS}) PARTITION BY LIST (project_id)"
            )
            cursor.execute("SELECT DISTINCT project_id FROM documents_chunk ORDER BY 1")
            for (project_id,) in cursor.fetchall():
                name = engine.partition_name(UUID(str(project_id)))
                cursor.execute(
                    f"CREATE TABLE {name} PARTITION OF documents_chunk_partitioned FOR VALUES IN (%s)",
                    [str(project_id)],
                )
                cursor.execute(COPY, [str(project_id)])
            cursor.execute("DROP TABLE documents_chunk")
            cursor.execute("ALTER TABLE documents_chunk_partitioned RENAME TO documents_chunk")
            cursor.execute("ALTER SEQUENCE documents_chunk_ids OWNED BY documents_chunk.id")
            for statement in CONSTRAINTS:
                cursor.execute(statement)
        engine.ensure_lexical_index(cursor)
        cursor.execute("SELECT DISTINCT dim FROM documents_chunk WHERE dim > 0")
        dims = {row[0] for row in cursor.fetchall()} | {384}
    for dim in sorted(dims):
        engine.ensure_dimension(dim)


class Migration(migrations.Migration):
    dependencies = [("documents", "0004_ingest_queue"), ("projects", "0004_invitation")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="chunk",
                    name="title",
                    field=models.CharField(blank=True, default="", max_length=300),
                ),
                migrations.AlterField(
                    model_name="chunk",
                    name="document",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="documents.document",
                    ),
                ),
                migrations.AlterField(
                    model_name="chunk",
                    name="project",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="projects.project",
                    ),
                ),
                migrations.RemoveConstraint(model_name="chunk", name="unique_chunk_index"),
                migrations.AddConstraint(
                    model_name="chunk",
                    constraint=models.UniqueConstraint(
                        fields=("project", "document", "index"), name="unique_chunk_index"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)],
        ),
    ]
