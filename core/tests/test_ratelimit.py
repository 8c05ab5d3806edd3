"""The rate-limit policy's counting: django-ratelimit's own counter, read and written through its API."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import RequestFactory, override_settings
from django.urls import NoReverseMatch, reverse
from django_ratelimit.core import get_usage

from accounts.tests.factories import UserFactory
from core import ratelimit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows are aligned to the clock: hold it so a test never straddles two."""
    monkeypatch.setattr("django_ratelimit.core.time", SimpleNamespace(time=lambda: 1_800_000_000.0))


def counted(user: Any, limit: ratelimit.Limit = ratelimit.API) -> int:
    """The user's count as django-ratelimit reports it to anyone who asks."""
    usage = get_usage(
        RequestFactory().get("/"),
        group=f"docent:{limit.name}",
        key=lambda _group, _request: f"user:{user.pk}",
        rate=f"{ratelimit.allowance(limit, user)}/h",
    )
    assert usage is not None
    return int(usage["count"])


def test_hits_land_in_django_ratelimits_counter_and_peeks_do_not_add_to_it() -> None:
    user, request = UserFactory(), RequestFactory().get("/api/v1/users/me")
    for _ in range(3):
        assert ratelimit.hit(ratelimit.API, request, user=user) is None
    assert ratelimit.peek(ratelimit.API, request, user=user) is None
    assert counted(user) == 3
    assert counted(UserFactory()) == 0


def test_the_request_past_the_allowance_is_refused_until_the_window_ends(settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "runs": {"free": 2, "pro": 20}}
    user, request = UserFactory(), RequestFactory().post("/api/v1/runs/")
    assert [ratelimit.hit(ratelimit.RUNS, request, user=user) for _ in range(2)] == [None, None]
    ahead = ratelimit.peek(ratelimit.RUNS, request, user=user)
    refusal = ratelimit.hit(ratelimit.RUNS, request, user=user)
    assert ahead is not None and refusal is not None
    assert (refusal.limit, refusal.allowance, refusal.tier) == (ratelimit.RUNS, 2, "free")
    assert 0 < refusal.retry_after_s <= ratelimit.HOUR_S
    assert "the limit is 2 per hour on the free plan" in refusal.message


def test_with_rate_limits_switched_off_nothing_is_counted_or_refused(settings: Any) -> None:
    settings.RATELIMIT_ENABLE = False
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "anon": 1}
    request = RequestFactory().get("/api/v1/projects/", REMOTE_ADDR="192.0.2.7")
    assert [ratelimit.hit(ratelimit.ANON, request) for _ in range(3)] == [None, None, None]


def test_every_counted_action_names_a_route_that_exists() -> None:
    """A renamed route would silently stop counting against its allowance."""
    for name, method in ratelimit.COUNTED_ACTIONS:
        assert method in {"POST", "PUT", "PATCH", "DELETE"}
        for args in ([], ["00000000-0000-0000-0000-000000000000"]):
            try:
                reverse(name, args=args)
                break
            except NoReverseMatch:
                continue
        else:
            pytest.fail(f"COUNTED_ACTIONS names {name!r}, which no URL has")


def test_concurrent_hits_on_redis_are_counted_exactly(settings: Any) -> None:
    """Every web process shares one count: 40 requests from 8 threads at once, 25 allowed."""
    from django.core.cache import caches

    redis_cache = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": f"docent-core-tests-{uuid.uuid4().hex}",
        }
    }
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": {"free": 25, "pro": 250}}
    user, request = UserFactory(), RequestFactory().get("/api/v1/users/me")
    with override_settings(CACHES=redis_cache):
        redis = caches["default"]
        assert redis.client.get_client().ping(), "Redis is unreachable"  # type: ignore[attr-defined]
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                refusals = list(
                    pool.map(lambda _: ratelimit.hit(ratelimit.API, request, user=user), range(40))
                )
            total = counted(user)
        finally:
            redis.delete_pattern("*")  # type: ignore[attr-defined]  # this test's prefix only
    assert refusals.count(None) == 25
    assert total == 40
