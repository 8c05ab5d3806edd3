"""Races driven with real parallel requests against a live server on PostgreSQL (issue 12).

Each round fires its requests together (a barrier, a bounded thread pool) at a
gunicorn process that shares the test database, and then checks what the
database and the media folder hold: every request ends in a success or a clear
4xx, never a 500, and nothing is left half done or orphaned.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from conftest import make_project
from documents.models import Document, DocumentStatus
from documents.services import document_create
from projects.models import Membership, Project, Role
from projects.tests.factories import MembershipFactory
from tests.races import together, token
from tests.servers import call, web_server
from tests.worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 5
CLEAN = {200, 201, 204, 400, 403, 404, 409}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("race-media")


@pytest.fixture
def server(tmp_path: Path, media: Path, settings: Any) -> Iterator[str]:
    settings.MEDIA_ROOT = str(media)
    env = {
        "DATABASE_URL": database_url(),
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_MEDIA_ROOT": str(media),
        "DOCENT_LLM_PROVIDER": "offline",
        # Jobs are published and never run: the races are the web process's.
        "CELERY_BROKER_URL": "memory://",
        "DOCENT_RATE_API_FREE": "100000",
        "DOCENT_RATE_UPLOADS_FREE": "100000",
        "DOCENT_RATE_RUNS_FREE": "100000",
        "WEB_CONCURRENCY": "2",
    }
    with web_server(env, tmp_path / "web.log", workers=2) as base:
        yield base


def multipart(
    url: str, *, access: str, fields: dict[str, str], file: tuple[str, bytes]
) -> tuple[int, Any, dict[str, str]]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    name, data = file
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Authorization", f"Bearer {access}")
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read()), {}
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw), {}
        except ValueError:
            return err.code, raw.decode(errors="replace"), {}


def files_under(media: Path, project: Any) -> list[Path]:
    folder = media / "documents" / str(project.pk)
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- 2. the last-owner rule ---------------------------------------------------------------


def two_owners() -> tuple[Project, dict[str, str], dict[str, Membership]]:
    """A project with two owners: their tokens and memberships by name."""
    first, second = UserFactory(), UserFactory()
    project = make_project(first)
    members = {
        "first": Membership.objects.get(project=project, user=first),
        "second": MembershipFactory(project=project, user=second, role=Role.OWNER),
    }
    return project, {"first": token(first), "second": token(second)}, members


def owners_of(project: Project) -> int:
    return Membership.objects.filter(project=project, role=Role.OWNER).count()


def removing_each_other(server: str) -> None:
    project, tokens, members = two_owners()
    url = f"{server}/api/v1/projects/{project.pk}/members"
    results = together(
        lambda: call("DELETE", f"{url}/{members['second'].pk}/", token=tokens["first"]),
        lambda: call("DELETE", f"{url}/{members['first'].pk}/", token=tokens["second"]),
    )
    statuses = sorted(status for status, _ in results)
    assert statuses[0] == 204 and statuses[1] in {400, 403, 404}, results
    assert owners_of(project) == 1


def demoting_each_other(server: str) -> None:
    project, tokens, members = two_owners()
    url = f"{server}/api/v1/projects/{project.pk}/members"
    demote = {"role": Role.VIEWER}
    results = together(
        lambda: call("PATCH", f"{url}/{members['second'].pk}/", token=tokens["first"], body=demote),
        lambda: call("PATCH", f"{url}/{members['first'].pk}/", token=tokens["second"], body=demote),
    )
    statuses = sorted(status for status, _ in results)
    assert statuses[0] == 200 and statuses[1] in {400, 403}, results
    assert owners_of(project) == 1


def leaving_together(server: str) -> None:
    project, tokens, members = two_owners()
    url = f"{server}/api/v1/projects/{project.pk}/members"
    results = together(
        lambda: call("DELETE", f"{url}/{members['first'].pk}/", token=tokens["first"]),
        lambda: call("DELETE", f"{url}/{members['second'].pk}/", token=tokens["second"]),
    )
    assert all(status in CLEAN for status, _ in results), results
    assert [status for status, _ in results].count(204) == 1, results
    assert owners_of(project) == 1


@pytest.mark.parametrize("race", [removing_each_other, demoting_each_other, leaving_together])
def test_two_owners_acting_on_each_other_at_once_leave_one_owner(
    server: str, race: Callable[[str], None]
) -> None:
    for _ in range(ROUNDS):
        race(server)


# --- 7. uploads, runs and deletes that cross -------------------------------------------------


def upload(server: str, access: str, project: Project, name: str, **fields: str) -> Any:
    def send() -> tuple[int, Any, dict[str, str]]:
        return multipart(
            f"{server}/api/v1/documents/",
            access=access,
            fields={"project": str(project.pk), **fields},
            file=(name, f"The text of {name}.".encode()),
        )

    return send


def same_external_id(server: str, media: Path) -> None:
    owner = UserFactory()
    project = make_project(owner)
    access = token(owner)
    results = together(
        *[upload(server, access, project, f"f{i}.txt", external_id="same-1") for i in range(5)]
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409, 409, 409], results
    duplicate = {"external_id": ["The project already has a document with this external id."]}
    assert all(body == duplicate for status, body in results if status == 409)
    assert Document.objects.filter(project=project).count() == 1
    assert len(files_under(media, project)) == 1


def test_five_uploads_with_one_external_id_end_as_one_document_and_four_409s(
    server: str, media: Path
) -> None:
    for _ in range(ROUNDS):
        same_external_id(server, media)


def run_during_document_delete(server: str) -> None:
    owner = UserFactory()
    project = make_project(owner)
    doc = document_create(user=owner, project=project, title="Doc", text="Some text to summarise.")
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY)
    access = token(owner)
    body = {"project": str(project.pk), "kind": "summarize", "document": str(doc.pk)}
    results = together(
        lambda: call("POST", f"{server}/api/v1/runs/", token=access, body=body),
        lambda: call("DELETE", f"{server}/api/v1/documents/{doc.pk}/", token=access),
    )
    assert all(status in CLEAN for status, _ in results), results
    assert results[1][0] == 204, results
    assert not Document.objects.filter(pk=doc.pk).exists()


def test_a_run_created_while_its_document_is_deleted_ends_clean(server: str) -> None:
    for _ in range(ROUNDS * 2):
        run_during_document_delete(server)


def project_delete_during_uploads(server: str, media: Path) -> None:
    owner = UserFactory()
    project = make_project(owner)
    access = token(owner)
    adds = [upload(server, access, project, f"n{i}.txt") for i in range(3)]
    results = together(*adds, lambda: call("DELETE", f"{server}/api/v1/projects/{project.pk}/", token=access))
    assert all(status in CLEAN for status, _ in results), results
    assert results[-1][0] == 204, results
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Document.objects.filter(project_id=project.pk).exists()
    assert files_under(media, project) == []


def test_deleting_a_project_while_documents_are_added_leaves_nothing_behind(server: str, media: Path) -> None:
    for _ in range(ROUNDS):
        project_delete_during_uploads(server, media)


def project_delete_during_join(server: str) -> None:
    from projects.invitations import invitation_create

    owner, joiner = UserFactory(), UserFactory()
    project = make_project(owner)
    invitation = invitation_create(user=owner, project=project, email=joiner.email, role=Role.EDITOR)
    joiner_token, owner_token = token(joiner), token(owner)
    results = together(
        lambda: call("POST", f"{server}/api/v1/invitations/{invitation.pk}/accept/", token=joiner_token),
        lambda: call("DELETE", f"{server}/api/v1/projects/{project.pk}/", token=owner_token),
    )
    assert all(status in CLEAN for status, _ in results), results
    assert results[1][0] == 204, results
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Membership.objects.filter(project_id=project.pk).exists()


def test_deleting_a_project_while_a_member_joins_leaves_nothing_behind(server: str) -> None:
    for _ in range(ROUNDS):
        project_delete_during_join(server)


# --- one refresh token, one new pair (issue 26) -----------------------------------------


def refreshing_together(server: str) -> None:
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = str(RefreshToken.for_user(UserFactory()))
    url = f"{server}/api/v1/auth/token/refresh"
    results = together(*[lambda: call("POST", url, body={"refresh": refresh}) for _ in range(8)])
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * 7, results
    (fresh,) = [body["refresh"] for status, body in results if status == 200]
    assert call("POST", url, body={"refresh": fresh})[0] == 200
    assert call("POST", url, body={"refresh": fresh})[0] == 401


def test_eight_parallel_refreshes_with_one_token_yield_exactly_one_pair(server: str) -> None:
    for _ in range(ROUNDS):
        refreshing_together(server)


# --- deleting one document six times at once (issue 26) ---------------------------------


def deleting_together(server: str, media: Path) -> None:
    owner = UserFactory()
    project = make_project(owner)
    access = token(owner)
    status, body, _ = upload(server, access, project, "gone.txt")()
    assert status == 201, body
    url = f"{server}/api/v1/documents/{body['id']}/"
    results = together(*[lambda: call("DELETE", url, token=access) for _ in range(6)])
    statuses = sorted(status for status, _ in results)
    assert statuses == [204] + [404] * 5, results
    assert not Document.objects.filter(pk=body["id"]).exists()
    assert files_under(media, project) == []


def test_six_simultaneous_deletes_of_one_document_answer_one_204_and_five_404s(
    server: str, media: Path
) -> None:
    for _ in range(ROUNDS):
        deleting_together(server, media)
