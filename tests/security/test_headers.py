"""Browser-safety headers on every kind of response, CORS for the API only, and production settings."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://app.example.com"


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def _database_down(*args: Any) -> None:
    from django.db import OperationalError

    raise OperationalError("the database is down")


def assert_safe_headers(response: Any, what: str) -> None:
    csp = directives(response.get("Content-Security-Policy", ""))
    assert csp.get("default-src") == ["'self'"], what
    assert csp.get("script-src") == ["'self'"], what  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp.get("frame-ancestors") == ["'none'"], what
    assert csp.get("object-src") == ["'none'"], what
    assert csp.get("base-uri") == ["'self'"], what
    assert response.get("X-Frame-Options") == "DENY", what
    assert response.get("X-Content-Type-Options") == "nosniff", what
    assert response.get("Referrer-Policy") == "strict-origin-when-cross-origin", what
    assert response.get("Cross-Origin-Opener-Policy") == "same-origin", what
    assert "camera=()" in response.get("Permissions-Policy", ""), what
    assert "geolocation=()" in response.get("Permissions-Policy", ""), what
    assert response.get("X-XSS-Protection") == "0", what
    assert "Access-Control-Allow-Origin" not in response, what


@pytest.fixture
def responses(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anon": 1, "signup_ip": 1}
    user = UserFactory()
    staff = UserFactory(is_staff=True, is_superuser=True)
    api = APIClient()
    api.force_authenticate(user)
    admin = Client()
    admin.force_login(staff)
    anonymous = APIClient()
    anonymous.get("/api/v1/users/me")  # the one anonymous request this hour
    Client().post("/accounts/signup/", {"email": "a@example.com"})  # the one sign-up this hour
    page_429 = Client().post("/accounts/signup/", {"email": "b@example.com"})
    too_large = api.post(
        "/api/v1/documents/", b"x", content_type="application/json", CONTENT_LENGTH=str(10**10)
    )
    page_too_large = admin.post("/projects/new/", b"x", content_type="text/plain", CONTENT_LENGTH=str(10**10))
    monkeypatch.setattr("core.ratelimit.signin_refusal", _database_down)
    page_503 = Client().post("/accounts/login/", {"username": "a@example.com", "password": "x"})
    return {
        "page 429": page_429,
        "api 413": too_large,
        "page 413": page_too_large,
        "page 503": page_503,
        "page": Client().get("/accounts/login/"),
        "api": api.get("/api/v1/users/me"),
        "admin": admin.get("/admin/"),
        "admin login": Client().get("/admin/login/"),
        "page 404": Client().get("/no/such/page/"),
        "api 404": api.get("/api/v1/projects/00000000-0000-4000-8000-000000000000/"),
        "api 429": anonymous.get("/api/v1/users/me"),
        "api docs": admin.get("/api/docs/"),
    }


def test_every_kind_of_response_carries_the_safety_headers(responses: dict[str, Any]) -> None:
    expected = {
        "page 429": 429,
        "api 413": 413,
        "page 413": 413,
        "page 503": 503,
        "page": 200,
        "api": 200,
        "admin": 200,
        "admin login": 200,
        "page 404": 404,
        "api 404": 404,
        "api 429": 429,
        "api docs": 200,
    }
    assert {name: r.status_code for name, r in responses.items()} == expected
    for name, response in responses.items():
        assert_safe_headers(response, name)


def test_the_429_says_which_limit_and_when_to_come_back(responses: dict[str, Any]) -> None:
    response = responses["api 429"]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["limit"] == "anon"
    assert "per hour" in body["detail"]
    assert 0 < int(response["Retry-After"]) <= 3600


def test_hsts_is_sent_over_https_when_configured(client: Client, settings: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = client.get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "Strict-Transport-Security" not in client.get("/accounts/login/")  # never over plain HTTP


def test_session_and_csrf_cookies_are_httponly_and_same_site(client: Client) -> None:
    user = UserFactory()
    client.get("/accounts/login/")
    csrf = client.cookies["csrftoken"]
    assert csrf["samesite"] == "Lax"
    client.post("/accounts/login/", {"username": user.email, "password": "correct-horse-battery"})
    session = client.cookies["sessionid"]
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"


def _production_settings(extra: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({k: getattr(s, k) for k in ("
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SECURE_SSL_REDIRECT',"
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'CORS_ALLOWED_ORIGINS',"
        "'CORS_ALLOW_CREDENTIALS', 'EMAIL_BACKEND', 'DEBUG')}))"
    )
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "DATABASE_URL", "REDIS_URL"))
    }
    env = {
        **clean,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_PRODUCTION": "true",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "docent.example.com",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_production_turns_on_https_only_settings(tmp_path: Path) -> None:
    values = _production_settings({"DOCENT_CORS_ORIGINS": f"{ORIGIN}, https://other.example.com"}, tmp_path)
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["DEBUG"] is False
    assert values["CORS_ALLOWED_ORIGINS"] == [ORIGIN, "https://other.example.com"]
    assert values["CORS_ALLOW_CREDENTIALS"] is False
    # Reset links never go to a console log in production.
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"


# --- CORS --------------------------------------------------------------------------


@pytest.fixture
def cors(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]


def test_an_allowed_origin_may_call_the_api(cors: None) -> None:
    client = APIClient()
    preflight = client.options(
        "/api/v1/projects/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight
    user = UserFactory()
    client.force_authenticate(user)
    response = client.get("/api/v1/users/me", HTTP_ORIGIN=ORIGIN)
    assert response["Access-Control-Allow-Origin"] == ORIGIN


def test_other_origins_and_the_pages_get_no_cors_headers(cors: None) -> None:
    client = APIClient()
    foreign = client.options(
        "/api/v1/projects/",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in foreign
    page = Client().get("/accounts/login/", HTTP_ORIGIN=ORIGIN)
    assert "Access-Control-Allow-Origin" not in page
    admin = Client().get("/admin/login/", HTTP_ORIGIN=ORIGIN)
    assert "Access-Control-Allow-Origin" not in admin


def test_by_default_no_origin_is_allowed() -> None:
    response = APIClient().get("/api/schema/", HTTP_ORIGIN=ORIGIN)
    assert "Access-Control-Allow-Origin" not in response


# --- CSRF ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/accounts/signup/", "/accounts/password-reset/", "/projects/new/", "/runs/new/"],
)
def test_forms_refuse_a_post_without_the_csrf_token(path: str) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory()) if path.startswith(("/projects", "/runs")) else None
    response = client.post(path, {"title": "x", "email": "a@example.com"})
    assert response.status_code == 403


def test_the_api_refuses_a_session_post_without_the_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    response = client.post("/api/v1/projects/", {"title": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_the_web_server_does_not_name_itself(tmp_path: Path) -> None:
    from tests.servers import call, web_server
    from tests.worker import database_url

    env = {"DATABASE_URL": database_url(), "DOCENT_DATA_DIR": str(tmp_path)}
    with web_server(env, tmp_path / "web.log") as base:
        for path in ("/healthz", "/api/v1/projects/", "/accounts/login/", "/no-such-page/"):
            status, _, headers = call("GET", f"{base}{path}")
            assert status in {200, 401, 404}, (path, status)
            assert "Server" not in headers, (path, headers.get("Server"))
