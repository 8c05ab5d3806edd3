"""Writes on user accounts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import audit, verification
from accounts.models import FirstAccount

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """What a sign-up did. `user` is None when the address already had an account (callers
    answer the same either way); `first_admin` when this was the install's first account,
    confirmed at once and made its administrator."""

    user: Any | None
    first_admin: bool = False


def _send(template: str, *, to: str, context: dict[str, Any]) -> None:
    subject, _, body = render_to_string(template, context).partition("\n")
    # A mail server that is down must not turn a sign-up into an error page.
    sent = send_mail(
        subject.strip(), body.lstrip("\n"), settings.DEFAULT_FROM_EMAIL, [to], fail_silently=True
    )
    if not sent:
        log.warning("account email not sent", extra={"template": template})


def _no_other_account(user: Any) -> bool:
    return not get_user_model().objects.exclude(pk=user.pk).exists()


def first_signup_open() -> bool:
    """Whether the next sign-up becomes the install's administrator (no account, none claimed yet)."""
    return (
        bool(settings.FIRST_SIGNUP_ADMIN)
        and not FirstAccount.objects.exists()
        and not get_user_model().objects.exists()
    )


def _first_account_claim(*, user: Any) -> bool:
    """Make the just-created `user` the install's administrator when it is the first account.

    Runs inside the sign-up's transaction. Two first sign-ups at once both find no other
    (committed) account, and both insert FirstAccount's single row: the database lets one
    in and makes the other wait, then fail, so exactly one becomes staff.
    """
    if not settings.FIRST_SIGNUP_ADMIN or not _no_other_account(user):
        return False
    try:
        with transaction.atomic():
            FirstAccount.objects.create(user=user)
    except IntegrityError:
        return False  # another first sign-up holds the claim
    user.is_staff = True
    user.is_superuser = True
    user.email_verified_at = timezone.now()
    user.save(update_fields=["is_staff", "is_superuser", "email_verified_at"])
    return True


def user_register(*, email: str, password: str, name: str = "", base_url: str = "") -> Registration:
    """Create an account, or tell the owner of an existing one by email; the caller cannot tell which.

    Both paths validate the same way, hash the password once and send one email,
    so neither the response nor its timing says whether the address was taken. The
    exception is a fresh install's first account: it is confirmed at once and made the
    administrator (staff and superuser, so the admin and its outbox open to it), and no
    email is sent (DOCENT_FIRST_SIGNUP_ADMIN).
    """
    User = get_user_model()
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    candidate = User(email=email, name=(name or "").strip()[:150])
    try:
        password_validation.validate_password(password or "", user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    context = {"email": email, "base_url": base_url.rstrip("/")}
    if not User.objects.filter(email__iexact=email).exists():
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    email=email, password=password, name=candidate.name, email_verified=False
                )
                first_admin = _first_account_claim(user=user)
        except IntegrityError:
            pass  # registered a moment ago by another request: the owner is told below
        else:
            if first_admin:
                log.info(
                    "first account registered: confirmed and made the administrator",
                    extra={"user_id": str(user.pk)},
                )
                return Registration(user=user, first_admin=True)
            log.info("user registered", extra={"user_id": str(user.pk)})
            # The account signs in once the link in this email is opened (accounts.verification).
            context = verification.verification_context(user=user, base_url=base_url)
            _send("accounts/email/welcome.txt", to=email, context=context)
            return Registration(user=user)
    else:
        make_password(password)  # the work create_user would have done
    log.info("registration for an existing account")
    _send("accounts/email/already_registered.txt", to=email, context=context)
    return Registration(user=None)


def user_tokens_revoke(*, user: Any) -> int:
    """Blacklist every refresh token the user holds (after a password change); returns how many."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    revoked = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.bulk_create(revoked, ignore_conflicts=True)
    return len(revoked)


WRONG_CURRENT_PASSWORD = "The current password is not correct."  # noqa: S105  (a message)


def user_password_changed_notify(*, user: Any, base_url: str = "") -> None:
    """Tell the address that its password changed, so an owner who did not change it can act."""
    context = {"email": user.email, "base_url": base_url.rstrip("/")}
    _send("accounts/email/password_changed.txt", to=user.email, context=context)


def user_update(
    *,
    user: Any,
    name: str | None = None,
    password: str | None = None,
    current_password: str | None = None,
    base_url: str = "",
) -> Any:
    """Change the caller's own name or password; a new password needs the current one, ends every
    other session's refresh token and is announced to the address by email."""
    if password is not None and not user.check_password(current_password or ""):
        raise ValidationError({"current_password": WRONG_CURRENT_PASSWORD})
    fields = []
    if name is not None:
        user.name = name.strip()[:150]
        fields.append("name")
    if password is not None:
        try:
            password_validation.validate_password(password, user=user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
        user.set_password(password)
        fields.append("password")
    if fields:
        user.save(update_fields=fields)
    if password is not None:
        user_tokens_revoke(user=user)
        log.info("password changed", extra={"user_id": str(user.pk)})
        audit.record("account.password_changed", actor=user, target=user.email)
        user_password_changed_notify(user=user, base_url=base_url)
    return user
