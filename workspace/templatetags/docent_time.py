"""Template filters for showing when something happened."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import dateformat, timezone

register = template.Library()

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def ago_at(value: datetime, now: datetime) -> str:
    """How long before `now` `value` was, in the words the pages use."""
    elapsed = now - value
    # Under a minute, or a little ahead (another server's clock): Django's timesince says "0 minutes".
    if elapsed < MINUTE:
        return "just now"
    if elapsed < HOUR:
        minutes = elapsed // MINUTE
        return f"{minutes} minute{'' if minutes == 1 else 's'} ago"
    if elapsed < DAY:
        hours = elapsed // HOUR
        return f"{hours} hour{'' if hours == 1 else 's'} ago"
    return dateformat.format(timezone.localtime(value), "j M Y")


@register.filter(expects_localtime=False)
def ago(value: datetime | None) -> str:
    """ "just now", "N minutes ago", "N hours ago", then the date ("3 Mar 2025")."""
    if not isinstance(value, datetime):
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return ago_at(value, timezone.now())
