"""API authentication reads the token's user through the shared cache, and never serves a stale row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Tier, User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cache_on(settings: Any) -> None:
    # Production turns it on with Redis; the logic is the same on the local cache of one process.
    settings.AUTH_USER_CACHE_S = 300


@pytest.fixture
def member() -> User:
    return UserFactory(tier=Tier.FREE)


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def user_queries(client: APIClient) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/api/v1/users/me")
    return response.status_code, [q["sql"] for q in captured if User._meta.db_table in q["sql"]]


def test_the_second_request_with_a_token_reads_no_user_row(member: User) -> None:
    client = bearer(member)
    assert user_queries(client)[0] == 200
    status, queries = user_queries(client)
    assert status == 200
    assert queries == []
    assert client.get("/api/v1/users/me").json()["email"] == member.email


def test_with_the_cache_off_every_request_reads_the_user(member: User, settings: Any) -> None:
    settings.AUTH_USER_CACHE_S = 0
    client = bearer(member)
    user_queries(client)
    assert len(user_queries(client)[1]) == 1


def test_deactivating_a_cached_user_shuts_their_token_out_at_once(member: User) -> None:
    client = bearer(member)
    assert user_queries(client)[0] == 200
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert client.get("/api/v1/users/me").status_code == 401


def test_deleting_a_cached_user_shuts_their_token_out_at_once(member: User) -> None:
    client = bearer(member)
    assert user_queries(client)[0] == 200
    member.delete()
    assert client.get("/api/v1/users/me").status_code == 401


def test_a_new_tier_applies_on_the_next_request(member: User) -> None:
    client = bearer(member)
    assert client.get("/api/v1/users/me").json()["tier"] == "free"
    member.tier = Tier.PRO
    member.save(update_fields=["tier"])
    assert client.get("/api/v1/users/me").json()["tier"] == "pro"


@pytest.fixture
def slow_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Makes the database read of a user return the row as it was, then lets a change land
    before the reader stores it: the interleaving of a request racing a staff edit."""
    changes: list[Any] = []
    real = JWTAuthentication.get_user

    def read_then_change(self: Any, token: Any) -> Any:
        row = real(self, token)
        while changes:
            changes.pop()()
        return row

    monkeypatch.setattr(JWTAuthentication, "get_user", read_then_change)
    yield changes


def test_a_row_read_before_a_change_and_stored_after_it_is_never_served(
    member: User, slow_reader: list[Any]
) -> None:
    client = bearer(member)

    def deactivate() -> None:
        fresh = User.objects.get(pk=member.pk)
        fresh.is_active = False
        fresh.save(update_fields=["is_active"])

    slow_reader.append(deactivate)
    assert client.get("/api/v1/users/me").status_code == 200  # it read the row before the change
    assert client.get("/api/v1/users/me").status_code == 401  # its late copy is not used


def test_a_token_that_served_earlier_is_refused_with_simplejwts_answer_once_it_expires(
    member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from rest_framework_simplejwt import tokens
    from rest_framework_simplejwt.utils import aware_utcnow

    client = bearer(member)
    assert client.get("/api/v1/users/me").status_code == 200
    later = aware_utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(tokens, "aware_utcnow", lambda: later)
    expired = client.get("/api/v1/users/me")
    assert expired.status_code == 401
    body = expired.json()
    assert body["code"] == "token_not_valid"
    assert body["detail"] == "Given token not valid for any token type"
    assert body["messages"] == [
        {"token_class": "AccessToken", "token_type": "access", "message": "Token 'exp' claim has expired"}
    ]
    monkeypatch.undo()
    fresh = bearer(member)
    assert fresh.get("/api/v1/users/me").status_code == 200
