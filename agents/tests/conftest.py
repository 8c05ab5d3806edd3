"""Fixtures for the agents app: a fake Gemini server and a deterministic encoder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.tests.fake_gemini import FakeGemini
from agents.tests.fakes import hashed_bow_encode


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    """A local Gemini REST server; queue what it should do with `.push(...)`."""
    with FakeGemini() as server:
        yield server


@pytest.fixture
def encode():
    return hashed_bow_encode


@pytest.fixture
def gemini_settings(settings, fake_gemini: FakeGemini, monkeypatch):
    """Settings that make `auto` pick Gemini, pointed at the fake server, with fast failure."""
    monkeypatch.setattr("agents.providers.gemini.BACKOFF_INITIAL_S", 0.01)
    settings.LLM_PROVIDER = "auto"
    settings.GEMINI_API_KEY = "test-key"
    settings.GEMINI_MODEL = "gemini-test"
    settings.GEMINI_BASE_URL = fake_gemini.url
    settings.LLM_TIMEOUT_S = 1.0
    settings.LLM_MAX_RETRIES = 1
    settings.BREAKER_FAILURE_THRESHOLD = 2
    settings.BREAKER_WINDOW_S = 60
    settings.BREAKER_COOLDOWN_S = 30
    settings.BREAKER_FALLBACK = True
    return settings
