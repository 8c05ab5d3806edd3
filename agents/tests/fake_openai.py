"""A fake OpenAI-compatible server on loopback, for testing with the real `openai` client.

It serves ``POST /v1/chat/completions``: a ``chat.completion`` object, or with
``"stream": true`` Server-Sent Events of ``chat.completion.chunk`` objects
(the reply text cut into small pieces, then a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``), the shape
OpenAI, llama.cpp, vLLM and Ollama send. What it does for each request comes
from a queue of behaviours (then ``default``):

    server.push(reply_json({...}), status(429, retry_after=1), hang(5), broken_stream(text, after=3))
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents.tests.loopback import LoopbackServer

ROUTE = "/v1/chat/completions"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


@dataclass
class Behaviour:
    kind: str  # "reply", "status", "hang", "broken", "stall", "garbage"
    text: str = ""
    code: int = 200
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str = "stop"
    after: int = 0  # broken/stall: pieces sent before the stream breaks
    headers: dict[str, str] = field(default_factory=dict)


def reply_json(data: Any, *, input_tokens: int = 11, output_tokens: int = 7) -> Behaviour:
    return reply_text(json.dumps(data), input_tokens=input_tokens, output_tokens=output_tokens)


def reply_text(
    text: str, *, input_tokens: int = 11, output_tokens: int = 7, finish_reason: str = "stop"
) -> Behaviour:
    """A 200 whose model text is `text` (which need not be JSON: for malformed output)."""
    return Behaviour(
        "reply",
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=finish_reason,
    )


def status(code: int, message: str = "", *, retry_after: float | None = None) -> Behaviour:
    """An error response in OpenAI's JSON error shape, optionally with Retry-After."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Behaviour("status", code=code, text=message or f"fake error {code}", headers=headers)


def hang(seconds: float) -> Behaviour:
    """Say nothing for `seconds` (longer than the client's timeout), then a 500."""
    return Behaviour("hang", seconds=seconds)


def broken_stream(text: str, *, after: int) -> Behaviour:
    """Stream the first `after` pieces of `text`, then drop the connection mid-body."""
    return Behaviour("broken", text=text, after=after)


def stalled_stream(text: str, *, after: int, seconds: float) -> Behaviour:
    """Stream the first `after` pieces of `text`, then go silent for `seconds`."""
    return Behaviour("stall", text=text, after=after, seconds=seconds)


def garbage_stream(body: str = "data: {not json at all\n\n") -> Behaviour:
    """A 200 event stream whose events are not the JSON they should be."""
    return Behaviour("garbage", text=body)


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def system(self) -> str:
        return "".join(m.get("content", "") for m in self.messages if m.get("role") == "system")

    @property
    def prompt(self) -> str:
        return "".join(m.get("content", "") for m in self.messages if m.get("role") == "user")

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class FakeOpenAI(LoopbackServer):
    handler = None  # set below, once the handler class exists
    thread_name = "fake-openai"

    default: Behaviour = field(default_factory=lambda: status(500, "nothing queued"))
    piece_size: int = 6  # characters of reply text per streamed chunk
    piece_delay_s: float = 0.001  # between streamed chunks (raise it to watch text arrive)
    # When set, decides each request's behaviour (before the queue is looked at).
    responder: Callable[[ReceivedRequest], Behaviour | None] | None = None
    queue: deque[Behaviour] = field(default_factory=deque)
    requests: list[ReceivedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- control -----------------------------------------------------------

    def push(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self.queue.extend(behaviours)

    def always(self, behaviour: Behaviour) -> None:
        """What to do once the queue is empty."""
        self.default = behaviour

    @property
    def request_count(self) -> int:
        return len(self.requests)

    @property
    def url(self) -> str:
        """The base URL a client is given (with /v1, as for a real server)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # --- used by the handler -----------------------------------------------

    def _next(self, request: ReceivedRequest) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            chosen = self.responder(request) if self.responder is not None else None
            if chosen is not None:
                return chosen
            return self.queue.popleft() if self.queue else self.default


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.partition("?")[0] != ROUTE:
            self._send_json(404, _error_body(404, f"no route for {self.path}"))
            return
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            self._send_json(401, _error_body(401, "missing API key"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, _error_body(400, "request body is not JSON"))
            return
        request = ReceivedRequest(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fake = self.server_fake
        behaviour = fake._next(request)
        if behaviour.kind == "hang":
            fake._stopping.wait(behaviour.seconds)
            behaviour = status(500, "hung")
        if behaviour.kind == "status":
            self._send_json(behaviour.code, _error_body(behaviour.code, behaviour.text), behaviour.headers)
            return
        model = str(body.get("model", ""))
        if behaviour.kind == "garbage":
            self._send_events([behaviour.text.encode()])
        elif request.streamed:
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._send_stream(behaviour, model, usage)
        else:
            self._send_json(200, _completion(behaviour, model))

    # --- responses -----------------------------------------------------------

    def _send_json(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _send_stream(self, behaviour: Behaviour, model: str, usage: bool) -> None:
        size = self.server_fake.piece_size
        text = behaviour.text
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        events = [_chunk(model, {"role": "assistant", "content": ""}, None)]
        events += [_chunk(model, {"content": piece}, None) for piece in pieces]
        if behaviour.kind in {"broken", "stall"}:
            events = events[: behaviour.after + 1]
            self._send_events([_event(e) for e in events], end=False)
            if behaviour.kind == "stall":
                self.server_fake._stopping.wait(behaviour.seconds)
            self.close_connection = True  # drop the connection without ending the chunked body
            return
        events.append(_chunk(model, {}, behaviour.finish_reason))
        if usage:
            events.append(
                {
                    **_chunk(model, {}, None),
                    "choices": [],
                    "usage": _usage(behaviour),
                }
            )
        self._send_events([_event(e) for e in events] + [b"data: [DONE]\n\n"])

    def _send_events(self, events: list[bytes], *, end: bool = True) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for data in events:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                # Separate writes, as a generating server makes them.
                time.sleep(self.server_fake.piece_delay_s)
            if end:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


def _event(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _usage(behaviour: Behaviour) -> dict[str, int]:
    return {
        "prompt_tokens": behaviour.input_tokens,
        "completion_tokens": behaviour.output_tokens,
        "total_tokens": behaviour.input_tokens + behaviour.output_tokens,
    }


def _completion(behaviour: Behaviour, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": behaviour.text},
                "finish_reason": behaviour.finish_reason,
            }
        ],
        "usage": _usage(behaviour),
    }


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": _ERROR_TYPES.get(code, "error"), "code": code}}


FakeOpenAI.handler = _Handler
