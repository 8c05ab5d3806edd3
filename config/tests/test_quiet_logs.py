"""A normal start and session of `make run` keeps the terminal readable; real errors still show.

The real supervisor (config/run.py) runs on a fresh data folder and a fresh model folder (so
the worker makes the one-time ONNX export), and gets the requests of a first session: probes,
a static file, a 404, sign-ups (the first account, then one whose mail goes to the outbox), a
403 from the API and from the admin, a sign-in, a document that the worker ingests. What it
printed must hold no traceback, no line per probe or static file, no kombu "No hostname", no
model-export chatter and no Celery root warning, while every request still has its one line.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from config.tests.processes import python
from config.tests.test_run import launch
from tests.servers import free_port

pytestmark = pytest.mark.worker

PASSWORD = "a-long-pass-phrase-for-docent"

# What an ordinary session must not print, each with what it is.
NOISE = {
    "Traceback": "a traceback",
    '"exc":': "a traceback in a JSON line",
    '"path": "/healthz"': "a line per /healthz",
    '"path": "/readyz"': "a line per /readyz",
    '"path": "/static/': "a line per static file",
    "No hostname was supplied": "kombu's warning about the unix-socket broker",
    "superuser privileges": "Celery's root warning",
    "Quantization parameters": "onnxruntime's quantiser chatter",
    "Ignore MatMul": "onnxruntime's quantiser chatter",
    "Please consider to run pre-processing": "onnxruntime's quantiser chatter",
    "torch_dtype": "transformers' deprecation notice",
    "TracerWarning": "torch's export warnings",
    "Saving the exported ONNX model": "sentence-transformers' export advice",
    '"logger": "django.request"': "Django's second line for a 4xx",
}


class Session:
    """A browser's worth of HTTP: cookies, CSRF tokens from forms, statuses instead of exceptions."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(
        self, method: str, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> tuple[int, str, str]:  # fmt: skip
        body = None
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as reply:
                return reply.status, reply.geturl(), reply.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.geturl(), exc.read().decode(errors="replace")

    def form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        status, _, page = self.request("GET", path)
        assert status == 200, page[:500]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        return self.request("POST", path, {**fields, "csrfmiddlewaretoken": token.group(1)})


def wait_for(log: Path, text: str, proc: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in: " + log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)


def a_first_session(base: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    anonymous = Session(base)
    for _ in range(3):
        assert anonymous.request("GET", "/healthz")[0] == 200
    assert anonymous.request("GET", "/readyz")[0] == 200
    assert anonymous.request("GET", "/static/css/docent.css")[0] == 200
    assert anonymous.request("GET", "/no-such-page/")[0] == 404
    assert anonymous.request("GET", "/api/v1/projects/")[0] == 401

    first = Session(base)
    status, url, page = first.form(
        "/accounts/signup/", {"email": "first@example.com", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert status == 200 and url.endswith("/"), (status, url)
    assert "you are its administrator" in page
    # A 403 in the admin (the read-only outbox has no add page): PermissionDenied, a traceback before.
    assert first.request("GET", "/admin/accounts/outboxmessage/add/")[0] == 403

    second = Session(base)
    status, url, page = second.form(
        "/accounts/signup/", {"email": "second@example.com", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert status == 200 and url.endswith("/accounts/login/")
    assert "Your confirmation is waiting for an administrator" in page
    # The API refuses a token to the unconfirmed account: an ordinary 403.
    body = {"email": "second@example.com", "password": PASSWORD}
    assert second.request("POST", "/api/v1/auth/token", json_body=body)[0] == 403

    # A sign-in, then a project and a document through the API, which the worker ingests.
    returning = Session(base)
    status, url, _ = returning.form(
        "/accounts/login/", {"username": "first@example.com", "password": PASSWORD}
    )
    assert status == 200 and not url.endswith("/accounts/login/"), url
    status, _, tokens = returning.request(
        "POST", "/api/v1/auth/token", json_body={"email": "first@example.com", "password": PASSWORD}
    )
    assert status == 200, tokens
    bearer = {"Authorization": "Bearer " + json.loads(tokens)["access"]}
    status, _, project = returning.request(
        "POST", "/api/v1/projects/", headers=bearer, json_body={"title": "Quiet"}
    )
    assert status == 201, project
    project_id = json.loads(project)["id"]
    status, _, document = returning.request(
        "POST", "/api/v1/documents/", headers=bearer,
        json_body={"project": project_id, "title": "Tides", "text": "High tide comes fifty minutes later each day."},
    )  # fmt: skip
    assert status == 201, document
    seen["document"] = json.loads(document)["id"]
    deadline = time.monotonic() + 300
    while True:
        status, _, detail = returning.request("GET", f"/api/v1/documents/{seen['document']}/", headers=bearer)
        state = json.loads(detail).get("status")
        if state in {"ready", "failed"}:
            break
        assert time.monotonic() < deadline, detail
        time.sleep(1)
    assert state == "ready", detail
    assert (
        returning.request("GET", f"/api/v1/projects/{'0' * 8}-0000-4000-8000-{'0' * 12}/", headers=bearer)[0]
        == 404
    )
    return seen


def test_a_normal_start_and_session_print_no_noise(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    log.write_text("")
    proc = launch(tmp_path, port, log, DOCENT_MODEL_DIR=str(tmp_path / "models"))
    try:
        wait_for(log, "Docent on http://", proc)
        wait_for(log, "ready.", proc)  # the worker
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()  # noqa: S310
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.3)
        a_first_session(f"http://127.0.0.1:{port}")
        wait_for(log, "exported embedding model to ONNX", proc)  # the worker's one-time export ran
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    text = log.read_text(errors="replace")
    found = {what: needle for needle, what in NOISE.items() if needle in text}
    assert not found, f"{found}\n\n{text[-6000:]}"
    # Every ordinary 4xx still has its one request line, with its status.
    for path, status in (
        ("/no-such-page/", 404),
        ("/api/v1/projects/", 401),
        ("/api/v1/auth/token", 403),
        ("/admin/accounts/outboxmessage/add/", 403),
    ):
        assert f'"path": "{path}", "status": {status}' in text, path
    assert "email kept in the admin outbox" in text  # the second sign-up's confirmation: where to find it
    if os.geteuid() == 0:  # said once, in the supervisor's words, instead of Celery's warning
        assert text.count("started as root") == 1


def test_real_errors_still_reach_the_terminal_through_the_same_logging(tmp_path: Path) -> None:
    """The settings' logging, in a fresh process: each ordinary line is dropped, each error kept."""
    code = """
import logging, django
django.setup()
from django.conf import settings
def boom():
    try:
        raise RuntimeError("the database went away")
    except RuntimeError as exc:
        return exc
request = logging.getLogger("docent.request")
request.info("request", extra={"method": "GET", "path": "/healthz", "status": 200})
request.info("request", extra={"method": "GET", "path": "/static/css/docent.css", "status": 200})
request.info("request", extra={"method": "GET", "path": "/readyz", "status": 503})
request.info("request", extra={"method": "GET", "path": "/static/missing.css", "status": 404})
django_request = logging.getLogger("django.request")
django_request.warning("Not Found: /x", extra={"status_code": 404}, exc_info=boom())
django_request.warning("Forbidden (Permission denied): /y", extra={"status_code": 403}, exc_info=boom())
django_request.error("Internal Server Error: /z", extra={"status_code": 500}, exc_info=boom())
logging.getLogger("django.security.DisallowedHost").error("Invalid HTTP_HOST header: 'evil'", extra={"status_code": 400}, exc_info=boom())
logging.getLogger("kombu.connection").warning("No hostname was supplied. Reverting to default 'localhost'")
logging.getLogger("kombu.connection").warning("a broker warning that matters")
def onnxruntime_says(level, msg):  # as its quantiser does: on the root logger, from its own file
    logging.getLogger().handle(logging.makeLogRecord({
        "name": "root", "levelno": level, "levelname": logging.getLevelName(level), "msg": msg,
        "pathname": "/venv/site-packages/onnxruntime/quantization/onnx_quantizer.py"}))
onnxruntime_says(logging.INFO, "Quantization parameters for tensor: x not specified")
onnxruntime_says(logging.WARNING, "Please consider to run pre-processing before quantization.")
onnxruntime_says(logging.ERROR, "quantization failed")
logging.getLogger("celery.worker").error("task failed", exc_info=boom())
"""
    done = python(code, tmp_path, DOCENT_LOG_FORMAT="json", DOCENT_ENV_FILE=str(tmp_path / "none.env"))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    said = [(entry["logger"], entry["msg"], entry.get("path"), "exc" in entry) for entry in lines]
    assert said == [
        ("docent.request", "request", "/readyz", False),  # a failed probe
        ("docent.request", "request", "/static/missing.css", False),  # a missing static file
        ("django.request", "Internal Server Error: /z", None, True),  # a 500, with its traceback
        ("django.security.DisallowedHost", "Invalid HTTP_HOST header: 'evil'", None, False),
        ("kombu.connection", "a broker warning that matters", None, False),
        ("root", "quantization failed", None, False),
        ("celery.worker", "task failed", None, True),
    ], done.stderr
    # At DEBUG everything is shown.
    loud = python(code, tmp_path, DOCENT_LOG_LEVEL="DEBUG", DOCENT_ENV_FILE=str(tmp_path / "none.env"))
    assert loud.stderr.count('"path": "/healthz"') == 1
    assert loud.stderr.count("No hostname was supplied") == 1
