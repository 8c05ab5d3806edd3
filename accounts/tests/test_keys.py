"""Personal API keys: made with the secret shown once, used as `Bearer dk_...` within their
scopes, projects and the owner's roles, revoked at once, and never able to manage the account."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts import keys, scopes
from accounts.models import ApiKey, AuditEvent, Scope, Tier
from accounts.tests.factories import UserFactory
from conftest import PASSWORD, make_project
from documents.models import Document, DocumentStatus
from documents.services import document_create
from documents.tests.factories import ChunkFactory

pytestmark = pytest.mark.django_db

ALL = list(Scope.values)


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def new_key(user: Any, scopes: list[str] | None = None, **extra: Any) -> tuple[ApiKey, APIClient]:
    key, raw = keys.key_create(user=user, name="script", scopes=scopes or ALL, **extra)
    return key, bearer(raw)


def searchable(project: Any, text: str) -> Document:
    doc = document_create(
        user=project.memberships.first().user,
        project=project,
        upload=SimpleUploadedFile("notes.txt", text.encode(), content_type="text/plain"),
    )
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY, text=text)
    doc.refresh_from_db()
    ChunkFactory(document=doc, text=text)
    return doc


@pytest.fixture
def owner() -> Any:
    return UserFactory(email="owner@example.com")


# --- making keys -----------------------------------------------------------------


def test_creating_a_key_shows_the_secret_once_and_stores_only_its_hash(owner: Any) -> None:
    jwt = APIClient()
    jwt.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(owner)}")
    response = jwt.post("/api/v1/keys/", {"name": "CI", "scopes": ["read", "search"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["key"]
    assert raw.startswith(f"dk_{body['prefix']}_")
    secret = raw.split("_", 2)[2]
    key = ApiKey.objects.get(pk=body["id"])
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = " ".join(str(value) for value in ApiKey.objects.filter(pk=key.pk).values().first().values())
    assert secret not in stored
    assert (body["scopes"], body["projects"], body["status"]) == (["read", "search"], [], "active")
    listed = jwt.get("/api/v1/keys/").json()["results"]
    assert [item["id"] for item in listed] == [str(key.pk)]
    assert "key" not in listed[0] and "secret_hash" not in listed[0]
    assert secret not in str(listed)
    assert AuditEvent.objects.filter(action="key.created", actor=owner, target__contains=key.prefix).exists()


def test_a_key_needs_a_name_and_known_scopes_and_a_future_expiry(owner: Any) -> None:
    api = APIClient()
    api.force_authenticate(owner)
    assert api.post("/api/v1/keys/", {"name": "", "scopes": ["read"]}, format="json").status_code == 400
    assert api.post("/api/v1/keys/", {"name": "x", "scopes": ["sudo"]}, format="json").status_code == 400
    assert api.post("/api/v1/keys/", {"name": "x", "scopes": []}, format="json").status_code == 400
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = api.post("/api/v1/keys/", {"name": "x", "scopes": ["read"], "expires_at": past}, format="json")
    assert response.status_code == 400 and "expires_at" in response.json()
    assert not ApiKey.objects.exists()


def test_a_key_can_only_be_limited_to_the_owners_projects(owner: Any, other_user: Any) -> None:
    theirs = make_project(other_user, "Theirs")
    with pytest.raises(Exception, match="member of"):
        keys.key_create(user=owner, name="x", scopes=["read"], projects=[theirs.pk])


# --- using keys ----------------------------------------------------------------------


def test_a_key_acts_as_its_owner_within_its_scopes(owner: Any) -> None:
    project = make_project(owner, "Mine")
    _key, reader = new_key(owner, ["read"])
    me = reader.get("/api/v1/users/me")
    assert (me.status_code, me.json()["email"]) == (200, owner.email)
    assert reader.get(f"/api/v1/projects/{project.pk}/").status_code == 200
    refused = reader.post(
        "/api/v1/documents/", {"project": str(project.pk), "title": "T", "text": "Hello."}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "scope_missing" and "`write`" in refused.json()["detail"]
    search = reader.get(f"/api/v1/projects/{project.pk}/search/?q=hello&mode=lexical")
    assert (search.status_code, search.json()["code"]) == (403, "scope_missing")
    assert "`search`" in search.json()["detail"]
    ask = reader.post("/api/v1/runs/", {"project": str(project.pk), "question": "Why?"}, format="json")
    assert (ask.status_code, ask.json()["code"]) == (403, "scope_missing")
    settings_change = reader.patch(f"/api/v1/projects/{project.pk}/", {"title": "X"}, format="json")
    assert (settings_change.status_code, settings_change.json()["code"]) == (403, "scope_missing")
    _key, writer = new_key(owner, ["write"])
    created = writer.post(
        "/api/v1/documents/", {"project": str(project.pk), "title": "T", "text": "Hello."}, format="json"
    )
    assert created.status_code == 201, created.content
    assert writer.get("/api/v1/projects/").status_code == 403  # write does not imply read


def test_a_key_never_exceeds_its_owners_role(owner: Any, other_user: Any) -> None:
    project = make_project(other_user, "Theirs", viewer=owner)
    _key, client = new_key(owner, ALL)
    upload = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "title": "T", "text": "Hello."}, format="json"
    )
    assert upload.status_code == 403 and "viewer" in upload.json()["detail"]
    assert client.delete(f"/api/v1/projects/{project.pk}/").status_code == 403
    assert not Document.objects.filter(project=project).exists()


def test_a_project_limited_key_sees_only_its_projects(owner: Any) -> None:
    inside, outside = make_project(owner, "Inside"), make_project(owner, "Outside")
    in_doc, out_doc = searchable(inside, "The launch is near."), searchable(outside, "The launch is far.")
    _key, client = new_key(owner, ALL, projects=[inside.pk])
    listed = {item["id"] for item in client.get("/api/v1/projects/").json()["results"]}
    assert listed == {str(inside.pk)}
    assert client.get(f"/api/v1/projects/{outside.pk}/").json() == {"detail": "Not found."}
    assert client.get(f"/api/v1/projects/{outside.pk}/").status_code == 404
    assert client.get(f"/api/v1/documents/{out_doc.pk}/").status_code == 404
    documents = {item["id"] for item in client.get("/api/v1/documents/").json()["results"]}
    assert documents == {str(in_doc.pk)}
    hits = client.get("/api/v1/search/?q=launch&mode=lexical").json()["results"]
    assert hits and {hit["project"] for hit in hits} == {str(inside.pk)}
    named = client.get(f"/api/v1/search/?q=launch&mode=lexical&project={outside.pk}").json()["results"]
    assert named == []
    assert client.get(f"/api/v1/projects/{outside.pk}/search/?q=launch").status_code == 404
    ask = client.post(
        "/api/v1/runs/", {"project": str(outside.pk), "kind": "ask", "question": "When?"}, format="json"
    )
    assert ask.status_code == 404
    create = client.post("/api/v1/projects/", {"title": "New"}, format="json")
    assert (create.status_code, create.json()["code"]) == (403, "key_not_allowed")


def test_a_limited_key_whose_projects_are_gone_sees_nothing(owner: Any) -> None:
    inside, other = make_project(owner, "Inside"), make_project(owner, "Other")
    _key, client = new_key(owner, ["read"], projects=[inside.pk])
    inside.delete()
    assert client.get("/api/v1/projects/").json()["results"] == []
    assert client.get(f"/api/v1/projects/{other.pk}/").status_code == 404


def test_a_key_cannot_manage_keys_or_the_account(owner: Any) -> None:
    key, client = new_key(owner, ALL)
    for response in (
        client.post("/api/v1/keys/", {"name": "next", "scopes": ["read"]}, format="json"),
        client.delete(f"/api/v1/keys/{key.pk}/"),
        client.patch(
            "/api/v1/users/me",
            {"password": "a-new-long-pass-phrase", "current_password": PASSWORD},
            format="json",
        ),
        client.patch("/api/v1/users/me", {"name": "Renamed"}, format="json"),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "key_not_allowed"
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD) and owner.name == ""
    assert ApiKey.objects.count() == 1 and not ApiKey.objects.get().revoked
    assert client.get("/api/v1/keys/").status_code == 200  # listing is allowed, with `read`


def test_a_revoked_key_is_refused_at_once(owner: Any) -> None:
    key, client = new_key(owner, ["read"])
    assert client.get("/api/v1/projects/").status_code == 200
    person = APIClient()
    person.force_authenticate(owner)
    assert person.delete(f"/api/v1/keys/{key.pk}/").status_code == 204
    refused = client.get("/api/v1/projects/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "key_revoked" and "revoked" in refused.json()["detail"]
    assert AuditEvent.objects.filter(action="key.revoked", actor=owner).count() == 1
    assert person.delete(f"/api/v1/keys/{key.pk}/").status_code == 204  # again: nothing more to do
    assert AuditEvent.objects.filter(action="key.revoked").count() == 1


def test_someone_elses_key_cannot_be_revoked(owner: Any, other_user: Any) -> None:
    key, _client = new_key(owner, ["read"])
    stranger = APIClient()
    stranger.force_authenticate(other_user)
    assert stranger.delete(f"/api/v1/keys/{key.pk}/").status_code == 404
    assert stranger.delete("/api/v1/keys/not-an-id/").status_code == 404
    assert not ApiKey.objects.get(pk=key.pk).revoked


def test_an_expired_key_is_refused(owner: Any) -> None:
    key, client = new_key(owner, ["read"], expires_at=timezone.now() + timedelta(hours=1))
    assert client.get("/api/v1/projects/").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = client.get("/api/v1/projects/")
    assert (refused.status_code, refused.json()["code"]) == (401, "key_expired")


def test_the_key_of_an_inactive_account_is_refused(owner: Any) -> None:
    _key, client = new_key(owner, ["read"])
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    refused = client.get("/api/v1/projects/")
    assert (refused.status_code, refused.json()["code"]) == (401, "user_inactive")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("dk_", "key_malformed"),
        ("dk_0123456789ab", "key_malformed"),
        ("dk_0123456789ab_short", "key_malformed"),
        ("dk_0123456789ab_" + "A" * 43, "key_invalid"),  # well formed, no such key
    ],
)
def test_a_malformed_or_unknown_key_is_a_401_that_says_so(owner: Any, value: str, code: str) -> None:
    response = bearer(value).get("/api/v1/projects/")
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")
    if code == "key_malformed":
        assert "dk_<12 hex characters>_<43 characters>" in response.json()["detail"]


def test_a_wrong_secret_for_a_real_prefix_is_refused(owner: Any) -> None:
    key, _client = new_key(owner, ["read"])
    response = bearer(f"dk_{key.prefix}_" + "B" * 43).get("/api/v1/projects/")
    assert (response.status_code, response.json()["code"]) == (401, "key_invalid")


def test_jwts_still_work_beside_keys(owner: Any) -> None:
    response = bearer(str(AccessToken.for_user(owner))).get("/api/v1/users/me")
    assert response.status_code == 200
    assert bearer("not-a-jwt").get("/api/v1/users/me").status_code == 401


def test_last_used_is_recorded_at_most_once_a_minute(owner: Any) -> None:
    key, client = new_key(owner, ["read"])
    assert key.last_used_at is None
    client.get("/api/v1/users/me")
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)
    client.get("/api/v1/users/me")
    key.refresh_from_db()
    assert key.last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/users/me")
    key.refresh_from_db()
    assert key.last_used_at > first - timedelta(minutes=2)


def test_key_requests_count_against_the_owners_tier(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real shared cache, with the clock held so the test stays in one rate-limit window.
    monkeypatch.setattr("django_ratelimit.core.time", SimpleNamespace(time=lambda: 1_800_000_000.0))
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": {"free": 3, "pro": 5}}
    free, pro = UserFactory(), UserFactory(tier=Tier.PRO)
    _key, free_key = new_key(free, ["read"])
    person = APIClient()
    person.force_authenticate(free)
    assert person.get("/api/v1/users/me").status_code == 200  # the owner's own request counts too
    assert [free_key.get("/api/v1/users/me").status_code for _ in range(3)] == [200, 200, 429]
    assert free_key.get("/api/v1/users/me").json()["limit"] == "api"
    _key, pro_key = new_key(pro, ["read"])
    assert [pro_key.get("/api/v1/users/me").status_code for _ in range(6)] == [200] * 5 + [429]


def test_a_key_reads_a_runs_event_stream_with_read(owner: Any) -> None:
    from agents.models import RunStatus
    from agents.tests.factories import AgentRunFactory

    project = make_project(owner, "Mine")
    run = AgentRunFactory(project=project, question="Q?", status=RunStatus.SUCCEEDED, answer="A.")
    _key, reader = new_key(owner, ["read"])
    response = reader.get(f"/api/v1/runs/{run.pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert "event: done" in body
    _key, searcher = new_key(owner, ["search"])
    assert searcher.get(f"/api/v1/runs/{run.pk}/events/").status_code == 403
    other = make_project(owner, "Other")
    _key, limited = new_key(owner, ["read"], projects=[other.pk])
    assert limited.get(f"/api/v1/runs/{run.pk}/events/").status_code == 404


# --- one place decides the scope ---------------------------------------------------------


def _api_views() -> list[Any]:
    found = []

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "cls", None)
                if view is not None and hasattr(view, "permission_classes"):
                    found.append(view)

    walk(get_resolver().url_patterns)
    return found


def test_every_api_view_that_takes_a_key_checks_its_scope() -> None:
    views = _api_views()
    assert len(views) > 10
    for view in views:
        if not view().get_authenticators() or list(view.permission_classes) == [AllowAny]:
            continue  # signs in no one (register, token endpoints) or open to all (the schema)
        # A view's own get_permissions (/users/me) is checked request by request in the matrix.
        assert scopes.KeyScopePermission in view.permission_classes, view
        declared = getattr(view, "key_scopes", {}) or {}
        assert set(declared.values()) <= {*Scope.values, scopes.NOT_FOR_KEYS}, view


def test_the_schema_documents_the_key_scheme(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operation = schema["paths"]["/api/v1/projects/"]["get"]
    assert {"apiKey": []} in operation["security"]


# --- the page ----------------------------------------------------------------------------


def test_the_keys_page_makes_a_key_and_shows_its_secret_once(owner: Any, client: Client) -> None:
    project = make_project(owner, "Mine")
    client.force_login(owner)
    page = client.get("/accounts/keys/")
    assert page.status_code == 200 and "No keys yet" in page.content.decode()
    made = client.post(
        "/accounts/keys/",
        {
            "name": "CI job",
            "scopes": ["read", "search"],
            "projects": [str(project.pk)],
            "expires": "2099-12-31",
        },
    )
    assert made.status_code == 200
    key = ApiKey.objects.get()
    html = made.content.decode()
    raw = html.split('id="new-key-value"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert raw.startswith(f"dk_{key.prefix}_") and "shown only this once" in html
    assert made["Cache-Control"] == "no-store"
    assert (key.scopes, key.project_ids) == (["read", "search"], [project.pk])
    assert timezone.localtime(key.expires_at).date().isoformat() == "2100-01-01"
    assert bearer(raw).get(f"/api/v1/projects/{project.pk}/").status_code == 200
    again = client.get("/accounts/keys/").content.decode()
    assert raw not in again and f"dk_{key.prefix}_" in again and "CI job" in again and "Mine" in again


def test_the_keys_page_revokes_a_key(owner: Any, client: Client) -> None:
    key, api = new_key(owner, ["read"])
    client.force_login(owner)
    page = client.get("/accounts/keys/").content.decode()
    assert f'action="/accounts/keys/{key.pk}/revoke/"' in page and "data-confirm" in page
    response = client.post(f"/accounts/keys/{key.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/accounts/keys/"
    assert api.get("/api/v1/projects/").status_code == 401
    assert "revoked" in client.get("/accounts/keys/").content.decode()


def test_the_keys_page_refuses_a_key_without_scopes(owner: Any, client: Client) -> None:
    client.force_login(owner)
    response = client.post("/accounts/keys/", {"name": "CI"})
    assert response.status_code == 400 and not ApiKey.objects.exists()


def test_a_key_does_not_open_the_pages(owner: Any, client: Client) -> None:
    _key, raw = keys.key_create(user=owner, name="x", scopes=ALL)
    response = client.get("/accounts/keys/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_nav_links_to_the_keys_page(owner: Any, client: Client) -> None:
    client.force_login(owner)
    assert 'href="/accounts/keys/"' in client.get("/accounts/password/").content.decode()


# --- the admin -----------------------------------------------------------------------------


def test_staff_see_and_revoke_keys_in_the_admin_but_never_the_hash(owner: Any, client: Client) -> None:
    key, api = new_key(owner, ["read"])
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    listing = client.get("/admin/accounts/apikey/").content.decode()
    assert key.prefix in listing and key.secret_hash not in listing
    detail = client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert key.prefix in detail and key.secret_hash not in detail
    assert client.get("/admin/accounts/apikey/add/").status_code == 403
    response = client.post(
        "/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [str(key.pk)]}
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked
    assert api.get("/api/v1/projects/").status_code == 401
    assert AuditEvent.objects.filter(action="key.revoked", actor=staff).exists()


@pytest.mark.parametrize(
    ("expires", "said"),
    [
        ("9999-12-31", "Choose a date before 31 December 9999"),
        ("2001-01-01", "The expiry must be in the future."),
    ],
)
def test_the_keys_page_refuses_an_expiry_it_cannot_keep(
    owner: Any, client: Client, expires: str, said: str
) -> None:
    client.force_login(owner)
    response = client.post("/accounts/keys/", {"name": "Far", "scopes": ["read"], "expires": expires})
    assert response.status_code == 400 and said in response.content.decode()
    assert not ApiKey.objects.exists()
