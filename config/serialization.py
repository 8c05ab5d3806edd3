"""Values written the way the API writes them, for serializers that build their dicts directly."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def iso_datetime(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField writes it: ISO 8601 in the current zone, UTC as Z."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
