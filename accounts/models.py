"""The Docent user: logs in with an email address and has a tier."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Tier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(
        self, email: str, password: str | None = None, *, email_verified: bool = True, **extra: Any
    ) -> User:
        """An account; verified unless the caller says otherwise.

        Operators' accounts (createsuperuser, the shell, benchmarks) are vouched
        for; self-service sign-up (accounts.services.user_register) passes
        email_verified=False and the link it mails proves the address.
        """
        if not email:
            raise ValueError("An email address is required")
        if email_verified:
            extra.setdefault("email_verified_at", timezone.now())
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, email_verified=True, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.FREE)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # When the owner proved the address (the emailed link, or a password reset);
    # empty until then, and an account without it cannot sign in or join projects.
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # The single sign-on identity this account is bound to (accounts.oidc): the provider and its
    # account id (`sub`), so an address the provider later gives someone else cannot reach it.
    oidc_issuer = models.CharField(max_length=500, blank=True, default="")
    oidc_subject = models.CharField(max_length=255, blank=True, default="")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                fields=["oidc_issuer", "oidc_subject"],
                condition=~models.Q(oidc_subject=""),
                name="unique_oidc_identity",
            )
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class FirstAccount(models.Model):
    """The account that the first sign-up on a fresh install made its administrator.

    The table holds at most one row (its key is always 1): two sign-ups racing on an
    empty install both try to insert it, and the database lets exactly one of them in.
    """

    slot = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    user = models.OneToOneField(User, null=True, on_delete=models.SET_NULL, related_name="+")
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(slot=1), name="first_account_single_row")]

    def __str__(self) -> str:
        return f"first account: {self.user or 'deleted'}"


class OutboxMessage(models.Model):
    """An email kept for staff to read in the admin, on a server that sends none (no SMTP).

    The outbox email backend (accounts.mail) writes one row per message. Staff copy the
    confirmation, reset or invitation link from it and pass it on by other means.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    to = models.TextField(help_text="Recipients, comma-separated.")
    from_email = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=998)
    body = models.TextField()
    sent_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-sent_at"]
        verbose_name = "outbox message"
        verbose_name_plural = "outbox"

    def __str__(self) -> str:
        return f"{self.subject} -> {self.to}"


class Scope(models.TextChoices):
    """What a personal API key may do (accounts.scopes maps every endpoint to one)."""

    READ = "read", "Read projects, documents, runs and threads"
    SEARCH = "search", "Search documents"
    ASK = "ask", "Ask questions and start agent runs"
    WRITE = "write", "Add, change and delete documents, projects and threads"
    ADMIN_PROJECTS = "admin:projects", "Manage project settings, members and invitations"


class ApiKey(models.Model):
    """A personal API key: acts as its owner, within its scopes and (optionally) some projects.

    Sent as `dk_<prefix>_<secret>`; only the SHA-256 of the secret is stored (accounts.keys says
    why a fast hash is the right one here). `project_ids` limits the key to those projects (empty:
    all of the owner's); it is a list of ids rather than a relation to projects.Project so that
    accounts stays below projects, and so that deleting a project can never turn a limited key
    into one for every project (an emptied relation would read as "all").
    """

    PREFIX_LENGTH = 12

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=20, choices=Scope.choices), default=list)
    project_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["owner", "-created_at"], name="apikey_owner_recent")]

    def __str__(self) -> str:
        return f"{self.name} (dk_{self.prefix}_…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def active(self) -> bool:
        return not self.revoked and not self.expired


class AuditEvent(models.Model):
    """One line of the audit log: an action, who did it, to what, in which project, from where.

    Append-only (accounts.audit): written through `accounts.audit.record`, never updated, and
    deleted only by the retention purge; a database trigger refuses anything else. The actor's
    email is copied so the line still names them after the account is deleted; the project is
    a plain id, not a foreign key, so its events outlive a deleted project.
    """

    class Action(models.TextChoices):
        SIGN_IN = "auth.sign_in", "Signed in"
        SIGN_IN_FAILED = "auth.sign_in_failed", "Failed sign-in"
        PASSWORD_CHANGED = "account.password_changed", "Password changed"
        EMAIL_CHANGED = "account.email_changed", "Email changed"
        KEY_CREATED = "key.created", "API key created"
        KEY_REVOKED = "key.revoked", "API key revoked"
        INVITATION_SENT = "invitation.sent", "Invitation sent"
        INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
        INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
        MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        PROJECT_DELETED = "project.deleted", "Project deleted"
        DOCUMENT_DELETED = "document.deleted", "Document deleted"
        WEBHOOK_CREATED = "webhook.created", "Webhook created"
        WEBHOOK_CHANGED = "webhook.changed", "Webhook changed"
        WEBHOOK_DELETED = "webhook.deleted", "Webhook deleted"
        STAFF_USER_CHANGED = "staff.user_changed", "Staff changed a user"

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=40, choices=Action.choices)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    target = models.CharField(max_length=500, blank=True)
    # Indexed by audit_project_recent below, whose leading column it is.
    project_id = models.UUIDField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "audit event"
        indexes = [models.Index(fields=["project_id", "-id"], name="audit_project_recent")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_email or 'anonymous'}"
