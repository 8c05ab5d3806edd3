"""Health probes, the OpenAPI schema and its offline docs pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_is_up_without_auth(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_cache_and_broker(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_readyz_names_the_part_that_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from config import health

    def broken() -> None:
        raise ConnectionError("cache unreachable")

    monkeypatch.setitem(health.CHECKS, "cache", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["cache"]
    assert client.get("/healthz").status_code == 200


def test_schema_lists_every_endpoint(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    expected = {
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/token/refresh",
        "/api/v1/auth/token/verify",
        "/api/v1/auth/logout",
        "/api/v1/users/me/",
        "/api/v1/users/",
        "/api/v1/projects/",
        "/api/v1/projects/{id}/",
        "/api/v1/projects/{project_pk}/members/",
        "/api/v1/projects/{project_pk}/members/{id}/",
        "/api/v1/documents/",
        "/api/v1/documents/{id}/",
        "/api/v1/documents/{id}/reindex/",
        "/api/v1/documents/{id}/download/",
        "/api/v1/documents/{id}/chunks/",
        "/api/v1/projects/{project_pk}/search/",
        "/api/v1/projects/{project_pk}/imports/",
        "/api/v1/runs/",
        "/api/v1/runs/{id}/",
    }
    normalised = {re.sub(r"/\?$", "/", p) for p in paths}
    missing = expected - normalised
    assert not missing, f"missing from schema: {missing}; have {sorted(paths)}"


def test_schema_generation_has_no_warnings(capsys: Any) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_load_their_assets_from_this_server(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert not asset.startswith(("http:", "https:", "//")), asset
        if asset.startswith("/static/"):
            assert client.get(asset).status_code == 200, asset


def test_redoc_draws_its_logo_from_this_server(client: Client) -> None:
    html = client.get("/api/redoc/").content.decode()
    bundle_url = re.search(r'<script src="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    response = client.get(bundle_url)
    assert response.status_code == 200
    bundle = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"cdn.redoc.ly" not in bundle
    logo = re.search(rb'"(/static/[^"]+\.svg)"', bundle)
    assert logo, "the logo's address points at our static files"
    assert client.get(logo.group(1).decode()).status_code == 200


def test_log_lines_are_json_with_the_request_id(client: Client) -> None:
    import json
    import logging

    from core.logging import JsonFormatter

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    formatter = JsonFormatter()
    logger = logging.getLogger("docent.request")
    logger.addHandler(handler)
    try:
        response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    finally:
        logger.removeHandler(handler)
    assert response["X-Request-ID"] == "abc-123"
    lines = [json.loads(formatter.format(r)) for r in records]
    line = next(x for x in lines if x.get("path") == "/healthz")
    assert line["status"] == 200
    assert line["msg"] == "request"
    assert "duration_ms" in line


def test_a_hostile_request_id_is_replaced(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_the_api_root_points_at_the_api_and_its_documentation(client: Any) -> None:
    body = client.get("/api/").json()
    assert set(body) == {"v1", "docs", "redoc", "schema"}
    for url in body.values():
        path = url.split("testserver", 1)[1]
        assert client.get(path).status_code in {200, 401}, path
