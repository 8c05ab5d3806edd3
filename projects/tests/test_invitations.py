"""Invitations: owners invite an address, the account with that confirmed address accepts or declines."""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import PASSWORD, api_for
from projects import invitations
from projects.models import Invitation, InvitationStatus, Membership, Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def invite_url(project: Project) -> str:
    return f"/api/v1/projects/{project.pk}/invitations/"


def invite(client: APIClient, project: Project, email: str, role: str = "viewer") -> Any:
    return client.post(invite_url(project), {"email": email, "role": role}, format="json")


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def blanked(text: str, *values: str) -> str:
    for value in values:
        text = text.replace(value, "X")
    text = re.sub(r'"s\d+_x\d+"', "SAVEPOINT", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T][\d:.]+(Z|[+-]\d\d:\d\d)?", "T", text)
    return re.sub(r"\b[0-9a-f]{32}\b", "ID", UUID_RE.sub("ID", text))


# --- inviting -------------------------------------------------------------------------


def test_an_invitation_answers_the_same_whether_or_not_the_address_has_an_account(
    auth_api: APIClient, project: Project, mailoutbox: list[Any]
) -> None:
    UserFactory(email="known@example.com")
    with CaptureQueriesContext(connection) as known_queries:
        known = invite(auth_api, project, "known@example.com")
    with CaptureQueriesContext(connection) as unknown_queries:
        unknown = invite(auth_api, project, "stranger@example.com")
    assert known.status_code == unknown.status_code == 201
    assert blanked(known.content.decode(), "known@example.com") == blanked(
        unknown.content.decode(), "stranger@example.com"
    )
    # The same work (the same statements, no account looked up) and the same email, to the address.
    assert [blanked(q["sql"], "known@example.com") for q in known_queries.captured_queries] == [
        blanked(q["sql"], "stranger@example.com") for q in unknown_queries.captured_queries
    ]
    assert [m.to for m in mailoutbox] == [["known@example.com"], ["stranger@example.com"]]
    assert blanked(mailoutbox[0].body, "known@example.com") == blanked(
        mailoutbox[1].body, "stranger@example.com"
    )
    assert "http://testserver/invitations/" in mailoutbox[0].body
    # Nobody joined without accepting.
    assert project.memberships.count() == 1


def test_inviting_takes_about_as_long_for_an_existing_and_a_missing_account(
    auth_api: APIClient, project: Project
) -> None:
    for n in range(7):
        UserFactory(email=f"known{n}@example.com")

    def median_seconds(prefix: str) -> float:
        times = []
        for n in range(7):
            started = time.perf_counter()
            assert invite(auth_api, project, f"{prefix}{n}@example.com").status_code == 201
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    invite(auth_api, project, "warm-up@example.com")
    known, unknown = median_seconds("known"), median_seconds("stranger")
    # Loose on purpose (a shared machine): what matters is no extra work for either case.
    assert abs(known - unknown) < max(known, unknown) * 0.5 + 0.02


def test_an_invitation_expires_after_the_configured_days(
    auth_api: APIClient, project: Project, settings: Any
) -> None:
    settings.INVITATION_DAYS = 3
    body = invite(auth_api, project, "Friend@Example.com", "editor").json()
    invitation = Invitation.objects.get(pk=body["id"])
    assert invitation.email == "friend@example.com"
    assert invitation.role == Role.EDITOR
    expected = timezone.now() + timedelta(days=3)
    assert abs((invitation.expires_at - expected).total_seconds()) < 60


def test_inviting_again_renews_the_one_open_invitation(
    auth_api: APIClient, project: Project, mailoutbox: list[Any]
) -> None:
    first = invite(auth_api, project, "friend@example.com", "viewer").json()
    Invitation.objects.filter(pk=first["id"]).update(expires_at=timezone.now() - timedelta(days=1))
    second = invite(auth_api, project, "FRIEND@example.com", "editor").json()
    assert second["id"] == first["id"]
    invitation = Invitation.objects.get(project=project, email="friend@example.com")
    assert invitation.role == Role.EDITOR and invitation.expires_at > timezone.now()
    assert len(mailoutbox) == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "role": "viewer"}, "email"),
        ({"email": "", "role": "viewer"}, "email"),
        ({"email": "a@example.com", "role": "admin"}, "role"),
        ({"role": "viewer"}, "email"),
        ({"email": "owner@example.com", "role": "viewer"}, "email"),  # already a member
    ],
)
def test_bad_invitations_get_a_400_naming_the_field(
    auth_api: APIClient, project: Project, payload: dict[str, str], field: str
) -> None:
    response = auth_api.post(invite_url(project), payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Invitation.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(auth_api: APIClient, project: Project) -> None:
    response = auth_api.post(invite_url(project), ["a@example.com"], format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_members_who_are_not_owners_cannot_invite_or_see_invitations(project: Project, role: str) -> None:
    member = MembershipFactory(project=project, role=role).user
    api = api_for(member)
    assert invite(api, project, "friend@example.com").status_code == 403
    assert api.get(invite_url(project)).status_code == 403
    page = client_for(member).post(
        f"/projects/{project.pk}/members/", {"email": "friend@example.com", "role": "viewer"}
    )
    assert page.status_code == 403
    assert not Invitation.objects.exists()


def test_invitations_are_limited_per_owner(auth_api: APIClient, project: Project, settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "invites": 2}
    assert invite(auth_api, project, "a@example.com").status_code == 201
    assert invite(auth_api, project, "b@example.com").status_code == 201
    refused = invite(auth_api, project, "c@example.com")
    assert refused.status_code == 429
    assert refused.json()["limit"] == "invites"


# --- answering -----------------------------------------------------------------------


def test_an_existing_account_sees_accepts_and_accepting_again_changes_nothing(
    auth_api: APIClient, project: Project
) -> None:
    friend = UserFactory(email="friend@example.com")
    invitation_id = invite(auth_api, project, "friend@example.com", "editor").json()["id"]
    api = api_for(friend)
    listed = api.get("/api/v1/invitations/").json()
    assert [(i["id"], i["project_title"], i["role"]) for i in listed] == [
        (invitation_id, project.title, "editor")
    ]
    assert api.get(f"/api/v1/invitations/{invitation_id}/").status_code == 200
    accepted = api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "editor" and accepted.json()["email"] == "friend@example.com"
    again = api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert again.status_code == 200
    assert again.json()["id"] == accepted.json()["id"]
    assert Membership.objects.filter(project=project, user=friend).count() == 1
    assert Invitation.objects.get(pk=invitation_id).status == InvitationStatus.ACCEPTED
    # Answered: gone from both lists.
    assert api.get("/api/v1/invitations/").json() == []
    assert auth_api.get(invite_url(project)).json() == []


def test_a_new_person_signs_up_confirms_the_address_and_then_accepts(
    auth_api: APIClient, project: Project, mailoutbox: list[Any]
) -> None:
    invitation_id = invite(auth_api, project, "newbie@example.com").json()["id"]
    Client().post(
        "/accounts/signup/", {"email": "newbie@example.com", "password": PASSWORD, "confirm": PASSWORD}
    )
    from accounts.models import User

    newbie = User.objects.get(email="newbie@example.com")
    api = api_for(newbie)
    # Not confirmed yet: offered nothing, and accepting says why.
    assert api.get("/api/v1/invitations/").json() == []
    refused = api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert refused.status_code == 400
    assert "Confirm your email address" in refused.json()["detail"][0]
    page = client_for(newbie).get("/invitations/").content.decode()
    assert "Confirm your address first" in page
    assert not Membership.objects.filter(user=newbie).exists()

    link = re.search(r"http://testserver(/accounts/verify/\S+/)", mailoutbox[-1].body).group(1)
    assert Client().post(link).status_code == 302
    newbie.refresh_from_db()
    api = api_for(newbie)
    assert [i["id"] for i in api.get("/api/v1/invitations/").json()] == [invitation_id]
    assert api.post(f"/api/v1/invitations/{invitation_id}/accept/").status_code == 200
    assert Membership.objects.get(project=project, user=newbie).role == Role.VIEWER


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-4000-8000-000000000000", "1"])
def test_an_unknown_or_malformed_invitation_id_is_404(bad_id: str) -> None:
    api = api_for(UserFactory(email="friend@example.com"))
    assert api.post(f"/api/v1/invitations/{bad_id}/accept/").status_code == 404
    assert api.get(f"/api/v1/invitations/{bad_id}/").status_code == 404


def test_an_expired_invitation_cannot_be_accepted(auth_api: APIClient, project: Project) -> None:
    friend = UserFactory(email="friend@example.com")
    invitation_id = invite(auth_api, project, "friend@example.com").json()["id"]
    Invitation.objects.filter(pk=invitation_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    api = api_for(friend)
    assert api.get("/api/v1/invitations/").json() == []
    response = api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert response.status_code == 400
    assert "expired" in response.json()["detail"][0]
    page = client_for(friend).post(f"/invitations/{invitation_id}/accept/", follow=True)
    assert "This invitation has expired" in page.content.decode()
    assert not Membership.objects.filter(user=friend).exists()
    # Owners still see it, marked expired, and may revoke it.
    listed = auth_api.get(invite_url(project)).json()
    assert [(i["id"], i["expired"]) for i in listed] == [(invitation_id, True)]


def test_a_revoked_invitation_cannot_be_accepted_and_revoking_twice_is_harmless(
    auth_api: APIClient, project: Project
) -> None:
    friend = UserFactory(email="friend@example.com")
    invitation_id = invite(auth_api, project, "friend@example.com").json()["id"]
    assert auth_api.delete(f"{invite_url(project)}{invitation_id}/").status_code == 204
    assert auth_api.delete(f"{invite_url(project)}{invitation_id}/").status_code == 204
    assert auth_api.get(invite_url(project)).json() == []
    api = api_for(friend)
    response = api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert response.status_code == 400
    assert "withdrawn" in response.json()["detail"][0]
    assert not Membership.objects.filter(user=friend).exists()


def test_revoking_another_projects_invitation_is_404(
    auth_api: APIClient, project: Project, other_user: Any
) -> None:
    from conftest import make_project

    foreign = make_project(other_user, "Other")
    theirs = invitations.invitation_create(user=other_user, project=foreign, email="friend@example.com")
    assert auth_api.delete(f"{invite_url(project)}{theirs.pk}/").status_code == 404
    assert auth_api.delete(f"{invite_url(project)}not-a-uuid/").status_code == 404
    assert Invitation.objects.get(pk=theirs.pk).status == InvitationStatus.PENDING


def test_an_accepted_invitation_cannot_be_revoked_or_declined(auth_api: APIClient, project: Project) -> None:
    friend = UserFactory(email="friend@example.com")
    invitation_id = invite(auth_api, project, "friend@example.com").json()["id"]
    api = api_for(friend)
    api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert auth_api.delete(f"{invite_url(project)}{invitation_id}/").status_code == 400
    assert api.post(f"/api/v1/invitations/{invitation_id}/decline/").status_code == 400
    assert Membership.objects.filter(project=project, user=friend).exists()


def test_declining_is_final_and_idempotent(auth_api: APIClient, project: Project) -> None:
    friend = UserFactory(email="friend@example.com")
    invitation_id = invite(auth_api, project, "friend@example.com").json()["id"]
    api = api_for(friend)
    declined = api.post(f"/api/v1/invitations/{invitation_id}/decline/")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert api.post(f"/api/v1/invitations/{invitation_id}/decline/").status_code == 200
    response = api.post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert response.status_code == 400 and "declined" in response.json()["detail"][0]
    assert not Membership.objects.filter(user=friend).exists()
    # A new invitation may follow a declined one.
    assert invite(auth_api, project, "friend@example.com").status_code == 201


def test_someone_who_joined_meanwhile_cannot_accept_into_a_second_membership(
    auth_api: APIClient, project: Project
) -> None:
    friend = UserFactory(email="friend@example.com")
    invitation_id = invite(auth_api, project, "friend@example.com", "owner").json()["id"]
    MembershipFactory(project=project, user=friend, role=Role.VIEWER)
    response = api_for(friend).post(f"/api/v1/invitations/{invitation_id}/accept/")
    assert response.status_code == 400
    assert "already a member" in response.json()["detail"][0]
    assert Membership.objects.get(project=project, user=friend).role == Role.VIEWER


def test_an_unconfirmed_account_with_the_address_is_offered_nothing(
    auth_api: APIClient, project: Project
) -> None:
    squatter = UserFactory(email="friend@example.com", email_verified_at=None)
    invitation_id = invite(auth_api, project, "friend@example.com", "owner").json()["id"]
    api = api_for(squatter)
    assert api.get("/api/v1/invitations/").json() == []
    assert api.post(f"/api/v1/invitations/{invitation_id}/accept/").status_code == 400
    assert not Membership.objects.filter(user=squatter).exists()


# --- the old add-member call and the pages -------------------------------------------------


def test_the_old_add_member_call_answers_410_and_adds_nobody(auth_api: APIClient, project: Project) -> None:
    UserFactory(email="friend@example.com")
    response = auth_api.post(
        f"/api/v1/projects/{project.pk}/members/",
        {"email": "friend@example.com", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 410
    assert "invitations" in response.json()["detail"]
    assert project.memberships.count() == 1


def test_the_members_page_invites_lists_open_invitations_and_revokes(
    owner_client: Client, project: Project, mailoutbox: list[Any]
) -> None:
    response = owner_client.post(
        f"/projects/{project.pk}/members/", {"email": "Friend@example.com", "role": "editor"}, follow=True
    )
    page = response.content.decode()
    assert "An invitation was sent to friend@example.com." in page
    assert "Open invitations" in page and "friend@example.com" in page
    invitation = Invitation.objects.get(project=project)
    assert len(mailoutbox) == 1
    revoked = owner_client.post(f"/projects/{project.pk}/invitations/{invitation.pk}/revoke/", follow=True)
    assert "The invitation to friend@example.com was revoked." in revoked.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.REVOKED


def test_the_members_page_shows_bad_input_as_a_message(owner_client: Client, project: Project) -> None:
    response = owner_client.post(
        f"/projects/{project.pk}/members/", {"email": "owner@example.com", "role": "viewer"}
    )
    assert response.status_code == 400
    assert invitations.ALREADY_MEMBER in response.content.decode()
    response = owner_client.post(f"/projects/{project.pk}/members/", {"email": "nope", "role": "god"})
    assert response.status_code == 400


def test_the_invitee_accepts_and_declines_on_the_invitations_page(
    auth_api: APIClient, project: Project, user: Any
) -> None:
    from conftest import make_project

    friend = UserFactory(email="friend@example.com")
    second = make_project(user, "Second")
    one = invite(auth_api, project, "friend@example.com", "editor").json()["id"]
    two = invite(auth_api, second, "friend@example.com").json()["id"]
    browser = client_for(friend)
    page = browser.get("/invitations/").content.decode()
    assert project.title in page and "Second" in page and "Accept" in page
    joined = browser.post(f"/invitations/{one}/accept/", follow=True)
    assert joined.redirect_chain[-1][0] == f"/projects/{project.pk}/"
    assert f"You joined “{project.title}” as editor." in joined.content.decode()
    declined = browser.post(f"/invitations/{two}/decline/", follow=True)
    assert "You declined the invitation to “Second”." in declined.content.decode()
    assert "No open invitations" in browser.get("/invitations/").content.decode()
    assert browser.get(f"/invitations/{one}/accept/").status_code == 405
