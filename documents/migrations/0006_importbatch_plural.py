from django.db import migrations


class Migration(migrations.Migration):
    """The admin said "Import batchs"."""

    dependencies = [("documents", "0005_one_search_engine")]

    operations = [
        migrations.AlterModelOptions(
            name="importbatch",
            options={"ordering": ["-started_at"], "verbose_name_plural": "import batches"},
        ),
    ]
