"""The first sign-up's administrator claim (one row at most) and the admin outbox for email."""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_email_verified_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                (
                    "id",
                    models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False),
                ),
                ("to", models.TextField(help_text="Recipients, comma-separated.")),
                ("from_email", models.CharField(blank=True, max_length=254)),
                ("subject", models.CharField(max_length=998)),
                ("body", models.TextField()),
                ("sent_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "outbox message",
                "verbose_name_plural": "outbox",
                "ordering": ["-sent_at"],
            },
        ),
        migrations.CreateModel(
            name="FirstAccount",
            fields=[
                (
                    "slot",
                    models.PositiveSmallIntegerField(
                        default=1, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("claimed_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "user",
                    models.OneToOneField(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("slot", 1)), name="first_account_single_row")
                ],
            },
        ),
    ]
