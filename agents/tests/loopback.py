"""The HTTP server under the fake model servers (fake_gemini, fake_openai): on loopback,
in a thread, stopped at once even while a handler hangs."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackServer:
    """Start/stop for a fake: a subclass has `_server`, `_thread` and `_stopping`
    attributes and names its handler class (which gets `server_fake` = the fake)."""

    handler: type[BaseHTTPRequestHandler]
    thread_name = "fake-server"
    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    _stopping: threading.Event

    def start(self) -> Self:
        handler: Any = type("Handler", (self.handler,), {"server_fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # so shutdown() returns at once
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wake any hanging handler
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
