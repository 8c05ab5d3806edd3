"""Find a new upload's twin (the same bytes in the project) without reading the project's documents."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # built concurrently: uploads go on while it builds

    dependencies = [("documents", "0006_importbatch_plural")]

    operations = [
        AddIndexConcurrently(
            model_name="document",
            index=models.Index(fields=["project", "content_hash"], name="documents_project_hash"),
        ),
    ]
