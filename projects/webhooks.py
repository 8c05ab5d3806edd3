"""Signed webhooks: a project's events, POSTed to the HTTPS endpoints its owners registered.

`emit(project_id=..., event=..., data=...)` is what other apps call when something
happened (a document became ready, a run failed, someone joined). It writes one
`WebhookDelivery` per enabled endpoint subscribed to the event, in the caller's
transaction, and publishes their jobs after commit: an event rolled back sends nothing.

Each message is signed in the Standard Webhooks format with the `standardwebhooks`
package: headers `webhook-id` (the message id, `msg_...`, the same on every retry
and resend, so receivers can drop duplicates), `webhook-timestamp` (seconds, at
sending) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
`id.timestamp.body` under the endpoint's `whsec_` secret).

Delivery (`delivery_attempt`, run by the `projects.webhook_deliver` task): the
database is the queue. An attempt claims its delivery with a conditional update
that also pushes `next_attempt_at` out by a lease, so two workers never send one
attempt. The address is resolved once, checked like URL import's (public only,
unless DOCENT_URL_FETCH_ALLOW_PRIVATE) and connected to directly (core.netguard);
redirects are not followed. A 2xx answer within DOCENT_WEBHOOK_TIMEOUT_S succeeds;
anything else is retried after WEBHOOK_RETRY_DELAYS_S (5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h). Short delays ride on a Celery countdown; longer ones are picked up by
the beat sweeper (`deliveries_enqueue_due`), since a broker holds a countdown task
unacknowledged and would hand it out again after its visibility timeout. Every
attempt is logged (`WebhookAttempt`: status code, latency, error).

An endpoint is disabled, with a reason, and its owners emailed, when
DOCENT_WEBHOOK_DISABLE_AFTER_MESSAGES messages in a row failed every attempt, or when
nothing sent to it succeeded for DOCENT_WEBHOOK_DISABLE_AFTER_HOURS.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone
from standardwebhooks import Webhook

from accounts import audit
from core import netguard
from projects.access import require
from projects.models import (
    DeliveryStatus,
    Membership,
    Project,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

log = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = tuple(WebhookEvent.values)
PING = "webhook.ping"  # sent by "Send a test event"; never subscribed to
MAX_ENDPOINTS = 20
MAX_URL_CHARS = 2000
DESCRIPTION_MAX = 200
USER_AGENT = "Docent-Webhooks/1.0"
# Countdowns longer than this wait for the sweeper instead (see the module docstring).
COUNTDOWN_MAX_S = 60.0
_RESPONSE_KEEP_BYTES = 1024

DISABLED_BY_OWNER = "Disabled by an owner."
ENDPOINT_DISABLED = "The endpoint is disabled; enable it first."


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------


class AddressError(Exception):
    """An endpoint address that may not be used; the message says why, for people."""


_Target = netguard.Target


def _http_allowed() -> bool:
    return bool(settings.WEBHOOK_ALLOW_HTTP or settings.URL_FETCH_ALLOW_PRIVATE)


def _target(url: str) -> _Target:
    try:
        return netguard.target(
            url,
            schemes=("http", "https") if _http_allowed() else ("https",),
            bad_scheme="Webhook addresses must start with https://.",
        )
    except netguard.BadAddress as exc:
        raise AddressError(str(exc)) from None


def _checked_addresses(target: _Target, timeout: float) -> list[str]:
    """The host's addresses, resolved once, every one public (unless private ones are allowed)."""
    try:
        addresses = netguard.resolve(target.host, target.port, timeout=timeout)
    except netguard.ResolveTimeout:
        raise AddressError(f"Looking up “{target.host}” took too long.") from None
    except netguard.HostNotFound:
        raise AddressError(f"The host name “{target.host}” could not be found.") from None
    if settings.URL_FETCH_ALLOW_PRIVATE:
        return addresses
    private = netguard.first_private(addresses)
    if private is not None:
        literal = target.host == private or _is_address(target.host)
        shown = target.host if literal else f"{target.host} ({private})"
        raise AddressError(
            f"The address {shown} is on a private, local or reserved network; "
            "webhooks are only sent to public addresses."
        )
    return addresses


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def endpoint_url_check(url: str) -> str:
    """The address as it will be stored, checked as a delivery would check it; ValidationError if not."""
    url = (url or "").strip()
    if not url:
        raise ValidationError({"url": "Enter the address that receives the webhooks."})
    if len(url) > MAX_URL_CHARS:
        raise ValidationError({"url": f"The address is longer than {MAX_URL_CHARS:,} characters."})
    try:
        _checked_addresses(_target(url), float(settings.WEBHOOK_TIMEOUT_S))
    except AddressError as exc:
        raise ValidationError({"url": str(exc)}) from None
    return url


# --------------------------------------------------------------------------
# Endpoints: owners manage them
# --------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _clean_events(events: Any) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise ValidationError({"events": "Choose at least one event."})
    unknown = sorted({str(e) for e in events} - set(EVENTS))
    if unknown:
        raise ValidationError(
            {"events": f"Unknown events: {', '.join(unknown)}. Events are: {', '.join(EVENTS)}."}
        )
    return [e for e in EVENTS if e in events]  # in a fixed order, each once


def _clean_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise ValidationError({"description": f"A description has at most {DESCRIPTION_MAX} characters."})
    return description


def endpoints_of(project: Project) -> QuerySet[WebhookEndpoint]:
    """The project's endpoints, oldest first (callers checked the owner role)."""
    return WebhookEndpoint.objects.filter(project=project).order_by("created_at", "pk")


def _one(rows: QuerySet[Any], pk: Any, missing: str) -> Any:
    """The row of `rows` with this id; Http404 (`missing`) for a bad id or none."""
    try:
        found = rows.filter(pk=uuid.UUID(str(pk))).first()
    except (ValueError, TypeError, AttributeError):
        found = None
    if found is None:
        raise Http404(missing)
    return found


def endpoint_in(project: Project, endpoint_id: Any) -> WebhookEndpoint:
    """One of the project's endpoints; Http404 for anything else."""
    endpoint: WebhookEndpoint = _one(
        WebhookEndpoint.objects.filter(project=project), endpoint_id, "No such webhook."
    )
    endpoint.project = project
    return endpoint


def deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first."""
    return WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-pk")


def delivery_in(endpoint: WebhookEndpoint, delivery_id: Any) -> WebhookDelivery:
    """One of the endpoint's deliveries; Http404 for anything else."""
    delivery: WebhookDelivery = _one(
        WebhookDelivery.objects.filter(endpoint=endpoint), delivery_id, "No such delivery."
    )
    return delivery


def endpoint_create(
    *, user: Any, project: Project, url: str, events: Any, description: str = ""
) -> WebhookEndpoint:
    """Register an endpoint for some of the project's events (owners only); it gets a new secret."""
    require(user, project, Role.OWNER)
    url = endpoint_url_check(url)
    events = _clean_events(events)
    description = _clean_description(description)
    if WebhookEndpoint.objects.filter(project=project).count() >= MAX_ENDPOINTS:
        raise ValidationError({"url": f"A project has at most {MAX_ENDPOINTS} webhook endpoints."})
    endpoint = WebhookEndpoint.objects.create(
        project=project,
        url=url,
        description=description,
        events=events,
        secret=new_secret(),
        created_by=user,
    )
    audit.record("webhook.created", actor=user, target=url, project_id=project.pk)
    log.info("webhook created", extra={"project_id": str(project.pk), "webhook_id": str(endpoint.pk)})
    return endpoint


def endpoint_update(*, user: Any, endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    """Change an endpoint's address, description, events or enabled state (owners only).

    Enabling it again clears the failure count and reason: deliveries start afresh.
    """
    require(user, endpoint.project, Role.OWNER)
    fields: list[str] = []
    if "url" in changes and changes["url"] != endpoint.url:
        endpoint.url = endpoint_url_check(changes["url"])
        fields.append("url")
    if "description" in changes:
        endpoint.description = _clean_description(changes["description"])
        fields.append("description")
    if "events" in changes:
        endpoint.events = _clean_events(changes["events"])
        fields.append("events")
    if "rotate_secret" in changes and changes["rotate_secret"]:
        endpoint.secret = new_secret()
        fields.append("secret")
    if "enabled" in changes and bool(changes["enabled"]) != endpoint.enabled:
        endpoint.enabled = bool(changes["enabled"])
        if endpoint.enabled:
            endpoint.disabled_reason, endpoint.consecutive_failures, endpoint.failing_since = "", 0, None
        else:
            endpoint.disabled_reason = DISABLED_BY_OWNER
        fields += ["enabled", "disabled_reason", "consecutive_failures", "failing_since"]
    if not fields:
        return endpoint
    with transaction.atomic():
        endpoint.save(update_fields=[*fields, "updated_at"])
        if not endpoint.enabled and "enabled" in fields:
            _give_up_pending(endpoint.pk, "The endpoint was disabled before this message was delivered.")
    audit.record(
        "webhook.changed",
        actor=user,
        target=endpoint.url,
        project_id=endpoint.project_id,
        detail={"fields": sorted(set(fields) - {"consecutive_failures", "failing_since"})},
    )
    return endpoint


def endpoint_delete(*, user: Any, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log (owners only)."""
    require(user, endpoint.project, Role.OWNER)
    url, project_id = endpoint.url, endpoint.project_id
    endpoint.delete()
    audit.record("webhook.deleted", actor=user, target=url, project_id=project_id)


def endpoint_test(*, user: Any, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ping to the endpoint, whatever events it is subscribed to (owners only)."""
    require(user, endpoint.project, Role.OWNER)
    if not endpoint.enabled:
        raise ValidationError({"detail": ENDPOINT_DISABLED})
    project = endpoint.project
    data = {"project_id": str(project.pk), "project": {"id": str(project.pk), "title": project.title}}
    data["endpoint"] = {"id": str(endpoint.pk)}
    with transaction.atomic():
        delivery = _delivery(endpoint, PING, _payload(PING, data))
        _publish_on_commit([delivery.pk])
    return delivery


def delivery_resend(*, user: Any, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a message again by hand: a new delivery of the same message (same id and body)."""
    endpoint = delivery.endpoint
    require(user, endpoint.project, Role.OWNER)
    if not endpoint.enabled:
        raise ValidationError({"detail": ENDPOINT_DISABLED})
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=delivery.event,
            payload=delivery.payload,
            message_id=delivery.message_id,
            next_attempt_at=timezone.now(),
        )
        _publish_on_commit([again.pk])
    return again


# --------------------------------------------------------------------------
# Emitting
# --------------------------------------------------------------------------


def _now_iso() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


def _payload(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event, "timestamp": _now_iso(), "data": data}


def _delivery(endpoint: WebhookEndpoint, event: str, payload: dict[str, Any]) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=event,
        payload=payload,
        message_id="msg_" + uuid.uuid4().hex,
        next_attempt_at=timezone.now(),
    )


def emit(*, project_id: Any, event: str, data: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
    """Queue `event` to the project's enabled endpoints subscribed to it; sent after commit.

    `data` carries ids, titles, statuses and reasons, never document text; a callable is
    called only when some endpoint listens. A failure here is logged, never raised: the
    change that happened must not fail for its announcement.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    if project_id is None:
        return
    try:
        with transaction.atomic():
            endpoints = list(
                WebhookEndpoint.objects.filter(
                    project_id=project_id, enabled=True, events__contains=[event]
                ).only("pk")
            )
            if not endpoints:
                return
            payload = _payload(event, {"project_id": str(project_id), **(data() if callable(data) else data)})
            ids = [_delivery(endpoint, event, payload).pk for endpoint in endpoints]
            _publish_on_commit(ids)
    except Exception:
        log.exception("webhook event not queued", extra={"project_id": str(project_id), "event": event})


def member_data(membership: Membership, **extra: Any) -> dict[str, Any]:
    """A membership event's webhook data: who (id and email, as owners see on the members page)."""
    user = {"id": str(membership.user_id), "email": getattr(membership.user, "email", "")}
    return {"member": {"user": user, "role": membership.role, **extra}}


def _publish_on_commit(delivery_ids: list[Any]) -> None:
    ids = [str(pk) for pk in delivery_ids]

    def publish_all() -> None:
        for pk in ids:
            _publish(pk)

    transaction.on_commit(publish_all)


def _publish(delivery_id: str, countdown: float = 0) -> None:
    """Publish one delivery job; a broker outage is logged (the sweeper sends it later)."""
    from projects import tasks

    try:
        tasks.webhook_deliver.apply_async(args=[delivery_id], countdown=countdown or None)
    except Exception:
        log.exception("could not publish a webhook delivery; the sweeper will", extra={"id": delivery_id})


def deliveries_enqueue_due(*, limit: int = 500) -> int:
    """Publish the deliveries whose next attempt is due (retries, lost messages, expired leases)."""
    ids = list(
        WebhookDelivery.objects.filter(
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
            next_attempt_at__lte=timezone.now(),
            endpoint__enabled=True,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        _publish(str(pk))
    return len(ids)


# --------------------------------------------------------------------------
# Delivering
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    latency_ms: int
    error: str


def _lease_s() -> float:
    # Longer than an attempt can take (resolve + connect + answer), so a live attempt is not
    # taken over; a worker that died mid-attempt leaves the delivery due again after it.
    return float(settings.WEBHOOK_TIMEOUT_S) * 2 + 30


def _claim(delivery_id: Any, now: datetime) -> bool:
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery_id,
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
            next_attempt_at__lte=now,
            endpoint__enabled=True,
        ).update(
            next_attempt_at=now + timedelta(seconds=_lease_s()),
            attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
    )


def delivery_attempt(*, delivery_id: Any) -> str:
    """Make the next attempt of a delivery if it is due; its status after, or "skipped"."""
    try:
        pk = uuid.UUID(str(delivery_id))
    except ValueError:
        return "skipped"
    if not _claim(pk, timezone.now()):
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=pk).first()
    if delivery is None:
        return "skipped"
    outcome = send(delivery.endpoint, delivery)
    return _record(delivery, outcome)


def _body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_headers(endpoint: WebhookEndpoint, delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (signed now, so the timestamp is fresh)."""
    sent_at = timezone.now()
    signature = Webhook(endpoint.secret).sign(delivery.message_id, sent_at, body)
    return {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }


def send(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> Outcome:
    """POST the delivery's message to the endpoint once: checked address, pinned connection."""
    timeout = float(settings.WEBHOOK_TIMEOUT_S)
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = _target(endpoint.url)
        addresses = _checked_addresses(target, timeout)
    except AddressError as exc:
        return Outcome(False, None, took(), str(exc))
    body = _body(delivery)
    headers = {
        **signed_headers(endpoint, delivery, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
    }
    try:
        status, answer = _post(target, addresses, body, headers, started + timeout)
    except TimeoutError:
        return Outcome(False, None, took(), f"No answer within {timeout:g} seconds.")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if time.monotonic() >= started + timeout:
            return Outcome(False, None, took(), f"No answer within {timeout:g} seconds.")
        return Outcome(False, None, took(), f"Could not deliver: {_reason(exc)}")
    latency = took()
    if 200 <= status < 300:
        return Outcome(True, status, latency, "")
    if 300 <= status < 400:
        return Outcome(False, status, latency, f"HTTP {status}: redirects are not followed.")
    snippet = " ".join(answer.decode("utf-8", errors="replace").split())[:300]
    return Outcome(False, status, latency, f"HTTP {status}" + (f": {snippet}" if snippet else ""))


def _reason(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


def _post(
    target: _Target, addresses: list[str], body: bytes, headers: dict[str, str], deadline: float
) -> tuple[int, bytes]:
    """One POST to the first checked address that answers; (status, the answer's first bytes)."""
    cls = netguard.PinnedHTTPSConnection if target.scheme == "https" else netguard.PinnedHTTPConnection
    last: Exception | None = None
    for address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        conn = cls(target.host, target.port, address=address, timeout=left)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            last = exc
            continue
        # Closing the socket at the deadline ends an answer that trickles in.
        watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), _abort, args=(conn.sock,))
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read(_RESPONSE_KEEP_BYTES)
            if time.monotonic() >= deadline:
                raise TimeoutError
            return response.status, answer
        finally:
            watchdog.cancel()
            conn.close()
    raise last or OSError("no address to connect to")


def _abort(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _record(delivery: WebhookDelivery, outcome: Outcome) -> str:
    """Store an attempt's outcome; schedule the next attempt, or give up and count the failure."""
    now = timezone.now()
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        succeeded=outcome.ok,
        response_status=outcome.status,
        latency_ms=outcome.latency_ms,
        error=outcome.error[:2000],
    )
    common = {
        "response_status": outcome.status,
        "latency_ms": outcome.latency_ms,
        "error": outcome.error[:2000],
    }
    endpoint_id = delivery.endpoint_id
    if outcome.ok:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.SUCCEEDED, finished_at=now, next_attempt_at=None, **common
        )
        WebhookEndpoint.objects.filter(pk=endpoint_id).filter(
            Q(consecutive_failures__gt=0) | Q(failing_since__isnull=False)
        ).update(consecutive_failures=0, failing_since=None)
        log.info("webhook delivered", extra={"delivery_id": str(delivery.pk), "status": outcome.status})
        return DeliveryStatus.SUCCEEDED
    delays = tuple(settings.WEBHOOK_RETRY_DELAYS_S)
    retry = delivery.attempts <= len(delays)
    delay = 0.0
    if retry:
        delay = float(delays[delivery.attempts - 1])
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.RETRYING, next_attempt_at=now + timedelta(seconds=delay), **common
        )
    else:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, finished_at=now, next_attempt_at=None, **common
        )
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is not None:
            if not retry:
                endpoint.consecutive_failures += 1
            endpoint.failing_since = endpoint.failing_since or now
            endpoint.save(update_fields=["consecutive_failures", "failing_since"])
            reason = _disable_reason(endpoint, now)
            if reason and endpoint.enabled:
                _disable(endpoint, reason)
    log.warning(
        "webhook attempt failed",
        extra={
            "delivery_id": str(delivery.pk),
            "attempt": delivery.attempts,
            "status": outcome.status,
            "reason": outcome.error[:200],
            "retrying": retry,
        },
    )
    if (
        retry
        and delay <= COUNTDOWN_MAX_S
        and WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True).exists()
    ):
        _publish(str(delivery.pk), countdown=delay)
    return DeliveryStatus.RETRYING if retry else DeliveryStatus.FAILED


def _disable_reason(endpoint: WebhookEndpoint, now: datetime) -> str:
    messages = int(settings.WEBHOOK_DISABLE_AFTER_MESSAGES)
    if endpoint.consecutive_failures >= messages:
        return (
            f"Disabled automatically: {endpoint.consecutive_failures} messages in a row failed "
            "every delivery attempt."
        )
    hours = float(settings.WEBHOOK_DISABLE_AFTER_HOURS)
    if endpoint.failing_since is not None and endpoint.failing_since <= now - timedelta(hours=hours):
        return f"Disabled automatically: no delivery succeeded for {hours:g} hours."
    return ""


def _give_up_pending(endpoint_id: Any, reason: str) -> None:
    WebhookDelivery.objects.filter(
        endpoint_id=endpoint_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING]
    ).update(status=DeliveryStatus.FAILED, finished_at=timezone.now(), next_attempt_at=None, error=reason)


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Switch a failing endpoint off (once, under its row lock) and tell the project's owners."""
    endpoint.enabled, endpoint.disabled_reason = False, reason[:500]
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    _give_up_pending(endpoint.pk, "The endpoint was disabled before this message was delivered.")
    log.warning("webhook disabled", extra={"webhook_id": str(endpoint.pk), "reason": reason})
    endpoint_id = endpoint.pk
    transaction.on_commit(lambda: _tell_owners(endpoint_id))


def _tell_owners(endpoint_id: Any) -> None:
    endpoint = WebhookEndpoint.objects.select_related("project").filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    owners = list(
        Membership.objects.filter(project_id=endpoint.project_id, role=Role.OWNER)
        .values_list("user__email", flat=True)
        .order_by("user__email")
    )
    if not owners:
        return
    context = {
        "project_title": endpoint.project.title,
        "url": endpoint.url,
        "reason": endpoint.disabled_reason,
        "page_path": f"/projects/{endpoint.project_id}/webhooks/",
    }
    subject, _, body = render_to_string("projects/email/webhook_disabled.txt", context).partition("\n")
    sent = send_mail(
        " ".join(subject.split()),
        body.lstrip("\n"),
        settings.DEFAULT_FROM_EMAIL,
        owners,
        fail_silently=True,
    )
    if not sent:
        log.warning("webhook disabled email not sent", extra={"webhook_id": str(endpoint_id)})
