"""API authentication: personal API keys (`Bearer dk_...`), and JWTs whose user is read from the shared cache.

Keys: `ApiKeyAuthentication` takes a bearer value that starts with `dk_` and leaves every
other one to the JWT class after it, so both ride the same header. A key request has
request.user = the key's owner and request.auth = the ApiKey (accounts.keys, accounts.scopes).

JWTs:

Every API request names its user in the access token; looking the row up costs
a query and most of a millisecond of ORM work per request. With a cache every
process shares (Redis), the row is kept there for `AUTH_USER_CACHE_S` seconds.
Saving or deleting a user moves the user's generation on (`accounts.signals`,
after commit), and a cached row counts only while its generation is current, so
deactivating, deleting or re-tiering an account takes effect on the next
request, even when a request that read the old row stores it late. With a
per-process cache (the embedded default) one process could not tell another,
so nothing is cached there (`AUTH_USER_CACHE_S` is 0).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts import keys
from accounts.models import ApiKey


@functools.cache
def _columns() -> tuple[str, ...]:
    return tuple(field.attname for field in get_user_model()._meta.concrete_fields)


@functools.cache
def _schema() -> str:
    # A deploy that changes the user table never reads rows cached by the old code.
    return hashlib.sha256(",".join(_columns()).encode()).hexdigest()[:8]


def _keys(user_id: Any) -> tuple[str, str]:
    return f"auth-user:{_schema()}:{user_id}", f"auth-user-gen:{user_id}"


def user_cache_forget(user_id: Any) -> None:
    """Invalidate whatever is cached for the user (it changed or went away)."""
    cache.set(_keys(user_id)[1], secrets.token_hex(8), timeout=None)


class CachedJWTAuthentication(JWTAuthentication):
    """simplejwt's JWTAuthentication (its token checks and error bodies as they are) with the
    user row read through the shared cache."""

    def get_user(self, validated_token: Token) -> Any:
        if settings.AUTH_USER_CACHE_S <= 0:
            return super().get_user(validated_token)
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        row_key, gen_key = _keys(user_id)
        found = cache.get_many([row_key, gen_key])
        generation, entry = found.get(gen_key), found.get(row_key)
        if generation is not None and entry is not None and entry[0] == generation:
            user = get_user_model().from_db("default", _columns(), entry[1])
            return self._checked(user, validated_token)
        if generation is None:
            cache.add(gen_key, secrets.token_hex(8), timeout=None)
            generation = cache.get(gen_key)
        user = super().get_user(validated_token)  # the query, and simplejwt's own checks
        if generation is not None:
            row = [getattr(user, column) for column in _columns()]
            cache.set(row_key, (generation, row), timeout=settings.AUTH_USER_CACHE_S)
        return user

    def _checked(self, user: Any, validated_token: Token) -> Any:
        """The checks simplejwt makes on a freshly read row, made on the cached one."""
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed("The user's password has been changed.", code="password_changed")
        return user


KEY_MARK = "dk_"


class KeyRefusedError(exceptions.AuthenticationFailed):
    """401 for a `dk_` bearer value that does not authenticate; the body names why in `code`."""

    names_its_code = True  # {"detail", "code"} (core/api_errors.py)

    def __init__(self, refused: keys.KeyRefused) -> None:
        super().__init__(str(refused), refused.code)
        self.default_code = refused.code  # the code core/api_errors.py puts in the body


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer dk_<prefix>_<secret>`: a personal API key (accounts.keys)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer" or not parts[1].startswith(KEY_MARK.encode()):
            return None  # not a key: the JWT class (or the session) decides
        try:
            key = keys.authenticate_key(parts[1].decode("latin-1"))
        except keys.KeyRefused as refused:
            raise KeyRefusedError(refused) from None
        return key.owner, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # as the JWT class answers: a refusal is a 401 either way
