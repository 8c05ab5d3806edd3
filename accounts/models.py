"""The Docent user: logs in with an email address and has a tier."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
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

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

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
