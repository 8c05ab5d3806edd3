"""What an account's delete does to its projects: nothing it alone held stays behind."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from projects import services


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="projects.release_deleted_users_projects")
def release_deleted_users_projects(sender: Any, instance: Any, **kwargs: Any) -> None:
    services.projects_release_for_deleted_user(user_id=instance.pk)
