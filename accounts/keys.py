"""Personal API keys: create, revoke, list, and authenticate a raw key.

A key reads `dk_<prefix>_<secret>`: the prefix (12 hex characters) is shown in lists and finds
the row; the secret (32 random bytes, URL-safe base64) is shown once and only its SHA-256 is
stored. A fast hash is the right one here, unlike for passwords: a password is guessable, so it
needs a slow salted hash (Argon2) to make each guess dear, but a 256-bit random secret cannot be
guessed at any speed, and hashing it with Argon2 would only add a fifth of a second to every API
request. The hash is compared in constant time (`hmac.compare_digest`). It is a plain hash, not
an HMAC keyed with SECRET_KEY, so rotating SECRET_KEY does not break every integration.

A key acts as its owner: the owner's roles (projects.access narrows them to the key's projects,
never widens them), the owner's rate-limit tier, and only what its scopes allow
(accounts.scopes, one map for every API endpoint). `authenticate_key` is the one door, for the
API (accounts.authentication) and any other face that accepts keys (MCP).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts import audit
from accounts.models import ApiKey, Scope

SCOPES: tuple[str, ...] = tuple(Scope.values)
KEY_FORMAT = "dk_<12 hex characters>_<43 characters>"
_PATTERN = re.compile(r"dk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
SECRET_BYTES = 32
# last_used_at is written at most this often: a busy script must not turn every read into a write.
LAST_USED_EVERY = timedelta(minutes=1)
NAME_MAX: int = ApiKey._meta.get_field("name").max_length or 100
# The attribute on the owner's user object that says which key it acts through (set by
# authenticate_key, read by key_acting_for); a fresh user object is loaded for every request.
_ACTING_KEY = "_docent_api_key"


class KeyRefused(Exception):
    """A raw key that does not authenticate: malformed, unknown, revoked, expired, or its owner inactive.

    `code` names the reason for clients; the message says it in words.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


# --- the projects a person may limit a key to --------------------------------------
#
# accounts sits below projects and cannot ask it; projects registers how to list a
# person's projects (projects/apps.py), as (id, title) pairs.

_projects_of: Callable[[Any], list[tuple[UUID, str]]] | None = None


def register_project_directory(projects_of: Callable[[Any], list[tuple[UUID, str]]]) -> None:
    """Called once by the projects app: how to list the projects a person is a member of."""
    global _projects_of
    _projects_of = projects_of


def projects_of(user: Any) -> list[tuple[UUID, str]]:
    """The projects the person may limit a key to (theirs), as (id, title), by title."""
    return _projects_of(user) if _projects_of is not None else []


# --- selectors -----------------------------------------------------------------------


def keys_of(user: Any) -> QuerySet[ApiKey]:
    """The person's keys, newest first (revoked and expired ones too: the list shows their state)."""
    if not getattr(user, "is_authenticated", False):
        return ApiKey.objects.none()
    return ApiKey.objects.filter(owner_id=user.pk).order_by("-created_at")


def key_of(user: Any, key_id: Any) -> ApiKey:
    """One of the person's keys; 404 for anyone else's and for ids that are not ids."""
    try:
        pk = key_id if isinstance(key_id, UUID) else UUID(str(key_id))
    except (ValueError, TypeError, AttributeError):
        raise Http404("No such key.") from None
    key = keys_of(user).filter(pk=pk).first()
    if key is None:
        raise Http404("No such key.")
    return key


def key_acting_for(user: Any) -> ApiKey | None:
    """The key this user object authenticated with, or None (a session, a JWT, a page)."""
    key = getattr(user, _ACTING_KEY, None)
    return key if isinstance(key, ApiKey) else None


def key_allows(key: ApiKey, scope: str) -> bool:
    """Whether the key holds the scope (scopes do not imply one another)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return scope in key.scopes


def key_project_limit(user: Any) -> frozenset[UUID] | None:
    """The projects the request's key is limited to, or None when it may use all of the owner's."""
    key = key_acting_for(user)
    if key is None or not key.project_ids:
        return None
    return frozenset(key.project_ids)


def key_status(key: ApiKey) -> str:
    if key.revoked:
        return "revoked"
    if key.expired:
        return "expired"
    return "active"


# --- services ------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = set(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope: {', '.join(unknown)}. Scopes: {', '.join(SCOPES)}."}
        )
    if not chosen:
        raise ValidationError({"scopes": "Choose at least one scope."})
    return [scope for scope in SCOPES if scope in chosen]  # in the documented order


def _clean_projects(user: Any, project_ids: Iterable[Any]) -> list[UUID]:
    wanted: list[UUID] = []
    for value in project_ids:
        try:
            pid = value if isinstance(value, UUID) else UUID(str(getattr(value, "pk", value)))
        except (ValueError, TypeError, AttributeError):
            raise ValidationError({"projects": f"{value!r} is not a project id."}) from None
        if pid not in wanted:
            wanted.append(pid)
    mine = {pid for pid, _title in projects_of(user)}
    if any(pid not in mine for pid in wanted):
        # One message whether the project exists or not: a key form is no way to probe ids.
        raise ValidationError({"projects": "A key can only be limited to projects you are a member of."})
    return wanted


def key_create(
    *,
    user: Any,
    name: str,
    scopes: Iterable[str],
    projects: Iterable[Any] = (),
    expires_at: datetime | None = None,
    request: Any = None,
) -> tuple[ApiKey, str]:
    """A new key for the person, and its raw value: shown once, never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name (what will use it?)."})
    if len(name) > NAME_MAX:
        raise ValidationError({"name": f"At most {NAME_MAX} characters."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    chosen_scopes = _clean_scopes(scopes)
    project_ids = _clean_projects(user, projects)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    for _attempt in range(5):
        prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    owner=user,
                    name=name,
                    prefix=prefix,
                    secret_hash=_hash(secret),
                    scopes=chosen_scopes,
                    project_ids=project_ids,
                    expires_at=expires_at,
                )
                audit.record(
                    "key.created",
                    actor=user,
                    target=str(key),
                    request=request,
                    detail={"scopes": chosen_scopes, "projects": [str(p) for p in project_ids]},
                )
        except IntegrityError:  # the one-in-2^48 prefix clash: draw another
            continue
        return key, f"dk_{prefix}_{secret}"
    raise RuntimeError("could not draw a free key prefix")


def key_revoke(*, key: ApiKey, actor: Any, request: Any = None) -> bool:
    """Revoke the key at once (its next request is refused); False when it already was."""
    now = timezone.now()
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
        if changed:
            audit.record("key.revoked", actor=actor, target=str(key), request=request)
    if changed:
        key.revoked_at = now
    return bool(changed)


def authenticate_key(raw: str) -> ApiKey:
    """The active key for a raw `dk_...` value, with `key.owner` acting through it; KeyRefused otherwise.

    Refuses malformed values, unknown keys, wrong secrets, revoked and expired keys and keys
    of inactive accounts. Records the use (at most once a minute).
    """
    match = _PATTERN.fullmatch(raw or "")
    if match is None:
        raise KeyRefused(f"Malformed API key: a key reads {KEY_FORMAT}.", "key_malformed")
    prefix, secret = match.groups()
    key = ApiKey.objects.select_related("owner").filter(prefix=prefix).first()
    # Compared in constant time; an unknown prefix still costs a comparison.
    stored = key.secret_hash if key is not None else "0" * 64
    if not hmac.compare_digest(stored, _hash(secret)) or key is None:
        raise KeyRefused("Invalid API key.", "key_invalid")
    if key.revoked:
        raise KeyRefused("This API key was revoked.", "key_revoked")
    if key.expired:
        raise KeyRefused("This API key has expired.", "key_expired")
    if not key.owner.is_active:
        raise KeyRefused("The account this API key belongs to is inactive.", "user_inactive")
    _record_use(key)
    setattr(key.owner, _ACTING_KEY, key)
    return key


def _record_use(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_EVERY:
        return
    # Conditional: of many requests in the same minute, over every process, one writes.
    ApiKey.objects.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    ).update(last_used_at=now)
    key.last_used_at = now
