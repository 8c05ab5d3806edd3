"""A fake Gemini REST server on loopback, for testing with the real google-genai client.

It serves ``POST /{version}/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` with the real response shape
(``candidates[0].content.parts[0].text``, ``usageMetadata``). What it does for
each request comes from a queue of behaviours (then ``default``):

    server.push(reply_json({"answer": ...}), status(429), hang(5), reply_text("oops"),
                broken_stream(text, after=2))
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents.tests.loopback import LoopbackServer

_ROUTE = re.compile(r"^/(?P<version>v[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Behaviour:
    kind: str  # "reply", "status", "hang", "broken"
    text: str = ""
    code: int = 200
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    after: int = 0  # broken: SSE events sent before the connection drops


def reply_json(data: Any, *, input_tokens: int = 11, output_tokens: int = 7) -> Behaviour:
    return reply_text(json.dumps(data), input_tokens=input_tokens, output_tokens=output_tokens)


def reply_text(text: str, *, input_tokens: int = 11, output_tokens: int = 7) -> Behaviour:
    """A 200 whose model text is `text` (which need not be JSON: for malformed output)."""
    return Behaviour("reply", text=text, input_tokens=input_tokens, output_tokens=output_tokens)


def status(code: int, message: str = "") -> Behaviour:
    """An error response in Google's JSON error shape."""
    return Behaviour("status", code=code, text=message or f"fake error {code}")


def hang(seconds: float) -> Behaviour:
    """Say nothing for `seconds` (longer than the client's timeout), then a 500."""
    return Behaviour("hang", seconds=seconds)


def broken_stream(text: str, *, after: int) -> Behaviour:
    """Stream the first `after` events of `text`, then drop the connection mid-body."""
    return Behaviour("broken", text=text, after=after, input_tokens=11, output_tokens=7)


@dataclass
class ReceivedRequest:
    path: str
    model: str
    method: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        parts = self.body.get("contents", [{}])[-1].get("parts", [])
        return "".join(part.get("text", "") for part in parts)

    @property
    def system(self) -> str:
        parts = (self.body.get("systemInstruction") or {}).get("parts", [])
        return "".join(part.get("text", "") for part in parts)


@dataclass
class FakeGemini(LoopbackServer):
    handler = None  # set below, once the handler class exists
    thread_name = "fake-gemini"

    default: Behaviour = field(default_factory=lambda: status(500, "nothing queued"))
    stream_pieces: int = 3  # the reply text is cut into this many SSE events
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
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        with self._lock:
            self.queue.clear()
            self.requests.clear()
        self.default = status(500, "nothing queued")

    # --- used by the handler -----------------------------------------------

    def _next(self, request: ReceivedRequest) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            return self.queue.popleft() if self.queue else self.default


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeGemini
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = _ROUTE.match(path)
        if route is None or route["method"] not in {
            "generateContent",
            "streamGenerateContent",
        }:
            self._send_json(404, _error_body(404, f"no route for {path}"))
            return
        if not self.headers.get("x-goog-api-key"):
            self._send_json(403, _error_body(403, "missing API key"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, _error_body(400, "request body is not JSON"))
            return
        request = ReceivedRequest(
            path=self.path,
            model=route["model"],
            method=route["method"],
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        behaviour = self.server_fake._next(request)
        if behaviour.kind == "hang":
            self.server_fake._stopping.wait(behaviour.seconds)
            behaviour = status(500, "hung")
        if behaviour.kind == "status":
            self._send_json(behaviour.code, _error_body(behaviour.code, behaviour.text))
            return
        model = route["model"]
        if route["method"] == "streamGenerateContent" and "alt=sse" in query:
            self._send_stream(behaviour, model)
        else:
            self._send_json(200, _response_body(behaviour.text, behaviour, model, final=True))

    def _send_json(self, code: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _send_stream(self, behaviour: Behaviour, model: str) -> None:
        text = behaviour.text
        count = max(1, min(self.server_fake.stream_pieces, len(text)))
        size = -(-len(text) // count) if text else 0
        pieces = [text[i : i + size] for i in range(0, len(text), size)] if text else [""]
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for index, piece in enumerate(pieces):
                if behaviour.kind == "broken" and index == behaviour.after:
                    self.close_connection = True  # without ending the chunked body
                    return
                final = index == len(pieces) - 1
                body = _response_body(piece, behaviour, model, final)
                data = f"data: {json.dumps(body)}\r\n\r\n".encode()
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


def _response_body(text: str, behaviour: Behaviour, model: str, final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    }
    if final:
        candidate["finishReason"] = "STOP"
    body: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": model,
        "responseId": "fake-response",
    }
    if final:
        body["usageMetadata"] = {
            "promptTokenCount": behaviour.input_tokens,
            "candidatesTokenCount": behaviour.output_tokens,
            "totalTokenCount": behaviour.input_tokens + behaviour.output_tokens,
        }
    return body


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "status": _STATUS_NAMES.get(code, "UNKNOWN"),
        }
    }


FakeGemini.handler = _Handler
