"""Answers people can rate: a thumbs up or down with an optional note, one per person and run.

Anyone who can read a run may rate it once it has succeeded (a viewer too); another
member's private conversation stays 404, as its runs are (agents.selectors). The
project's owners read every rating of the project. A rating counts toward nothing else:
not retrieval, not ranking, not any budget or limit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404

from agents import selectors
from agents.models import AgentRun, Rating, RunFeedback, RunStatus
from projects import access
from projects.models import Project, Role

log = logging.getLogger(__name__)

NOTE_MAX = 2000
RUN_FAILED = "This run failed: there is no answer to rate."
STILL_WORKING = "This answer is not finished yet: rate it once it is."
RATING_CHOICE = "Rating is “up” or “down”."
NO_RATING = "You have not rated this answer."
# Control characters other than tab and newline (NUL cannot even be stored in PostgreSQL text).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# --- writes ---------------------------------------------------------------------------


def clean_note(note: Any) -> str:
    """A note as it is kept: text, line breaks normalised, other control characters and
    surrounding blanks removed, at most NOTE_MAX characters."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ValidationError({"note": "A note is text."})
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError({"note": "A note must be valid text."}) from None
    note = _CONTROL.sub("", note.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(note) > NOTE_MAX:
        raise ValidationError({"note": f"A note has at most {NOTE_MAX:,} characters."})
    return note


def _readable(user: Any, run: AgentRun) -> None:
    """404 unless the user may read the run (a project member; for a conversation's turn,
    one who sees that conversation). Read again here, not trusted from the caller."""
    if not selectors.runs_visible_to(user).filter(pk=run.pk).exists():
        raise Http404("No such run.")


def _rateable(run: AgentRun) -> None:
    if run.status == RunStatus.SUCCEEDED:
        return
    message = RUN_FAILED if run.status == RunStatus.FAILED else STILL_WORKING
    raise ValidationError(message, code="not_rateable")


def feedback_set(*, user: Any, run: AgentRun, rating: Any, note: Any = "") -> tuple[RunFeedback, bool]:
    """Rate an answer, or change one's rating and note; (the feedback, whether it is new)."""
    _readable(user, run)
    if rating not in Rating.values:
        raise ValidationError({"rating": RATING_CHOICE})
    note = clean_note(note)
    _rateable(run)
    values = {"rating": rating, "note": note}
    try:
        with transaction.atomic():
            feedback, created = RunFeedback.objects.update_or_create(run=run, user=user, defaults=values)
    except IntegrityError:
        # Two submissions at once (a double click): the other one created it; this one changes it.
        feedback = RunFeedback.objects.get(run=run, user=user)
        for name, value in values.items():
            setattr(feedback, name, value)
        feedback.save(update_fields=[*values, "updated_at"])
        created = False
    log.info(
        "answer rated",
        extra={"run_id": str(run.pk), "rating": rating, "new": created, "has_note": bool(note)},
    )
    return feedback, created


def feedback_clear(*, user: Any, run: AgentRun) -> bool:
    """Remove one's rating of an answer; False when there was none."""
    _readable(user, run)
    deleted, _ = RunFeedback.objects.filter(run=run, user=user).delete()
    if deleted:
        log.info("answer rating removed", extra={"run_id": str(run.pk)})
    return bool(deleted)


# --- reads ----------------------------------------------------------------------------


def feedback_of(*, user: Any, run: AgentRun) -> RunFeedback | None:
    """The user's own rating of a run they may read (None when they have not rated it)."""
    _readable(user, run)
    return RunFeedback.objects.filter(run=run, user=user).first()


def ratings_by(*, user: Any, run_ids: Any) -> dict[Any, RunFeedback]:
    """The user's own ratings of these runs (ids, or a query of them), by run id: one query
    for a whole conversation.

    Only a user's own rows are read, so it shows nothing they could not already see."""
    if not getattr(user, "is_authenticated", False):
        return {}
    rows = RunFeedback.objects.filter(user_id=user.pk, run_id__in=run_ids)
    return {row.run_id: row for row in rows}


def _owned(user: Any, project: Project) -> None:
    # The role is cached on a project from access.project_for: no query in the usual case.
    access.require(user, project, Role.OWNER)


def project_feedback(*, user: Any, project: Project, rating: str = "") -> QuerySet[RunFeedback]:
    """Every rating of the project's answers, latest first (its owners only: 403 for other members)."""
    _owned(user, project)
    rows = RunFeedback.objects.filter(run__project=project).select_related("run", "user")
    if rating:
        rows = rows.filter(rating=rating)
    return rows.order_by("-updated_at", "pk")


@dataclass(frozen=True)
class Tally:
    all: int
    up: int
    down: int


def project_tally(*, user: Any, project: Project) -> Tally:
    """How many ratings the project's answers have, in all and of each kind (its owners only)."""
    _owned(user, project)
    counts = RunFeedback.objects.filter(run__project=project).aggregate(
        up=Count("pk", filter=Q(rating=Rating.UP)), down=Count("pk", filter=Q(rating=Rating.DOWN))
    )
    return Tally(all=counts["up"] + counts["down"], up=counts["up"], down=counts["down"])


def rated_runs(*, user: Any, project: Project, rating: str = "") -> QuerySet[AgentRun]:
    """The project's rated answers (with a rating of this kind, when given), the most recently
    rated first, each with `ups` and `downs` counted (its owners only)."""
    _owned(user, project)
    rated = RunFeedback.objects.filter(run__project=project)
    if rating:
        rated = rated.filter(rating=rating)
    # A subquery, not a join: the counts below count every rating of the run, of both kinds.
    runs = AgentRun.objects.filter(project=project, pk__in=rated.values("run_id"))
    return (
        runs.annotate(
            last_rated=Max("feedback__updated_at"),
            ups=Count("feedback", filter=Q(feedback__rating=Rating.UP), distinct=True),
            downs=Count("feedback", filter=Q(feedback__rating=Rating.DOWN), distinct=True),
        )
        .select_related("project", "document", "created_by")
        .order_by("-last_rated", "pk")
    )


def feedback_on(*, runs: list[AgentRun], rating: str = "") -> dict[Any, list[RunFeedback]]:
    """The ratings of these runs (of this kind, when given), by run id, latest first: one query.

    For runs `rated_runs` returned, so already checked for their owner."""
    rows = RunFeedback.objects.filter(run__in=runs).select_related("user").order_by("-updated_at", "pk")
    if rating:
        rows = rows.filter(rating=rating)
    found: dict[Any, list[RunFeedback]] = {run.pk: [] for run in runs}
    for row in rows:
        found[row.run_id].append(row)
    return found
