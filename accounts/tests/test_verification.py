"""Sign-up proves the address: the signed, expiring link, and what an unconfirmed account cannot do."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import signing
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import verification
from accounts.models import User
from accounts.tests.factories import UserFactory
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/accounts/verify/([^/\s]+)/)")


def sign_up(email: str = "new@example.com") -> Any:
    return Client().post(
        "/accounts/signup/", {"email": email, "password": PASSWORD, "confirm": PASSWORD}, follow=True
    )


def link_in(message: Any) -> tuple[str, str]:
    found = LINK.search(message.body)
    assert found, message.body
    return found.group(1), found.group(2)


def token_pair(email: str, password: str = PASSWORD) -> Any:
    return APIClient().post("/api/v1/auth/token", {"email": email, "password": password}, format="json")


def log_in(client: Client, email: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"username": email, "password": password})


# --- sign-up and the link -------------------------------------------------------------


def test_a_new_account_is_unconfirmed_and_cannot_sign_in_on_the_page_or_the_api(
    mailoutbox: list[Any],
) -> None:
    sign_up()
    user = User.objects.get(email="new@example.com")
    assert user.email_verified_at is None
    page = log_in(client := Client(), "new@example.com")
    assert page.status_code == 200
    assert "Confirm your email address first" in page.content.decode()
    assert "_auth_user_id" not in client.session
    api = token_pair("new@example.com")
    assert api.status_code == 403
    assert api.json()["code"] == "email_unverified"
    assert "Confirm your email address first" in api.json()["detail"]
    assert "access" not in api.json()


def test_a_wrong_password_for_an_unconfirmed_account_says_nothing_about_it() -> None:
    UserFactory(email="pending@example.com", email_verified_at=None)
    unconfirmed = token_pair("pending@example.com", "wrong-password")
    unknown = token_pair("ghost@example.com", "wrong-password")
    assert (unconfirmed.status_code, unconfirmed.json()) == (unknown.status_code, unknown.json())
    page = log_in(Client(), "pending@example.com", "wrong-password").content.decode()
    assert "Confirm your email address" not in page


def test_the_emailed_link_shows_a_button_and_its_post_confirms_the_address(
    mailoutbox: list[Any],
) -> None:
    sign_up()
    assert len(mailoutbox) == 1
    path, _token = link_in(mailoutbox[0])
    client = Client()
    shown = client.get(path)
    assert shown.status_code == 200
    assert "Confirm my address" in shown.content.decode()
    # A GET (a mail scanner following the link) confirms nothing.
    assert User.objects.get(email="new@example.com").email_verified_at is None
    confirmed = client.post(path, follow=True)
    assert confirmed.redirect_chain == [("/accounts/login/", 302)]
    assert "new@example.com is confirmed" in confirmed.content.decode()
    assert User.objects.get(email="new@example.com").email_verified_at is not None
    # Confirming again is harmless, and now the account signs in (page and API).
    assert client.post(path).status_code == 302
    assert log_in(client, "new@example.com").status_code == 302
    assert token_pair("new@example.com").status_code == 200


def test_the_api_confirms_with_the_links_token(mailoutbox: list[Any]) -> None:
    APIClient().post(
        "/api/v1/auth/register", {"email": "api@example.com", "password": PASSWORD}, format="json"
    )
    _path, token = link_in(mailoutbox[0])
    response = APIClient().post("/api/v1/auth/email/verify", {"token": token}, format="json")
    assert response.status_code == 200
    assert response.json()["email"] == "api@example.com"
    assert token_pair("api@example.com").status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "",
        "x" * 999,
        signing.dumps({"u": "1", "e": "new@example.com"}, salt="another-salt"),
        signing.dumps(["not", "a", "dict"], salt=verification.SALT),
        signing.dumps({"u": "not-a-uuid", "e": "x@example.com"}, salt=verification.SALT),
    ],
)
def test_a_forged_or_garbled_token_is_a_clear_400(token: str) -> None:
    response = APIClient().post("/api/v1/auth/email/verify", {"token": token}, format="json")
    assert response.status_code == 400
    assert "token" in response.json()
    if token:
        page = Client().post(f"/accounts/verify/{token}/")
        assert page.status_code == 400
        assert "not valid" in page.content.decode()


def test_a_link_for_another_account_or_an_old_address_does_not_confirm() -> None:
    victim = UserFactory(email="victim@example.com", email_verified_at=None)
    # Signed for the account, but naming an address it does not have.
    forged = signing.dumps({"u": str(victim.pk), "e": "attacker@example.com"}, salt=verification.SALT)
    response = APIClient().post("/api/v1/auth/email/verify", {"token": forged}, format="json")
    assert response.status_code == 400
    victim.refresh_from_db()
    assert victim.email_verified_at is None


def test_an_expired_link_is_refused_and_offers_a_new_one(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    user = UserFactory(email="slow@example.com", email_verified_at=None)
    token = verification.verification_token(user=user)
    later = timezone.now() + timedelta(hours=settings.EMAIL_VERIFY_HOURS, minutes=1)
    monkeypatch.setattr(signing.time, "time", lambda: later.timestamp())
    response = APIClient().post("/api/v1/auth/email/verify", {"token": token}, format="json")
    assert response.status_code == 400
    assert "expired" in response.json()["token"][0]
    page = Client().get(f"/accounts/verify/{token}/")
    assert page.status_code == 400
    assert "Send a new link" in page.content.decode()
    user.refresh_from_db()
    assert user.email_verified_at is None


# --- resending ----------------------------------------------------------------------


def test_resend_answers_the_same_for_unconfirmed_confirmed_and_unknown_addresses(
    mailoutbox: list[Any],
) -> None:
    UserFactory(email="pending@example.com", email_verified_at=None)
    UserFactory(email="done@example.com")
    bodies = []
    for email in ("pending@example.com", "done@example.com", "ghost@example.com"):
        response = APIClient().post("/api/v1/auth/email/resend", {"email": email}, format="json")
        assert response.status_code == 202
        bodies.append(response.json()["detail"])
    assert len(set(bodies)) == 1
    # A new link for the unconfirmed account only; the confirmed one is told so; a stranger gets nothing.
    assert [m.to for m in mailoutbox] == [["pending@example.com"], ["done@example.com"]]
    link_in(mailoutbox[0])
    assert "/accounts/verify/" not in mailoutbox[1].body


def test_resend_on_the_page_ends_on_the_same_message_for_any_address(mailoutbox: list[Any]) -> None:
    UserFactory(email="pending@example.com", email_verified_at=None)
    pages = []
    for email in ("pending@example.com", "ghost@example.com"):
        response = Client().post("/accounts/verify/resend/", {"email": email}, follow=True)
        assert response.redirect_chain == [("/accounts/login/", 302)]
        html = response.content.decode().replace(email, "X")
        pages.append(re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html))
    assert pages[0] == pages[1]
    assert len(mailoutbox) == 1
    assert Client().post("/accounts/verify/resend/", {"email": "not-an-email"}).status_code == 400
    response = APIClient().post("/api/v1/auth/email/resend", {"email": "not-an-email"}, format="json")
    assert response.status_code == 400 and "email" in response.json()


def test_resend_is_limited_per_address_and_per_ip(settings: Any, mailoutbox: list[Any]) -> None:
    UserFactory(email="pending@example.com", email_verified_at=None)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "verify_account": 2, "verify_ip": 3}
    api = APIClient()
    for _ in range(2):
        response = api.post("/api/v1/auth/email/resend", {"email": "pending@example.com"}, format="json")
        assert response.status_code == 202
    refused = api.post("/api/v1/auth/email/resend", {"email": "pending@example.com"}, format="json")
    assert refused.status_code == 429
    assert refused.json()["limit"] == "verify_account"
    assert len(mailoutbox) == 2
    # The IP allowance counts every address: the fourth request is refused whatever it names.
    page = Client().post("/accounts/verify/resend/", {"email": "other@example.com"})
    assert page.status_code == 429
    assert "Retry-After" in page


# --- other ways an account counts as confirmed -------------------------------------------


def test_a_completed_password_reset_confirms_the_address(client: Client, mailoutbox: list[Any]) -> None:
    user = UserFactory(email="pending@example.com", email_verified_at=None)
    client.post("/accounts/password-reset/", {"email": user.email})
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mailoutbox[-1].body).group(1)
    form = client.get(link, follow=True)
    client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-new-pass-phrase", "new_password2": "a-new-pass-phrase"},
    )
    user.refresh_from_db()
    assert user.email_verified_at is not None


def test_superusers_and_operator_accounts_count_as_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", "--email", "root@example.com", verbosity=0)
    assert User.objects.get(email="root@example.com").email_verified_at is not None
    assert User.objects.create_user("ops@example.com", PASSWORD).email_verified_at is not None
    assert (
        User.objects.create_user("self@example.com", PASSWORD, email_verified=False).email_verified_at is None
    )


def test_the_migration_marks_existing_accounts_confirmed() -> None:
    from importlib import import_module

    from django.apps import apps

    migration = import_module("accounts.migrations.0002_user_email_verified_at")
    old = UserFactory(email="old@example.com", email_verified_at=None)
    migration.mark_existing_verified(apps, None)
    old.refresh_from_db()
    assert old.email_verified_at == old.date_joined


def test_the_console_backend_on_the_embedded_default_prints_the_link(
    settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    sign_up("console@example.com")
    assert "/accounts/verify/" in capsys.readouterr().out
