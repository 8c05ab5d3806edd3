"""Start real web server processes (gunicorn + uvicorn workers, ASGI) for tests that cross process boundaries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def event_stream(base: str, run_id: Any, token: str) -> Iterator[tuple[socket.socket, bytes]]:
    """A raw socket reading a run's event stream on `base`, once it answered 200 and its
    first line; yields the socket and what it has received so far."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /api/v1/runs/{run_id}/events/ HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        received = b""
        while b"retry:" not in received:
            received += sock.recv(65536)
        assert b" 200 " in received.split(b"\r\n", 1)[0]
        yield sock, received


@contextmanager
def web_server(env: dict[str, str], log_path: Path, *, workers: int = 1) -> Iterator[str]:
    """A gunicorn process on a free loopback port; yields its base URL."""
    port = free_port()
    full_env = {**os.environ, "WEB_CONCURRENCY": str(workers), "DOCENT_LOG_FORMAT": "json", **env}
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.asgi",
            "--config",
            "config/gunicorn.py",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"web server exited: {log_path.read_text(errors='replace')[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Ask a child process to stop; kill it if it does not within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def call(
    method: str, url: str, *, token: str = "", body: Any = None, timeout: float = 30
) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request; returns (status, parsed JSON or text, headers by title-cased name)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # Header names as HTTP/1.1 spells them case-insensitively; uvicorn sends them in lower case.
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw, status, headers = response.read(), response.status, _titled(response.headers)
    except urllib.error.HTTPError as err:
        raw, status, headers = err.read(), err.code, _titled(err.headers)
    try:
        return status, json.loads(raw), headers
    except ValueError:
        return status, raw.decode(errors="replace"), headers


def _titled(headers: Any) -> dict[str, str]:
    """Headers keyed by their names in title case (`Content-Type`, `Retry-After`)."""
    return {name.title(): value for name, value in headers.items()}
