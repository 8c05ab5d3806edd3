"""LLM providers: pick one from settings and call it through the circuit breaker."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agents.providers.base import (
    NOT_ANSWERED,
    CircuitOpenError,
    Citation,
    Passage,
    Provider,
    ProviderError,
    ProviderResult,
    TransientProviderError,
)
from agents.providers.offline import OfflineProvider

__all__ = [
    "NOT_ANSWERED",
    "CircuitOpenError",
    "Citation",
    "OfflineProvider",
    "Passage",
    "Provider",
    "ProviderError",
    "ProviderResult",
    "TransientProviderError",
    "get_provider",
    "provider_breaker",
    "resolve_provider_name",
    "rewrite_query",
    "run_with_breaker",
]

log = logging.getLogger(__name__)

Encoder = Callable[[list[str]], np.ndarray]

_LABELS = {
    "gemini": "Gemini",
    "openai": "The OpenAI-compatible provider",
    "offline": "The offline provider",
}
PROVIDER_NAMES = frozenset(_LABELS)


def resolve_provider_name(name: str | None = None) -> str:
    """'gemini', 'openai' or 'offline'.

    `auto` picks by what is configured: Gemini when GEMINI_API_KEY is set, else the
    OpenAI-compatible server when DOCENT_OPENAI_BASE_URL is set, else offline.
    """
    name = name or settings.LLM_PROVIDER
    if name == "auto":
        if settings.GEMINI_API_KEY:
            return "gemini"
        return "openai" if settings.OPENAI_BASE_URL else "offline"
    if name not in PROVIDER_NAMES:
        raise ImproperlyConfigured(f"unknown LLM provider {name!r}")
    return name


def get_provider(name: str | None = None, *, encode: Encoder | None = None) -> Provider:
    """The provider `name` (default: settings.LLM_PROVIDER), configured from settings."""
    resolved = resolve_provider_name(name)
    if resolved == "gemini":
        if not settings.GEMINI_API_KEY:
            raise ImproperlyConfigured("the Gemini provider needs GEMINI_API_KEY")
        from agents.providers.gemini import GeminiProvider  # the SDK is only loaded when used

        return GeminiProvider(
            api_key=settings.GEMINI_API_KEY,
            model=settings.GEMINI_MODEL,
            base_url=settings.GEMINI_BASE_URL or None,
            timeout_s=settings.LLM_TIMEOUT_S,
            max_retries=settings.LLM_MAX_RETRIES,
        )
    if resolved == "openai":
        if not settings.OPENAI_BASE_URL:
            raise ImproperlyConfigured("the OpenAI-compatible provider needs DOCENT_OPENAI_BASE_URL")
        from agents.providers.openai_compat import OpenAIProvider  # the SDK is only loaded when used

        return OpenAIProvider(
            base_url=settings.OPENAI_BASE_URL,
            model=settings.OPENAI_MODEL,
            api_key=settings.OPENAI_API_KEY,
            timeout_s=settings.LLM_TIMEOUT_S,
            connect_timeout_s=settings.OPENAI_CONNECT_TIMEOUT_S,
            max_retries=settings.LLM_MAX_RETRIES,
            response_format=settings.OPENAI_RESPONSE_FORMAT,
            max_tokens=settings.OPENAI_MAX_TOKENS or None,
        )
    if encode is None:
        raise ImproperlyConfigured("the offline provider needs an encoder (encode=...)")
    return OfflineProvider(encode)


def provider_breaker(name: str):  # -> agents.breaker.CircuitBreaker
    """The shared circuit breaker guarding provider `name`, configured from settings."""
    # Imported here: agents.breaker imports agents.providers.base, which runs this package.
    from agents.breaker import CircuitBreaker

    return CircuitBreaker(
        f"llm:{name}",
        failure_threshold=settings.BREAKER_FAILURE_THRESHOLD,
        window_s=settings.BREAKER_WINDOW_S,
        cooldown_s=settings.BREAKER_COOLDOWN_S,
    )


def run_with_breaker(
    kind_call: Callable[[Provider], ProviderResult], *, encode: Encoder, provider: str | None = None
) -> tuple[ProviderResult, bool, str]:
    """Run `kind_call` on the configured provider; returns (result, degraded, reason).

    The primary provider is called through its circuit breaker. When the circuit
    is open, or the call fails after its retries, and settings.BREAKER_FALLBACK is
    on, the offline provider answers instead and the result is marked degraded
    with a reason a person can read. With the fallback off the error propagates
    (CircuitOpenError when the circuit is open).
    """
    primary = get_provider(provider, encode=encode)
    if primary.name == "offline":
        return kind_call(primary), False, ""

    label = _LABELS.get(primary.name, primary.name)
    breaker = provider_breaker(primary.name)
    try:
        result = breaker.call(
            lambda: kind_call(primary),
            is_failure=lambda exc: isinstance(exc, ProviderError),
        )
        return result, False, ""
    except CircuitOpenError:
        if not settings.BREAKER_FALLBACK:
            raise
        reason = f"{label} unavailable (circuit open); answered by the offline provider"
    except TransientProviderError as exc:
        if not settings.BREAKER_FALLBACK:
            raise
        reason = f"{label} unavailable ({_short(exc)}); answered by the offline provider"
    except ProviderError as exc:
        if not settings.BREAKER_FALLBACK:
            raise
        reason = f"{label} failed ({_short(exc)}); answered by the offline provider"
    finally:
        _close(primary)
    log.warning("provider fallback: %s", reason)
    return kind_call(OfflineProvider(encode)), True, reason


def rewrite_query(
    question: str, history: list[tuple[str, str]], *, encode: Encoder, provider: str | None = None
) -> str:
    """`question` as a standalone search query, given the conversation's earlier turns.

    By the configured model while its circuit is closed (a model's rewrite never
    raises: it falls back to the offline one itself), else by the offline provider.
    """
    if not history:
        return question
    name = resolve_provider_name(provider)
    chosen: Provider = OfflineProvider(encode)
    if name != "offline" and provider_breaker(name).state() != "open":
        chosen = get_provider(name, encode=encode)
    try:
        return chosen.rewrite_query(question, history).strip() or question
    finally:
        _close(chosen)


def _close(provider: Provider) -> None:
    close = getattr(provider, "close", None)
    if close is not None:
        close()


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
