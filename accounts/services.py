"""Writes on user accounts."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from accounts import verification

log = logging.getLogger(__name__)


def _send(template: str, *, to: str, context: dict[str, Any]) -> None:
    subject, _, body = render_to_string(template, context).partition("\n")
    # A mail server that is down must not turn a sign-up into an error page.
    sent = send_mail(
        subject.strip(), body.lstrip("\n"), settings.DEFAULT_FROM_EMAIL, [to], fail_silently=True
    )
    if not sent:
        log.warning("account email not sent", extra={"template": template})


def user_register(*, email: str, password: str, name: str = "", base_url: str = "") -> Any | None:
    """Create an account, or tell the owner of an existing one by email; the caller cannot tell which.

    Both paths validate the same way, hash the password once and send one email,
    so neither the response nor its timing says whether the address was taken.
    Returns the new user, or None when the address already had an account.
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
        except IntegrityError:
            pass  # registered a moment ago by another request: the owner is told below
        else:
            log.info("user registered", extra={"user_id": str(user.pk)})
            # The account signs in once the link in this email is opened (accounts.verification).
            context = verification.verification_context(user=user, base_url=base_url)
            _send("accounts/email/welcome.txt", to=email, context=context)
            return user
    else:
        make_password(password)  # the work create_user would have done
    log.info("registration for an existing account")
    _send("accounts/email/already_registered.txt", to=email, context=context)
    return None


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
        user_password_changed_notify(user=user, base_url=base_url)
    return user
