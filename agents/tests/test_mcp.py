"""The MCP server at /mcp (agents/mcp.py), spoken to by the official SDK's own client over
Streamable HTTP, against a real web server (gunicorn + uvicorn workers running config.asgi)
on the test database, and a real Celery worker for `ask`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from accounts import keys
from accounts.models import Scope
from conftest import make_project
from core import ratelimit
from documents import services as document_services
from documents.models import Document, DocumentStatus
from tests.servers import web_server
from tests.worker import celery_worker, database_url

pytestmark = pytest.mark.django_db(transaction=True)

PUMP = (
    b"# Brightwater pump\n\n"
    b"The Brightwater pump was installed at the river station in 2019. "
    b"It was designed by Ada Okafor at Hydrowerk.\n\n"
    b"# Maintenance\n\n"
    b"The intake filter must be cleaned every two weeks during the summer.\n"
)
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One web server for the module (each test's rows are committed, so it sees them)."""
    folder = tmp_path_factory.mktemp("mcp-web")
    with django_db_blocker.unblock():
        url = database_url()
    env = {"DATABASE_URL": url, "DOCENT_DATA_DIR": str(folder), "DOCENT_LLM_PROVIDER": "offline"}
    with web_server(env, folder / "web.log") as base:
        yield base


@pytest.fixture
def pump(user: Any, project: Any) -> Document:
    """A Markdown document in the owner's project, ingested: its sections are its locators."""
    upload = SimpleUploadedFile("pump.md", PUMP, content_type="text/markdown")
    doc = document_services.document_create(user=user, project=project, upload=upload, title="Pump notes")
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY, doc.error
    return doc


def new_key(user: Any, scopes: Any = tuple(Scope.values), projects: Any = ()) -> str:
    return keys.key_create(user=user, name="assistant", scopes=scopes, projects=projects)[1]


def talk(
    base: str,
    key: str,
    conversation: Callable[[ClientSession], Awaitable[T]],
    statuses: list[int] | None = None,
) -> tuple[T, list[int]]:
    """Open an MCP session with the SDK's client, hold `conversation`, and return what it
    returned with the HTTP statuses the server answered (also collected in `statuses`)."""
    statuses = [] if statuses is None else statuses

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async def run() -> T:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx2.Timeout(30, read=300),
            event_hooks={"response": [record]},
        )
        async with (
            http,
            streamable_http_client(f"{base}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await conversation(session)

    return asyncio.run(run()), statuses


def call(base: str, key: str, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    async def conversation(session: ClientSession) -> Any:
        return await session.call_tool(tool, arguments or {})

    return talk(base, key, conversation)[0]


def text_of(result: Any) -> str:
    return " ".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def raw_post(base: str, body: bytes, headers: dict[str, str]) -> httpx2.Response:
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    return httpx2.post(f"{base}/mcp", content=body, headers=sent, timeout=30)


# --- the tools ------------------------------------------------------------------------


def test_a_client_lists_the_four_tools_and_the_keys_projects_with_roles(
    server: str, user: Any, project: Any, other_user: Any
) -> None:
    make_project(other_user, title="Not mine")

    async def conversation(session: ClientSession) -> Any:
        return await session.list_tools(), await session.call_tool("list_projects", {})

    (tools, result), statuses = talk(server, new_key(user), conversation)

    assert {tool.name for tool in tools.tools} == {"list_projects", "search", "ask", "get_passage"}
    assert not result.is_error, text_of(result)
    projects = result.structured_content["projects"]
    assert [(p["id"], p["title"], p["role"]) for p in projects] == [(str(project.pk), "Research", "owner")]
    assert statuses and all(status < 300 for status in statuses)


def test_search_returns_a_passage_with_its_locator_and_a_link_to_it(
    server: str, user: Any, pump: Document
) -> None:
    result = call(server, new_key(user), "search", {"query": "Who designed the Brightwater pump?", "k": 3})

    assert not result.is_error, text_of(result)
    hits = result.structured_content["results"]
    assert hits, result.structured_content
    hit = hits[0]
    assert hit["document"] == str(pump.pk) and hit["title"] == "Pump notes"
    assert hit["project"] == str(pump.project_id)
    assert "Ada Okafor" in hit["text"]
    assert pump.text[hit["start"] : hit["end"]] == hit["text"]
    assert hit["locator"] == "§ Brightwater pump"
    link = urlsplit(hit["link"])
    assert f"{link.scheme}://{link.netloc}" == server
    assert link.path == f"/documents/{pump.pk}/" and f"start={hit['start']}" in link.query
    # The link opens the passage for its owner.
    page = httpx2.get(hit["link"], follow_redirects=False, timeout=30)
    assert page.status_code == 302  # to sign in: it is the document's page, not a public one


def test_get_passage_returns_the_text_with_its_neighbours_locator_and_link(
    server: str, user: Any, pump: Document
) -> None:
    start = pump.text.index("It was designed")
    end = start + len("It was designed by Ada Okafor at Hydrowerk.")
    key = new_key(user, scopes=[Scope.READ])

    result = call(server, key, "get_passage", {"document": str(pump.pk), "start": start, "end": end})

    assert not result.is_error, text_of(result)
    passage = result.structured_content
    assert passage["text"] == "It was designed by Ada Okafor at Hydrowerk."
    assert passage["before"].endswith("installed at the river station in 2019. ")
    assert passage["after"].lstrip().startswith("# Maintenance")
    assert passage["locator"] == "§ Brightwater pump"
    assert passage["link"].startswith(f"{server}/documents/{pump.pk}/?start={start}&end={end}")

    bad = call(server, key, "get_passage", {"document": str(pump.pk), "start": end, "end": start})
    assert bad.is_error and "Not a span of this document" in text_of(bad)


@pytest.mark.worker
def test_ask_streams_progress_and_returns_the_answer_with_verified_citations(
    server: str, user: Any, project: Any, pump: Document, tmp_path: Path
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def conversation(session: ClientSession) -> Any:
        arguments = {"question": "Who designed the Brightwater pump?", "project": str(project.pk)}
        answered = await session.call_tool("ask", arguments, progress_callback=on_progress)
        unknown = {"question": "What does the intake filter of the pump cost?", "project": str(project.pk)}
        return answered, await session.call_tool("ask", unknown)

    with celery_worker(tmp_path, queues="agents", extra_env={"DOCENT_LLM_PROVIDER": "offline"}):
        (result, declined), _ = talk(server, new_key(user, scopes=[Scope.ASK]), conversation)

    assert not result.is_error, text_of(result)
    answer = result.structured_content
    assert answer["answered"] is True and "Ada Okafor" in answer["answer"]
    assert answer["thread"] and answer["project"] == str(project.pk)
    citation = answer["citations"][0]
    assert citation["document"] == str(pump.pk) and citation["title"] == "Pump notes"
    assert citation["quote"] and citation["quote"] in pump.text
    assert citation["locator"] == "§ Brightwater pump"
    assert citation["link"].startswith(f"{server}/documents/{pump.pk}/?")
    # Progress notifications reached the client as the run went on, one per status.
    assert seen == [(1, 4, "Queued"), (2, 4, "Retrieving"), (3, 4, "Generating"), (4, 4, "Done")]

    # The documents do not say: the decline, with the nearest passages and where they are.
    assert not declined.is_error, text_of(declined)
    decline = declined.structured_content
    assert decline["answered"] is False and decline["citations"] == []
    nearest = decline["nearest"][0]
    assert nearest["document"] == str(pump.pk) and "intake filter" in nearest["text"]
    assert nearest["locator"] == "§ Maintenance"
    assert nearest["link"].startswith(f"{server}/documents/{pump.pk}/?")


# --- refusals -------------------------------------------------------------------------


def test_a_key_without_the_scope_a_tool_needs_gets_a_tool_error_naming_it(
    server: str, user: Any, project: Any
) -> None:
    key = new_key(user, scopes=[Scope.READ])

    async def conversation(session: ClientSession) -> Any:
        searched = await session.call_tool("search", {"query": "pump"})
        asked = await session.call_tool("ask", {"question": "Who?", "project": str(project.pk)})
        return searched, asked

    (searched, asked), statuses = talk(server, key, conversation)

    assert searched.is_error and "`search` scope" in text_of(searched)
    assert asked.is_error and "`ask` scope" in text_of(asked)
    assert 500 not in statuses
    assert not project.runs.exists()


def test_a_project_outside_the_key_is_not_found(server: str, user: Any, project: Any, pump: Document) -> None:
    elsewhere = make_project(user, title="Elsewhere")
    key = new_key(user, projects=[elsewhere.pk])

    async def conversation(session: ClientSession) -> Any:
        return (
            await session.call_tool("list_projects", {}),
            await session.call_tool("search", {"query": "pump", "projects": [str(project.pk)]}),
            await session.call_tool("search", {"query": "Brightwater pump designed"}),
            await session.call_tool("ask", {"question": "Who designed it?", "project": str(project.pk)}),
            await session.call_tool("get_passage", {"document": str(pump.pk), "start": 0, "end": 10}),
        )

    (listed, named, everywhere, asked, passage), _ = talk(server, key, conversation)

    assert [p["id"] for p in listed.structured_content["projects"]] == [str(elsewhere.pk)]
    assert named.is_error and "Not found: No such project." in text_of(named)
    assert not everywhere.is_error and everywhere.structured_content["results"] == []
    assert asked.is_error and "No such project" in text_of(asked)
    assert passage.is_error and "No such document" in text_of(passage)
    assert "Ada Okafor" not in text_of(passage) + text_of(everywhere)
    assert not project.runs.exists()


def test_tools_count_against_the_apis_rate_limits(server: str, user: Any, project: Any) -> None:
    """The same counters as the API's (in the shared cache): this process spends all but one
    of the hour's API requests, the MCP server the last; then every tool is refused, and an
    ask when the runs allowance is spent creates no run."""
    request = RequestFactory().get("/api/v1/projects/")
    for _ in range(ratelimit.allowance(ratelimit.API, user) - 1):
        assert ratelimit.hit(ratelimit.API, request, user=user) is None

    async def conversation(session: ClientSession) -> Any:
        return await session.call_tool("list_projects", {}), await session.call_tool("list_projects", {})

    (last, refused), _ = talk(server, new_key(user), conversation)

    assert not last.is_error, text_of(last)
    assert refused.is_error and "Too many API requests: the limit is" in text_of(refused)

    cache.clear()
    for _ in range(ratelimit.allowance(ratelimit.RUNS, user)):
        assert ratelimit.hit(ratelimit.RUNS, request, user=user) is None
    asked = call(server, new_key(user), "ask", {"question": "Who designed it?", "project": str(project.pk)})
    assert asked.is_error and "Too many agent runs" in text_of(asked)
    assert not project.runs.exists()


def test_a_revoked_key_is_refused_with_401_before_the_mcp_layer(server: str, user: Any) -> None:
    key, raw = keys.key_create(user=user, name="old", scopes=list(Scope.values))
    keys.key_revoke(key=key, actor=user)

    async def conversation(session: ClientSession) -> Any:
        raise AssertionError("initialized with a revoked key")

    statuses: list[int] = []
    # The client's initialize fails (inside its task groups) with the server's reason.
    revoked = pytest.RaisesExc(MCPError, match="This API key was revoked", check=lambda e: e.code == -32001)
    with pytest.RaisesGroup(revoked, flatten_subgroups=True):
        talk(server, raw, conversation, statuses)
    assert statuses == [401]

    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    response = raw_post(server, json.dumps(initialize).encode(), {"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "key_revoked"
    assert response.json()["error"]["message"] == "This API key was revoked."


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("", "not_authenticated"),
        ("Bearer dk_nope", "key_malformed"),
        ("Basic dXNlcjpwYXNz", "not_authenticated"),
    ],
)
def test_a_request_without_a_valid_key_is_a_401_with_a_json_error(
    server: str, authorization: str, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/mcp", "/mcp/"):
        response = httpx2.post(f"{server}{path}", content=b"{}", headers=headers, timeout=30)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["code"] == code


def test_a_malformed_request_is_a_json_rpc_error_not_a_500(server: str, user: Any) -> None:
    auth = {"Authorization": f"Bearer {new_key(user)}"}

    not_json = raw_post(server, b"{this is not json", auth)
    assert 400 <= not_json.status_code < 500
    assert not_json.json()["error"]["code"] == -32700  # parse error

    not_rpc = raw_post(server, json.dumps({"hello": "world"}).encode(), auth)
    assert 400 <= not_rpc.status_code < 500
    assert not_rpc.json()["jsonrpc"] == "2.0" and "error" in not_rpc.json()

    too_large = raw_post(server, b'{"jsonrpc": "2.0", "pad": "' + b"x" * (1024 * 1024) + b'"}', auth)
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large"

    # Stateless: no stream to open, no session to end.
    for method in ("GET", "DELETE"):
        sent = {**auth, "Accept": "text/event-stream"}
        response = httpx2.request(method, f"{server}/mcp", headers=sent, timeout=30)
        assert response.status_code == 405 and response.headers["Allow"] == "POST", method

    # A well-formed call to a tool with arguments of the wrong shape: a tool error, not a crash.
    bad_arguments = call(server, auth["Authorization"].split()[1], "search", {"query": "pump", "k": 0})
    assert bad_arguments.is_error and "k must be between 1 and" in text_of(bad_arguments)
