"""The audit log: what is recorded (actor, target, project, IP, time, in order), that the
database keeps it append-only, and that only the retention purge deletes from it."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts import audit
from accounts.models import AuditEvent, Tier, User
from accounts.tasks import purge_audit_events
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"
NEW_PASSWORD = "a-brand-new-pass-phrase"


def events(**filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def only(action: str) -> AuditEvent:
    found = events(action=action)
    assert len(found) == 1, [(e.action, e.target) for e in events()]
    return found[0]


def everything_stored(event: AuditEvent) -> str:
    return json.dumps(
        [event.action, event.actor_email, event.target, str(event.ip), event.detail], default=str
    )


# --- sign-ins ---------------------------------------------------------------------------


def test_a_sign_in_on_the_page_is_recorded_with_the_account_and_the_callers_address(client: Client) -> None:
    user = UserFactory(email="ada@example.com")

    response = client.post(
        reverse("accounts:login"), {"username": "Ada@example.com", "password": PASSWORD}, REMOTE_ADDR=IP
    )

    assert response.status_code == 302
    event = only("auth.sign_in")
    assert (event.actor, event.actor_email, event.target, event.ip) == (user, user.email, user.email, IP)
    assert event.project_id is None
    assert event.detail["via"] == "page"
    assert abs(event.at - timezone.now()) < timedelta(minutes=1)


def test_a_failed_sign_in_records_the_address_tried_and_never_the_password(client: Client) -> None:
    UserFactory(email="ada@example.com")

    response = client.post(
        reverse("accounts:login"),
        {"username": "ada@example.com", "password": "guess-one-two-three"},
        REMOTE_ADDR=IP,
    )

    assert response.status_code == 200
    event = only("auth.sign_in_failed")
    assert (event.actor, event.actor_email, event.target, event.ip) == (None, "", "ada@example.com", IP)
    assert "guess-one-two-three" not in everything_stored(event)
    assert not events(action="auth.sign_in")


def _blank(body: bytes, *values: str) -> str:
    text = body.decode()
    for value in values:
        text = text.replace(value, "X")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", text)


def test_a_failed_sign_in_page_says_nothing_about_whether_the_account_exists(client: Client) -> None:
    UserFactory(email="known@example.com")
    login = reverse("accounts:login")

    known = client.post(login, {"username": "known@example.com", "password": "wrong-pass-phrase"})
    unknown = client.post(login, {"username": "nobody@example.com", "password": "wrong-pass-phrase"})

    assert known.status_code == unknown.status_code == 200
    assert _blank(known.content, "known@example.com") == _blank(unknown.content, "nobody@example.com")
    assert [e.target for e in events(action="auth.sign_in_failed")] == [
        "known@example.com",
        "nobody@example.com",
    ]
    assert all(e.actor is None for e in events(action="auth.sign_in_failed"))


def test_a_failed_token_request_says_nothing_about_whether_the_account_exists() -> None:
    UserFactory(email="known@example.com")
    api = APIClient(REMOTE_ADDR=IP)

    known = api.post("/api/v1/auth/token", {"email": "known@example.com", "password": "nope-nope-nope"})
    unknown = api.post("/api/v1/auth/token", {"email": "nobody@example.com", "password": "nope-nope-nope"})

    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    failed = events(action="auth.sign_in_failed")
    assert [(e.target, e.ip, e.actor) for e in failed] == [
        ("known@example.com", IP, None),
        ("nobody@example.com", IP, None),
    ]


def test_a_token_obtained_through_the_api_is_a_recorded_sign_in() -> None:
    user = UserFactory(email="ada@example.com")

    response = APIClient(REMOTE_ADDR=IP).post(
        "/api/v1/auth/token", {"email": "ADA@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    event = only("auth.sign_in")
    assert (event.actor, event.target, event.ip, event.detail) == (user, user.email, IP, {"via": "api"})


def test_the_right_password_of_an_unconfirmed_account_is_no_sign_in() -> None:
    UserFactory(email="new@example.com", email_verified_at=None)

    response = APIClient().post("/api/v1/auth/token", {"email": "new@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert not events(action="auth.sign_in")


# --- account changes ----------------------------------------------------------------------


def test_a_password_change_on_the_page_is_recorded(client: Client) -> None:
    user = UserFactory(email="ada@example.com")
    client.force_login(user)

    response = client.post(
        reverse("accounts:password_change"),
        {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        REMOTE_ADDR=IP,
    )

    assert response.status_code == 302
    event = only("account.password_changed")
    assert (event.actor, event.target, event.ip) == (user, user.email, IP)
    assert NEW_PASSWORD not in everything_stored(event) and PASSWORD not in everything_stored(event)


def test_a_password_change_through_the_api_is_recorded() -> None:
    user = UserFactory(email="ada@example.com")
    api = APIClient(REMOTE_ADDR=IP)
    api.force_authenticate(user)

    response = api.patch(
        "/api/v1/users/me", {"current_password": PASSWORD, "password": NEW_PASSWORD}, format="json"
    )

    assert response.status_code == 200
    event = only("account.password_changed")
    assert (event.actor, event.target, event.ip) == (user, user.email, IP)


def test_a_wrong_current_password_changes_nothing_and_records_no_change() -> None:
    api = APIClient()
    api.force_authenticate(UserFactory())

    response = api.patch(
        "/api/v1/users/me", {"current_password": "not-it-at-all", "password": NEW_PASSWORD}, format="json"
    )

    assert response.status_code == 400
    assert not events(action="account.password_changed")


def test_a_password_reset_is_a_recorded_password_change(client: Client) -> None:
    user = UserFactory(email="ada@example.com")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    link = reverse("accounts:password_reset_confirm", args=[uid, default_token_generator.make_token(user)])

    form = client.get(link, follow=True)
    response = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        REMOTE_ADDR=IP,
    )

    assert response.status_code == 302
    event = only("account.password_changed")
    assert (event.actor, event.target, event.ip, event.detail) == (user, user.email, IP, {"via": "reset"})


# --- staff changes in the admin -----------------------------------------------------------


@pytest.fixture
def staff_client() -> tuple[Client, User]:
    staff = User.objects.get(email="operator@example.com")  # the install's superuser (conftest)
    client = Client(REMOTE_ADDR=IP)
    client.force_login(staff)
    return client, staff


def test_a_staff_change_to_a_user_is_recorded_with_the_fields_it_touched(
    staff_client: tuple[Client, User],
) -> None:
    client, staff = staff_client
    user = UserFactory(email="ada@example.com", tier=Tier.FREE)

    response = client.post(
        reverse("admin:accounts_user_change", args=[user.pk]),
        {"email": "ada@example.com", "name": "", "tier": Tier.PRO, "is_active": "on"},
    )

    assert response.status_code == 302
    event = only("staff.user_changed")
    assert (event.actor, event.target, event.ip) == (staff, "ada@example.com", IP)
    assert "tier" in event.detail["fields"]
    assert "email" not in event.detail["fields"]
    assert not events(action="account.email_changed")


def test_a_staff_change_of_an_address_is_also_the_accounts_email_change(
    staff_client: tuple[Client, User],
) -> None:
    client, staff = staff_client
    user = UserFactory(email="ada@example.com")

    response = client.post(
        reverse("admin:accounts_user_change", args=[user.pk]),
        {"email": "ada.lovelace@example.com", "name": "", "tier": Tier.FREE, "is_active": "on"},
    )

    assert response.status_code == 302
    assert "email" in only("staff.user_changed").detail["fields"]
    changed = only("account.email_changed")
    assert (changed.actor, changed.target, changed.ip) == (staff, "ada.lovelace@example.com", IP)
    assert changed.detail == {"from": "ada@example.com", "to": "ada.lovelace@example.com", "by_staff": True}


def test_staff_adding_setting_a_password_and_deleting_a_user_are_recorded_in_order(
    staff_client: tuple[Client, User],
) -> None:
    client, staff = staff_client

    client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "grace@example.com",
            "name": "",
            "tier": Tier.FREE,
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    grace = User.objects.get(email="grace@example.com")
    client.post(
        reverse("admin:auth_user_password_change", args=[grace.pk]),
        {
            "password1": "yet-another-pass-phrase",
            "password2": "yet-another-pass-phrase",
            "usable_password": "true",
        },
    )
    client.post(reverse("admin:accounts_user_delete", args=[grace.pk]), {"post": "yes"})

    assert not User.objects.filter(email="grace@example.com").exists()
    recorded = events(action="staff.user_changed")
    assert [(e.actor, e.target, e.ip) for e in recorded] == [(staff, "grace@example.com", IP)] * 3
    assert recorded[0].detail["created"] is True
    assert recorded[1].detail == {"fields": ["password"]}
    assert recorded[2].detail == {"deleted": True}
    assert all(NEW_PASSWORD not in everything_stored(e) for e in recorded)


def test_staff_deleting_users_with_the_bulk_action_records_each(staff_client: tuple[Client, User]) -> None:
    client, _staff = staff_client
    first, second = UserFactory(email="one@example.com"), UserFactory(email="two@example.com")

    client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )

    assert sorted(e.target for e in events(action="staff.user_changed")) == [
        "one@example.com",
        "two@example.com",
    ]


# --- the order and the IP --------------------------------------------------------------------


def test_events_are_recorded_in_the_order_they_happened(client: Client) -> None:
    UserFactory(email="ada@example.com")
    login = reverse("accounts:login")

    client.post(login, {"username": "ada@example.com", "password": "wrong-pass-phrase"}, REMOTE_ADDR=IP)
    client.post(login, {"username": "ada@example.com", "password": PASSWORD}, REMOTE_ADDR=IP)
    client.post(
        reverse("accounts:password_change"),
        {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        REMOTE_ADDR=IP,
    )

    recorded = events()
    assert [e.action for e in recorded] == ["auth.sign_in_failed", "auth.sign_in", "account.password_changed"]
    assert [e.at for e in recorded] == sorted(e.at for e in recorded)


def test_behind_a_proxy_the_address_it_appended_is_recorded(client: Client, settings: Any) -> None:
    settings.BEHIND_PROXY = True
    UserFactory(email="ada@example.com")

    client.post(
        reverse("accounts:login"),
        {"username": "ada@example.com", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.1, 2001:db8::5",
    )

    assert only("auth.sign_in").ip == "2001:db8::5"


def test_without_a_proxy_a_forwarded_header_is_ignored(client: Client) -> None:
    UserFactory(email="ada@example.com")

    client.post(
        reverse("accounts:login"),
        {"username": "ada@example.com", "password": PASSWORD},
        REMOTE_ADDR=IP,
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )

    assert only("auth.sign_in").ip == IP


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("auth.sign-in")


# --- append-only, in the database ------------------------------------------------------------


def _refused(statement: Any) -> str:
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        statement()
    return str(caught.value)


def test_the_database_refuses_to_update_an_event() -> None:
    audit.record("member.removed", target="ada@example.com", project_id=uuid.uuid4())
    event = AuditEvent.objects.get()

    assert "append-only" in _refused(
        lambda: AuditEvent.objects.filter(pk=event.pk).update(target="someone else")
    )
    event.detail = {"forged": True}
    assert "append-only" in _refused(event.save)

    def raw_update() -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_auditevent SET at = now() - interval '1000 days'")

    assert "append-only" in _refused(raw_update)
    assert AuditEvent.objects.get().target == "ada@example.com"


def test_the_database_refuses_to_delete_an_event_inside_the_retention() -> None:
    audit.record("member.removed", target="ada@example.com")
    old = AuditEvent.objects.create(action="member.removed", at=timezone.now() - timedelta(days=3000))

    assert "DELETE refused" in _refused(lambda: AuditEvent.objects.all().delete())
    assert "DELETE refused" in _refused(lambda: AuditEvent.objects.filter(pk=old.pk).delete())

    def delete_young_with_the_purges_setting() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, '365', true)", [audit.PURGE_SETTING])
            cursor.execute("DELETE FROM accounts_auditevent WHERE target = 'ada@example.com'")

    assert "DELETE refused" in _refused(delete_young_with_the_purges_setting)
    assert AuditEvent.objects.count() == 2


def test_deleting_the_actors_account_keeps_the_event_and_its_email() -> None:
    user = UserFactory(email="ada@example.com")
    audit.record("member.removed", actor=user, target="bob@example.com")

    user.delete()

    event = AuditEvent.objects.get()
    assert (event.actor_id, event.actor_email, event.target) == (None, "ada@example.com", "bob@example.com")


# --- retention ------------------------------------------------------------------------------


def _aged(days: int, target: str) -> AuditEvent:
    return AuditEvent.objects.create(
        action="member.removed", target=target, at=timezone.now() - timedelta(days=days)
    )


def test_the_purge_deletes_only_the_events_older_than_the_retention(settings: Any) -> None:
    settings.AUDIT_DAYS = 365
    _aged(400, "old")
    _aged(364, "within")
    audit.record("member.removed", target="new")

    assert purge_audit_events.delay().get() == 1

    assert sorted(AuditEvent.objects.values_list("target", flat=True)) == ["new", "within"]


def test_the_purge_follows_the_configured_days_and_may_run_twice(settings: Any) -> None:
    settings.AUDIT_DAYS = 30
    _aged(40, "old")
    _aged(10, "within")

    assert audit.audit_purge() == 1
    assert audit.audit_purge() == 0
    assert list(AuditEvent.objects.values_list("target", flat=True)) == ["within"]


def test_the_purges_permission_ends_with_the_purge() -> None:
    old = _aged(4000, "old")
    _aged(4000, "also old")
    audit.audit_purge()
    _aged(4000, "old again")

    assert "DELETE refused" in _refused(lambda: AuditEvent.objects.filter(target="old again").delete())
    assert not AuditEvent.objects.filter(pk=old.pk).exists()


def test_the_purge_runs_from_the_beat_schedule(settings: Any) -> None:
    entries = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "accounts.audit_purge" in entries
    assert purge_audit_events.name == "accounts.audit_purge"


# --- the admin, read-only -----------------------------------------------------------------------


def test_staff_read_the_whole_log_in_the_admin_and_cannot_change_it(
    staff_client: tuple[Client, User],
) -> None:
    client, _staff = staff_client
    audit.record("member.removed", target="bob@example.com", project_id=uuid.uuid4())
    audit.record("auth.sign_in_failed", target="mallory@example.com")
    event = AuditEvent.objects.get(target="bob@example.com")

    changelist = client.get(reverse("admin:accounts_auditevent_changelist"))
    filtered = client.get(
        reverse("admin:accounts_auditevent_changelist"), {"action__exact": "member.removed"}
    )
    searched = client.get(reverse("admin:accounts_auditevent_changelist"), {"q": "mallory"})
    detail = client.get(reverse("admin:accounts_auditevent_change", args=[event.pk]))

    assert changelist.status_code == filtered.status_code == searched.status_code == detail.status_code == 200
    assert b"bob@example.com" in changelist.content and b"mallory@example.com" in changelist.content
    assert b"bob@example.com" in filtered.content and b"mallory@example.com" not in filtered.content
    assert b"mallory@example.com" in searched.content and b"bob@example.com" not in searched.content
    assert b'name="_save"' not in detail.content
    assert client.get(reverse("admin:accounts_auditevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:accounts_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code
        == 403
    )
    changed = client.post(reverse("admin:accounts_auditevent_change", args=[event.pk]), {"target": "forged"})
    assert changed.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).target == "bob@example.com"


def test_staff_without_the_view_permission_do_not_see_the_log() -> None:
    client = Client()
    client.force_login(UserFactory(is_staff=True))

    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 403
