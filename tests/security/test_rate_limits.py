"""Tiers and rate limits: the numbers, the 429s, the pages, and exactness across processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django_ratelimit.core import _get_window
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Tier
from accounts.tests.factories import UserFactory
from conftest import PASSWORD, make_project
from core import ratelimit
from tests.races import together
from tests.servers import call, web_server
from tests.worker import database_url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "api": {"free": 100, "pro": 1000},
    "anon": 60,
    "runs": {"free": 20, "pro": 200},
    "uploads": {"free": 50, "pro": 500},
    "signin_ip": 30,
    "signin_client": 10,
    "signin_account": 100,
    "signup_ip": 20,
    "reset_ip": 20,
    "reset_account": 5,
    "verify_ip": 20,
    "verify_account": 5,
    "invites": 50,
}


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


def assert_429(response: Any, limit: str) -> None:
    assert response.status_code == 429, response.content[:300]
    body = response.json()
    assert body["limit"] == limit
    assert "per hour" in body["detail"] and "Try again in" in body["detail"]
    assert 0 < int(response["Retry-After"]) <= 3600


def test_the_default_allowances_are_the_documented_ones() -> None:
    assert django_settings.RATE_LIMITS == DEFAULTS


def test_a_free_user_gets_exactly_100_api_requests_an_hour() -> None:
    client = api_as(UserFactory())
    statuses = [client.get("/api/v1/users/me").status_code for _ in range(100)]
    assert statuses == [200] * 100
    response = client.get("/api/v1/projects/")
    assert_429(response, "api")
    assert "100 per hour on the free plan" in response.json()["detail"]


def test_pro_users_get_the_pro_allowance(settings: Any) -> None:
    rates(settings, api={"free": 3, "pro": 6})
    free, pro = api_as(UserFactory()), api_as(UserFactory(tier=Tier.PRO))
    assert [free.get("/api/v1/users/me").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [pro.get("/api/v1/users/me").status_code for _ in range(7)] == [200] * 6 + [429]


def test_each_user_has_their_own_allowance(settings: Any) -> None:
    rates(settings, api={"free": 2, "pro": 2})
    first, second = api_as(UserFactory()), api_as(UserFactory())
    assert [first.get("/api/v1/users/me").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/users/me").status_code == 200


def test_anonymous_callers_get_60_an_hour_per_ip_refusals_included(settings: Any) -> None:
    client = APIClient()
    # Requests refused for want of credentials count too: anonymous traffic is bounded.
    statuses = [client.get("/api/v1/projects/").status_code for _ in range(30)]
    statuses += [client.get("/api/schema/").status_code for _ in range(30)]
    assert statuses == [401] * 30 + [200] * 30
    assert_429(client.get("/api/v1/projects/"), "anon")
    assert_429(client.post("/api/v1/auth/token", {"email": "a@b.c", "password": "x"}, format="json"), "anon")
    elsewhere = APIClient(REMOTE_ADDR="203.0.113.9")
    assert elsewhere.get("/api/v1/projects/").status_code == 401


def test_bad_tokens_count_against_the_anonymous_allowance(settings: Any) -> None:
    rates(settings, anon=3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert [client.get("/api/v1/users/me").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_token_refreshes_count_against_the_owners_allowance_not_the_networks(settings: Any) -> None:
    rates(settings, anon=1, api={"free": 3, "pro": 30})
    user = UserFactory()
    client = APIClient()
    token = str(RefreshToken.for_user(user))
    for _ in range(3):  # more than the anonymous allowance of the address
        response = client.post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")
        assert response.status_code == 200
        token = response.json()["refresh"]
    assert_429(client.post("/api/v1/auth/token/refresh", {"refresh": token}, format="json"), "api")
    # A token that is not validly signed is anonymous traffic.
    garbage = {"refresh": "not.a.token"}
    assert client.post("/api/v1/auth/token/refresh", garbage, format="json").status_code == 401
    assert_429(client.post("/api/v1/auth/token/refresh", garbage, format="json"), "anon")


def test_agent_runs_have_their_own_hourly_allowance_shared_by_api_and_pages(settings: Any) -> None:
    rates(settings, runs={"free": 3, "pro": 30})
    user = UserFactory()
    project = make_project(user)
    client = api_as(user)
    ask = {"project": str(project.pk), "kind": "ask", "question": "Why?"}
    assert [client.post("/api/v1/runs/", ask, format="json").status_code for _ in range(2)] == [201, 201]
    browser = Client()
    browser.force_login(user)
    assert browser.post("/runs/new/", ask).status_code == 302
    page = browser.post("/runs/new/", ask)
    assert page.status_code == 429
    assert "Too many agent runs: the limit is 3 per hour on the free plan" in page.content.decode()
    assert int(page["Retry-After"]) > 0
    assert_429(client.post("/api/v1/runs/", ask, format="json"), "runs")
    # Reading is not a run: the general allowance still serves.
    assert client.get("/api/v1/runs/").status_code == 200


def test_uploads_have_their_own_hourly_allowance_shared_by_api_and_pages(settings: Any) -> None:
    rates(settings, uploads={"free": 2, "pro": 20})
    user = UserFactory()
    project = make_project(user)
    client = api_as(user)
    paste = {"project": str(project.pk), "title": "Note", "text": "Some text."}
    assert client.post("/api/v1/documents/", paste, format="json").status_code == 201
    browser = Client()
    browser.force_login(user)
    assert (
        browser.post(f"/projects/{project.pk}/documents/", {"title": "Note", "text": "Text."}).status_code
        == 302
    )
    page = browser.post(f"/projects/{project.pk}/documents/", {"title": "Note", "text": "Text."})
    assert page.status_code == 429
    assert "Too many new documents: the limit is 2 per hour" in page.content.decode()
    assert_429(client.post("/api/v1/documents/", paste, format="json"), "uploads")
    user.tier = Tier.PRO
    user.save(update_fields=["tier"])
    assert (
        client.post("/api/v1/documents/", {**paste, "text": "More text."}, format="json").status_code == 201
    )


def test_sign_in_failures_are_limited_per_account_on_the_page_and_the_api(settings: Any) -> None:
    rates(settings, signin_account=3)
    user = UserFactory()
    wrong = {"username": user.email, "password": "wrong-password"}
    assert [Client().post("/accounts/login/", wrong).status_code for _ in range(2)] == [200, 200]
    api = APIClient(REMOTE_ADDR="198.51.100.7")  # another network: the account limit still holds
    assert (
        api.post("/api/v1/auth/token", {"email": user.email, "password": "nope"}, format="json").status_code
        == 401
    )
    # Three failures: even the right password is refused, without being checked.
    refused = Client().post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this email address" in refused.content.decode()
    assert not refused.wsgi_request.user.is_authenticated
    assert_429(
        api.post("/api/v1/auth/token", {"email": user.email.upper(), "password": PASSWORD}, format="json"),
        "signin_account",
    )
    # Other accounts are unaffected.
    other = UserFactory()
    assert (
        Client().post("/accounts/login/", {"username": other.email, "password": PASSWORD}).status_code == 302
    )


def test_successful_sign_ins_do_not_use_up_the_account_allowance(settings: Any) -> None:
    rates(settings, signin_account=2, signin_ip=100)
    user = UserFactory()
    for _ in range(4):
        assert (
            Client().post("/accounts/login/", {"username": user.email, "password": PASSWORD}).status_code
            == 302
        )


def test_sign_in_attempts_are_limited_per_ip(settings: Any) -> None:
    rates(settings, signin_ip=4, signin_account=100)
    emails = [f"probe{i}@example.com" for i in range(3)]
    for email in emails:
        assert Client().post("/accounts/login/", {"username": email, "password": "x"}).status_code == 200
    api = APIClient()
    assert (
        api.post(
            "/api/v1/auth/token", {"email": "probe@example.com", "password": "x"}, format="json"
        ).status_code
        == 401
    )
    page = Client().post("/accounts/login/", {"username": "probe9@example.com", "password": "x"})
    assert page.status_code == 429
    assert "Too many sign-in attempts from your network" in page.content.decode()
    assert_429(
        api.post("/api/v1/auth/token", {"email": "z@example.com", "password": "x"}, format="json"),
        "signin_ip",
    )
    assert (
        Client(REMOTE_ADDR="203.0.113.5")
        .post("/accounts/login/", {"username": "q@example.com", "password": "x"})
        .status_code
        == 200
    )


def test_sign_ups_are_limited_per_ip_on_the_page_and_the_api(settings: Any) -> None:
    rates(settings, signup_ip=2)
    api = APIClient()
    body = {"email": "new1@example.com", "password": "a-long-pass-phrase"}
    assert api.post("/api/v1/auth/register", body, format="json").status_code == 202
    form = {"email": "new2@example.com", "password": PASSWORD, "confirm": PASSWORD}
    assert Client().post("/accounts/signup/", form).status_code == 302
    page = Client().post("/accounts/signup/", {**form, "email": "new3@example.com"})
    assert page.status_code == 429
    assert "Too many sign-ups from your network" in page.content.decode()
    assert_429(
        api.post("/api/v1/auth/register", {**body, "email": "new4@example.com"}, format="json"), "signup_ip"
    )


def test_password_reset_requests_are_limited_per_address_and_per_ip(
    settings: Any, mailoutbox: list[Any]
) -> None:
    rates(settings, reset_account=2, reset_ip=4)
    user = UserFactory()
    for _ in range(2):
        assert Client().post("/accounts/password-reset/", {"email": user.email}).status_code == 302
    refused = Client().post("/accounts/password-reset/", {"email": user.email})
    assert refused.status_code == 429
    assert "Too many password-reset requests for this email address" in refused.content.decode()
    assert len(mailoutbox) == 2
    assert Client().post("/accounts/password-reset/", {"email": "someone@example.com"}).status_code == 302
    network = Client().post("/accounts/password-reset/", {"email": "another@example.com"})
    assert network.status_code == 429
    assert "from your network" in network.content.decode()


def test_behind_a_proxy_the_client_address_is_the_one_the_proxy_appended(settings: Any) -> None:
    rates(settings, anon=1)
    settings.BEHIND_PROXY = True
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    assert client.get("/api/v1/projects/", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.1").status_code == 401
    # A forged first hop does not buy a fresh allowance: the proxy's own entry is last.
    assert client.get("/api/v1/projects/", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.1").status_code == 429
    assert client.get("/api/v1/projects/", HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 401


def test_ipv6_callers_are_counted_per_64_block(settings: Any) -> None:
    rates(settings, anon=1)
    assert APIClient(REMOTE_ADDR="2001:db8::1").get("/api/v1/projects/").status_code == 401
    assert APIClient(REMOTE_ADDR="2001:db8::ffff").get("/api/v1/projects/").status_code == 429


def test_the_policy_lives_in_accounts_limits_only() -> None:
    """No view may carry its own limit: every counter goes through core/ratelimit.py."""
    offenders = []
    pattern = re.compile(r"django_ratelimit|\bthrottle_classes\b|\bthrottle_scope\b|DEFAULT_THROTTLE_RATES")
    sources = [
        p
        for app in ("accounts", "projects", "documents", "agents", "config")
        for p in (ROOT / app).rglob("*.py")
    ]
    for path in sources:
        rel = path.relative_to(ROOT).as_posix()
        if "/tests/" in rel or rel == "core/ratelimit.py":
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            offenders.append(rel)
    assert offenders == []
    assert django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == ["core.ratelimit.PolicyThrottle"]


def test_every_limit_has_a_setting_and_an_environment_variable() -> None:
    source = (ROOT / "config" / "settings.py").read_text(encoding="utf-8")
    for limit in ratelimit.ALL:
        assert limit.name in django_settings.RATE_LIMITS
        if limit.tiered:
            for tier in Tier.values:
                assert f'"DOCENT_RATE_{limit.name.upper()}_{tier.upper()}"' in source
        else:
            assert f'"DOCENT_RATE_{limit.name.upper()}"' in source


def test_the_environment_changes_the_limits_and_bad_values_stop_start_up(tmp_path: Path) -> None:
    code = "import django; django.setup(); from django.conf import settings as s; print(s.RATE_LIMITS)"
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "DATABASE_URL", "REDIS_URL"))
    }
    env = {**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DOCENT_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DOCENT_RATE_API_FREE": "7", "DOCENT_RATE_UPLOADS_PRO": "9"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "'api': {'free': 7, 'pro': 1000}" in done.stdout
    assert "'uploads': {'free': 50, 'pro': 9}" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DOCENT_RATE_ANON": "lots"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0
    assert "DOCENT_RATE_ANON" in bad.stderr


# --- across processes, on the real Redis ---------------------------------------------


def _user_with_a_long_window(minimum_s: int = 300) -> Any:
    """A free user whose hourly window has at least `minimum_s` left, so 150 requests fit in it."""
    for _ in range(50):
        user = UserFactory()
        left = _get_window(f"user:{user.pk}", 3600) - time.time()
        if left >= minimum_s:
            return user
    raise AssertionError("no user with a long enough window")


@pytest.mark.django_db(transaction=True)
def test_limits_hold_exactly_across_two_web_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real clock: the servers use it too
    from django_redis import get_redis_connection

    assert get_redis_connection("default").ping(), "Redis is unreachable"
    user = _user_with_a_long_window()
    token = str(RefreshToken.for_user(user).access_token)
    env = {"DATABASE_URL": database_url(), "DOCENT_DATA_DIR": str(tmp_path), "DOCENT_LLM_PROVIDER": "offline"}
    for name in [k for k in os.environ if k.startswith("DOCENT_RATE_")]:
        env[name] = ""  # the documented defaults, whatever this shell says
    with web_server(env, tmp_path / "web1.log") as one, web_server(env, tmp_path / "web2.log") as two:
        urls = [f"{(one, two)[i % 2]}/api/v1/users/me" for i in range(150)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda url: call("GET", url, token=token), urls))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 100, statuses
    assert statuses.count(429) == 50, statuses
    refused = [(body, headers) for status, body, headers in results if status == 429]
    assert all(body["limit"] == "api" for body, _ in refused)
    assert all(0 < int(headers["Retry-After"]) <= 3600 for _, headers in refused)
    served_by = {
        url.split("/api/")[0] for url, (status, _, _) in zip(urls, results, strict=True) if status == 200
    }
    assert served_by == {one, two}


def test_api_requests_counted_in_one_round_trip_land_in_django_ratelimits_own_counter() -> None:
    from django.core.cache import cache
    from django.test import RequestFactory
    from django_ratelimit.core import _make_cache_key
    from django_redis import get_redis_connection

    user = UserFactory()
    request = RequestFactory().get("/api/v1/users/me")
    for _ in range(3):
        assert ratelimit.hit(ratelimit.API, request, user=user) is None
    # django-ratelimit's read path (the one `peek` and the pages use) sees the same count...
    count, allowance, left = ratelimit._usage(ratelimit.API, request, user=user, increment=False)
    assert (count, allowance) == (3, 100)
    # ...in its own key, which expires with the window.
    value = f"user:{user.pk}"
    key = _make_cache_key("docent:api", _get_window(value, 3600), "100/h", value, "")
    assert cache.get(key) == 3
    assert 3600 <= get_redis_connection("default").ttl(cache.make_key(key)) <= 3605
    assert 0 < left <= 3600


@pytest.mark.django_db(transaction=True)
def test_simultaneous_wrong_passwords_from_one_client_are_checked_exactly_the_allowance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attempt is counted before it is decided (issue 26: 25 at once were checked 11 times)."""
    monkeypatch.undo()  # the real clock: the server uses it too
    user = UserFactory()
    env = {
        "DATABASE_URL": database_url(),
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_RATE_SIGNIN_IP": "1000",
        "DOCENT_RATE_SIGNIN_CLIENT": "10",
        "DOCENT_RATE_SIGNIN_ACCOUNT": "100",
        "DOCENT_RATE_ANON": "1000",
    }
    wrong = {"email": user.email, "password": "not-the-password"}
    with web_server(env, tmp_path / "web.log", workers=2) as base:
        attempts = [lambda: call("POST", f"{base}/api/v1/auth/token", body=wrong) for _ in range(25)]
        results = together(*attempts, threads=25)
        statuses = sorted(status for status, _ in results)
        assert statuses == [401] * 10 + [429] * 15, statuses
        assert {body["limit"] for status, body in results if status == 429} == {"signin_client"}
        # Locked out on this client: even the right password is not checked.
        right = {"email": user.email, "password": PASSWORD}
        assert call("POST", f"{base}/api/v1/auth/token", body=right)[0] == 429


def test_a_right_password_after_failures_does_not_count_as_one(settings: Any) -> None:
    rates(settings, signin_client=3)
    user = UserFactory()
    api = APIClient()
    token = "/api/v1/auth/token"
    assert api.post(token, {"email": user.email, "password": "wrong"}, format="json").status_code == 401
    assert api.post(token, {"email": user.email, "password": "wrong"}, format="json").status_code == 401
    for _ in range(3):  # signing in takes nothing from the allowance
        assert api.post(token, {"email": user.email, "password": PASSWORD}, format="json").status_code == 200
    assert api.post(token, {"email": user.email, "password": "wrong"}, format="json").status_code == 401
    assert_429(api.post(token, {"email": user.email, "password": "wrong"}, format="json"), "signin_client")


def test_page_searches_count_against_the_api_allowance_as_api_searches_do(settings: Any) -> None:
    rates(settings, api={"free": 3, "pro": 30})
    user = UserFactory()
    project = make_project(user)
    browser = Client()
    browser.force_login(user)
    assert browser.get(f"/projects/{project.pk}/search/").status_code == 200  # the empty form costs nothing
    assert browser.get(f"/projects/{project.pk}/search/", {"q": "pumps"}).status_code == 200
    assert browser.get("/search/", {"q": "pumps"}).status_code == 200
    assert api_as(user).get(f"/api/v1/projects/{project.pk}/search/", {"q": "pumps"}).status_code == 200
    page = browser.get("/search/", {"q": "valves"})
    assert page.status_code == 429
    assert "Too many API requests: the limit is 3 per hour on the free plan" in page.content.decode()
    assert_429(api_as(user).get(f"/api/v1/projects/{project.pk}/search/", {"q": "x"}), "api")


def test_reindexing_counts_against_the_uploads_allowance_on_the_api_and_the_page(settings: Any) -> None:
    from documents.models import Document, DocumentStatus
    from documents.tests.factories import DocumentFactory

    rates(settings, uploads={"free": 3, "pro": 30})
    user = UserFactory()
    project = make_project(user)
    doc = DocumentFactory(project=project, status=DocumentStatus.READY)
    client = api_as(user)
    url = f"/api/v1/documents/{doc.pk}/reindex/"
    assert client.post(url).status_code == 202
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY)
    assert client.post(url).status_code == 202
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY)
    browser = Client()
    browser.force_login(user)
    assert browser.post(f"/documents/{doc.pk}/reindex/").status_code == 302
    Document.objects.filter(pk=doc.pk).update(status=DocumentStatus.READY)
    page = browser.post(f"/documents/{doc.pk}/reindex/")
    assert page.status_code == 429
    assert "Too many new documents: the limit is 3 per hour" in page.content.decode()
    assert_429(client.post(url), "uploads")
