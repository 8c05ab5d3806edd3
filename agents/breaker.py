"""A circuit breaker whose state lives in the Django cache, so every process shares it.

closed --(failure_threshold failures within window_s)--> open
open --(cooldown_s elapsed)--> half_open: exactly one caller gets to probe
half_open --probe succeeds--> closed;  --probe fails--> open for another cooldown

Keys (all under ``breaker:<name>:``):
- ``failures``: failure counter, created with ``add`` and expiring after the window
  (so it counts failures within one window from the first of them);
- ``opened_at``: when the circuit opened (clock seconds); present means open or
  half-open;
- ``probe``: the half-open probe lock, claimed with ``add`` (atomic on
  LocMemCache and Redis alike), so only one caller probes.

If the cache itself fails, the breaker steps aside (treats the circuit as
closed) rather than blocking every call on an unrelated outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache as default_cache

from agents.providers.base import CircuitOpenError

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitOpenError"]

log = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_R = TypeVar("_R")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        window_s: float,
        cooldown_s: float,
        cache: Any = None,
        clock: Callable[[], float] = time.time,
        probe_timeout_s: float | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        # A probe that never reports back (its process died) frees the slot after this.
        self.probe_timeout_s = probe_timeout_s if probe_timeout_s is not None else cooldown_s
        self.cache = cache if cache is not None else default_cache
        self.clock = clock
        prefix = f"breaker:{name}:"
        self._failures_key = prefix + "failures"
        self._opened_key = prefix + "opened_at"
        self._probe_key = prefix + "probe"

    # --- reading -----------------------------------------------------------

    def _opened_at(self) -> float | None:
        value = self.cache.get(self._opened_key)
        return float(value) if value is not None else None

    def _state_at(self, opened_at: float | None) -> str:
        if opened_at is None:
            return CLOSED
        if self.clock() - opened_at < self.cooldown_s:
            return OPEN
        return HALF_OPEN

    def state(self) -> str:
        try:
            return self._state_at(self._opened_at())
        except Exception:
            log.warning(
                "breaker %s: cache unavailable, treating as closed",
                self.name,
                exc_info=True,
            )
            return CLOSED

    def retry_after_s(self) -> float:
        """Seconds until the circuit half-opens (0 when it is not open)."""
        try:
            opened_at = self._opened_at()
        except Exception:  # noqa: BLE001  (no cache, no known cooldown)
            return 0.0
        if opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - opened_at))

    # --- deciding ----------------------------------------------------------

    def _claim(self) -> str | None:
        """CLOSED to go ahead, HALF_OPEN when this caller holds the probe, None to fail fast."""
        try:
            state = self.state()
            if state == CLOSED:
                return CLOSED
            if state == OPEN:
                return None
            timeout = max(1, int(self.probe_timeout_s + 0.999))
            return HALF_OPEN if self.cache.add(self._probe_key, 1, timeout=timeout) else None
        except Exception:
            log.warning(
                "breaker %s: cache unavailable, letting the call through",
                self.name,
                exc_info=True,
            )
            return CLOSED

    def allow(self) -> bool:
        """May a call go ahead? In half-open state this claims the single probe."""
        return self._claim() is not None

    # --- reporting ---------------------------------------------------------

    def record_success(self) -> None:
        try:
            if self.state() == HALF_OPEN:
                self.cache.delete_many([self._opened_key, self._failures_key, self._probe_key])
                log.info("breaker %s: probe succeeded, circuit closed", self.name)
        except Exception:
            log.warning("breaker %s: could not record a success", self.name, exc_info=True)

    def record_failure(self) -> None:
        try:
            self._record_failure()
        except Exception:
            log.warning("breaker %s: could not record a failure", self.name, exc_info=True)

    def _record_failure(self) -> None:
        state = self.state()
        if state == HALF_OPEN:
            # The probe failed: open for another full cooldown and free the probe slot.
            self.cache.set(self._opened_key, self.clock(), timeout=None)
            self.cache.delete_many([self._failures_key, self._probe_key])
            log.warning("breaker %s: probe failed, circuit open again", self.name)
            return
        if state == OPEN:
            return  # a late failure from a call that started before the circuit opened
        window = max(1, int(self.window_s + 0.999))
        self.cache.add(self._failures_key, 0, timeout=window)
        try:
            failures = self.cache.incr(self._failures_key)
        except ValueError:  # the window expired between add and incr
            self.cache.add(self._failures_key, 1, timeout=window)
            failures = 1
        if failures >= self.failure_threshold:
            if self.cache.add(self._opened_key, self.clock(), timeout=None):
                log.warning(
                    "breaker %s: %d failures within %ss, circuit open",
                    self.name,
                    failures,
                    self.window_s,
                )
            self.cache.delete(self._failures_key)

    def reset(self) -> None:
        """Close the circuit and forget past failures (for operators and tests)."""
        self.cache.delete_many([self._opened_key, self._failures_key, self._probe_key])

    # --- wrapping ----------------------------------------------------------

    def call(
        self,
        fn: Callable[[], _R],
        *,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
    ) -> _R:
        """Run `fn` through the breaker; raises CircuitOpenError instead when not allowed.

        Exceptions for which `is_failure` is false (say, a bug in the caller) pass
        through without counting against the provider; a probe that ends that way
        hands the probe slot back.
        """
        claim = self._claim()
        if claim is None:
            raise CircuitOpenError(
                f"{self.name} circuit is open; failing fast (next probe in {self.retry_after_s():.0f}s)"
            )
        try:
            result = fn()
        except BaseException as exc:
            if isinstance(exc, Exception) and is_failure(exc):
                self.record_failure()
            elif claim == HALF_OPEN:
                try:
                    self.cache.delete(self._probe_key)
                except Exception:
                    log.warning("breaker %s: could not free the probe", self.name, exc_info=True)
            raise
        self.record_success()
        return result


def provider_states() -> dict[tuple[str, ...], float]:
    """Each LLM provider's circuit, read from the shared cache when /metrics is scraped:
    1 for its current state, 0 for the others (the offline provider has no circuit)."""
    from agents.providers import PROVIDER_NAMES, provider_breaker  # that package imports this module

    states: dict[tuple[str, ...], float] = {}
    for name in sorted(PROVIDER_NAMES - {"offline"}):
        current = provider_breaker(name).state()
        for state in (CLOSED, HALF_OPEN, OPEN):
            states[(name, state)] = 1.0 if state == current else 0.0
    return states
