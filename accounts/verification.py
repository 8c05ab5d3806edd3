"""Proving an email address: the signed, expiring link a new account must open before it signs in.

The link carries the account id and the address, signed with SECRET_KEY
(django.core.signing, timestamped) and good for `EMAIL_VERIFY_HOURS`. A link
for an address the account no longer has stops working. Opening it shows a
page with a button: the address is confirmed by that POST, not by the GET, so
a mail scanner that fetches every link cannot confirm an account someone else
created with the victim's address. Confirming twice is harmless.

Until then the account cannot sign in (page and JWT) and is offered no
project invitations. A completed password reset proves the address too.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from core import ratelimit

log = logging.getLogger(__name__)

SALT = "accounts.verify-email"
VERIFY_IP = ratelimit.Limit("verify_ip", "ip", "confirmation emails requested from your network")
VERIFY_ACCOUNT = ratelimit.Limit("verify_account", "account", "confirmation emails for this email address")

INVALID_LINK = "This confirmation link is not valid. Ask for a new one below."
EXPIRED_LINK = "This confirmation link has expired. Ask for a new one below."
UNVERIFIED = (
    "Confirm your email address first: open the link we emailed you when you signed up "
    "(or ask for a new one)."
)


def is_verified(user: Any) -> bool:
    return getattr(user, "email_verified_at", None) is not None


def verification_token(*, user: Any) -> str:
    return signing.dumps({"u": str(user.pk), "e": user.email}, salt=SALT, compress=True)


def verification_url(*, user: Any, base_url: str) -> str:
    path = reverse("accounts:verify_email", args=[verification_token(user=user)])
    return base_url.rstrip("/") + path


def verification_context(*, user: Any, base_url: str) -> dict[str, Any]:
    """What the welcome and resend emails need: the link and how long it works."""
    return {
        "email": user.email,
        "base_url": base_url.rstrip("/"),
        "verify_url": verification_url(user=user, base_url=base_url),
        "hours": settings.EMAIL_VERIFY_HOURS,
    }


def _user_of(token: str) -> Any:
    max_age = settings.EMAIL_VERIFY_HOURS * 3600
    try:
        payload = signing.loads(str(token or ""), salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise ValidationError({"token": EXPIRED_LINK}, code="expired") from None
    except (signing.BadSignature, ValueError, TypeError):
        raise ValidationError({"token": INVALID_LINK}, code="invalid") from None
    if not isinstance(payload, dict):
        raise ValidationError({"token": INVALID_LINK}, code="invalid")
    User = get_user_model()
    try:
        user = User.objects.filter(pk=payload.get("u"), is_active=True).first()
    except (ValueError, TypeError, ValidationError):
        user = None
    if user is None or user.email != payload.get("e"):
        raise ValidationError({"token": INVALID_LINK}, code="invalid")
    return user


def email_verification_check(*, token: str) -> Any:
    """The account a confirmation link belongs to (for the confirm page), without confirming it."""
    return _user_of(token)


def email_verify(*, token: str) -> Any:
    """Mark the link's account as having proved its address; idempotent. Returns the user."""
    user = _user_of(token)
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
        log.info("email verified", extra={"user_id": str(user.pk)})
    return user


def email_mark_verified(*, user: Any) -> None:
    """A proof that came another way (a completed password reset)."""
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])


def verification_resend_refusal(request: HttpRequest, email: str) -> ratelimit.Refusal | None:
    """Count a resend request per IP and per address; a Refusal when over either."""
    refusal = ratelimit.hit(VERIFY_IP, request)
    account = ratelimit.normalise_email(email)
    if refusal is None and account:
        refusal = ratelimit.hit(VERIFY_ACCOUNT, request, account=account)
    return refusal


def verification_resend(*, email: str, base_url: str) -> None:
    """Mail a new confirmation link when the address has an unconfirmed account; the caller
    answers the same whatever happened here."""
    from accounts.services import _send

    email = ratelimit.normalise_email(email)
    User = get_user_model()
    user = User.objects.filter(email__iexact=email, is_active=True).first() if email else None
    if user is None:
        log.info("verification resend for an unknown address")
        return
    if user.email_verified_at is not None:
        context = {"email": user.email, "base_url": base_url.rstrip("/")}
        _send("accounts/email/already_verified.txt", to=user.email, context=context)
        return
    _send(
        "accounts/email/verify.txt", to=user.email, context=verification_context(user=user, base_url=base_url)
    )
