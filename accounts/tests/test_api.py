"""Auth and user API: register, JWT pair, refresh, verify, logout, /users/me."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import Tier, User
from accounts.tests.factories import UserFactory
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def tokens(api: APIClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = api.post("/api/v1/auth/token", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_register_creates_a_free_user_and_answers_without_an_id(
    api: APIClient, mailoutbox: list[Any]
) -> None:
    response = api.post(
        "/api/v1/auth/register", {"email": "New@Example.com", "password": "a-long-pass-phrase"}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"email", "detail"}
    assert body["email"] == "new@example.com"
    created = User.objects.get(email="new@example.com")
    assert created.tier == Tier.FREE
    assert created.check_password("a-long-pass-phrase")
    assert [m.to for m in mailoutbox] == [["new@example.com"]]
    # No token until the address is confirmed with the emailed link's token.
    early = api.post(
        "/api/v1/auth/token", {"email": "new@example.com", "password": "a-long-pass-phrase"}, format="json"
    )
    assert early.status_code == 403
    token = re.search(r"/accounts/verify/([^/\s]+)/", mailoutbox[0].body).group(1)
    assert api.post("/api/v1/auth/email/verify", {"token": token}, format="json").status_code == 200
    assert tokens(api, "new@example.com", "a-long-pass-phrase")["access"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": "a-long-pass-phrase"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "12345678901"}, "password"),
        ({"password": "a-long-pass-phrase"}, "email"),
        ({"email": "a@example.com"}, "password"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(
    api: APIClient, payload: dict[str, str], field: str
) -> None:
    response = api.post("/api/v1/auth/register", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_register_with_a_taken_email_answers_the_same_and_emails_the_owner(
    api: APIClient, user: Any, mailoutbox: list[Any]
) -> None:
    taken = api.post(
        "/api/v1/auth/register",
        {"email": user.email.upper(), "password": "a-long-pass-phrase"},
        format="json",
    )
    new = api.post(
        "/api/v1/auth/register",
        {"email": "OTHER@example.com", "password": "a-long-pass-phrase"},
        format="json",
    )
    assert taken.status_code == new.status_code == 202
    assert taken.json()["detail"] == new.json()["detail"]
    assert taken.json()["email"] == user.email
    # The owner hears about it; the account is untouched.
    assert [m.to for m in mailoutbox] == [[user.email], ["other@example.com"]]
    assert "already has an account" in mailoutbox[0].body
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert User.objects.filter(email__iexact=user.email).count() == 1


def test_token_endpoint_matches_the_email_in_any_case(api: APIClient, user: Any) -> None:
    assert tokens(api, user.email.upper())["refresh"]


def test_token_pair_authenticates_and_refresh_rotates(api: APIClient, user: Any) -> None:
    pair = tokens(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    me = api.get("/api/v1/users/me")
    assert me.status_code == 200
    assert me.json()["email"] == user.email

    refreshed = api.post("/api/v1/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh"] != pair["refresh"]
    # The rotated-out refresh token is blacklisted.
    again = api.post("/api/v1/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert again.status_code == 401


def test_wrong_password_gets_401(api: APIClient, user: Any) -> None:
    response = api.post("/api/v1/auth/token", {"email": user.email, "password": "nope-nope"}, format="json")
    assert response.status_code == 401


def test_verify_accepts_a_valid_token_and_rejects_garbage(api: APIClient, user: Any) -> None:
    pair = tokens(api, user.email)
    assert api.post("/api/v1/auth/token/verify", {"token": pair["access"]}, format="json").status_code == 200
    assert api.post("/api/v1/auth/token/verify", {"token": "garbage"}, format="json").status_code == 401


def test_logout_blacklists_the_refresh_token(api: APIClient, user: Any) -> None:
    pair = tokens(api, user.email)
    assert api.post("/api/v1/auth/logout", {"refresh": pair["refresh"]}, format="json").status_code == 200
    response = api.post("/api/v1/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 401


def test_me_requires_authentication(api: APIClient) -> None:
    assert api.get("/api/v1/users/me").status_code == 401


def test_me_patch_changes_name_but_not_tier(auth_api: APIClient, user: Any) -> None:
    response = auth_api.patch("/api/v1/users/me", {"name": "Ada", "tier": "pro"}, format="json")
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.name == "Ada"
    assert user.tier == Tier.FREE


def test_me_patch_rejects_a_weak_password(auth_api: APIClient) -> None:
    response = auth_api.patch(
        "/api/v1/users/me", {"password": "123", "current_password": PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert "password" in response.json()


def test_user_list_is_for_staff_only(auth_api: APIClient) -> None:
    assert auth_api.get("/api/v1/users/").status_code == 403
    staff = UserFactory(is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    response = client.get("/api/v1/users/")
    assert response.status_code == 200
    assert response.json()["count"] == User.objects.count() == 3  # with the installed operator
