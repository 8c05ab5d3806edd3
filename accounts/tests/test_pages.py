"""Sign-up, log-in and log-out pages."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def same_page(html: str, email: str) -> str:
    """The page with the address and the per-request CSRF token blanked out."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.replace(email, "X"))


def test_anonymous_visitor_is_sent_to_the_login_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_signup_with_a_weak_password_shows_the_validator_messages(
    client: Client,
) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password": "12345", "confirm": "12345"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "This password is too short" in body
    assert "entirely numeric" in body
    assert not get_user_model().objects.filter(email="new@example.com").exists()


def test_signup_with_differing_passwords_says_so(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password": PASSWORD, "confirm": PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert "The two passwords differ." in response.content.decode()


def test_signup_with_a_taken_email_looks_like_any_other_sign_up(
    client: Client, user: Any, mailoutbox: list[Any]
) -> None:
    taken = client.post(
        "/accounts/signup/",
        {"email": "OWNER@example.com", "password": PASSWORD, "confirm": PASSWORD},
        follow=True,
    )
    new = Client().post(
        "/accounts/signup/",
        {"email": "fresh@example.com", "password": PASSWORD, "confirm": PASSWORD},
        follow=True,
    )
    assert taken.redirect_chain == new.redirect_chain == [("/accounts/login/", 302)]
    page = taken.content.decode()
    assert "We have sent a message to owner@example.com" in page
    assert same_page(page, "owner@example.com") == same_page(new.content.decode(), "fresh@example.com")
    assert not taken.wsgi_request.user.is_authenticated
    assert [m.to for m in mailoutbox] == [["owner@example.com"], ["fresh@example.com"]]


def test_signup_with_an_invalid_email_says_so(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "nope", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()


def test_signup_creates_the_account_and_the_new_user_logs_in_after_confirming(
    client: Client, mailoutbox: list[Any]
) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "New@Example.com", "password": PASSWORD, "confirm": PASSWORD},
        follow=True,
    )
    assert response.redirect_chain == [("/accounts/login/", 302)]
    assert "open the link in it to confirm the address" in response.content.decode()
    link = re.search(r"http://testserver(/accounts/verify/[^/\s]+/)", mailoutbox[0].body).group(1)
    assert client.post(link).status_code == 302
    login = client.post(
        "/accounts/login/", {"username": "new@example.com", "password": PASSWORD}, follow=True
    )
    assert login.wsgi_request.user.email == "new@example.com"
    assert "No projects yet" in login.content.decode()


def test_login_form_labels_the_username_as_email(client: Client) -> None:
    body = client.get("/accounts/login/").content.decode()
    assert '<label for="id_username">Email</label>' in body
    assert 'type="email"' in body


def test_login_with_email_and_password_opens_the_project_list(client: Client, user: Any) -> None:
    response = client.post("/accounts/login/", {"username": "Owner@Example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_with_a_wrong_password_shows_an_error(client: Client, user: Any) -> None:
    response = client.post("/accounts/login/", {"username": user.email, "password": "wrong-password"})
    assert response.status_code == 200
    assert "That email and password do not match an account." in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


def test_login_respects_a_safe_next_url_and_ignores_a_foreign_one(client: Client, user: Any) -> None:
    response = client.post(
        "/accounts/login/?next=/projects/new/",
        {"username": user.email, "password": PASSWORD, "next": "/projects/new/"},
    )
    assert response["Location"] == "/projects/new/"
    client.logout()
    response = client.post(
        "/accounts/login/",
        {"username": user.email, "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_logout_is_a_post_from_the_nav_and_a_get_does_nothing(client: Client, user: Any) -> None:
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'action="/accounts/logout/"' in page
    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/").status_code == 200

    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_login_page_needs_a_csrf_token(user: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 403


def test_repeated_login_attempts_are_slowed_down(
    client: Client, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rate-limit windows are aligned to the clock: hold it so all attempts share one.
    monkeypatch.setattr("django_ratelimit.core.time", SimpleNamespace(time=lambda: 1_800_000_000.0))
    for _ in range(20):
        client.post("/accounts/login/", {"username": user.email, "password": "wrong-password"})
    response = client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins for this email address" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert not response.wsgi_request.user.is_authenticated
