"""Which scope each API request needs from a personal API key: the one place that decides.

The rule, for every endpoint of the API:

    GET, HEAD, OPTIONS                                    read
    any other method                                      write
    unless the view declares otherwise in `key_scopes`:
      search (a project's, and all projects')             search
      POST /runs/ (ask, summarize, extract)               ask
      project settings (PATCH/PUT) and delete,
      members, invitations (send, revoke, accept, decline) admin:projects
      creating or revoking keys, changing the account      never with a key (403 key_not_allowed)

A view declares with `key_scopes`, a dict whose keys are tried in this order:
"<action>:<METHOD>" (a viewset action answering several methods), "<action>", "<METHOD>",
then "*" (the whole view). `key_all_projects` lists actions a key limited to some projects may
not take (creating a project it could not then see, joining one). Requests made without a key
(session, JWT) pass untouched: their limits are the roles alone.

`KeyScopePermission` is in REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"]; a view that sets its
own permission_classes lists it too (accounts/tests/test_keys.py checks every API view does).
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.keys import key_allows
from accounts.models import ApiKey, Scope

READ = Scope.READ.value
SEARCH = Scope.SEARCH.value
ASK = Scope.ASK.value
WRITE = Scope.WRITE.value
ADMIN_PROJECTS = Scope.ADMIN_PROJECTS.value
NOT_FOR_KEYS = "not-for-keys"


class ScopeMissing(exceptions.PermissionDenied):
    """403: the key lacks the scope this request needs (the message names it)."""

    default_code = "scope_missing"
    names_its_code = True  # {"detail", "code"} (core/api_errors.py)

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This API key does not have the `{scope}` scope, which this request needs. "
            "Create a key with it on your account's API keys page."
        )
        self.scope = scope


class KeyNotAllowed(exceptions.PermissionDenied):
    """403: something a person does signed in, never through an API key."""

    default_code = "key_not_allowed"
    names_its_code = True

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "API keys cannot do this: sign in (a session or a token from /api/v1/auth/token) instead."
        )


LIMITED_KEY = "A key limited to some projects cannot do this: use a key for all your projects, or sign in."


def request_key(request: Any) -> ApiKey | None:
    """The API key a DRF request authenticated with, or None."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def scope_needed(view: Any, method: str) -> str:
    """The scope a request with this method needs at this view (or NOT_FOR_KEYS)."""
    declared: dict[str, str] = getattr(view, "key_scopes", None) or {}
    action = getattr(view, "action", None)
    candidates = [f"{action}:{method}", action] if action else []
    for name in [*candidates, method, "*"]:
        if name in declared:
            return declared[name]
    return READ if method in SAFE_METHODS else WRITE


class KeyScopePermission(BasePermission):
    """Refuse a key request whose key lacks the scope the endpoint needs (403 scope_missing)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        key = request_key(request)
        if key is None:
            return True
        need = scope_needed(view, request.method)
        if need == NOT_FOR_KEYS:
            raise KeyNotAllowed()
        if key.project_ids and getattr(view, "action", None) in getattr(view, "key_all_projects", ()):
            raise KeyNotAllowed(LIMITED_KEY)
        if not key_allows(key, need):
            raise ScopeMissing(need)
        return True
