"""The shared circuit breaker, and provider fallback through it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from agents.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from agents.providers import run_with_breaker
from agents.providers.base import (
    CircuitOpenError,
    Passage,
    ProviderError,
    TransientProviderError,
)
from agents.tests.fake_gemini import reply_json, reply_text, status
from agents.tests.fakes import hashed_bow_encode
from tests.worker import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL", "")  # the test run's Valkey (tests/stack.py)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        f"test-{uuid.uuid4().hex[:8]}",
        failure_threshold=3,
        window_s=60,
        cooldown_s=30,
        clock=clock,
    )


def fail() -> None:
    raise TransientProviderError("HTTP 500")


def open_circuit(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    assert breaker.state() == OPEN


def test_circuit_opens_after_threshold_failures_within_the_window(breaker):
    assert breaker.state() == CLOSED
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            breaker.call(fail)
    assert breaker.state() == CLOSED

    with pytest.raises(TransientProviderError):
        breaker.call(fail)

    assert breaker.state() == OPEN


def test_failures_older_than_the_window_do_not_count(clock):
    breaker = CircuitBreaker(
        f"test-{uuid.uuid4().hex[:8]}",
        failure_threshold=2,
        window_s=1,
        cooldown_s=30,
        clock=clock,
    )
    breaker.record_failure()
    # The counter's expiry runs on the cache's own clock, not the fake one: wait for it.
    wait_for(lambda: breaker.cache.get(f"breaker:{breaker.name}:failures") is None, timeout=5, interval=0.05)

    breaker.record_failure()

    assert breaker.state() == CLOSED


def test_open_circuit_fails_fast_without_calling(breaker):
    open_circuit(breaker)
    calls = []

    with pytest.raises(CircuitOpenError, match="failing fast"):
        breaker.call(lambda: calls.append(1))

    assert calls == []
    assert breaker.allow() is False
    assert isinstance(CircuitOpenError("x"), ProviderError)


def test_after_the_cooldown_exactly_one_caller_probes(breaker, clock):
    open_circuit(breaker)
    clock.advance(29)
    assert breaker.state() == OPEN
    clock.advance(2)
    assert breaker.state() == HALF_OPEN

    assert breaker.allow() is True  # this caller holds the probe
    assert breaker.allow() is False
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "never runs")


def test_concurrent_callers_race_for_a_single_probe(breaker, clock):
    open_circuit(breaker)
    clock.advance(31)
    barrier = threading.Barrier(12)
    granted: list[bool] = []

    def contender() -> None:
        barrier.wait()
        granted.append(breaker.allow())

    threads = [threading.Thread(target=contender) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert granted.count(True) == 1


def test_successful_probe_closes_the_circuit_and_resets_the_count(breaker, clock):
    open_circuit(breaker)
    clock.advance(31)

    assert breaker.call(lambda: "pong") == "pong"

    assert breaker.state() == CLOSED
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == CLOSED  # the count started again from zero


def test_failed_probe_reopens_for_another_cooldown(breaker, clock):
    open_circuit(breaker)
    clock.advance(31)

    with pytest.raises(TransientProviderError):
        breaker.call(fail)

    assert breaker.state() == OPEN
    clock.advance(29)
    assert breaker.state() == OPEN
    clock.advance(2)
    assert breaker.state() == HALF_OPEN
    assert breaker.allow() is True  # the probe slot was freed


def test_an_error_that_is_not_a_provider_failure_hands_the_probe_back(breaker, clock):
    open_circuit(breaker)
    clock.advance(31)

    with pytest.raises(KeyError):
        breaker.call(lambda: {}["bug"], is_failure=lambda exc: isinstance(exc, ProviderError))

    assert breaker.state() == HALF_OPEN
    assert breaker.allow() is True


def test_breaker_steps_aside_when_the_cache_is_down(clock):
    class DownCache:
        def __getattr__(self, name):
            def broken(*args, **kwargs):
                raise ConnectionError("cache down")

            return broken

    breaker = CircuitBreaker(
        "down",
        failure_threshold=1,
        window_s=60,
        cooldown_s=30,
        cache=DownCache(),
        clock=clock,
    )

    breaker.record_failure()

    assert breaker.state() == CLOSED
    assert breaker.call(lambda: "through") == "through"


def test_breakers_with_the_same_name_share_state_through_the_cache(clock):
    name = f"shared-{uuid.uuid4().hex[:8]}"
    one = CircuitBreaker(name, failure_threshold=2, window_s=60, cooldown_s=30, clock=clock)
    two = CircuitBreaker(name, failure_threshold=2, window_s=60, cooldown_s=30, clock=clock)

    one.record_failure()
    two.record_failure()

    assert one.state() == two.state() == OPEN


# --- run_with_breaker ----------------------------------------------------------------

TEXT = "The observatory telescope has a mirror of eight metres. It was built in 2019."
PASSAGES = [Passage(1, "doc-1", "Observatory", TEXT, 0, len(TEXT))]


def ask(provider):
    return provider.ask("How large is the telescope mirror?", PASSAGES, [])


def test_gemini_answers_when_healthy(gemini_settings, fake_gemini):
    fake_gemini.push(
        reply_json(
            {
                "answer": "Eight metres [1].",
                "citations": [
                    {
                        "passage": 1,
                        "quote": "The observatory telescope has a mirror of eight metres.",
                    }
                ],
                "answered": True,
            }
        )
    )

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert (result.provider, degraded, reason) == ("gemini", False, "")
    assert result.citations[0].start == 0


def test_offline_provider_is_used_directly_when_configured(settings, fake_gemini):
    settings.LLM_PROVIDER = "offline"

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert (result.provider, degraded, reason) == ("offline", False, "")
    assert fake_gemini.request_count == 0


def test_failing_gemini_falls_back_to_offline_then_the_circuit_opens(gemini_settings, fake_gemini):
    fake_gemini.always(status(500, "backend down"))
    retries = gemini_settings.LLM_MAX_RETRIES

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert result.provider == "offline"
    assert result.answered and result.citations
    assert degraded is True
    assert reason.startswith("Gemini unavailable (Gemini HTTP 500")
    assert reason.endswith("answered by the offline provider")
    assert fake_gemini.request_count == retries + 1

    run_with_breaker(ask, encode=hashed_bow_encode)  # second failure: threshold reached
    seen = fake_gemini.request_count

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert fake_gemini.request_count == seen  # failed fast, Gemini not called
    assert degraded is True and result.provider == "offline"
    assert reason == "Gemini unavailable (circuit open); answered by the offline provider"


def test_malformed_gemini_output_also_falls_back(gemini_settings, fake_gemini):
    fake_gemini.push(reply_text("I think the mirror is big"))

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert degraded and result.provider == "offline"
    assert reason.startswith("Gemini failed (Gemini returned malformed output")


def test_without_fallback_errors_propagate_and_an_open_circuit_fails_fast(gemini_settings, fake_gemini):
    gemini_settings.BREAKER_FALLBACK = False
    fake_gemini.always(status(503))

    for _ in range(gemini_settings.BREAKER_FAILURE_THRESHOLD):
        with pytest.raises(TransientProviderError):
            run_with_breaker(ask, encode=hashed_bow_encode)
    seen = fake_gemini.request_count

    with pytest.raises(CircuitOpenError, match="fail"):
        run_with_breaker(ask, encode=hashed_bow_encode)

    assert fake_gemini.request_count == seen


# --- across processes, through Redis ---------------------------------------------------

_CHILD = """
import sys, django
django.setup()
from agents.breaker import CircuitBreaker
breaker = CircuitBreaker(sys.argv[1], failure_threshold=3, window_s=60, cooldown_s=30)
if sys.argv[2] == "fail":
    for _ in range(3):
        breaker.record_failure()
elif sys.argv[2] == "reset":
    breaker.reset()
print(breaker.state())
"""


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _child(name: str, action: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "REDIS_URL": REDIS_URL,
        "PYTHONPATH": str(BASE_DIR),
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, name, action],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_breaker_state_is_shared_between_processes_through_redis():
    assert _redis_up(), f"Redis is not reachable at {REDIS_URL}"
    name = f"xproc-{uuid.uuid4().hex[:8]}"
    try:
        assert _child(name, "look") == CLOSED
        assert _child(name, "fail") == OPEN  # process A records the failures
        assert _child(name, "look") == OPEN  # process B sees the open circuit
    finally:
        _child(name, "reset")


def _redis_cache():
    from django_redis.cache import RedisCache

    return RedisCache(REDIS_URL, {"KEY_PREFIX": f"test-{uuid.uuid4().hex[:6]}"})


def test_full_lifecycle_on_django_redis(clock):
    assert _redis_up(), f"Redis is not reachable at {REDIS_URL}"
    breaker = CircuitBreaker(
        f"life-{uuid.uuid4().hex[:8]}",
        failure_threshold=2,
        window_s=60,
        cooldown_s=30,
        cache=_redis_cache(),
        clock=clock,
    )
    try:
        breaker.record_failure()
        assert breaker.state() == CLOSED
        breaker.record_failure()
        assert breaker.state() == OPEN
        clock.advance(31)
        assert breaker.allow() is True
        assert breaker.allow() is False  # the probe is taken
        breaker.record_failure()
        assert breaker.state() == OPEN
        clock.advance(31)
        assert breaker.call(lambda: "ok") == "ok"
        assert breaker.state() == CLOSED
    finally:
        breaker.reset()
