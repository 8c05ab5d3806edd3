"""Values written the way the API writes them, for serializers that build their dicts directly."""

from __future__ import annotations

from datetime import datetime, tzinfo

from django.utils import timezone


def iso_datetime(value: datetime | None, zone: tzinfo | None = None) -> str | None:
    """A datetime as DRF's DateTimeField writes it: ISO 8601 in the current zone, UTC as Z.

    `zone`: the current time zone, when the caller writes many values and has looked
    it up once (the lookup costs more than the formatting).
    """
    if value is None:
        return None
    text = timezone.localtime(value, zone or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
