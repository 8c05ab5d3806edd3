"""Signed webhooks against a real local receiver: signatures, retries, timeouts, auto-disable,
the address checks, resends, the events real flows send, and who may manage them."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from conftest import api_for, make_project
from projects import invitations, services, tasks, webhooks
from projects.models import (
    DeliveryStatus,
    Membership,
    Project,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

pytestmark = pytest.mark.django_db

SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


# --- the receiver -------------------------------------------------------------------


class Receiver:
    """What a local HTTP receiver was sent: (path, headers, body) per request."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base + path

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _path, _headers, body in self.requests]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append((self.path, {k: v for k, v in self.headers.items()}, body))
            if self.path.startswith("/slow"):
                time.sleep(6)
            if self.path.startswith("/fail"):
                self._answer(500, b"boom: the receiver broke")
            elif self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._answer(200, b"thanks")

        def _answer(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the sender gave up (the timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    """A receiver on loopback, which the webhooks may reach with private addresses allowed."""
    settings.URL_FETCH_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_S = 0.5
    received = Receiver("")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    httpd.daemon_threads = True
    received.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield received
    httpd.shutdown()
    httpd.server_close()


def hook(user: Any, project: Project, url: str, events: list[str] | None = None) -> WebhookEndpoint:
    return webhooks.endpoint_create(
        user=user, project=project, url=url, events=events or ["document.ready"], description="Tests"
    )


def emit_now(capture: Any, project: Project, event: str = "document.ready", **data: Any) -> None:
    with capture(execute=True):
        webhooks.emit(project_id=project.pk, event=event, data=data or {"document": {"id": "d1"}})


def due_now(delivery: WebhookDelivery) -> None:
    """Let the time of its next attempt come (no real waiting)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


# --- delivery and signature -----------------------------------------------------------


def test_a_delivery_arrives_with_standard_webhooks_headers_the_receiver_verifies(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = hook(user, project, receiver.url("/ok"))
    assert endpoint.secret.startswith("whsec_")

    emit_now(django_capture_on_commit_callbacks, project, document={"id": "d1", "title": "Plans"})

    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    assert path == "/ok"
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    payload = Webhook(endpoint.secret).verify(body, headers)
    assert payload["type"] == "document.ready"
    assert payload["data"] == {"project_id": str(project.pk), "document": {"id": "d1", "title": "Plans"}}
    assert payload["timestamp"].endswith("Z")
    # Another secret does not verify it.
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.message_id == headers["webhook-id"]
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert delivery.latency_ms is not None and delivery.finished_at is not None
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert (attempt.number, attempt.succeeded, attempt.response_status) == (1, True, 200)


def test_only_enabled_endpoints_subscribed_to_the_event_receive_it(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook(user, project, receiver.url("/ok/runs"), ["run.failed"])
    off = hook(user, project, receiver.url("/ok/off"))
    webhooks.endpoint_update(user=user, endpoint=off, enabled=False)
    on = hook(user, project, receiver.url("/ok/on"), ["document.ready", "document.failed"])
    elsewhere = make_project(user, "Elsewhere")
    hook(user, elsewhere, receiver.url("/ok/elsewhere"))

    emit_now(django_capture_on_commit_callbacks, project)

    assert [path for path, _h, _b in receiver.requests] == ["/ok/on"]
    assert WebhookDelivery.objects.get().endpoint_id == on.pk


def test_an_event_rolled_back_with_its_change_sends_nothing(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook(user, project, receiver.url("/ok"))
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        webhooks.emit(project_id=project.pk, event="document.ready", data={})
        raise RuntimeError("the change failed")
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


# --- failures, retries, timeouts --------------------------------------------------------


def test_a_receiver_answering_500_is_retried_on_the_standard_schedule_then_given_up(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    assert tuple(settings.WEBHOOK_RETRY_DELAYS_S) == SCHEDULE  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    endpoint = hook(user, project, receiver.url("/fail"))
    emit_now(django_capture_on_commit_callbacks, project)
    delivery = WebhookDelivery.objects.get()

    for number, delay in enumerate(SCHEDULE, start=1):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_status) == ("retrying", number, 500)
        assert delivery.error == "HTTP 500: boom: the receiver broke"
        waited = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
        assert delay <= waited < delay + 5, (number, waited)
        # Not due yet: a job arriving early (a countdown, a duplicate) sends nothing.
        assert tasks.webhook_deliver(str(delivery.pk)) == "skipped"
        due_now(delivery)
        tasks.webhook_deliver(str(delivery.pk))

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
        "failed",
        len(SCHEDULE) + 1,
        None,
    )
    assert tasks.webhook_deliver(str(delivery.pk)) == "skipped"
    # Every attempt reached the receiver with the same message id, and is in the log.
    assert len(receiver.requests) == len(SCHEDULE) + 1
    assert {headers["webhook-id"] for _p, headers, _b in receiver.requests} == {delivery.message_id}
    log = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.number for a in log] == list(range(1, len(SCHEDULE) + 2))
    assert all(a.response_status == 500 and not a.succeeded and a.latency_ms >= 0 for a in log)
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.enabled) == (1, True)
    assert endpoint.failing_since is not None


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt_retried_later(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook(user, project, receiver.url("/slow"))
    started = time.monotonic()
    emit_now(django_capture_on_commit_callbacks, project)
    assert time.monotonic() - started < 4  # gave up at the 0.5 s timeout, not the 6 s answer

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("retrying", 1, None)
    assert delivery.error == "No answer within 0.5 seconds."
    assert 400 <= delivery.latency_ms < 4000
    assert delivery.next_attempt_at > timezone.now()


def test_redirects_are_not_followed(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook(user, project, receiver.url("/redirect"))
    emit_now(django_capture_on_commit_callbacks, project)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_status) == ("retrying", 302)
    assert "redirects are not followed" in delivery.error
    assert [path for path, _h, _b in receiver.requests] == ["/redirect"]


def test_the_sweeper_sends_due_retries_and_a_success_clears_the_failures(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = hook(user, project, receiver.url("/fail"))
    emit_now(django_capture_on_commit_callbacks, project)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    # The receiver is fixed; the retry comes when it is due, from the periodic sweep.
    webhooks.endpoint_update(user=user, endpoint=endpoint, url=receiver.url("/ok"))
    assert tasks.webhooks_deliver_due() == 0
    delivery = WebhookDelivery.objects.get()
    due_now(delivery)
    assert tasks.webhooks_deliver_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 2, 200)
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.failing_since) == (0, None)


# --- disabling an endpoint that keeps failing -------------------------------------------


def test_an_endpoint_whose_messages_keep_failing_is_disabled_and_its_owners_emailed(
    user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.WEBHOOK_RETRY_DELAYS_S = ()  # one attempt per message: each failure is final
    settings.WEBHOOK_DISABLE_AFTER_MESSAGES = 2
    co_owner = UserFactory(email="co-owner@example.com")
    project = make_project(user, editor=UserFactory(email="editor@example.com"))
    Membership.objects.create(project=project, user=co_owner, role=Role.OWNER)
    endpoint = hook(user, project, receiver.url("/fail"))
    mail.outbox.clear()

    emit_now(django_capture_on_commit_callbacks, project)
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.consecutive_failures) == (True, 1)
    assert mail.outbox == []

    emit_now(django_capture_on_commit_callbacks, project)
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    assert endpoint.disabled_reason == (
        "Disabled automatically: 2 messages in a row failed every delivery attempt."
    )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["co-owner@example.com", "owner@example.com"]
    assert "was disabled" in message.subject
    assert receiver.url("/fail") in message.body and endpoint.disabled_reason in message.body
    assert f"/projects/{project.pk}/webhooks/" in message.body

    # Disabled: new events are not queued for it.
    emit_now(django_capture_on_commit_callbacks, project)
    assert WebhookDelivery.objects.count() == 2
    assert len(receiver.requests) == 2


def test_an_endpoint_failing_for_a_day_is_disabled_and_its_waiting_messages_given_up(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = hook(user, project, receiver.url("/fail"))
    emit_now(django_capture_on_commit_callbacks, project)
    waiting = WebhookDelivery.objects.get()
    assert waiting.status == DeliveryStatus.RETRYING
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=25))

    emit_now(django_capture_on_commit_callbacks, project)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "Disabled automatically: no delivery succeeded for 24 hours."
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.FAILED and "disabled" in waiting.error
    assert len(mail.outbox) == 1
    # Enabling it again starts afresh.
    webhooks.endpoint_update(user=user, endpoint=endpoint, enabled=True)
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since) == (True, "", None)


# --- addresses --------------------------------------------------------------------------


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a connection was attempted to {args[0]}")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_connections")
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://10.0.0.5/hook", "10.0.0.5"),
        ("https://127.0.0.1:8443/hook", "127.0.0.1"),
        ("https://[::1]/hook", "::1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1"),
        ("https://hooks.intranet.example/in", "hooks.intranet.example (127.0.0.1)"),
    ],
)
def test_private_and_local_targets_are_refused_with_a_clear_400(
    user: Any, project: Project, monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))],
    )
    response = api_for(user).post(
        f"/api/v1/projects/{project.pk}/webhooks/", {"url": url, "events": ["document.ready"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "url": [
            f"The address {shown} is on a private, local or reserved network; "
            "webhooks are only sent to public addresses."
        ]
    }
    assert not WebhookEndpoint.objects.exists()


def test_http_addresses_are_refused_unless_allowed(user: Any, project: Project, settings: Any) -> None:
    client = api_for(user)
    body = {"url": "http://93.184.215.14/hook", "events": ["document.ready"]}
    response = client.post(f"/api/v1/projects/{project.pk}/webhooks/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"url": ["Webhook addresses must start with https://."]}
    settings.WEBHOOK_ALLOW_HTTP = True
    assert client.post(f"/api/v1/projects/{project.pk}/webhooks/", body, format="json").status_code == 201


@pytest.mark.usefixtures("no_connections")
def test_an_address_that_turns_private_after_registering_is_refused_at_delivery(
    user: Any, project: Project, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    answer = {"address": "93.184.215.14"}
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["address"], port))],
    )
    hook(user, project, "https://hooks.example.com/in")
    answer["address"] = "10.1.2.3"  # DNS rebinding
    emit_now(django_capture_on_commit_callbacks, project)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "retrying"
    assert "hooks.example.com (10.1.2.3) is on a private, local or reserved network" in delivery.error


def test_the_connection_goes_to_the_address_that_was_checked(
    user: Any,
    project: Project,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    port = int(receiver.base.rsplit(":", 1)[1])
    hook(user, project, receiver.url("/ok"))  # registered while the real resolver answers
    lookups: list[str] = []

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    endpoint = WebhookEndpoint.objects.get()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://hooks.example.test:{port}/ok")
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    emit_now(django_capture_on_commit_callbacks, project)
    assert lookups.count("hooks.example.test") == 1
    assert receiver.requests[0][1]["Host"] == f"hooks.example.test:{port}"
    assert WebhookDelivery.objects.get().status == "succeeded"


# --- owners manage them: API and pages ---------------------------------------------------


def test_owners_manage_endpoints_through_the_api_and_changes_are_audited(
    user: Any, project: Project, receiver: Receiver
) -> None:
    client = api_for(user)
    base = f"/api/v1/projects/{project.pk}/webhooks/"
    created = client.post(
        base, {"url": receiver.url("/ok"), "events": ["run.failed", "document.ready"]}, format="json"
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["events"] == ["document.ready", "run.failed"]
    assert data["secret"].startswith("whsec_") and data["enabled"] is True
    assert [item["id"] for item in client.get(base).json()] == [data["id"]]

    refused = client.post(base, {"url": receiver.url("/ok"), "events": ["document.eaten"]}, format="json")
    assert refused.status_code == 400 and "events" in refused.json()

    changed = client.patch(base + data["id"] + "/", {"enabled": False, "rotate_secret": True}, format="json")
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False and changed.json()["secret"] != data["secret"]
    assert changed.json()["disabled_reason"] == "Disabled by an owner."
    assert client.delete(base + data["id"] + "/").status_code == 204
    assert not WebhookEndpoint.objects.exists()

    actions = list(
        AuditEvent.objects.filter(project_id=project.pk).order_by("pk").values_list("action", "target")
    )
    assert [a for a in actions if a[0].startswith("webhook.")] == [
        ("webhook.created", receiver.url("/ok")),
        ("webhook.changed", receiver.url("/ok")),
        ("webhook.deleted", receiver.url("/ok")),
    ]


def test_editors_get_403_and_outsiders_404(user: Any, project: Project, receiver: Receiver) -> None:
    endpoint = hook(user, project, receiver.url("/ok"))
    editor, outsider = UserFactory(email="ed@example.com"), UserFactory(email="out@example.com")
    Membership.objects.create(project=project, user=editor, role=Role.EDITOR)
    for who, status in ((editor, 403), (outsider, 404)):
        client = api_for(who)
        assert client.get(f"/api/v1/projects/{project.pk}/webhooks/").status_code == status
        assert (
            client.get(f"/api/v1/projects/{project.pk}/webhooks/{endpoint.pk}/deliveries/").status_code
            == status
        )
    # Another project's endpoint is not found through this one.
    other = make_project(user, "Other")
    assert api_for(user).get(f"/api/v1/projects/{other.pk}/webhooks/{endpoint.pk}/").status_code == 404


def test_a_test_event_and_a_resend_reach_the_receiver(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = hook(user, project, receiver.url("/fail"))
    emit_now(django_capture_on_commit_callbacks, project)
    failed = WebhookDelivery.objects.get()
    client = api_for(user)
    base = f"/api/v1/projects/{project.pk}/webhooks/{endpoint.pk}/"
    client.patch(base, {"url": receiver.url("/ok")}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        resent = client.post(base + f"deliveries/{failed.pk}/resend/")
    assert resent.status_code == 202
    again = WebhookDelivery.objects.get(pk=resent.json()["id"])
    assert (again.status, again.message_id, again.payload) == ("succeeded", failed.message_id, failed.payload)
    assert receiver.requests[-1][1]["webhook-id"] == failed.message_id

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(base + "test/").status_code == 202
    ping = receiver.requests[-1]
    assert Webhook(endpoint.secret).verify(ping[2], ping[1])["type"] == "webhook.ping"

    log = client.get(base + "deliveries/").json()["results"]
    assert [(d["event"], d["status"]) for d in log] == [
        ("webhook.ping", "succeeded"),
        ("document.ready", "succeeded"),
        ("document.ready", "retrying"),
    ]
    assert log[0]["response_status"] == 200 and log[0]["latency_ms"] is not None and log[0]["attempts"] == 1


def test_the_webhooks_page_adds_one_and_shows_its_secret_and_delivery_log(
    user: Any,
    project: Project,
    receiver: Receiver,
    owner_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    page = f"/projects/{project.pk}/webhooks/"
    assert owner_client.get(page).status_code == 200
    bad = owner_client.post(page, {"url": receiver.url("/ok"), "events": []})
    assert bad.status_code == 400 and "Choose at least one event." in bad.content.decode()
    added = owner_client.post(
        page, {"url": receiver.url("/fail"), "events": ["document.ready", "member.left"]}
    )
    assert added.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert added["Location"] == f"{page}{endpoint.pk}/"
    assert endpoint.events == ["document.ready", "member.left"]

    emit_now(django_capture_on_commit_callbacks, project)
    detail = owner_client.get(added["Location"]).content.decode()
    assert endpoint.secret in detail
    assert "Retrying" in detail and "500" in detail and " ms" in detail and "Resend" in detail

    delivery = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"{page}{endpoint.pk}/deliveries/{delivery.pk}/resend/")
    assert WebhookDelivery.objects.count() == 2
    owner_client.post(f"{page}{endpoint.pk}/toggle/")
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    assert owner_client.post(f"{page}{endpoint.pk}/delete/").status_code == 302
    assert not WebhookEndpoint.objects.exists()


# --- events from real flows --------------------------------------------------------------


def test_pasting_a_document_sends_document_ready_without_its_text(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from documents import services as document_services

    hook(user, project, receiver.url("/ok"), ["document.ready", "document.deleted"])
    with django_capture_on_commit_callbacks(execute=True):
        doc = document_services.document_create(
            user=user, project=project, title="Tide tables", text="High water at 06:12 in Harbourtown."
        )
    assert [b["type"] for b in receiver.bodies()] == ["document.ready"]
    assert receiver.bodies()[0]["data"] == {
        "project_id": str(project.pk),
        "document": {"id": str(doc.pk), "title": "Tide tables", "status": "ready"},
    }
    assert b"Harbourtown" not in receiver.requests[0][2]

    doc_id = str(doc.pk)
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_delete(user=user, document=doc)
    assert receiver.bodies()[-1]["type"] == "document.deleted"
    assert receiver.bodies()[-1]["data"]["document"] == {
        "id": doc_id,
        "title": "Tide tables",
        "status": "deleted",
    }


def test_a_document_that_cannot_be_read_sends_document_failed_with_the_reason(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from documents import ingest
    from documents.tests.factories import DocumentFactory

    hook(user, project, receiver.url("/ok"), ["document.failed"])
    missing = DocumentFactory(
        project=project, pasted_text="", file="documents/missing/file.pdf", original_filename="file.pdf"
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest.run(token="job", wake_others=False)
    (body,) = receiver.bodies()
    assert body["type"] == "document.failed"
    assert body["data"]["document"]["id"] == str(missing.pk)
    assert body["data"]["document"]["status"] == "failed"
    assert "could not be read" in body["data"]["document"]["reason"]


def test_runs_send_run_succeeded_and_run_failed(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    from agents import services as agent_services
    from agents.models import RunKind
    from documents import services as document_services

    settings.LLM_PROVIDER = "offline"
    hook(user, project, receiver.url("/ok"), ["run.succeeded", "run.failed"])
    nothing = agent_services.run_create(user=user, project=project, kind=RunKind.SUMMARIZE)
    with django_capture_on_commit_callbacks(execute=True):
        agent_services.run_execute(run_id=nothing.pk)
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_create(
            user=user, project=project, title="Pump", text="The pump was designed by Ada Okafor."
        )
    asked = agent_services.run_create(
        user=user, project=project, kind=RunKind.ASK, question="Who designed it?"
    )
    with django_capture_on_commit_callbacks(execute=True):
        agent_services.run_execute(run_id=asked.pk)

    failed, succeeded = receiver.bodies()
    assert failed["type"] == "run.failed"
    assert failed["data"]["run"]["id"] == str(nothing.pk)
    assert "nothing to read" in failed["data"]["run"]["reason"]
    assert succeeded["type"] == "run.succeeded"
    assert succeeded["data"]["run"]["id"] == str(asked.pk)
    assert succeeded["data"]["run"]["kind"] == "ask"
    assert b"Ada Okafor" not in receiver.requests[1][2] and b"Who designed" not in receiver.requests[1][2]


def test_joining_and_leaving_send_member_events(
    user: Any, project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook(user, project, receiver.url("/ok"), ["member.joined", "member.left"])
    newcomer = UserFactory(email="newcomer@example.com")
    invitation = invitations.invitation_create(
        user=user, project=project, email=newcomer.email, role="editor"
    )
    with django_capture_on_commit_callbacks(execute=True):
        membership = invitations.invitation_accept(user=newcomer, invitation_id=invitation.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.member_remove(user=newcomer, membership=membership)

    joined, left = receiver.bodies()
    assert joined["type"] == "member.joined"
    assert joined["data"]["member"] == {
        "user": {"id": str(newcomer.pk), "email": "newcomer@example.com"},
        "role": "editor",
    }
    assert left["type"] == "member.left"
    assert left["data"]["member"]["how"] == "left"
