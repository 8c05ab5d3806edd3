"""Issue 12: what a hostile or unlucky client broke, each with the behaviour that now holds.

The races themselves are driven with real parallel requests in tests/test_concurrency.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from config.tests.processes import clean_env
from conftest import PASSWORD, make_project
from documents.models import Document, DocumentStatus
from documents.services import document_create
from projects import services as project_services
from projects.models import Membership, Project, Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate-limit windows are aligned to the clock: hold it so a test never straddles two."""
    monkeypatch.setattr("django_ratelimit.core.time", SimpleNamespace(time=lambda: 1_800_000_000.0))


def rates(settings: Any, **changes: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, **changes}


def api_as(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def stored_files(settings: Any) -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- 1. limits are shared by every process ------------------------------------------------


HIT_CODE = """
import sys, django
django.setup()
from types import SimpleNamespace
import django_ratelimit.core
django_ratelimit.core.time = SimpleNamespace(time=lambda: 1_800_000_000.0)
from django.test import RequestFactory
from core import ratelimit
request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.77")
sys.stdin.readline()  # both processes start counting together
refused = sum(ratelimit.hit(ratelimit.ANON, request) is not None for _ in range(60))
print(refused)
"""


def test_two_processes_count_one_limit_once(tmp_path: Path) -> None:
    """Each process alone would allow 60 of its 60; together they allow the limit, 100, exactly."""
    env = clean_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings",
        DOCENT_RATE_ANON="100",
        REDIS_URL=os.environ["REDIS_URL"],
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HIT_CODE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate("go\n", timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    refused = sum(int(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert refused == 120 - 100


def test_changing_the_password_by_api_needs_the_current_one_and_emails_the_address(
    mailoutbox: list[Any],
) -> None:
    user = UserFactory()
    client = api_as(user)
    missing = client.patch("/api/v1/users/me", {"password": "a-new-long-phrase"}, format="json")
    assert missing.status_code == 400
    assert "current_password" in missing.json()
    wrong = client.patch(
        "/api/v1/users/me",
        {"password": "a-new-long-phrase", "current_password": "not-the-password"},
        format="json",
    )
    assert wrong.status_code == 400
    assert wrong.json()["current_password"] == ["The current password is not correct."]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert mailoutbox == []
    right = client.patch(
        "/api/v1/users/me",
        {"password": "a-new-long-phrase", "current_password": PASSWORD},
        format="json",
    )
    assert right.status_code == 200
    user.refresh_from_db()
    assert user.check_password("a-new-long-phrase")
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [user.email]
    assert "password was changed" in mailoutbox[0].subject
    assert "/accounts/password-reset/" in mailoutbox[0].body
    # A name change alone needs no password.
    assert client.patch("/api/v1/users/me", {"name": "Ada"}, format="json").status_code == 200


def test_guessing_the_current_password_counts_as_failed_sign_ins(settings: Any) -> None:
    rates(settings, signin_client=2)
    user = UserFactory()
    client = api_as(user)
    guess = {"password": "a-new-long-phrase", "current_password": "guess"}
    assert [client.patch("/api/v1/users/me", guess, format="json").status_code for _ in range(2)] == [
        400,
        400,
    ]
    refused = client.patch(
        "/api/v1/users/me", {"password": "a-new-long-phrase", "current_password": PASSWORD}, format="json"
    )
    assert refused.status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_the_password_page_needs_the_current_password_and_keeps_this_session(
    mailoutbox: list[Any],
) -> None:
    user = UserFactory()
    browser = Client()
    browser.force_login(user)
    assert browser.get("/accounts/password/").status_code == 200
    form = {"current_password": "wrong-one", "password": "a-new-long-phrase", "confirm": "a-new-long-phrase"}
    page = browser.post("/accounts/password/", form)
    assert page.status_code == 400
    assert "The current password is not correct." in page.content.decode()
    assert mailoutbox == []
    done = browser.post("/accounts/password/", {**form, "current_password": PASSWORD})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-new-long-phrase")
    assert browser.get("/").status_code == 200  # still signed in here
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [user.email]
    assert Client().get("/accounts/password/").status_code == 302  # signed-out: to the log-in page


# --- 5. sign-in lockout per address and client; a clean client still gets in -------------


def test_failures_from_one_client_do_not_lock_the_owner_out_elsewhere(settings: Any) -> None:
    user = UserFactory()
    attacker = Client(REMOTE_ADDR="203.0.113.66")
    wrong = {"username": user.email, "password": "wrong-password"}
    assert [attacker.post("/accounts/login/", wrong).status_code for _ in range(10)] == [200] * 10
    # The attacker's client is locked out for this address, even with the right password...
    locked = attacker.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert "from your network" in locked.content.decode()
    assert not locked.wsgi_request.user.is_authenticated
    # ...the owner, from their own network, is not (page and API).
    owner = Client(REMOTE_ADDR="198.51.100.20")
    assert owner.post("/accounts/login/", {"username": user.email, "password": PASSWORD}).status_code == 302
    token = APIClient(REMOTE_ADDR="198.51.100.21").post(
        "/api/v1/auth/token", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert token.status_code == 200


def test_past_the_address_ceiling_only_clean_clients_get_their_password_checked(settings: Any) -> None:
    rates(settings, signin_client=5, signin_account=3, signin_ip=100)
    user = UserFactory()
    wrong = {"username": user.email, "password": "wrong-password"}
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        assert Client(REMOTE_ADDR=address).post("/accounts/login/", wrong).status_code == 200
    # The address's ceiling is reached: a client that failed for it is refused unchecked.
    refused = Client(REMOTE_ADDR="203.0.113.1").post(
        "/accounts/login/", {"username": user.email, "password": PASSWORD}
    )
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this email address" in refused.content.decode()
    # A client with no recent failures has its password checked: right gets in...
    owner = Client(REMOTE_ADDR="198.51.100.9")
    assert owner.post("/accounts/login/", {"username": user.email, "password": PASSWORD}).status_code == 302
    # ...wrong fails once, and then that client is refused too.
    guesser = Client(REMOTE_ADDR="203.0.113.4")
    assert guesser.post("/accounts/login/", wrong).status_code == 200
    assert guesser.post("/accounts/login/", {"username": user.email, "password": PASSWORD}).status_code == 429


# --- 7. bad input and races end in a clean 4xx -------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [
        ("/api/v1/auth/register", False),
        ("/api/v1/auth/token", False),
        ("/api/v1/auth/token/refresh", False),
        ("/api/v1/auth/token/verify", False),
        ("/api/v1/projects/", True),
        ("/api/v1/documents/", True),
        ("/api/v1/runs/", True),
    ],
)
def test_json_nested_a_thousand_deep_is_a_400_everywhere(path: str, signed_in: bool) -> None:
    client = api_as(UserFactory()) if signed_in else APIClient()
    for body in (nested(1000), '{"a":' * 1000 + "1" + "}" * 1000, '{"email": ' + nested(100) + "}"):
        response = client.post(path, body, content_type="application/json")
        assert response.status_code == 400, (path, response.content[:200])
        assert "nested deeper than" in response.json()["detail"]


def test_ordinary_nesting_still_parses() -> None:
    client = api_as(UserFactory())
    body = json.dumps({"title": "Fine", "description": "", "extra": [[[["deep enough"]]]]})
    assert client.post("/api/v1/projects/", body, content_type="application/json").status_code == 201


def test_a_duplicate_external_id_is_a_409_and_leaves_no_file(settings: Any) -> None:
    user = UserFactory()
    project = make_project(user)
    client = api_as(user)

    def upload() -> Any:
        return client.post(
            "/api/v1/documents/",
            {
                "project": str(project.pk),
                "external_id": "doc-1",
                "file": SimpleUploadedFile("a.txt", b"Some text.", content_type="text/plain"),
            },
            format="multipart",
        )

    assert upload().status_code == 201
    second = upload()
    assert second.status_code == 409
    assert second.json() == {"external_id": ["The project already has a document with this external id."]}
    assert len(stored_files(settings)) == 1
    assert Document.objects.filter(project=project).count() == 1


def test_a_twin_created_between_the_check_and_the_insert_is_a_conflict_with_no_file(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of two uploads, played in order: the early check misses the twin, the locked one sees it."""
    from documents import services as document_services

    user = UserFactory()
    project = make_project(user)
    document_create(user=user, project=project, title="First", text="x", external_id="e-1")
    real_touch = document_services.documents_changed
    calls: list[Any] = []

    def touch_after_a_twin_landed(*, project_id: Any) -> int:
        calls.append(project_id)
        return real_touch(project_id=project_id)

    monkeypatch.setattr(document_services, "documents_changed", touch_after_a_twin_landed)
    monkeypatch.setattr(
        document_services.Document.objects,
        "filter",
        _filter_missing_the_first_check(document_services.Document.objects.filter),
    )
    with pytest.raises(document_services.ValidationError) as caught:
        document_create(
            user=user,
            project=project,
            upload=SimpleUploadedFile("b.txt", b"More text.", content_type="text/plain"),
            external_id="e-1",
        )
    assert caught.value.error_dict["external_id"][0].code == "conflict"
    assert calls, "the project row is locked (touched) before the insert"
    assert stored_files(settings) == []


def _filter_missing_the_first_check(real: Any) -> Any:
    state = {"calls": 0}

    def patched(*args: Any, **kwargs: Any) -> Any:
        if "external_id" in kwargs:
            state["calls"] += 1
            if state["calls"] == 1:
                return real(pk__in=[])  # the unlocked early check sees nothing yet
        return real(*args, **kwargs)

    return patched


def test_a_document_added_to_a_project_deleted_meanwhile_is_refused_with_no_file(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from documents import services as document_services

    monkeypatch.setattr(document_services, "require", lambda *a, **k: Role.OWNER)  # checked before the delete
    user = UserFactory()
    project = make_project(user)
    stale = Project.objects.get(pk=project.pk)  # what the request loaded before the delete
    project_services.project_delete(user=user, project=project)
    with pytest.raises(project_services.ValidationError) as caught:
        document_create(
            user=user,
            project=stale,
            upload=SimpleUploadedFile("c.txt", b"Text.", content_type="text/plain"),
        )
    assert caught.value.message_dict == {"project": ["The project was deleted."]}
    assert stored_files(settings) == []
    assert not Document.objects.exists()


def test_a_run_whose_document_vanished_during_create_is_a_409_not_a_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import IntegrityError

    from agents import services as agent_services

    user = UserFactory()
    project = make_project(user)
    doc = document_create(user=user, project=project, title="Doc", text="Some text.")
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY)

    def deleted_meanwhile(**kwargs: Any) -> Any:
        raise IntegrityError('insert or update on table "agents_agentrun" violates foreign key constraint')

    monkeypatch.setattr(agent_services, "run_create", deleted_meanwhile)
    body = {"project": str(project.pk), "kind": "summarize", "document": str(doc.pk)}
    response = api_as(user).post("/api/v1/runs/", body, format="json")
    assert response.status_code == 409
    assert "deleted meanwhile" in response.json()["detail"]
    browser = Client()
    browser.force_login(user)
    page = browser.post("/runs/new/", body, follow=True)
    assert page.status_code == 200
    assert "deleted meanwhile" in page.content.decode()
    assert not AgentRun.objects.exists()


# --- 9. one limit per field, the same message on both faces -----------------------------


def test_a_project_description_has_one_limit_on_the_page_and_the_api() -> None:
    user = UserFactory()
    message = "A description has at most 10,000 characters."
    api = api_as(user).post("/api/v1/projects/", {"title": "T", "description": "x" * 10_001}, format="json")
    assert api.status_code == 400
    assert api.json() == {"description": [message]}
    browser = Client()
    browser.force_login(user)
    page = browser.post("/projects/new/", {"title": "T", "description": "x" * 10_001})
    assert page.status_code == 400
    assert message in page.content.decode()
    assert not Project.objects.filter(title="T").exists()
    project = make_project(user)
    edit = browser.post(f"/projects/{project.pk}/edit/", {"title": "T", "description": "y" * 4_000_000})
    assert edit.status_code == 400 and message in edit.content.decode()
    assert api_as(user).patch(
        f"/api/v1/projects/{project.pk}/", {"description": "y" * 10_001}, format="json"
    ).json() == {"description": [message]}
    ok = browser.post("/projects/new/", {"title": "Fits", "description": "z" * 10_000})
    assert ok.status_code == 302


TWENTY_FOUR_MB = 24 * 1024 * 1024


def test_pasted_text_of_24_mb_is_stored_from_the_page_and_the_api() -> None:
    user = UserFactory()
    project = make_project(user)
    line = "All work and no play makes a dull document.\n"
    text = (line * (TWENTY_FOUR_MB // len(line) + 1))[:TWENTY_FOUR_MB]
    browser = Client()
    browser.force_login(user)
    page = browser.post(f"/projects/{project.pk}/documents/", {"title": "Page paste", "text": text})
    assert page.status_code == 302, page.content[:300]
    api = api_as(user).post(
        "/api/v1/documents/",
        {"project": str(project.pk), "title": "API paste", "text": text[:-1] + "!"},  # not the same bytes
        format="json",
    )
    assert api.status_code == 201, api.content[:300]
    sizes = dict(Document.objects.filter(project=project).values_list("title", "size_bytes"))
    assert sizes == {"Page paste": TWENTY_FOUR_MB, "API paste": TWENTY_FOUR_MB}


def test_pasted_text_over_the_limit_gets_the_limit_in_words(settings: Any) -> None:
    settings.DOCENT_MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    user = UserFactory()
    project = make_project(user)
    text = "a" * (1024 * 1024 + 10)
    message = "The text is larger than the 1 MB limit."
    api = api_as(user).post(
        "/api/v1/documents/", {"project": str(project.pk), "title": "Big", "text": text}, format="json"
    )
    assert api.status_code == 400 and api.json() == {"text": [message]}
    browser = Client()
    browser.force_login(user)
    page = browser.post(f"/projects/{project.pk}/documents/", {"title": "Big", "text": text})
    assert page.status_code == 400 and message in page.content.decode()
    # Far past it, the body is refused before it is read, with the limit in words too.
    huge = api_as(user).post(
        "/api/v1/documents/",
        {"project": str(project.pk), "title": "Huge", "text": "b" * (5 * 1024 * 1024)},
        format="json",
    )
    assert huge.status_code == 413 and "1 MB limit" in huge.json()["detail"]
    assert not Document.objects.exists()


# --- 10. deleting a project, a document or an account removes its stored bytes ------------


def _upload(user: Any, project: Project, name: str) -> Document:
    return document_create(
        user=user, project=project, upload=SimpleUploadedFile(name, b"Bytes of " + name.encode())
    )


def test_deleting_a_project_removes_its_files_by_page_api_and_admin(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user = UserFactory()
    staff = UserFactory(is_staff=True, is_superuser=True)
    by_page, by_api, by_admin, kept = (make_project(user, title=t) for t in ("page", "api", "admin", "kept"))
    for project in (by_page, by_api, by_admin, kept):
        _upload(user, project, f"{project.title}-1.txt")
        _upload(user, project, f"{project.title}-2.txt")
    assert len(stored_files(settings)) == 8
    browser = Client()
    browser.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post(f"/projects/{by_page.pk}/delete/").status_code == 302
        assert api_as(user).delete(f"/api/v1/projects/{by_api.pk}/").status_code == 204
        admin = Client()
        admin.force_login(staff)
        confirm = admin.post(reverse("admin:projects_project_delete", args=[by_admin.pk]), {"post": "yes"})
        assert confirm.status_code == 302
    assert stored_files(settings) == sorted(
        f"documents/{kept.pk}/{d.pk}/{d.original_filename}" for d in Document.objects.all()
    )
    # No empty folders of the deleted projects either.
    assert sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "documents").iterdir()) == [str(kept.pk)]


def test_deleting_a_document_removes_its_file(settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    user = UserFactory()
    project = make_project(user)
    doc, other = _upload(user, project, "gone.txt"), _upload(user, project, "stays.txt")
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as(user).delete(f"/api/v1/documents/{doc.pk}/").status_code == 204
    assert stored_files(settings) == [f"documents/{project.pk}/{other.pk}/stays.txt"]


def test_deleting_an_account_removes_the_projects_only_it_belonged_to_and_hands_on_the_shared_ones(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    leaving, colleague = UserFactory(), UserFactory()
    alone = make_project(leaving, title="alone")
    shared = make_project(leaving, title="shared", editor=colleague)
    theirs = make_project(colleague, title="theirs", viewer=leaving)
    _upload(leaving, alone, "mine.txt")
    kept = [_upload(leaving, shared, "team.txt"), _upload(colleague, theirs, "theirs.txt")]
    with django_capture_on_commit_callbacks(execute=True):
        leaving.delete()
    assert not Project.objects.filter(pk=alone.pk).exists()
    assert stored_files(settings) == sorted(
        f"documents/{d.project_id}/{d.pk}/{d.original_filename}" for d in kept
    )
    # The shared project keeps an owner: the last-owner rule survives the account's delete.
    assert Membership.objects.get(project=shared, user=colleague).role == Role.OWNER
    assert Membership.objects.get(project=theirs, user=colleague).role == Role.OWNER


# --- 2. staff edits in the admin follow the last-owner rule ------------------------------


def _inline_form(
    project: Project, memberships: list[Membership], **changes: dict[str, str]
) -> dict[str, str]:
    data = {
        "title": project.title,
        "description": project.description,
        "status": project.status,
        "created_by": str(project.created_by_id or ""),
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, m in enumerate(memberships):
        row = {"id": str(m.pk), "project": str(project.pk), "user": str(m.user_id), "role": m.role}
        row.update(changes.get(str(m.pk), {}))
        data.update({f"memberships-{i}-{k}": v for k, v in row.items()})
    return data


def test_the_admin_inline_cannot_leave_a_project_without_an_owner() -> None:
    owner, editor = UserFactory(), UserFactory()
    project = make_project(owner, editor=editor)
    staff = UserFactory(is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    rows = list(Membership.objects.filter(project=project).order_by("created_at"))
    url = reverse("admin:projects_project_change", args=[project.pk])
    owner_row = str(rows[0].pk)
    demoted = admin.post(url, _inline_form(project, rows, **{owner_row: {"role": Role.VIEWER}}))
    assert demoted.status_code == 200
    assert project_services.LAST_OWNER_DEMOTED in demoted.content.decode()
    removed = admin.post(url, _inline_form(project, rows, **{owner_row: {"DELETE": "on"}}))
    assert removed.status_code == 200
    assert project_services.LAST_OWNER_DEMOTED in removed.content.decode()
    assert Membership.objects.get(pk=rows[0].pk).role == Role.OWNER
    # Handing ownership over in one edit is fine: the new owner is saved first.
    editor_row = str(rows[1].pk)
    swap = _inline_form(project, rows, **{owner_row: {"role": Role.VIEWER}, editor_row: {"role": Role.OWNER}})
    assert admin.post(url, swap).status_code == 302
    assert dict(Membership.objects.filter(project=project).values_list("user_id", "role")) == {
        owner.pk: Role.VIEWER,
        editor.pk: Role.OWNER,
    }


def test_the_membership_admin_cannot_demote_or_delete_the_last_owner() -> None:
    owner = UserFactory()
    project = make_project(owner)
    membership = Membership.objects.get(project=project)
    staff = UserFactory(is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    change = reverse("admin:projects_membership_change", args=[membership.pk])
    form = {"user": str(owner.pk), "role": Role.EDITOR}
    page = admin.post(change, form)
    assert page.status_code == 200
    assert project_services.LAST_OWNER_DEMOTED in page.content.decode()
    delete = admin.post(reverse("admin:projects_membership_delete", args=[membership.pk]), {"post": "yes"})
    assert delete.status_code == 302
    assert project_services.LAST_OWNER_REMOVED in admin.get(delete["Location"]).content.decode()
    bulk = admin.post(
        reverse("admin:projects_membership_changelist"),
        {"action": "remove_selected", "_selected_action": [str(membership.pk)]},
        follow=True,
    )
    assert project_services.LAST_OWNER_REMOVED in bulk.content.decode()
    assert "Removed" not in bulk.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_a_demotion_and_a_removal_in_turn_keep_one_owner() -> None:
    """The service's rule, played in order: what the race on PostgreSQL must also end in."""
    first, second = UserFactory(), UserFactory()
    project = make_project(first)
    m_second = MembershipFactory(project=project, user=second, role=Role.OWNER)
    m_first = Membership.objects.get(project=project, user=first)
    project_services.member_remove(user=first, membership=m_second)
    with pytest.raises(Exception) as caught:  # noqa: PT011  (Http404: the remover is no longer a member)
        project_services.member_remove(user=second, membership=m_first)
    assert type(caught.value).__name__ in {"Http404", "ValidationError"}
    assert Membership.objects.filter(project=project, role=Role.OWNER).count() == 1
