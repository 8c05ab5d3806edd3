"""Reads on projects, always scoped to what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery

from projects.access import projects_visible_to
from projects.models import Membership, Project


def projects_for_list(user: Any) -> QuerySet[Project]:
    """The user's projects with their role and document count, for lists."""
    role = Membership.objects.filter(project=OuterRef("pk"), user_id=user.pk).values("role")[:1]
    return projects_visible_to(user).annotate(
        my_role=Subquery(role), document_count=Count("documents", distinct=True)
    )


def memberships_of(project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("created_at")
