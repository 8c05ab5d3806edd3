"""The API's shared plumbing: pagination that skips needless counts, filters that skip needless work."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_filters import FilterSet
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import api_for, make_project
from core.filters import FilterBackend
from core.pagination import Paginator
from projects.api import ProjectViewSet
from projects.models import Project, ProjectStatus

pytestmark = pytest.mark.django_db


def counts(run: Any) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        run()
    # What Paginator.count runs; the list query itself has a COUNT(*) per project inside it.
    return [q["sql"] for q in captured if q["sql"].startswith('SELECT COUNT(*) AS "__count"')]


@pytest.fixture
def owner() -> Any:
    return UserFactory()


def projects(client: APIClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/projects/", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_list_that_fits_its_first_page_is_counted_without_a_count_query(owner: Any) -> None:
    for i in range(3):
        make_project(owner, title=f"P{i}")
    client = api_for(owner)
    page: dict[str, Any] = {}
    assert counts(lambda: page.update(projects(client))) == []
    assert page["count"] == 3 and len(page["results"]) == 3 and page["next"] is None


@pytest.mark.parametrize("total", [0, 1, 50])
def test_the_first_page_count_is_exact_at_the_edges(owner: Any, total: int) -> None:
    for i in range(total):
        make_project(owner, title=f"P{i}")
    page = projects(api_for(owner))
    assert page["count"] == total == len(page["results"])
    assert page["next"] is None


def test_a_full_first_page_still_counts_everything_and_links_on(owner: Any) -> None:
    for i in range(53):
        make_project(owner, title=f"P{i:02}")
    client = api_for(owner)
    first = projects(client, ordering="title")
    assert first["count"] == 53 and len(first["results"]) == 50
    assert first["next"] and first["results"][0]["title"] == "P00"
    second = projects(client, ordering="title", page=2)
    assert second["count"] == 53 and [p["title"] for p in second["results"]] == ["P50", "P51", "P52"]
    assert client.get("/api/v1/projects/", {"page": 3}).status_code == 404
    assert client.get("/api/v1/projects/", {"page": "first"}).status_code == 404


def test_the_paginator_agrees_with_djangos_on_plain_lists() -> None:
    items = list(range(7))
    for per_page in (3, 7, 10):
        ours, page = Paginator(items, per_page), Paginator(items, per_page).page(1)
        assert list(ours.page(1)) == list(page) == items[:per_page]
        assert ours.count == 7 and ours.num_pages == page.paginator.num_pages


def test_a_short_first_page_is_its_own_count_in_one_query(owner: Any) -> None:
    for i in range(3):
        make_project(owner, title=f"P{i}")
    paginator = Paginator(Project.objects.order_by("title"), 5)
    with CaptureQueriesContext(connection) as captured:
        page = paginator.page(1)
        assert [p.title for p in page] == ["P0", "P1", "P2"]
        assert (paginator.count, paginator.num_pages, page.has_next()) == (3, 1, False)
    assert len(captured) == 1


def test_a_full_first_page_asks_the_database_for_the_count(owner: Any) -> None:
    for i in range(3):
        make_project(owner, title=f"P{i}")
    paginator = Paginator(Project.objects.order_by("title"), 2)
    page = paginator.page(1)
    assert counts(lambda: paginator.count) != []
    assert (paginator.count, paginator.num_pages, page.has_next()) == (3, 2, True)
    assert [p.title for p in paginator.page(2)] == ["P2"]


def test_a_count_read_before_the_first_page_is_kept(owner: Any) -> None:
    make_project(owner, title="Only")
    paginator = Paginator(Project.objects.order_by("title"), 5)
    assert paginator.count == 1
    assert [p.title for p in paginator.page(1)] == ["Only"] and paginator.count == 1


def test_filters_still_apply_when_named(owner: Any) -> None:
    make_project(owner, title="Live")
    archived = make_project(owner, title="Old")
    Project.objects.filter(pk=archived.pk).update(status=ProjectStatus.ARCHIVED)
    client = api_for(owner)
    assert [p["title"] for p in projects(client, status="archived")["results"]] == ["Old"]
    assert client.get("/api/v1/projects/", {"status": "sideways"}).json() == {
        "status": ["Select a valid choice. sideways is not one of the available choices."]
    }


def test_the_filterset_is_built_only_when_a_filter_is_named(
    owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    real_init = FilterSet.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(type(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(FilterSet, "__init__", spy)
    make_project(owner)
    client = api_for(owner)
    projects(client)
    projects(client, search="Research", ordering="title", unknown="x")
    assert built == []
    projects(client, status="active")
    projects(client, status="active")
    assert len(built) == 2 and built[0] is built[1], "one FilterSet class for the view, made once"


def test_the_auto_filterset_class_is_made_once_per_view() -> None:
    backend = FilterBackend()
    view = ProjectViewSet()
    queryset = Project.objects.all()
    assert backend.get_filterset_class(view, queryset) is backend.get_filterset_class(view, queryset)
