"""Text no store can hold: a lone surrogate or a NUL anywhere in a JSON body is a 400 on
every anonymous endpoint, before any other work but counting the request (rate-limit keys,
the JWT library and the database each failed on it with a 500, uncounted and with a
traceback per request)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.api import auth_urls
from core.parsers import bad_text_message

pytestmark = pytest.mark.django_db

# Every API endpoint that answers without signing in (they all live under /auth/).
ANONYMOUS = [f"/api/v1/auth/{pattern.pattern}" for pattern in auth_urls]
FIELDS = ("email", "password", "refresh", "token", "name")
BAD = st.sampled_from(["\udfff", "\ud800", "\udc00\ud800", "\x00"])


def post(path: str, body: Any) -> Any:
    # json.dumps escapes the surrogate as \udfff: valid JSON that is not UTF-8 text.
    return Client().post(path, data=json.dumps(body), content_type="application/json")


def test_every_anonymous_endpoint_is_listed() -> None:
    assert {"register", "token", "token/refresh", "token/verify", "logout", "email/verify"} <= {
        str(pattern.pattern) for pattern in auth_urls
    }


@given(
    path=st.sampled_from(ANONYMOUS),
    field=st.sampled_from(FIELDS),
    text=st.text(max_size=30),
    bad=BAD,
    at=st.integers(min_value=0, max_value=30),
    as_key=st.booleans(),
)
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_lone_surrogate_or_nul_anywhere_is_a_400(
    unlimited: None, path: str, field: str, text: str, bad: str, at: int, as_key: bool
) -> None:
    spoiled = text[:at] + bad + text[at:]
    body: dict[str, Any] = {name: "user@example.com" for name in FIELDS}
    if as_key:
        body[spoiled] = "x"
    else:
        body[field] = spoiled
    response = post(path, body)
    assert response.status_code == 400, (path, body, response.content)
    assert response.json() == {"detail": bad_text_message()}


@pytest.fixture
def unlimited(settings: Any) -> None:
    settings.RATE_LIMITS = {
        name: ({tier: 10**9 for tier in value} if isinstance(value, dict) else 10**9)
        for name, value in settings.RATE_LIMITS.items()
    }


@pytest.mark.parametrize("path", ANONYMOUS)
def test_seventy_spoiled_requests_are_counted_and_log_no_traceback(
    path: str, caplog: Any, settings: Any
) -> None:
    with caplog.at_level(logging.WARNING):
        statuses = [
            post(path, {"email": "a@example.com\udfff", "refresh": "\udfff"}).status_code for _ in range(70)
        ]
    assert set(statuses) == {400, 429}, statuses
    # Each spoiled request counts against the anonymous allowance (or its endpoint's own, lower one).
    assert statuses.index(429) <= settings.RATE_LIMITS["anon"]
    assert set(statuses[statuses.index(429) :]) == {429}
    assert not [record for record in caplog.records if record.exc_info], "no traceback per request"


def test_ordinary_unicode_still_parses() -> None:
    response = post("/api/v1/auth/token", {"email": "zoë@example.com", "password": "пароль 日本語 🎉"})
    assert response.status_code == 401
