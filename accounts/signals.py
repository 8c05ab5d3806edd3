"""Invalidate a user's cached row (accounts.authentication) when it changes; audit sign-ins."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import audit
from accounts.authentication import user_cache_forget


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.forget_saved_user")
@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.forget_deleted_user")
def forget_cached_user(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or settings.AUTH_USER_CACHE_S <= 0:
        return
    pk = instance.pk
    # Now, for this transaction's own later reads; and again after commit, since a
    # request in between may have cached the row as it was before the commit.
    user_cache_forget(pk)
    transaction.on_commit(lambda: user_cache_forget(pk))


# Django sends these from login() (the sign-in page, the admin's, sign-up, single sign-on) and
# authenticate() (every password check, the API's token included): one place sees them all.
# The API's successful sign-in makes no session, so accounts.api records that one itself.
@receiver(user_logged_in, dispatch_uid="accounts.audit_sign_in")
def audit_sign_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    backend = getattr(user, "backend", "") or ""
    audit.record(
        "auth.sign_in",
        actor=user,
        target=getattr(user, "email", ""),
        request=request,
        detail={"via": "page", "backend": backend.rsplit(".", 1)[-1]},
    )


@receiver(user_login_failed, dispatch_uid="accounts.audit_sign_in_failed")
def audit_sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    # Password attempts only: a single sign-on callback (a nonce and a code, no address) records
    # its own failure with the reason and address (accounts.oidc). The address typed is kept,
    # never the password (Django has masked it already; it is not read here).
    if "username" not in credentials and "email" not in credentials:
        return
    attempted = credentials.get("username") or credentials.get("email") or ""
    audit.record("auth.sign_in_failed", target=str(attempted).strip().lower()[:254], request=request)
