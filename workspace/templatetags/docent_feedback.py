"""The signed-in person's own rating of an answer, for the rating form under each answer
(templates/includes/feedback.html)."""

from __future__ import annotations

from typing import Any

from django import template

from agents import feedback as run_feedback
from agents.models import AgentRun

register = template.Library()


@register.simple_tag(takes_context=True)
def my_rating(context: Any, run: AgentRun) -> Any:
    """The user's rating of `run`, or None. A conversation's ratings are read in one query
    for all its turns and kept on the request, so a long thread costs one query, not one a turn."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or not getattr(user, "is_authenticated", False):
        return None
    cache = request.__dict__.setdefault("_docent_ratings", {"threads": set(), "runs": {}})
    loaded = run.pk in cache["runs"] or (run.thread_id is not None and run.thread_id in cache["threads"])
    if not loaded:
        if run.thread_id is not None:
            turns = AgentRun.objects.filter(thread_id=run.thread_id).values("pk")
            cache["runs"].update(run_feedback.ratings_by(user=user, run_ids=turns))
            cache["threads"].add(run.thread_id)
        else:
            cache["runs"][run.pk] = run_feedback.ratings_by(user=user, run_ids=[run.pk]).get(run.pk)
    return cache["runs"].get(run.pk)


@register.simple_tag
def feedback_note_max() -> int:
    """How long a note may be (the textarea's maxlength)."""
    return run_feedback.NOTE_MAX
