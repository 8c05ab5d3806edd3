"""First run: the first sign-up becomes the administrator; later ones wait in the admin outbox.

On a fresh install (no account yet) the first account is confirmed at once and made staff
and superuser, exactly once even when sign-ups race; a server without SMTP keeps every
later email (confirmations, resets, invitations) in a read-only, staff-only outbox in the
admin, and the pages say so; with SMTP configured the mail is sent and the outbox stays empty.
"""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.mail import OUTBOX_BACKEND, links_in, outbox_prune
from accounts.models import FirstAccount, OutboxMessage, User
from accounts.tests.factories import UserFactory
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

OUTBOX_ADMIN = "/admin/accounts/outboxmessage/"


def blank(html: str, email: str) -> str:
    """The page with the address and the per-request CSRF token blanked out."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.replace(email, "X"))


def sign_up(email: str, client: Client | None = None) -> Any:
    form = {"email": email, "password": PASSWORD, "confirm": PASSWORD}
    return (client or Client()).post("/accounts/signup/", form, follow=True)


@pytest.fixture
def outbox(settings: Any) -> None:
    """The embedded default's mail: no SMTP server, so the admin outbox."""
    settings.EMAIL_BACKEND = OUTBOX_BACKEND


# --- the first account -----------------------------------------------------------------


def test_the_first_sign_up_is_confirmed_made_administrator_and_signed_in(
    fresh_install: None, outbox: None
) -> None:
    client = Client()
    response = sign_up("First@Example.com", client)
    assert response.redirect_chain == [("/", 302)]  # the project list
    page = response.content.decode()
    assert "yours is the first account of this Docent" in page
    assert "you are its administrator" in page
    first = User.objects.get(email="first@example.com")
    assert first.is_staff and first.is_superuser
    assert first.email_verified_at is not None
    assert response.wsgi_request.user == first
    assert FirstAccount.objects.get().user == first
    assert not OutboxMessage.objects.exists(), "the first account is mailed nothing"
    assert client.get(OUTBOX_ADMIN).status_code == 200  # the admin and its outbox open to it


def test_the_sign_up_page_says_the_first_account_becomes_the_administrator_until_one_does(
    fresh_install: None, outbox: None
) -> None:
    notice = "yours is the first. It is confirmed at once, and you become the administrator"
    assert notice in Client().get("/accounts/signup/").content.decode()
    sign_up("first@example.com")
    assert notice not in Client().get("/accounts/signup/").content.decode()


def test_the_first_sign_up_over_the_api_says_so_and_gets_a_token_at_once(fresh_install: None) -> None:
    api = APIClient()
    body = {"email": "first@example.com", "password": "a-long-pass-phrase"}
    response = api.post("/api/v1/auth/register", body, format="json")
    assert response.status_code == 202
    assert "first account of this Docent" in response.json()["detail"]
    token = api.post("/api/v1/auth/token", body, format="json")
    assert token.status_code == 200
    assert User.objects.get(email="first@example.com").is_staff


def test_the_second_sign_up_waits_for_an_administrator_in_the_outbox(
    fresh_install: None, outbox: None
) -> None:
    sign_up("first@example.com")
    response = sign_up("second@example.com")
    assert response.redirect_chain == [("/accounts/login/", 302)]
    page = response.content.decode()
    assert "Your confirmation is waiting for an administrator" in page
    second = User.objects.get(email="second@example.com")
    assert not second.is_staff and second.email_verified_at is None
    kept = OutboxMessage.objects.get()
    assert kept.to == "second@example.com"
    assert kept.subject == "Confirm your Docent address"
    (link,) = [url for url in links_in(kept.body) if "/accounts/verify/" in url and "/resend/" not in url]
    # The administrator passes the link on; opening it confirms the address, and the account signs in.
    path = re.sub(r"^https?://[^/]+", "", link)
    assert Client().post(path).status_code == 302
    second.refresh_from_db()
    assert second.email_verified_at is not None


def test_a_taken_address_gets_the_same_outbox_answer_as_a_new_one(outbox: None) -> None:
    UserFactory(email="taken@example.com")
    taken = sign_up("taken@example.com")
    new = sign_up("new@example.com")
    assert taken.redirect_chain == new.redirect_chain == [("/accounts/login/", 302)]
    assert blank(taken.content.decode(), "taken@example.com") == blank(
        new.content.decode(), "new@example.com"
    )
    assert sorted(OutboxMessage.objects.values_list("to", flat=True)) == [
        "new@example.com",
        "taken@example.com",
    ]


def test_an_install_whose_administrator_was_made_by_createsuperuser_has_no_first_sign_up(
    fresh_install: None, mailoutbox: list[Any]
) -> None:
    User.objects.create_superuser(email="root@example.com", password=PASSWORD)
    sign_up("visitor@example.com")
    visitor = User.objects.get(email="visitor@example.com")
    assert not visitor.is_staff and visitor.email_verified_at is None
    assert [m.to for m in mailoutbox] == [["visitor@example.com"]]


def test_the_first_account_is_made_once_even_after_every_account_is_deleted(fresh_install: None) -> None:
    sign_up("first@example.com")
    User.objects.all().delete()
    sign_up("later@example.com")
    assert not User.objects.get(email="later@example.com").is_staff


def test_with_the_setting_off_the_first_sign_up_is_an_ordinary_one(
    fresh_install: None, settings: Any, mailoutbox: list[Any]
) -> None:
    settings.FIRST_SIGNUP_ADMIN = False
    assert "yours is the first" not in Client().get("/accounts/signup/").content.decode()
    response = sign_up("first@example.com")
    assert response.redirect_chain == [("/accounts/login/", 302)]
    assert not User.objects.get(email="first@example.com").is_staff
    assert not FirstAccount.objects.exists()
    assert len(mailoutbox) == 1


# --- two first sign-ups at once -----------------------------------------------------------


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in threads, each with its own database connection; their results."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ups_inside_the_race_window_make_exactly_one_administrator(
    fresh_install: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.EMAIL_BACKEND = OUTBOX_BACKEND
    # Both sign-ups have inserted their account and found no other before either claims:
    # the moment two checks alone would both pass.
    both_checked = threading.Barrier(2, timeout=20)
    looked = []
    original = services._no_other_account

    def no_other_account_then_wait(user: Any) -> bool:
        alone = original(user)
        looked.append(alone)
        both_checked.wait()
        return alone

    monkeypatch.setattr(services, "_no_other_account", no_other_account_then_wait)
    emails = ["ada@example.com", "grace@example.com"]
    results = in_threads(
        2, lambda i: services.user_register(email=emails[i], password=PASSWORD, base_url="http://testserver/")
    )
    assert looked == [True, True], "both saw an empty install"
    assert sorted(r.first_admin for r in results) == [False, True]
    assert User.objects.filter(is_staff=True).count() == 1
    assert User.objects.filter(is_superuser=True).count() == 1
    admin = User.objects.get(is_staff=True)
    assert FirstAccount.objects.get().user == admin
    other = User.objects.get(is_staff=False)
    assert other.email_verified_at is None
    assert OutboxMessage.objects.get().to == other.email  # the other one waits for a confirmation


@pytest.mark.django_db(transaction=True)
def test_six_parallel_sign_up_pages_on_a_fresh_install_make_one_administrator(
    fresh_install: None, settings: Any
) -> None:
    settings.EMAIL_BACKEND = OUTBOX_BACKEND
    start = threading.Barrier(6, timeout=20)

    def post(index: int) -> int:
        client = Client()
        start.wait()
        form = {"email": f"racer{index}@example.com", "password": PASSWORD, "confirm": PASSWORD}
        return client.post("/accounts/signup/", form).status_code

    assert in_threads(6, post) == [302] * 6
    assert User.objects.count() == 6
    assert User.objects.filter(is_staff=True).count() == 1
    assert User.objects.filter(email_verified_at__isnull=False).count() == 1
    assert OutboxMessage.objects.count() == 5


# --- the outbox in the admin ---------------------------------------------------------------


def test_password_reset_and_invitation_mails_land_in_the_outbox_too(outbox: None, user: Any) -> None:
    response = Client().post("/accounts/password-reset/", {"email": user.email}, follow=True)
    assert "waits in the outbox of its admin" in response.content.decode()
    reset = OutboxMessage.objects.get(to=user.email)
    assert any("/accounts/reset/" in link for link in links_in(reset.body))

    from conftest import make_project

    api = APIClient()
    api.force_authenticate(user)
    project = make_project(user)
    invited = api.post(
        f"/api/v1/projects/{project.pk}/invitations/",
        {"email": "guest@example.com", "role": "viewer"},
        format="json",
    )
    assert invited.status_code == 201, invited.content
    assert OutboxMessage.objects.filter(to="guest@example.com").exists()


def test_resend_says_the_link_waits_in_the_outbox(outbox: None) -> None:
    UserFactory(email="pending@example.com", email_verified_at=None)
    response = Client().post("/accounts/verify/resend/", {"email": "pending@example.com"}, follow=True)
    assert "waiting for an administrator in the outbox" in response.content.decode()
    assert OutboxMessage.objects.get().to == "pending@example.com"


@pytest.fixture
def kept(outbox: None) -> OutboxMessage:
    sign_up("newcomer@example.com")
    return OutboxMessage.objects.get()


def test_staff_read_the_outbox_and_copy_the_confirmation_link(
    admin_client: Client, kept: OutboxMessage
) -> None:
    listing = admin_client.get(OUTBOX_ADMIN)
    assert listing.status_code == 200
    assert "newcomer@example.com" in listing.content.decode()
    assert "Confirm your Docent address" in listing.content.decode()
    detail = admin_client.get(f"{OUTBOX_ADMIN}{kept.pk}/change/")
    assert detail.status_code == 200
    html = detail.content.decode()
    (link,) = [url for url in links_in(kept.body) if "/accounts/verify/" in url and "/resend/" not in url]
    assert f'<a href="{link}"' in html
    assert "Save" not in html and "Delete" not in html.split("</header>")[-1].split("<footer")[0]
    # The admin index lists it.
    assert "Outbox" in admin_client.get("/admin/").content.decode()


def test_the_outbox_is_read_only_even_for_a_superuser(admin_client: Client, kept: OutboxMessage) -> None:
    assert admin_client.get(f"{OUTBOX_ADMIN}add/").status_code == 403
    changed = admin_client.post(f"{OUTBOX_ADMIN}{kept.pk}/change/", {"subject": "changed", "body": "x"})
    assert changed.status_code == 403
    assert admin_client.post(f"{OUTBOX_ADMIN}{kept.pk}/delete/", {"post": "yes"}).status_code == 403
    kept.refresh_from_db()
    assert kept.subject == "Confirm your Docent address"


def test_only_staff_trusted_with_it_open_the_outbox(client: Client, kept: OutboxMessage) -> None:
    anonymous = client.get(OUTBOX_ADMIN)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    member = UserFactory()
    client.force_login(member)
    signed_in = client.get(f"{OUTBOX_ADMIN}{kept.pk}/change/")
    assert signed_in.status_code == 302 and signed_in["Location"].startswith("/admin/login/")
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(OUTBOX_ADMIN).status_code == 403  # staff, without the permission
    staff.user_permissions.add(Permission.objects.get(codename="view_outboxmessage"))
    staff = User.objects.get(pk=staff.pk)  # permissions are cached on the instance
    client.force_login(staff)
    assert client.get(OUTBOX_ADMIN).status_code == 200
    assert client.get(f"{OUTBOX_ADMIN}{kept.pk}/change/").status_code == 200


@pytest.mark.parametrize("bad", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00"])
def test_a_malformed_or_unknown_outbox_id_is_no_error_page(admin_client: Client, bad: str) -> None:
    response = admin_client.get(f"{OUTBOX_ADMIN}{bad}/change/")
    assert response.status_code in {302, 404}


def test_old_outbox_messages_are_pruned(outbox: None, settings: Any) -> None:
    settings.OUTBOX_DAYS = 30
    old = OutboxMessage.objects.create(to="a@example.com", subject="old", body="x")
    OutboxMessage.objects.filter(pk=old.pk).update(sent_at=timezone.now() - timedelta(days=31))
    sign_up("fresh@example.com")  # writing a new message prunes the old ones
    assert list(OutboxMessage.objects.values_list("to", flat=True)) == ["fresh@example.com"]
    assert outbox_prune() == 0


# --- with SMTP configured ---------------------------------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: every message's DATA is kept on the server."""

    def handle(self) -> None:
        self.wfile.write(b"220 localhost test SMTP\r\n")
        while line := self.rfile.readline():
            command = line.strip().upper()
            if command.startswith((b"EHLO", b"HELO")):
                self.wfile.write(b"250 localhost\r\n")
            elif command == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in {b".\r\n", b""}:
                    data += chunk
                self.server.messages.append(data.decode())  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[list[str]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.server_address
    yield server.messages  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_with_smtp_configured_the_confirmation_is_mailed_and_the_page_says_so(smtp_server: list[str]) -> None:
    mail.outbox = []
    response = sign_up("mailed@example.com")
    assert "We have sent a message to mailed@example.com" in response.content.decode()
    assert len(smtp_server) == 1
    assert "/accounts/verify/" in smtp_server[0].replace("=\r\n", "")
    assert not OutboxMessage.objects.exists()
