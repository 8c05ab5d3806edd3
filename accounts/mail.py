"""Where Docent's email goes when no SMTP server is configured: the admin outbox.

`OutboxBackend` is a Django email backend that stores each message (sign-up
confirmations, password resets, project invitations: everything sent through
`django.core.mail`) as an `OutboxMessage` row, which staff read in the admin and
whose links they pass on by other means. config/settings.py picks it when neither
DOCENT_EMAIL_BACKEND nor EMAIL_HOST is set outside production; with SMTP
configured, mail is sent as usual and the outbox stays empty.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone

log = logging.getLogger(__name__)

OUTBOX_BACKEND = "accounts.mail.OutboxBackend"
_LINK = re.compile(r"https?://[^\s<>\"']+")


def mail_goes_to_outbox() -> bool:
    """Whether messages land in the admin outbox instead of anyone's inbox."""
    return str(settings.EMAIL_BACKEND) == OUTBOX_BACKEND


def links_in(text: str) -> list[str]:
    """The web links of a message body, in order, each once."""
    return list(dict.fromkeys(match.rstrip(".,;:)") for match in _LINK.findall(text or "")))


def _plain_body(message: EmailMessage) -> str:
    # Docent's mails are plain text; an HTML-only one still keeps its links readable.
    if message.body:
        return str(message.body)
    for content, mimetype in getattr(message, "alternatives", []) or []:
        if mimetype == "text/html":
            return str(content)
    return ""


class OutboxBackend(BaseEmailBackend):
    """Keeps every message in the admin outbox (accounts.OutboxMessage) instead of sending it."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        from accounts.models import OutboxMessage

        kept = 0
        for message in email_messages:
            recipients = message.recipients()
            if not recipients:
                continue
            try:
                row = OutboxMessage.objects.create(
                    to=", ".join(recipients),
                    from_email=str(message.from_email or "")[:254],
                    subject=str(message.subject or "")[:998],
                    body=_plain_body(message),
                )
            except Exception:
                if not self.fail_silently:
                    raise
                log.exception("could not keep an email in the outbox")
                continue
            kept += 1
            # The one line the terminal shows: where to find it, not what it says.
            log.info(
                "email kept in the admin outbox (no SMTP server is configured)",
                extra={"admin_path": reverse("admin:accounts_outboxmessage_change", args=[row.pk])},
            )
        if kept:
            outbox_prune()
        return kept


def outbox_prune(*, now: Any = None) -> int:
    """Delete outbox messages older than DOCENT_OUTBOX_DAYS; their links have long expired."""
    from accounts.models import OutboxMessage

    cutoff = (now or timezone.now()) - timedelta(days=settings.OUTBOX_DAYS)
    deleted, _ = OutboxMessage.objects.filter(sent_at__lt=cutoff).delete()
    return deleted
