"""The staff admin for users: email login, tiers, hashed passwords, staff only."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from accounts.models import Tier, User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_user_changelist_renders_with_filters_and_search(admin_client: Any) -> None:
    UserFactory(email="ada@example.com", name="Ada Lovelace", tier=Tier.PRO)
    url = reverse("admin:accounts_user_changelist")

    assert admin_client.get(url).status_code == 200
    response = admin_client.get(url, {"tier__exact": "pro", "q": "lovelace"})

    assert response.status_code == 200
    assert b"ada@example.com" in response.content


def test_user_add_page_asks_for_email_and_the_password_twice(admin_client: Any) -> None:
    response = admin_client.get(reverse("admin:accounts_user_add"))

    assert response.status_code == 200
    for field in (
        b'name="email"',
        b'name="password1"',
        b'name="password2"',
        b'name="tier"',
    ):
        assert field in response.content
    assert b'name="username"' not in response.content


def test_user_change_page_shows_the_password_hash_read_only(admin_client: Any) -> None:
    user = UserFactory(email="ada@example.com")

    response = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))

    assert response.status_code == 200
    assert b"argon2" in response.content  # the hash algorithm, described, not an input
    assert b'name="password"' not in response.content
    assert b'name="tier"' in response.content


def test_superuser_adds_a_pro_user_whose_email_is_stored_lower_case(
    admin_client: Any,
) -> None:
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Grace@Example.com",
            "name": "Grace Hopper",
            "tier": Tier.PRO,
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="grace@example.com")
    assert user.tier == Tier.PRO
    assert user.check_password("a-long-unusual-passphrase")


def test_adding_an_email_that_differs_only_in_case_is_refused(
    admin_client: Any,
) -> None:
    UserFactory(email="grace@example.com")

    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "GRACE@example.com",
            "tier": Tier.FREE,
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
        },
    )

    assert response.status_code == 200
    assert b"already exists" in response.content
    assert User.objects.filter(email__iexact="grace@example.com").count() == 1


def test_superuser_changes_a_users_tier(admin_client: Any) -> None:
    user = UserFactory(email="ada@example.com", tier=Tier.FREE)
    url = reverse("admin:accounts_user_change", args=[user.pk])

    response = admin_client.post(
        url,
        {
            "email": "ada@example.com",
            "name": "Ada",
            "tier": Tier.PRO,
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.tier == Tier.PRO
    assert user.check_password("correct-horse-battery")  # untouched by the change form


def test_non_staff_user_is_sent_to_the_admin_login(client: Any) -> None:
    user = UserFactory(email="member@example.com")
    client.force_login(user)

    for url in (reverse("admin:index"), reverse("admin:accounts_user_changelist")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_anonymous_visitor_is_sent_to_the_admin_login(client: Any) -> None:
    response = client.get(reverse("admin:documents_document_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
