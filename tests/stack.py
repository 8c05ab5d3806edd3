"""The test run's own servers: a private PostgreSQL (pgvector, pg_search) and Valkey.

A pytest plugin (pytest.ini: `-p tests.stack`) that starts, before Django is set up,
the same servers `make run` does (config/servers.py), in a throwaway data folder, and
points DATABASE_URL and REDIS_URL at them: every test, and every web server and worker
process a test starts, runs on the production stack through the same code path, and two
test runs never share a server. They are stopped and their folder removed at the end.

With DATABASE_URL already set (an operator testing against their own servers) nothing
is started. Under CI a server that cannot start fails the run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
_stack: dict[str, Any] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # A developer's `.env` (which `make run` writes) is not the tests' settings.
    os.environ.setdefault("DOCENT_ENV_FILE", os.devnull)
    if os.environ.get("DATABASE_URL") or "stack" in _stack:
        return
    from config.servers import Stack

    data = Path(tempfile.mkdtemp(prefix="docent-test-"))
    stack = Stack(data, throwaway=True)
    _stack["stack"] = stack
    atexit.register(_stop, stack, data)
    stack.start()
    os.environ.update(stack.environment())
    # The run's secret key, uploads and logs in the throwaway folder; the encoder's ONNX
    # export is kept between runs in the repository's var/ (it takes a few seconds to make).
    os.environ["DOCENT_DATA_DIR"] = str(data)
    os.environ.setdefault("DOCENT_MODEL_DIR", str(ROOT / "var" / "models"))


def current() -> Any:
    """The run's servers (for the fault tests that restart them)."""
    if "stack" not in _stack:
        pytest.fail("the test servers were not started by tests/stack.py (DATABASE_URL was set)")
    return _stack["stack"]


def _stop(stack: Any, data: Path) -> None:
    try:
        stack.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
