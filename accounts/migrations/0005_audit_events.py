"""The audit log (accounts.audit): its table, and a trigger that keeps it append-only."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# UPDATE is refused, except the one the database itself makes when an actor's account is
# deleted (ON DELETE SET NULL, which Django issues as an UPDATE): actor_id to NULL, all else
# unchanged; actor_email keeps the name. DELETE is refused unless the purge
# (accounts.audit.audit_purge) set docent.audit_purge_days in its transaction, and then only
# for rows older than that many days. TRUNCATE is left alone: tests and `flush` need it.
GUARD = """
CREATE FUNCTION accounts_auditevent_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    days integer;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
           AND (NEW.id, NEW.at, NEW.action, NEW.actor_email, NEW.target, NEW.project_id, NEW.ip, NEW.detail)
               IS NOT DISTINCT FROM
               (OLD.id, OLD.at, OLD.action, OLD.actor_email, OLD.target, OLD.project_id, OLD.ip, OLD.detail)
        THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: UPDATE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Unset is NULL (never set in this session) or '' (set by an earlier transaction).
    days := nullif(current_setting('docent.audit_purge_days', true), '')::integer;
    IF days IS NULL OR OLD.at >= now() - make_interval(days => greatest(days, 1)) THEN
        RAISE EXCEPTION 'audit events are append-only: DELETE refused for an event inside the retention'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER accounts_auditevent_append_only
    BEFORE UPDATE OR DELETE ON accounts_auditevent
    FOR EACH ROW EXECUTE FUNCTION accounts_auditevent_guard();
"""

UNGUARD = """
DROP TRIGGER IF EXISTS accounts_auditevent_append_only ON accounts_auditevent;
DROP FUNCTION IF EXISTS accounts_auditevent_guard();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_api_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("auth.sign_in", "Signed in"),
                            ("auth.sign_in_failed", "Failed sign-in"),
                            ("account.password_changed", "Password changed"),
                            ("account.email_changed", "Email changed"),
                            ("key.created", "API key created"),
                            ("key.revoked", "API key revoked"),
                            ("invitation.sent", "Invitation sent"),
                            ("invitation.accepted", "Invitation accepted"),
                            ("invitation.revoked", "Invitation revoked"),
                            ("member.role_changed", "Member role changed"),
                            ("member.removed", "Member removed"),
                            ("project.deleted", "Project deleted"),
                            ("document.deleted", "Document deleted"),
                            ("webhook.created", "Webhook created"),
                            ("webhook.changed", "Webhook changed"),
                            ("webhook.deleted", "Webhook deleted"),
                            ("staff.user_changed", "Staff changed a user"),
                        ],
                        max_length=40,
                    ),
                ),
                ("actor_email", models.CharField(blank=True, max_length=254)),
                ("target", models.CharField(blank=True, max_length=500)),
                ("project_id", models.UUIDField(blank=True, null=True)),
                ("ip", models.GenericIPAddressField(blank=True, null=True)),
                ("detail", models.JSONField(blank=True, default=dict)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="audit_events",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "audit event",
                "ordering": ["-id"],
                "indexes": [models.Index(fields=["project_id", "-id"], name="audit_project_recent")],
            },
        ),
        migrations.RunSQL(GUARD, UNGUARD),
    ]
