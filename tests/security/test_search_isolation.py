"""No value a search returns may depend on documents the caller cannot read (issue 26).

A raw BM25 score moved when another tenant uploaded a document holding the query's word
(8.156 alone, 7.367 with one foreign document), so anyone could test whether a word
appears anywhere on the instance. Now each project is ranked against its own statistics
(its own partition and index) and a hit's score is its fused rank: this measures what the
search API returns, figures and order, before and after another tenant adds documents
full of the query's words, and after they are deleted.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import api_for, make_project

pytestmark = pytest.mark.django_db

MINE = {
    "Geology notes": "Quartz is a hard mineral. Basalt forms from lava that cooled quickly.",
    "Field trip": "We found basalt columns by the sea and a single quartz pebble on the path.",
    "Lab report": "Granite holds quartz, feldspar and mica; we cut a thin section of it.",
    "Museum": "The museum shows meteorites, fossils and a basalt bowl from the island.",
}
QUERIES = ["quartz basalt", "quartz", "basalt columns by the sea", "granite mica fossils"]


def add(client: APIClient, project: Any, title: str, text: str) -> str:
    response = client.post(
        "/api/v1/documents/", {"project": str(project.pk), "title": title, "text": text}, format="json"
    )
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def answers(client: APIClient, project: Any) -> dict[tuple[str, str], list[tuple[str, int, float]]]:
    found = {}
    for query in QUERIES:
        for mode in ("hybrid", "lexical", "dense"):
            body = client.get(
                f"/api/v1/projects/{project.pk}/search/", {"q": query, "mode": mode, "k": 10}
            ).json()
            found[(query, mode)] = [(hit["title"], hit["chunk"], hit["score"]) for hit in body["results"]]
            found[(query, mode, "left_out")] = [("", body["left_out"], 0.0)]
        everywhere = client.get("/api/v1/search/", {"q": query, "k": 10}).json()["results"]
        found[(query, "all")] = [(hit["title"], hit["chunk"], hit["score"]) for hit in everywhere]
    return found


def test_another_tenants_documents_change_nothing_a_search_returns(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.RATE_LIMITS = {
        name: ({tier: 10**6 for tier in value} if isinstance(value, dict) else 10**6)
        for name, value in settings.RATE_LIMITS.items()
    }
    me, stranger = UserFactory(), UserFactory()
    mine, theirs = make_project(me, "Rocks"), make_project(stranger, "Theirs")
    client, other = api_for(me), api_for(stranger)
    with django_capture_on_commit_callbacks(execute=True):
        for title, text in MINE.items():
            add(client, mine, title, text)
    before = answers(client, mine)
    assert before[("quartz basalt", "lexical")], "the project's own documents are found"

    with django_capture_on_commit_callbacks(execute=True):
        foreign = [
            add(
                other,
                theirs,
                f"Quartz {n}",
                "Quartz quartz quartz. " * (n + 1) + "Quartz veins in quartzite.",
            )
            for n in range(25)
        ]
    assert answers(client, mine) == before, "another tenant's words moved a score, the order or the cut"

    for document_id in foreign:
        assert other.delete(f"/api/v1/documents/{document_id}/").status_code == 204
    assert answers(client, mine) == before
