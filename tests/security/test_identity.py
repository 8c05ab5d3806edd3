"""Identity: JWT lifetimes and contents, revocation, password hashing, and no account enumeration."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.core import signing
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def pair(email: str, password: str = PASSWORD) -> dict[str, str]:
    response = APIClient().post("/api/v1/auth/token", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")


def verify(token: str) -> Any:
    return APIClient().post("/api/v1/auth/token/verify", {"token": token}, format="json")


# --- tokens ----------------------------------------------------------------------------


def test_access_tokens_live_at_most_15_minutes_and_refresh_rotates() -> None:
    jwt_settings = django_settings.SIMPLE_JWT
    assert jwt_settings["ACCESS_TOKEN_LIFETIME"] <= timedelta(minutes=15)
    assert jwt_settings["ROTATE_REFRESH_TOKENS"] and jwt_settings["BLACKLIST_AFTER_ROTATION"]
    user = UserFactory()
    tokens = pair(user.email)
    access = claims(tokens["access"])
    assert access["exp"] - access["iat"] <= 15 * 60


def test_tokens_carry_no_personal_data_beyond_the_user_id() -> None:
    user = UserFactory(email="ada.lovelace@example.com", name="Ada Lovelace")
    tokens = pair(user.email)
    for kind in ("access", "refresh"):
        body = claims(tokens[kind])
        assert set(body) == {"token_type", "exp", "iat", "jti", "user_id"}, body
        assert body["user_id"] == str(user.pk)
        # The claims' values other than the random ids (a hex jti may spell "ada").
        raw = json.dumps({k: v for k, v in body.items() if k not in {"jti", "user_id"}}).lower()
        assert "ada" not in raw and "lovelace" not in raw and "@" not in raw
        assert "@" not in body["jti"] and "lovelace" not in body["jti"]


def test_a_deactivated_users_tokens_stop_working_at_once() -> None:
    user = UserFactory()
    tokens = pair(user.email)
    assert bearer(tokens["access"]).get("/api/v1/users/me").status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert bearer(tokens["access"]).get("/api/v1/users/me").status_code == 401
    assert refresh(tokens["refresh"]).status_code == 401
    assert verify(tokens["access"]).status_code == 401
    assert (
        APIClient().post("/api/v1/auth/token", {"email": user.email, "password": PASSWORD}).status_code == 401
    )


def test_a_deleted_users_tokens_get_401_not_an_error() -> None:
    user = UserFactory()
    tokens = pair(user.email)
    user.delete()
    assert bearer(tokens["access"]).get("/api/v1/users/me").status_code == 401
    assert refresh(tokens["refresh"]).status_code == 401
    assert verify(tokens["access"]).status_code == 401


def test_a_refresh_token_works_once() -> None:
    user = UserFactory()
    first = pair(user.email)["refresh"]
    rotated = refresh(first)
    assert rotated.status_code == 200
    reused = refresh(first)
    assert reused.status_code == 401
    assert verify(first).status_code == 401  # blacklisted
    assert refresh(rotated.json()["refresh"]).status_code == 200


def test_logout_ends_the_refresh_token() -> None:
    user = UserFactory()
    tokens = pair(user.email)
    assert (
        APIClient().post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code
        == 200
    )
    assert refresh(tokens["refresh"]).status_code == 401


def test_changing_the_password_ends_every_refresh_token() -> None:
    user = UserFactory()
    phone, laptop = pair(user.email), pair(user.email)
    response = bearer(laptop["access"]).patch(
        "/api/v1/users/me", {"password": "a-new-long-phrase", "current_password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert refresh(phone["refresh"]).status_code == 401
    assert refresh(laptop["refresh"]).status_code == 401
    assert pair(user.email, "a-new-long-phrase")["access"]


# The key releases before the fix used when SECRET_KEY was unset: public, in the history.
PUBLISHED_KEY = "docent-insecure-development-key-change-me-0123456789abcdef"


@pytest.mark.parametrize("forgery", ["none", "wrong key", "published key", "edited", "expired"])
def test_forged_or_expired_tokens_are_refused(forgery: str) -> None:
    user = UserFactory()
    access = pair(user.email)["access"]
    body = claims(access)
    if forgery == "none":
        token = jwt.encode(body, key=None, algorithm="none")
    elif forgery == "wrong key":
        token = jwt.encode(body, "another-secret-key-of-sufficient-length-0123456789", algorithm="HS256")
    elif forgery == "published key":
        token = jwt.encode(body, PUBLISHED_KEY, algorithm="HS256")
    elif forgery == "edited":
        other = UserFactory()
        head, _, sig = access.split(".")
        edited = base64.urlsafe_b64encode(json.dumps({**body, "user_id": str(other.pk)}).encode()).rstrip(
            b"="
        )
        token = f"{head}.{edited.decode()}.{sig}"
    else:
        token = jwt.encode(
            {**body, "exp": body["iat"] - 1}, django_settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256"
        )
    assert bearer(token).get("/api/v1/users/me").status_code == 401


def test_tokens_and_links_signed_with_the_published_key_are_refused() -> None:
    """Any member could read other members' ids and sign as them with the old constant key."""
    staff = UserFactory(is_staff=True, email_verified_at=None)
    now = int(time.time())
    forged = {"user_id": str(staff.pk), "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    access = jwt.encode({**forged, "token_type": "access"}, PUBLISHED_KEY, algorithm="HS256")
    refresh_token = jwt.encode(
        {**forged, "token_type": "refresh", "exp": now + 86400}, PUBLISHED_KEY, algorithm="HS256"
    )
    assert bearer(access).get("/api/v1/users/me").status_code == 401
    assert bearer(access).get("/api/v1/users/").status_code == 401
    assert refresh(refresh_token).status_code == 401
    link = signing.dumps(
        {"u": str(staff.pk), "e": staff.email}, key=PUBLISHED_KEY, salt="accounts.verify-email", compress=True
    )
    response = APIClient().post("/api/v1/auth/email/verify", {"token": link}, format="json")
    assert response.status_code == 400
    staff.refresh_from_db()
    assert staff.email_verified_at is None
    assert django_settings.SECRET_KEY != PUBLISHED_KEY


# --- passwords -----------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2() -> None:
    assert django_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    user = UserFactory()
    assert user.password.startswith("argon2$argon2id$")
    assert PASSWORD not in user.password


def test_an_older_hash_is_upgraded_to_argon2_at_sign_in() -> None:
    user = UserFactory()
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    assert (
        Client().post("/accounts/login/", {"username": user.email, "password": PASSWORD}).status_code == 302
    )
    user.refresh_from_db()
    assert user.password.startswith("argon2$")


@pytest.mark.parametrize("password", ["short", "12345678901", "password123", "owner@example.com"])
def test_weak_passwords_are_refused(password: str) -> None:
    response = APIClient().post(
        "/api/v1/auth/register", {"email": "owner@example.com", "password": password}, format="json"
    )
    assert response.status_code == 400
    assert "password" in response.json()


# --- no account enumeration -------------------------------------------------------------


def blank(text: str, *emails: str) -> str:
    for email in emails:
        text = text.replace(email, "EMAIL")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts Argon2 computations (hash or check): both paths of a sign-up or sign-in do the same work."""
    calls: list[str] = []
    encode, verify = Argon2PasswordHasher.encode, Argon2PasswordHasher.verify

    def counting_encode(self: Any, password: str, salt: str) -> str:
        calls.append("encode")
        return encode(self, password, salt)

    def counting_verify(self: Any, password: str, encoded: str) -> bool:
        calls.append("verify")
        return verify(self, password, encoded)

    monkeypatch.setattr(Argon2PasswordHasher, "encode", counting_encode)
    monkeypatch.setattr(Argon2PasswordHasher, "verify", counting_verify)
    return calls


def test_api_sign_up_answers_the_same_for_a_taken_and_a_new_address(
    hashes: list[str], mailoutbox: list[Any]
) -> None:
    taken = UserFactory(email="taken@example.com")
    hashes.clear()
    body = {"password": "a-long-pass-phrase"}
    one = APIClient().post("/api/v1/auth/register", {**body, "email": taken.email}, format="json")
    work_taken = len(hashes)
    two = APIClient().post("/api/v1/auth/register", {**body, "email": "new@example.com"}, format="json")
    assert work_taken == len(hashes) - work_taken == 1
    assert one.status_code == two.status_code == 202
    assert blank(one.content.decode(), taken.email) == blank(two.content.decode(), "new@example.com")
    assert "id" not in one.json()
    assert [m.to for m in mailoutbox] == [[taken.email], ["new@example.com"]]


def test_page_sign_up_answers_the_same_for_a_taken_and_a_new_address(hashes: list[str]) -> None:
    taken = UserFactory(email="taken@example.com")
    hashes.clear()
    form = {"password": PASSWORD, "confirm": PASSWORD}
    one = Client().post("/accounts/signup/", {**form, "email": taken.email}, follow=True)
    work_taken = len(hashes)
    two = Client().post("/accounts/signup/", {**form, "email": "new@example.com"}, follow=True)
    assert work_taken == len(hashes) - work_taken == 1
    assert one.redirect_chain == two.redirect_chain
    assert blank(one.content.decode(), taken.email) == blank(two.content.decode(), "new@example.com")
    assert set(one.cookies) == set(two.cookies)  # no session for either


def test_sign_in_failures_do_not_say_whether_the_address_exists(hashes: list[str]) -> None:
    user = UserFactory(email="known@example.com")
    hashes.clear()
    page_known = Client().post("/accounts/login/", {"username": user.email, "password": "wrong-password"})
    page_unknown = Client().post(
        "/accounts/login/", {"username": "ghost@example.com", "password": "wrong-password"}
    )
    assert page_known.status_code == page_unknown.status_code == 200
    assert blank(page_known.content.decode(), user.email) == blank(
        page_unknown.content.decode(), "ghost@example.com"
    )
    hashes.clear()
    api_known = APIClient().post(
        "/api/v1/auth/token", {"email": user.email, "password": "nope"}, format="json"
    )
    work_known = len(hashes)
    api_unknown = APIClient().post(
        "/api/v1/auth/token", {"email": "ghost@example.com", "password": "nope"}, format="json"
    )
    assert work_known == len(hashes) - work_known == 1  # Django hashes for unknown users too
    assert (api_known.status_code, api_known.json()) == (api_unknown.status_code, api_unknown.json())
    # An inactive account fails the same way as a wrong password.
    user.is_active = False
    user.save(update_fields=["is_active"])
    inactive = APIClient().post(
        "/api/v1/auth/token", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert (inactive.status_code, inactive.json()) == (api_unknown.status_code, api_unknown.json())


def test_password_reset_answers_the_same_and_mails_only_real_accounts(mailoutbox: list[Any]) -> None:
    user = UserFactory(email="known@example.com")
    known = Client().post("/accounts/password-reset/", {"email": "Known@Example.com"}, follow=True)
    unknown = Client().post("/accounts/password-reset/", {"email": "ghost@example.com"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain == [("/accounts/password-reset/done/", 302)]
    assert blank(known.content.decode()) == blank(unknown.content.decode())
    assert [m.to for m in mailoutbox] == [[user.email]]


def test_password_reset_link_sets_a_new_password_once_and_ends_refresh_tokens(mailoutbox: list[Any]) -> None:
    user = UserFactory()
    tokens = pair(user.email)
    Client().post("/accounts/password-reset/", {"email": user.email})
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    client = Client()
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    weak = client.post(form.redirect_chain[-1][0], {"new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-new-long-phrase", "new_password2": "a-new-long-phrase"},
    )
    assert done.status_code == 302
    assert refresh(tokens["refresh"]).status_code == 401
    assert pair(user.email, "a-new-long-phrase")["access"]
    again = Client().get(link)
    assert "This link no longer works" in again.content.decode()


def test_the_users_api_shows_the_tier_and_lets_no_one_change_it() -> None:
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/v1/users/me").json()["tier"] == "free"
    client.patch("/api/v1/users/me", {"tier": "pro", "is_staff": True}, format="json")
    user.refresh_from_db()
    assert (user.tier, user.is_staff) == ("free", False)
    assert User.objects.filter(tier="pro").count() == 0
