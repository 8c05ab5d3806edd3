"""The run event log (Redis Streams in the run's Valkey): ordered, resumable, shared across processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agents import events

ROOT = Path(__file__).resolve().parents[2]


def read(run_id: Any, after: str | None = None, wait_s: float = 0.0) -> list[events.Event]:
    async def once() -> list[events.Event]:
        try:
            return await events.read(run_id, after, wait_s=wait_s)
        finally:
            await events.aclose()

    return asyncio.run(once())


def test_events_come_back_in_order_and_resume_after_an_id() -> None:
    run_id = uuid.uuid4()
    events.publish(run_id, "status", status="retrieving")
    for word in ["The ", "pump ", "was ", "designed."]:
        events.publish(run_id, "delta", text=word)
    got = read(run_id)
    assert [e.type for e in got] == ["status", "delta", "delta", "delta", "delta"]
    assert "".join(e.data["text"] for e in got if e.type == "delta") == "The pump was designed."
    assert len({e.id for e in got}) == len(got)
    after_second = read(run_id, got[1].id)
    assert [e.data.get("text") for e in after_second] == ["pump ", "was ", "designed."]
    assert read(run_id, got[-1].id) == []
    events.forget(run_id)
    assert read(run_id) == []


def test_a_reader_waits_for_the_next_event() -> None:
    run_id = uuid.uuid4()

    async def scenario() -> tuple[list[events.Event], float]:
        async def later() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(events.publish, run_id, "delta", text="late")

        task = asyncio.create_task(later())
        started = time.monotonic()
        got = await events.read(run_id, None, wait_s=5)
        await task
        await events.aclose()
        return got, time.monotonic() - started

    got, waited = asyncio.run(scenario())
    assert [e.data["text"] for e in got] == ["late"]
    assert 0.25 < waited < 2.0


def test_an_empty_log_answers_after_the_wait() -> None:
    started = time.monotonic()
    assert read(uuid.uuid4(), wait_s=0.2) == []
    assert time.monotonic() - started >= 0.15


def test_another_process_sees_the_events_at_once(settings: Any) -> None:
    run_id = uuid.uuid4()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "REDIS_URL": settings.REDIS_URL,
    }
    code = (
        "import django; django.setup()\n"
        "from agents import events\n"
        f"for i in range(50): events.publish({str(run_id)!r}, 'delta', text=str(i))\n"
        f"events.publish({str(run_id)!r}, 'done', status='succeeded')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    got = read(run_id)
    assert [e.data.get("text") for e in got[:-1]] == [str(i) for i in range(50)]
    assert got[-1].type == "done"


def test_a_broken_carrier_never_fails_the_run(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    events.publish(uuid.uuid4(), "delta", text="lost")
    assert "could not publish a run event" in caplog.text
