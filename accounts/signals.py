"""Invalidate a user's cached row (accounts.authentication) when it changes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

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
