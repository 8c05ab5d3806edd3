"""Docent as a Model Context Protocol server: search and cited answers as tools for assistants.

`/mcp` speaks the Streamable HTTP transport of the official `mcp` SDK, served by the same
ASGI app as the API (config/asgi.py), which also sends this app the ASGI lifespan so the
SDK's session manager runs for the worker's life. It is stateless: each POST carries one
JSON-RPC message and stands alone, so any web worker can answer any request, and a tool
call's reply is a Server-Sent Event stream, so `ask` streams progress notifications before
its result.

Every request carries a personal API key (`Authorization: Bearer dk_...`), checked by
`KeyGate` before the MCP layer sees the request: a missing, unknown, revoked or expired key
is a 401 with a JSON body and `WWW-Authenticate: Bearer`. A tool then runs as the key's
owner with the key attached (projects.access narrows the owner's projects to the key's),
only with the scope it needs, and counts against the API's rate limits:

    list_projects   read     one API request
    search          search   one API request (as GET /api/v1/search/ does)
    ask             ask      one API request and one agent run (as POST /api/v1/runs/ does)
    get_passage     read     one API request

A missing scope, a project outside the key, a rate limit, a failed run: each is an MCP tool
error (`isError: true`) whose text says what happened, never an HTTP 500. The tools call the
same selectors and services as the API, on a worker thread whose database connection is
closed after each call (an open `ask` waits on the event loop, holding neither).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.handlers.asgi import ASGIRequest
from django.db import IntegrityError, connection
from django.http import Http404, HttpRequest
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from accounts import keys
from accounts.models import ApiKey, Scope
from agents import events, presenting, selectors, services
from agents.models import AgentRun, RunKind, RunStatus
from core import ratelimit
from core.logging import client_ip_var, request_id_var, request_ip, user_id_var
from documents import locations, search
from documents import selectors as document_selectors
from projects import access
from projects import selectors as project_selectors

log = logging.getLogger(__name__)
request_log = logging.getLogger("docent.request")
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # an incoming X-Request-ID worth keeping

PATH = "/mcp"
# How long `ask` waits for its run before it gives up waiting (the run goes on; its id is returned).
ASK_WAIT_S = 300.0
# While no event arrives, the run's row is read this often (a worker that died, a lost log).
ROW_CHECK_S = 5.0
# Characters of the document's text shown on each side of a passage by get_passage.
NEIGHBOURS = 500
# The longest span get_passage returns (a passage is a chunk or a quote, not a whole book).
PASSAGE_MAX = 20_000
QUERY_MAX = 1000  # as the search API's `q`
# The API-key scope each tool needs: the one its API twin needs (tests/security/test_matrix.py).
TOOL_SCOPES: dict[str, str] = {
    "list_projects": Scope.READ.value,
    "search": Scope.SEARCH.value,
    "ask": Scope.ASK.value,
    "get_passage": Scope.READ.value,
}
# Progress of an ask: the run's statuses in order, and how far each is.
STEPS: dict[str, int] = {
    RunStatus.QUEUED.value: 1,
    RunStatus.RETRIEVING.value: 2,
    RunStatus.GENERATING.value: 3,
}
DONE_STEP = 4

INSTRUCTIONS = (
    "Docent answers questions from a team's documents, with citations checked against them. "
    "Call list_projects first to learn the project ids. search finds passages (each with a "
    "locator such as 'p. 3' and a link to it); ask gets an answer with verified citations, or a "
    "decline with the nearest passages when the documents do not say; get_passage reads a "
    "passage with the text around it. Quote the locator and link when you cite Docent."
)

server: MCPServer = MCPServer(
    "docent",
    title="Docent",
    instructions=INSTRUCTIONS,
    version=str(settings.SPECTACULAR_SETTINGS.get("VERSION", "")),
    log_level="WARNING",
)


# --- who is calling -------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The key a request authenticated with, its owner (acting through it) and the request."""

    key: ApiKey
    user: Any
    request: HttpRequest  # Django's view of the HTTP request: client address for rate limits
    base_url: str  # "https://docent.example", for absolute links
    request_id: str  # on every log line the call writes, as for the API's requests

    def link(self, path: str) -> str:
        return self.base_url + path


SCOPE_KEY = "docent.caller"


def _caller(ctx: Context) -> Caller:
    request = ctx.request_context.request
    caller = getattr(request, "scope", {}).get(SCOPE_KEY)
    if not isinstance(caller, Caller):  # KeyGate lets no request through without one
        raise ToolError("Not authenticated: send a personal API key (Authorization: Bearer dk_...).")
    return caller


def scope_missing(scope: str) -> str:
    return (
        f"This API key does not have the `{scope}` scope, which this tool needs. "
        "Create a key with it on your account's API keys page."
    )


def unexpected(caller: Caller, then: str = "") -> str:
    """What a client is told of an error of Docent's own (its details stay in the log)."""
    said = f"Something went wrong on Docent's side (request {caller.request_id}); it is logged."
    return f"{said} {then}".strip()


def _messages(exc: DjangoValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


T = TypeVar("T")


async def _run(
    ctx: Context, tool: str, limits: tuple[ratelimit.Limit, ...], work: Callable[[Caller], T]
) -> T:
    """Check the key has the tool's scope, count the call against the API's limits, then do
    `work` on a worker thread (its database connection closed after), every refusal a tool error."""
    caller = _caller(ctx)
    scope = TOOL_SCOPES[tool]
    started = time.monotonic()

    def in_thread() -> T:
        ids = (request_id_var.set(caller.request_id), user_id_var.set(str(caller.user.pk)))
        address = client_ip_var.set(request_ip(caller.request))
        outcome = "error"
        try:
            if not keys.key_allows(caller.key, scope):
                raise ToolError(scope_missing(scope))
            for limit in limits:
                refusal = ratelimit.hit(limit, caller.request, user=caller.user)
                if refusal is not None:
                    raise ToolError(refusal.message)
            done = work(caller)
            outcome = "ok"
            return done
        except Http404 as exc:
            raise ToolError(f"Not found: {exc}" if str(exc) else "Not found.") from None
        except PermissionDenied as exc:
            raise ToolError(str(exc) or "You do not have permission to do this.") from None
        except DjangoValidationError as exc:
            raise ToolError(_messages(exc)) from None
        except ToolError:
            raise
        except Exception:
            # Logged here, with the request id; the client is told no more than that.
            log.exception("mcp tool failed", extra={"tool": tool})
            raise ToolError(unexpected(caller)) from None
        finally:
            connection.close()
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            log.info("mcp tool", extra={"tool": tool, "outcome": outcome, "duration_ms": duration_ms})
            request_id_var.reset(ids[0])
            user_id_var.reset(ids[1])
            client_ip_var.reset(address)

    return await sync_to_async(in_thread, thread_sensitive=False)()


async def _db(read: Callable[[], T]) -> T:
    """A read on a worker thread, its connection closed after (between the waits of an ask)."""

    def in_thread() -> T:
        try:
            return read()
        finally:
            connection.close()

    return await sync_to_async(in_thread, thread_sensitive=False)()


# --- how passages read --------------------------------------------------------------


def _href(caller: Caller, document_id: Any, fmt: str, start: Any, end: Any, **extra: Any) -> str:
    return caller.link(locations.source_href(document_id, fmt, start, end, **extra))


def _passage(caller: Caller, hit: search.Hit) -> dict[str, Any]:
    return {
        "document": hit.document_id,
        "title": hit.document_title,
        "project": hit.project_id,
        "project_title": hit.project_title,
        "text": hit.text,
        "start": hit.start,
        "end": hit.end,
        "score": hit.score,
        "locator": locations.label(hit.location),
        "location": hit.location,
        "link": _href(caller, hit.document_id, hit.document_format, hit.start, hit.end),
    }


# --- the tools ------------------------------------------------------------------------

ProjectId = Annotated[str, Field(description="A project id (from list_projects).")]


@server.tool(
    description="The projects this key may use, with your role in each (viewer, editor or owner) "
    "and how many documents each holds. Needs the `read` scope."
)
async def list_projects(ctx: Context) -> dict[str, Any]:
    def work(caller: Caller) -> dict[str, Any]:
        rows = project_selectors.projects_for_list(caller.user).order_by("title", "pk")
        return {
            "projects": [
                {
                    "id": str(project.pk),
                    "title": project.title,
                    "description": project.description,
                    "role": project.my_role,  # type: ignore[attr-defined]
                    "documents": project.document_count,  # type: ignore[attr-defined]
                }
                for project in rows
            ]
        }

    return await _run(ctx, "list_projects", (ratelimit.API,), work)


@server.tool(
    name="search",
    description="Search the documents: hybrid (meaning and words, the default), dense (meaning) "
    "or lexical (words). Returns the best passages, each with its document, project, text, "
    "offsets, locator ('p. 3', 'Slide 4') and a link that opens it. Searches every project the "
    "key may use unless `projects` names some. Needs the `search` scope.",
)
async def search_documents(
    ctx: Context,
    query: Annotated[str, Field(description="What to look for.")],
    projects: Annotated[
        list[str] | None, Field(description="Only these project ids (default: all the key's projects).")
    ] = None,
    k: Annotated[int, Field(description="How many passages at most (1 to DOCENT_SEARCH_MAX_K).")] = 10,
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid",
) -> dict[str, Any]:
    query = (query or "").strip()
    if not query:
        raise ToolError("The query is empty.")
    if len(query) > QUERY_MAX:
        raise ToolError(f"A query has at most {QUERY_MAX:,} characters.")
    if not 1 <= k <= settings.SEARCH_MAX_K:
        raise ToolError(f"k must be between 1 and {settings.SEARCH_MAX_K}.")

    def work(caller: Caller) -> dict[str, Any]:
        if projects:
            # Each named project checked as the API checks it: one outside the key is not found.
            ids = [access.project_for(caller.user, pid).pk for pid in dict.fromkeys(projects)]
            found = search.search(project_ids=ids, query=query, k=k, mode=mode)
        else:
            found = search.search_for(user=caller.user, query=query, k=k, mode=mode)
        return {
            "query": query,
            "mode": mode,
            "results": [_passage(caller, hit) for hit in found.hits],
            "left_out": found.left_out,
        }

    return await _run(ctx, "search", (ratelimit.API,), work)


@server.tool(
    description="Read a passage of a document by its offsets (as search and ask return them), "
    f"with up to {NEIGHBOURS} characters of the text before and after it, its locator and a "
    "link. Needs the `read` scope."
)
async def get_passage(
    ctx: Context,
    document: Annotated[str, Field(description="The document id.")],
    start: Annotated[int, Field(description="Where the passage starts in the document's text.")],
    end: Annotated[int, Field(description="Where it ends (exclusive).")],
) -> dict[str, Any]:
    def work(caller: Caller) -> dict[str, Any]:
        doc = document_selectors.document_for(caller.user, document)
        text = doc.text or ""
        if not text:
            raise ToolError(f"The document has no text yet (it is {doc.get_status_display().lower()}).")
        if not 0 <= start < end <= len(text):
            raise ToolError(
                f"Not a span of this document: start and end must satisfy 0 <= start < end <= {len(text):,}."
            )
        if end - start > PASSAGE_MAX:
            raise ToolError(f"A passage is at most {PASSAGE_MAX:,} characters; ask for a shorter span.")
        place = locations.locate([(doc.pk, start, end)], project_ids=[doc.project_id])[0]
        return {
            "document": str(doc.pk),
            "title": doc.title,
            "project": str(doc.project_id),
            "project_title": doc.project.title,
            "start": start,
            "end": end,
            "text": text[start:end],
            "before": text[max(0, start - NEIGHBOURS) : start],
            "after": text[end : end + NEIGHBOURS],
            "document_length": len(text),
            "locator": locations.label(place),
            "location": place,
            "link": _href(caller, doc.pk, doc.format, start, end),
        }

    return await _run(ctx, "get_passage", (ratelimit.API,), work)


@server.tool(
    description="Ask a question of a project's documents. Waits for the answer (progress "
    "notifications follow the run: queued, retrieving, generating, done) and returns it with its "
    "verified citations (quote, document, locator, link), or, when the documents do not support an "
    "answer, the decline with the nearest passages. Pass `thread` to ask a follow-up in the same "
    "conversation. Needs the `ask` scope."
)
async def ask(
    ctx: Context,
    question: Annotated[str, Field(description="The question.")],
    project: ProjectId,
    thread: Annotated[
        str | None, Field(description="A conversation id (from an earlier ask) to continue.")
    ] = None,
    allow_offline: Annotated[
        bool, Field(description="Use the offline provider when the token budget is spent.")
    ] = False,
) -> dict[str, Any]:
    def create(caller: Caller) -> tuple[Caller, AgentRun]:
        target = access.project_for(caller.user, project)
        conversation = selectors.thread_for(caller.user, thread) if thread else None
        try:
            run = services.run_create(
                user=caller.user,
                project=target,
                kind=RunKind.ASK,
                question=question,
                thread=conversation,
                allow_offline=allow_offline,
            )
        except services.TokenBudgetExceeded as exc:
            raise ToolError(str(exc)) from None
        except IntegrityError:  # its project or conversation was deleted meanwhile
            raise ToolError("The project or conversation was deleted meanwhile.") from None
        return caller, run

    caller, run = await _run(ctx, "ask", (ratelimit.API, ratelimit.RUNS), create)
    try:
        await _follow(ctx, run.pk)
        finished = await _db(lambda: selectors.runs_visible_to(caller.user).filter(pk=run.pk).first())
    except Exception:
        log.exception("mcp ask failed while waiting", extra={"run_id": str(run.pk)})
        raise ToolError(
            unexpected(caller, f"The run {run.pk} was queued; GET /api/v1/runs/{run.pk}/ shows it.")
        ) from None
    if finished is None:
        raise ToolError("The run was deleted while it ran.")
    if not finished.finished:
        raise ToolError(
            f"No answer within {int(ASK_WAIT_S)} seconds; the run goes on. "
            f"Its id is {finished.pk}: GET /api/v1/runs/{finished.pk}/ shows it when it is done."
        )
    if finished.status == RunStatus.FAILED:
        raise ToolError(f"The run failed: {finished.error or 'no reason recorded'}")
    try:
        return await _db(lambda: _answer(caller, finished))
    except Exception:
        log.exception("mcp ask could not present its run", extra={"run_id": str(run.pk)})
        raise ToolError(unexpected(caller, f"GET /api/v1/runs/{run.pk}/ shows the run.")) from None


async def _follow(ctx: Context, run_id: Any) -> None:
    """Wait for the run to finish, reporting each status it reaches as progress."""
    step = 0

    labels = {number: RunStatus(status).label for status, number in STEPS.items()} | {DONE_STEP: "Done"}

    async def report(status: str, label: str) -> None:
        nonlocal step
        reached = STEPS.get(status, DONE_STEP)
        # Every step in order, one each: a step the run passed between two looks (the row
        # already says generating) is reported before the one it reached.
        while step < reached:
            step += 1
            await ctx.report_progress(step, DONE_STEP, labels[step])

    await report(RunStatus.QUEUED, RunStatus.QUEUED.label)
    deadline = time.monotonic() + ASK_WAIT_S
    cursor: str | None = None
    checked = time.monotonic()
    while time.monotonic() < deadline:
        wait_s = min(ROW_CHECK_S, max(0.0, deadline - time.monotonic()))
        try:
            batch = await events.read(run_id, cursor, wait_s=wait_s)
        except Exception:  # the carrier is down: the run's row still tells where it stands
            log.warning("could not read a run's events", exc_info=True, extra={"run_id": str(run_id)})
            batch = []
            await asyncio.sleep(wait_s)
        for event in batch:
            cursor = event.id
            if event.type == "status":
                await report(str(event.data.get("status", "")), str(event.data.get("label", "")))
            elif event.type == "done":
                await report("done", "Done")
                return
        if time.monotonic() - checked >= ROW_CHECK_S or not batch:
            checked = time.monotonic()
            status = await _db(
                lambda: AgentRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
            )
            if status is None or status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                await report("done", "Done")
                return
            if status in STEPS:
                await report(status, RunStatus(status).label)


def _answer(caller: Caller, run: AgentRun) -> dict[str, Any]:
    raw_citations = (
        [dict(c) for c in run.citations if isinstance(c, dict)] if isinstance(run.citations, list) else []
    )
    output = run.output if isinstance(run.output, dict) else {}
    raw_nearest = output.get("nearest")
    nearest = [i for i in raw_nearest if isinstance(i, dict)] if isinstance(raw_nearest, list) else []
    ids = [item.get("document") for item in [*raw_citations, *nearest]]
    docs = presenting.visible_documents(caller.user, ids)
    presenting.with_locations(raw_citations, project_ids=[run.project_id])
    result: dict[str, Any] = {
        "run": str(run.pk),
        "thread": str(run.thread_id) if run.thread_id else None,
        "project": str(run.project_id),
        "question": run.question,
        "answered": bool(run.answered),
        "answer": run.answer,
        "provider": run.provider,
        "model": run.model,
        "degraded": run.degraded,
    }
    citations = []
    for number, item in enumerate(raw_citations, start=1):
        doc_id = str(item.get("document", ""))
        title, fmt = docs.get(doc_id, ("", ""))
        start, end = item.get("start"), item.get("end")
        citations.append(
            {
                "number": number,
                "quote": item.get("quote", ""),
                "document": doc_id,
                "title": title or None,
                "start": start,
                "end": end,
                "locator": item.get("location_label", ""),
                "location": item.get("location"),
                "link": _href(caller, doc_id, fmt, start, end, run=run.pk, cite=number)
                if doc_id in docs and isinstance(start, int)
                else None,
                "deleted": bool(item.get("deleted")) or doc_id not in docs,
            }
        )
    result["citations"] = citations
    if not result["answered"]:
        items = [dict(item) for item in nearest]
        presenting.with_locations(items, project_ids=[run.project_id])
        result["nearest"] = [
            {
                "document": str(item.get("document", "")),
                "title": docs.get(str(item.get("document", "")), (item.get("title", ""), ""))[0],
                "text": item.get("text", ""),
                "start": item.get("start"),
                "end": item.get("end"),
                "locator": item.get("location_label", ""),
                "location": item.get("location"),
                "link": _href(
                    caller, item["document"], docs[str(item["document"])][1], item["start"], item["end"]
                )
                if str(item.get("document", "")) in docs
                and isinstance(item.get("start"), int)
                and isinstance(item.get("end"), int)
                else None,
            }
            for item in items
            if str(item.get("document", "")) in docs  # never a passage of a document gone or hidden
        ]
    return result


# --- the HTTP door --------------------------------------------------------------------


NO_KEY = "Send a personal API key: Authorization: Bearer dk_... (create one on your account's API keys page)."
# A JSON-RPC request is a question or a search: far below this. Larger bodies are refused at the door.
BODY_MAX_BYTES = 1024 * 1024
TOO_LARGE = f"The request body is larger than {BODY_MAX_BYTES // 1024} KB."
ONLY_POST = "Only POST: this MCP server is stateless, with no event stream to GET and no session to DELETE."
CANNOT_CHECK = "Docent cannot check API keys just now; try again in a moment."
NOT_RUNNING = "The MCP server is not running in this process: its ASGI server must send the lifespan events."
# JSON-RPC error codes of refusals made before the MCP layer (-32000 to -32099: the server's own).
UNAUTHORIZED, TOO_MANY, BAD_REQUEST, UNAVAILABLE = -32001, -32002, -32600, -32603
CHALLENGE = (b"www-authenticate", b'Bearer realm="mcp"')


@dataclass(frozen=True)
class Refused:
    """A request answered at the door: the API's `{"detail", "code"}` body, which is also a
    JSON-RPC error (so an MCP client shows the reason, not just the status)."""

    status: int
    detail: str
    code: str
    rpc_code: int
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def send(self, send: Send) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": self.rpc_code, "message": self.detail},
            "detail": self.detail,
            "code": self.code,
        }
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def authenticate(scope: AsgiScope, request_id: str) -> Caller | Refused:
    """The caller of an MCP request, or why it is refused (on a worker thread: it reads the key)."""
    request = ASGIRequest(scope, io.BytesIO())
    try:
        base_url = request.build_absolute_uri("/").rstrip("/")
    except DisallowedHost:
        return Refused(400, "This host name is not served here.", "bad_host", BAD_REQUEST)
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        refused = Refused(401, NO_KEY, "not_authenticated", UNAUTHORIZED, (CHALLENGE,))
    else:
        try:
            key = keys.authenticate_key(parts[1])
        except keys.KeyRefused as exc:
            refused = Refused(401, str(exc), exc.code, UNAUTHORIZED, (CHALLENGE,))
        else:
            return Caller(key=key, user=key.owner, request=request, base_url=base_url, request_id=request_id)
    # Refused requests count against the anonymous allowance, as the API's 401s do.
    over = ratelimit.hit(ratelimit.ANON, request)
    if over is not None:
        retry = (b"retry-after", str(over.retry_after_s).encode())
        return Refused(429, over.message, over.limit.name, TOO_MANY, (retry,))
    return refused


def _bounded(receive: Receive) -> Receive:
    """The request's body as the SDK reads it, cut off (as a disconnect) past BODY_MAX_BYTES, for a
    body sent without a Content-Length (chunked)."""
    taken = 0

    async def bounded() -> Message:
        nonlocal taken
        message = await receive()
        if message["type"] == "http.request":
            taken += len(message.get("body", b""))
            if taken > BODY_MAX_BYTES:
                return {"type": "http.disconnect"}
        return message

    return bounded


class KeyGate:
    """/mcp's door: a request without a valid API key is answered 401 here, before the SDK."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.running = False

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._observed(send))
            return
        if scope["type"] != "http":
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if SAFE_ID.match(incoming) else uuid.uuid4().hex
        started, answered = time.monotonic(), [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        found: Caller | Refused | None = None
        try:
            if not self.running:
                await Refused(503, NOT_RUNNING, "not_running", UNAVAILABLE).send(sending)
                return

            def in_thread() -> Caller | Refused:
                token = request_id_var.set(rid)
                try:
                    return authenticate(scope, rid)
                except Exception:  # the database or cache is down: a 503, never a 500
                    log.exception("mcp could not check a key")
                    return Refused(503, CANNOT_CHECK, "unavailable", UNAVAILABLE, ((b"retry-after", b"30"),))
                finally:
                    connection.close()
                    request_id_var.reset(token)

            found = await sync_to_async(in_thread, thread_sensitive=False)()
            if isinstance(found, Refused):
                await found.send(sending)
                return
            if scope.get("method") != "POST":
                # Stateless: no stream for the server's own messages (GET), no session to end
                # (DELETE). The spec's answer for a server that offers neither is 405.
                allow = ((b"allow", b"POST"),)
                await Refused(405, ONLY_POST, "method_not_allowed", BAD_REQUEST, allow).send(sending)
                return
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > BODY_MAX_BYTES):
                await Refused(413, TOO_LARGE, "too_large", BAD_REQUEST).send(sending)
                return
            # The SDK's route is /mcp; /mcp/ is the same endpoint, not a redirect.
            path = PATH if scope.get("path") in (PATH, PATH + "/") else scope.get("path", "")
            inner = {**scope, "path": path, "raw_path": path.encode(), SCOPE_KEY: found}
            await self.app(inner, _bounded(receive), sending)
        finally:
            # One line per request, as core.logging writes for every other one.
            ids = (
                request_id_var.set(rid),
                user_id_var.set(str(found.user.pk) if isinstance(found, Caller) else ""),
            )
            request_log.info(
                "request",
                extra={
                    "method": scope.get("method", ""),
                    "path": scope.get("path", ""),
                    "status": answered[0],
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            request_id_var.reset(ids[0])
            user_id_var.reset(ids[1])

    def _observed(self, send: Send) -> Send:
        async def observed(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.running = True
            elif message["type"].startswith("lifespan.shutdown"):
                self.running = False
            await send(message)

        return observed


def asgi_app() -> KeyGate:
    """The ASGI app for /mcp (and the lifespan), built once per process by config/asgi.py."""
    starlette = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,  # each request stands alone: any worker serves it
        json_response=False,  # SSE replies, so ask's progress notifications stream
        # Hosts are checked against ALLOWED_HOSTS by KeyGate; a bearer key (never a cookie)
        # authenticates, so a page in a browser cannot use someone's access by rebinding DNS.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return KeyGate(starlette)
