"""Writes and workflows on agent runs: create, execute, re-run."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q, Sum
from django.http import Http404
from django.utils import timezone

from agents import events
from agents.models import AgentRun, RunKind, RunStatus, Thread
from agents.providers import (
    Provider,
    ProviderError,
    resolve_provider_name,
    rewrite_query,
    run_with_breaker,
)
from agents.providers.base import Citation, Passage, ProviderResult
from agents.selectors import THREAD_NOT_FOUND
from core import metrics
from documents import embedder, locations, search
from documents import services as documents_services
from documents.models import Chunk, Document, DocumentStatus
from projects import webhooks
from projects.access import has_role, require, role_of
from projects.models import Project, Role

log = logging.getLogger(__name__)

QUESTION_MAX = 4000
# Turns a thread may hold; a longer conversation starts a new thread.
THREAD_TURNS_MAX = 200
THREAD_TITLE_MAX = 200
# Providers that are paid per token, and so count against the monthly budget.
METERED_PROVIDERS = {"gemini": "Gemini", "openai": "LLM"}
# A project summary reads at most this many passages.
PROJECT_SUMMARY_PASSAGES = 400
# Turns of an earlier conversation given to the provider.
HISTORY_TURNS = 5


class TokenBudgetExceeded(Exception):
    """The user's monthly token budget for the configured LLM is spent."""

    def __init__(self, *, used: int, budget: int, retry_after_s: int, label: str = "Gemini") -> None:
        super().__init__(
            f"Your monthly budget of {budget:,} {label} tokens is used up ({used:,} used). "
            "It renews at the start of next month; send allow_offline=true to use the offline provider now."
        )
        self.used, self.budget, self.retry_after_s = used, budget, retry_after_s


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def tokens_used_this_month(*, user: Any, provider: str = "gemini") -> int:
    """Input + output tokens of the user's runs answered by `provider` since the month began,
    including runs of conversations deleted this month."""
    totals = AgentRun.objects.filter(
        created_by=user, provider=provider, created_at__gte=_month_start(timezone.now())
    ).aggregate(total=Sum(F("input_tokens") + F("output_tokens")))
    deleted = cache.get(_deleted_tokens_key(user.pk, provider, timezone.now())) or 0
    return int(totals["total"] or 0) + int(deleted)


# Tokens of deleted runs are kept in the shared cache (beside the rate limits) until their
# month is over, so deleting a conversation does not refill its askers' budgets.
DELETED_TOKENS_TTL_S = 32 * 24 * 3600


def _deleted_tokens_key(user_id: Any, provider: str, when: datetime) -> str:
    return f"tokens-of-deleted-runs:{user_id}:{provider}:{when:%Y-%m}"


def _spent_tokens(runs: Any) -> list[tuple[Any, str, int]]:
    """(asker, provider, tokens) this month of metered runs among `runs`."""
    rows = (
        runs.filter(
            provider__in=list(METERED_PROVIDERS),
            created_by__isnull=False,
            created_at__gte=_month_start(timezone.now()),
        )
        .values("created_by_id", "provider")
        .annotate(total=Sum(F("input_tokens") + F("output_tokens")))
    )
    return [(r["created_by_id"], r["provider"], int(r["total"])) for r in rows if r["total"]]


def _keep_spent_tokens(spent: list[tuple[Any, str, int]]) -> None:
    """Carry the tokens of deleted runs into their askers' totals for this month."""
    now = timezone.now()
    for user_id, provider, total in spent:
        key = _deleted_tokens_key(user_id, provider, now)
        try:
            cache.add(key, 0, timeout=DELETED_TOKENS_TTL_S)
            cache.incr(key, total)
        except Exception:
            log.warning("could not keep a deleted run's tokens", exc_info=True)


def _check_budget(user: Any, allow_offline: bool) -> str:
    """The provider to request for a new run: '' (configured) or 'offline' over budget."""
    provider = resolve_provider_name()
    if provider not in METERED_PROVIDERS:
        return ""
    budget = settings.TOKEN_BUDGETS.get(getattr(user, "tier", "free"), settings.TOKEN_BUDGETS["free"])
    used = tokens_used_this_month(user=user, provider=provider)
    if used < budget:
        return ""
    if allow_offline:
        return "offline"
    now = timezone.now()
    next_month = (_month_start(now) + timedelta(days=32)).replace(day=1)
    raise TokenBudgetExceeded(
        used=used,
        budget=budget,
        retry_after_s=int((next_month - now).total_seconds()),
        label=METERED_PROVIDERS[provider],
    )


def run_writes_to_document(*, kind: str, document: Any) -> bool:
    """Whether a run's result is kept on its document for every member to see."""
    return kind == RunKind.EXTRACT or (kind == RunKind.SUMMARIZE and document is not None)


def run_create(
    *,
    user: Any,
    project: Project,
    kind: str,
    question: str = "",
    document: Document | None = None,
    parent: AgentRun | None = None,
    thread: Thread | None = None,
    allow_offline: bool = False,
) -> AgentRun:
    """Queue an agent run; the worker picks it up after commit.

    Viewers may ask and summarise the project; runs whose result is kept on a document
    for everyone (its tags, keywords and entities, its summary) need an editor. A question
    joins `thread` (or the thread of `parent`) as its next turn, or starts a new thread;
    summaries and extractions belong to no thread.
    """
    require(user, project, Role.VIEWER)
    if kind not in RunKind.values:
        raise ValidationError({"kind": f"Kind must be one of {', '.join(RunKind.values)}."})
    if run_writes_to_document(kind=kind, document=document):
        require(user, project, Role.EDITOR)
    question = (question or "").strip()
    if kind == RunKind.ASK:
        if not question:
            raise ValidationError({"question": "A question is required to ask."})
        if len(question) > QUESTION_MAX:
            raise ValidationError({"question": f"A question has at most {QUESTION_MAX} characters."})
    if document is not None and document.project_id != project.pk:
        raise ValidationError({"document": "The document is not in this project."})
    if kind == RunKind.EXTRACT and document is None:
        raise ValidationError({"document": "Extraction needs a document."})
    if document is not None and document.status != DocumentStatus.READY:
        raise ValidationError({"document": "The document is not ready yet."})
    if parent is not None and parent.project_id != project.pk:
        raise ValidationError({"parent": "The earlier run is not in this project."})
    if thread is not None and thread.project_id != project.pk:
        raise ValidationError({"thread": "The conversation is not in this project."})
    if thread is not None and parent is not None and parent.thread_id != thread.pk:
        raise ValidationError({"parent": "The earlier run is not part of this conversation."})
    if kind != RunKind.ASK and thread is not None:
        raise ValidationError({"thread": "Only questions belong to a conversation."})
    requested_provider = _check_budget(user, allow_offline)
    with transaction.atomic():
        if kind == RunKind.ASK:
            thread, parent = _join_thread(user, project, question, thread, parent)
        run = AgentRun.objects.create(
            project=project,
            kind=kind,
            question=question,
            document=document,
            document_scoped=document is not None,
            parent=parent,
            thread=thread,
            created_by=user,
            requested_provider=requested_provider,
        )
    log.info("run queued", extra={"run_id": str(run.pk), "kind": kind, "status": "queued"})
    return run


def _join_thread(
    user: Any, project: Project, question: str, thread: Thread | None, parent: AgentRun | None
) -> tuple[Thread, AgentRun | None]:
    """The thread a new question belongs to, locked, and the turn it follows."""
    if thread is None and parent is not None and parent.kind == RunKind.ASK:
        thread = parent.thread
    if thread is None:
        title = question if len(question) <= THREAD_TITLE_MAX else question[: THREAD_TITLE_MAX - 1] + "…"
        thread = Thread.objects.create(project=project, created_by=user, title=title, turn_count=1)
        return thread, parent
    # Lock the thread so two questions asked at once are numbered one after the other.
    locked = Thread.objects.select_for_update().filter(pk=thread.pk).first()
    if locked is None:
        raise ValidationError({"thread": "The conversation was deleted."})
    if locked.turn_count >= THREAD_TURNS_MAX:
        raise ValidationError(
            {"thread": f"A conversation holds at most {THREAD_TURNS_MAX} questions; start a new one."}
        )
    last = AgentRun.objects.filter(thread=locked).order_by("-created_at").first()
    now = timezone.now()
    Thread.objects.filter(pk=locked.pk).update(turn_count=F("turn_count") + 1, updated_at=now)
    # The row is locked until commit: the count read with it is the one just written, less one.
    locked.turn_count += 1
    locked.updated_at = now
    return locked, last


# --- managing a conversation: rename, share, delete -------------------------------------

THREAD_GONE = "The conversation was deleted."
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _thread_role(user: Any, thread: Thread) -> str:
    """The user's role in the thread's project, when they may read the thread (else 404)."""
    # Read for this user: a role cached on the project object may be another person's.
    role = role_of(user, thread.project_id)
    if role is None:
        raise Http404(THREAD_NOT_FOUND)
    starter = thread.created_by_id is not None and thread.created_by_id == user.pk
    if not (thread.shared or starter or has_role(role, Role.OWNER)):
        raise Http404(THREAD_NOT_FOUND)
    return role


def _may_edit_thread(user: Any, thread: Thread, action: str) -> None:
    """Its starter, and the project's owners, may rename or delete a conversation."""
    role = _thread_role(user, thread)
    if thread.created_by_id == user.pk or has_role(role, Role.OWNER):
        return
    raise PermissionDenied(
        f"Only the person who started this conversation or a project owner may {action} it."
    )


def _may_share_thread(user: Any, thread: Thread) -> None:
    _thread_role(user, thread)
    if thread.created_by_id is None or thread.created_by_id != user.pk:
        raise PermissionDenied(
            "Only the person who started this conversation may share it or make it private."
        )


def clean_thread_title(title: Any) -> str:
    """A conversation's title: text, on one line, 1 to THREAD_TITLE_MAX characters."""
    if not isinstance(title, str):
        raise ValidationError({"title": "A title is text."})
    try:
        title.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError({"title": "A title must be valid text."}) from None
    title = " ".join(_CONTROL.sub(" ", title).split())
    if not title:
        raise ValidationError({"title": "A title is required."})
    if len(title) > THREAD_TITLE_MAX:
        raise ValidationError({"title": f"A title has at most {THREAD_TITLE_MAX} characters."})
    return title


def thread_update(*, user: Any, thread: Thread, title: Any = None, shared: bool | None = None) -> Thread:
    """Rename and/or share a conversation, all or nothing (the API's PATCH)."""
    if title is not None:
        _may_edit_thread(user, thread, "rename")
        title = clean_thread_title(title)
    if shared is not None:
        if not isinstance(shared, bool):
            raise ValidationError({"shared": "Shared is true or false."})
        _may_share_thread(user, thread)
    changes: dict[str, Any] = {}
    if title is not None:
        changes["title"] = title
    if shared is not None:
        changes["shared"] = shared
    if not changes:
        return thread
    # updated_at is when the latest turn was asked: renaming is not activity.
    if not Thread.objects.filter(pk=thread.pk).update(**changes):
        raise Thread.DoesNotExist(THREAD_GONE)
    for name, value in changes.items():
        setattr(thread, name, value)
    log.info("thread edited", extra={"thread_id": str(thread.pk), "fields": sorted(changes)})
    return thread


def thread_rename(*, user: Any, thread: Thread, title: Any) -> Thread:
    """Give a conversation a new title (its starter, or a project owner)."""
    return thread_update(user=user, thread=thread, title=title)


def thread_share(*, user: Any, thread: Thread, shared: bool) -> Thread:
    """Share a conversation with the project, or make it private again (its starter only)."""
    return thread_update(user=user, thread=thread, shared=shared)


def thread_delete(*, user: Any, thread: Thread) -> None:
    """Delete a conversation and every turn of it (its starter, or a project owner).

    A turn still queued or being answered does not block the delete: the worker finds its
    run gone (the claim or the final write matches no row) and drops the result, and open
    event streams end with `done` saying the run was deleted. Raises Thread.DoesNotExist
    when another request deleted it first.
    """
    _may_edit_thread(user, thread, "delete")
    with transaction.atomic():
        # Locked, so a question being added to it now either lands before (and goes too) or
        # finds the conversation gone.
        if not Thread.objects.select_for_update().filter(pk=thread.pk).exists():
            raise Thread.DoesNotExist(THREAD_GONE)
        spent = _spent_tokens(AgentRun.objects.filter(thread_id=thread.pk))
        # Its turns cascade; each one's event log is dropped after commit (agents.signals).
        _, deleted = Thread.objects.filter(pk=thread.pk).delete()
        transaction.on_commit(lambda: _keep_spent_tokens(spent))
    log.info(
        "thread deleted",
        extra={"thread_id": str(thread.pk), "turns": deleted.get(AgentRun._meta.label, 0)},
    )


RETRY_NOT_FAILED = "Only a failed run can be run again."


def run_retry(*, run: AgentRun) -> AgentRun:
    """Queue a failed run again; a run that has not failed is refused (ValidationError)."""
    from agents import tasks

    now = timezone.now()
    # Conditional, so a run re-run twice at once (or finished meanwhile) is queued once at most.
    queued = AgentRun.objects.filter(pk=run.pk, status=RunStatus.FAILED).update(
        status=RunStatus.QUEUED, error="", status_changed_at=now, updated_at=now
    )
    if not queued:
        raise ValidationError({"status": RETRY_NOT_FAILED})
    run.status, run.error, run.status_changed_at, run.updated_at = RunStatus.QUEUED, "", now, now
    events.forget(run.pk)
    pk = run.pk
    transaction.on_commit(lambda: tasks.enqueue_run(pk))
    log.info("run requeued", extra={"run_id": str(pk), "status": "queued"})
    return run


def _set_status(run_id: Any, status: str, **fields: Any) -> None:
    AgentRun.objects.filter(pk=run_id).update(status=status, status_changed_at=timezone.now(), **fields)
    log.info("run %s", status, extra={"run_id": str(run_id), "status": status})
    events.publish(run_id, "status", status=status, label=RunStatus(status).label)


def _claim(run_id: Any) -> bool:
    stale = timezone.now() - timedelta(seconds=settings.STUCK_AFTER_S)
    claimable = Q(status=RunStatus.QUEUED) | Q(
        status__in=[RunStatus.RETRIEVING, RunStatus.GENERATING], status_changed_at__lt=stale
    )
    return bool(
        AgentRun.objects.filter(claimable, pk=run_id).update(
            status=RunStatus.RETRIEVING,
            attempts=F("attempts") + 1,
            status_changed_at=timezone.now(),
        )
    )


def _passage(chunk: Chunk | search.Hit, title: str, score: float = 0.0) -> Passage:
    if isinstance(chunk, search.Hit):
        return Passage(
            chunk_id=chunk.chunk_id,
            document_id=chunk.document_id,
            document_title=chunk.document_title,
            text=chunk.text,
            start=chunk.start,
            end=chunk.end,
            score=chunk.score,
        )
    return Passage(
        chunk_id=chunk.pk,
        document_id=str(chunk.document_id),
        document_title=title,
        text=chunk.text,
        start=chunk.start,
        end=chunk.end,
        score=score,
    )


def _history(run: AgentRun) -> list[tuple[str, str]]:
    """The earlier answered turns of the run's conversation, oldest first."""
    if run.thread_id:
        earlier = AgentRun.objects.filter(
            thread_id=run.thread_id, created_at__lt=run.created_at, status=RunStatus.SUCCEEDED
        ).order_by("-created_at")
        turns = [(r.question, r.answer if r.answered else "") for r in earlier[:HISTORY_TURNS]]
        return list(reversed(turns))
    turns = []
    parent = run.parent
    while parent is not None and len(turns) < HISTORY_TURNS:
        if parent.kind == RunKind.ASK and parent.status == RunStatus.SUCCEEDED:
            turns.append((parent.question, parent.answer))
        parent = parent.parent
    return list(reversed(turns))


class DocumentDeleted(ProviderError):
    """The run was about one document, and it is gone."""


def standalone_query(run: AgentRun, history: list[tuple[str, str]]) -> str:
    """The question to search for: a follow-up rewritten to stand alone."""
    return rewrite_query(
        run.question, history, encode=embedder.encode, provider=run.requested_provider or None
    )


@dataclass
class _Context:
    passages: list[Passage]
    query: str = ""  # what an ask searched for
    # What a declined answer shows as the nearest passages: the passages, or when the search
    # found nothing strong enough to read, the weak hits it left out.
    nearest: list[Passage] = field(default_factory=list)


def _retrieve(run: AgentRun, history: list[tuple[str, str]]) -> _Context:
    """The passages the provider reads (the same hits a search shows), and for an ask the
    query they were found with."""
    if run.kind == RunKind.ASK:
        query = standalone_query(run, history)
        # The run was authorised for its project when it was created.
        found = search.search(
            project_ids=[run.project_id], query=query, k=settings.AGENT_CONTEXT_CHUNKS, mode="hybrid"
        )
        hits = found.hits
        if run.document_id:
            hits = [h for h in hits if h.document_id == str(run.document_id)] or hits
        passages = [_passage(h, h.document_title) for h in hits]
        weak = [_passage(h, h.document_title) for h in found.weak]
        return _Context(passages, query, passages or weak)
    if run.document_scoped and not run.document_id:
        raise DocumentDeleted("The document was deleted before the run started.")
    if run.document_id:
        doc = run.document
        assert doc is not None
        chunks = doc.chunks.order_by("index").defer("embedding")
        return _Context([_passage(c, doc.title) for c in chunks])
    # A whole project: the opening passages of every ready document, evenly.
    chunks_qs = (
        Chunk.objects.filter(project_id=run.project_id, document__status=DocumentStatus.READY)
        .select_related("document")
        .defer("embedding", "document__text", "document__pasted_text")
        .order_by("document__created_at", "index")
    )
    opening = list(chunks_qs[: PROJECT_SUMMARY_PASSAGES * 4])
    if len(opening) > PROJECT_SUMMARY_PASSAGES:
        step = len(opening) / PROJECT_SUMMARY_PASSAGES
        opening = [opening[int(i * step)] for i in range(PROJECT_SUMMARY_PASSAGES)]
    return _Context([_passage(c, c.document.title) for c in opening])


def verify_citations(citations: list[Citation]) -> tuple[list[dict[str, Any]], int]:
    """Keep only citations whose quote is exactly the cited span of the document."""
    if not citations:
        return [], 0
    rows = Document.objects.filter(pk__in={c.document_id for c in citations}).values_list("pk", "text")
    texts = {str(pk): text for pk, text in rows}
    chunk_ids = set(
        Chunk.objects.filter(pk__in={c.chunk_id for c in citations}).values_list("pk", "document_id")
    )
    valid_chunks = {(pk, str(doc)) for pk, doc in chunk_ids}
    kept: list[dict[str, Any]] = []
    dropped = 0
    for c in citations:
        text = texts.get(str(c.document_id))
        ok = (
            text is not None
            and (c.chunk_id, str(c.document_id)) in valid_chunks
            and 0 <= c.start < c.end <= len(text)
            and text[c.start : c.end] == c.quote
        )
        if ok:
            kept.append(
                {
                    "document": str(c.document_id),
                    "chunk": c.chunk_id,
                    "start": c.start,
                    "end": c.end,
                    "quote": c.quote,
                }
            )
        else:
            dropped += 1
    places = locations.locate([(c["document"], c["start"], c["end"]) for c in kept])
    for citation, place in zip(kept, places, strict=True):
        citation["location"] = place
    return kept, dropped


def _nearest_located(items: Any, passages: list[Passage]) -> list[Any]:
    """The nearest passages, each with where it is in its file: its sentence's place when the
    provider gave the sentence's span, else its passage's."""
    spans: dict[Any, tuple[Any, Any, Any]] = {p.chunk_id: (p.document_id, p.start, p.end) for p in passages}
    found = [dict(item) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    wanted: list[tuple[Any, Any, Any]] = []
    for item in found:
        if isinstance(item.get("start"), int) and isinstance(item.get("end"), int):
            wanted.append((item.get("document"), item["start"], item["end"]))
        else:
            wanted.append(spans.get(item.get("chunk"), (None, None, None)))
    for item, place in zip(found, locations.locate(wanted), strict=True):
        item["location"] = place
    return found


class _Deltas:
    """Publishes answer text as a provider writes it; a fallback provider starts over."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self.provider: str | None = None
        self.sent = False
        self.started = time.monotonic()

    def bind(self, provider: Provider) -> Any:
        if self.provider is not None and self.provider != provider.name and self.sent:
            events.publish(self.run_id, "reset")
            self.sent = False
        self.provider = provider.name
        self.started = time.monotonic()  # each provider's own time to its first text
        return self

    def __call__(self, text: str) -> None:
        if text:
            if not self.sent:
                metrics.first_token(provider=self.provider or "", seconds=time.monotonic() - self.started)
            self.sent = True
            events.publish(self.run_id, "delta", text=text)


def _call(
    run: AgentRun, passages: list[Passage], history: list[tuple[str, str]]
) -> tuple[ProviderResult, bool, str]:
    options: dict[str, Any] = {"encode": embedder.encode, "provider": run.requested_provider or None}
    if run.kind == RunKind.ASK:
        deltas = _Deltas(run.pk)
        return run_with_breaker(
            lambda p: p.ask(run.question, passages, history, on_delta=deltas.bind(p)), **options
        )
    title = run.document.title if run.document else run.project.title
    if run.kind == RunKind.SUMMARIZE:
        return run_with_breaker(lambda p: p.summarize(title, passages), **options)
    return run_with_breaker(lambda p: p.extract(title, passages), **options)


def run_execute(*, run_id: Any) -> str:
    """Retrieve context, call the provider, verify citations, store the result."""
    if not _claim(run_id):
        log.info("run skipped (not claimable)", extra={"run_id": str(run_id)})
        return "skipped"
    run = AgentRun.objects.select_related("project", "document", "parent").filter(pk=run_id).first()
    if run is None:  # deleted between the claim and now
        return "skipped"
    log.info("run retrieving", extra={"run_id": str(run.pk), "status": "retrieving"})
    if run.attempts > 1:  # an earlier attempt may have streamed part of an answer
        events.publish(run.pk, "reset")
    events.publish(run.pk, "status", status=RunStatus.RETRIEVING, label=RunStatus.RETRIEVING.label)
    started = time.monotonic()
    query = ""
    try:
        history = _history(run) if run.kind == RunKind.ASK else []
        context = _retrieve(run, history)
        passages, query = context.passages, context.query
        if run.kind != RunKind.ASK and not passages:
            raise ProviderError("There is nothing to read yet: no document in scope is ready.")
        _set_status(run.pk, RunStatus.GENERATING)
        result, degraded, reason = _call(run, passages, history)
    except ProviderError as exc:
        return _fail(run.pk, str(exc)[:2000], started)
    except Exception as exc:
        log.exception("run crashed", extra={"run_id": str(run.pk)})
        return _fail(run.pk, f"The run failed unexpectedly ({type(exc).__name__}).", started)

    citations, dropped = verify_citations(result.citations)
    output = dict(result.output)
    output["answered"] = result.answered
    if query and query != run.question:
        output["search_query"] = query
    if dropped:
        output["dropped_citations"] = output.get("dropped_citations", 0) + dropped
    if not result.answered and not output.get("nearest"):
        # The provider's own (the sentence that matched in each passage) when it gave them.
        output["nearest"] = [
            {"document": p.document_id, "chunk": p.chunk_id, "title": p.document_title, "text": p.text[:300]}
            for p in context.nearest[:3]
        ]
    if output.get("nearest"):
        output["nearest"] = _nearest_located(output["nearest"], context.nearest)
    stored = AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED,
        status_changed_at=timezone.now(),
        answer=result.answer,
        output=output,
        citations=citations,
        provider=result.provider,
        model=result.model,
        degraded=degraded,
        degraded_reason=reason,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        latency_ms=int((time.monotonic() - started) * 1000),
        error="",
        finished_at=timezone.now(),
    )
    metrics.run_finished(
        provider=result.provider,
        status=RunStatus.SUCCEEDED,
        seconds=time.monotonic() - started,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
    )
    if not stored:  # deleted while it ran (its conversation, document or project)
        return _deleted_meanwhile(run.pk)
    if run.kind == RunKind.EXTRACT and run.document_id:
        _store_extraction(run.document_id, result.output)
    events.publish(run.pk, "done", status=RunStatus.SUCCEEDED)
    webhooks.emit(
        project_id=run.project_id, event="run.succeeded", data=lambda: _hook(run.pk, RunStatus.SUCCEEDED)
    )
    log.info(
        "run succeeded",
        extra={
            "run_id": str(run.pk),
            "status": "succeeded",
            "provider": result.provider,
            "degraded": degraded,
            "citations": len(citations),
            "dropped_citations": dropped,
        },
    )
    return RunStatus.SUCCEEDED


def _deleted_meanwhile(run_id: Any) -> str:
    """The run was deleted while it ran: drop its result, and the event log it wrote since."""
    events.forget(run_id)
    log.info("run deleted while it ran; result dropped", extra={"run_id": str(run_id)})
    return "skipped"


def _fail(run_id: Any, error: str, started: float) -> str:
    if not AgentRun.objects.filter(pk=run_id).exists():
        return _deleted_meanwhile(run_id)
    metrics.run_finished(provider="none", status=RunStatus.FAILED, seconds=time.monotonic() - started)
    _set_status(
        run_id,
        RunStatus.FAILED,
        error=error,
        latency_ms=int((time.monotonic() - started) * 1000),
        finished_at=timezone.now(),
    )
    events.publish(run_id, "done", status=RunStatus.FAILED)
    project_id = AgentRun.objects.filter(pk=run_id).values_list("project_id", flat=True).first()
    webhooks.emit(
        project_id=project_id, event="run.failed", data=lambda: _hook(run_id, RunStatus.FAILED, error)
    )
    return RunStatus.FAILED


def _hook(run_id: Any, status: str, reason: str = "") -> dict[str, Any]:
    """A run event's webhook data: ids, kind, status and reason (no question or answer text)."""
    found = AgentRun.objects.filter(pk=run_id).values("kind", "thread_id", "document_id", "provider").first()
    row: dict[str, Any] = dict(found or {})
    run: dict[str, Any] = {"id": str(run_id), "status": str(status), "kind": row.get("kind", "")}
    for key in ("thread_id", "document_id"):
        run[key] = str(row[key]) if row.get(key) else None
    run["provider"] = row.get("provider") or ""
    if reason:
        run["reason"] = reason[:500]
    return {"run": run}


def _store_extraction(document_id: Any, output: dict[str, Any]) -> None:
    doc = Document.objects.filter(pk=document_id).first()
    if doc is None:
        return
    metadata = dict(doc.metadata or {})
    for key in ("tags", "keywords", "entities"):
        if key in output:
            metadata[key] = output[key]
    doc.metadata = metadata
    documents_services.document_save_metadata(document=doc)


def runs_requeue_stuck(*, older_than_s: int | None = None) -> int:
    """Re-enqueue runs left queued (a lost publish) or running (a dead worker)."""
    from agents import tasks

    age = settings.STUCK_AFTER_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=age)
    ids = list(
        AgentRun.objects.filter(
            status__in=[RunStatus.QUEUED, RunStatus.RETRIEVING, RunStatus.GENERATING],
            status_changed_at__lt=cutoff,
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        tasks.enqueue_run(pk)
    return len(ids)
