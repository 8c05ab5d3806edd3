"""Cached API list pages, keyed by what they show and the version of the data behind them.

A page is stored under its scope (say, one project's documents), the version
of that data the caller has just read from the database, and the full request
URL (host, path and query: the page's own links are absolute). A change bumps
the version in the same transaction, so a later request asks for a new key and
never sees the old page; pages of old versions expire after LIST_CACHE_S.
Access is checked before the cache is asked, on every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def cached(
    request: HttpRequest,
    *,
    scope: str,
    version: int,
    params: frozenset[str],
    build: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The page `build()` makes for this request, from the cache when this version has it.

    `params`: the query parameters the page depends on. A request with any other is
    built afresh and not stored: its links would carry them, and made-up parameters
    must not fill the cache with copies of one page.
    """
    if settings.LIST_CACHE_S <= 0 or not params.issuperset(request.GET.keys()):
        return build()
    url = hashlib.sha256(request.build_absolute_uri().encode()).hexdigest()[:32]
    key = f"page:{scope}:{version}:{url}"
    data = cache.get(key)
    if data is None:
        data = build()
        cache.set(key, data, timeout=settings.LIST_CACHE_S)
    return data
