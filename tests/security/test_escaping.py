"""User content (titles, document text, questions, answers) is escaped on every page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from agents.models import RunStatus
from agents.tests.factories import AgentRunFactory
from conftest import make_project
from documents.models import Document, DocumentStatus

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def hostile_world() -> dict[str, Any]:
    owner = UserFactory(name=XSS)
    project = make_project(owner, title=XSS)
    project.description = XSS
    project.save(update_fields=["description"])
    doc = Document.objects.create(
        project=project,
        title=XSS,
        pasted_text=XSS,
        text=f"Intro. {XSS} Outro.",
        format="txt",
        status=DocumentStatus.FAILED,
        error=XSS,
        metadata={"tags": [XSS], "keywords": [XSS], "entities": [{"text": XSS, "type": XSS}]},
    )
    run = AgentRunFactory(
        project=project,
        question=XSS,
        status=RunStatus.SUCCEEDED,
        answer=XSS,
        citations=[{"document": str(doc.pk), "chunk": 1, "start": 7, "end": 7 + len(XSS), "quote": XSS}],
        output={"tags": [XSS], "keywords": [XSS], "entities": [{"text": XSS, "type": XSS}]},
    )
    client = Client()
    client.force_login(owner)
    return {"client": client, "project": project, "doc": doc, "run": run}


def test_every_page_escapes_user_content(hostile_world: dict[str, Any]) -> None:
    client, project, doc, run = (hostile_world[k] for k in ("client", "project", "doc", "run"))
    pages = [
        "/",
        f"/projects/{project.pk}/",
        f"/projects/{project.pk}/edit/",
        f"/projects/{project.pk}/members/",
        f"/projects/{project.pk}/delete/",
        f"/projects/{project.pk}/search/?q={XSS}",
        f"/documents/{doc.pk}/",
        f"/documents/{doc.pk}/?start=7&end={7 + len(XSS)}",
        f"/runs/{run.pk}/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert XSS not in body, url
        assert "<script>alert" not in body and "onerror=alert(1)>" not in body, url
        assert ESCAPED in body or "&lt;script&gt;" in body, url


def test_json_state_endpoints_are_json_with_nosniff(hostile_world: dict[str, Any]) -> None:
    client, project, doc = (hostile_world[k] for k in ("client", "project", "doc"))
    for url in (f"/documents/{doc.pk}/status.json", f"/projects/{project.pk}/documents.json?id={doc.pk}"):
        response = client.get(url)
        assert response["Content-Type"] == "application/json"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_templates_never_switch_escaping_off() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("templates/**/*.html"), *root.glob("*/templates/**/*.html")]:
        text = path.read_text(encoding="utf-8")
        if "|safe" in text or "autoescape off" in text or "mark_safe" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
