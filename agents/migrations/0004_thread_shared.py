from django.db import migrations, models


class Migration(migrations.Migration):
    """Threads become private to their starters unless shared (issue 23).

    Existing threads were seen by every member of their project: they are migrated as
    shared, so nobody loses access to a conversation they could read yesterday. Threads
    started from now on are private by default (their starter may share them).
    """

    dependencies = [
        ("agents", "0003_threads"),
    ]

    operations = [
        # The column is added with True, which fills every existing row, ...
        migrations.AddField(
            model_name="thread",
            name="shared",
            field=models.BooleanField(default=True),
        ),
        # ... then new rows default to private (Django keeps defaults in Python, not in the table).
        migrations.AlterField(
            model_name="thread",
            name="shared",
            field=models.BooleanField(default=False),
        ),
    ]
