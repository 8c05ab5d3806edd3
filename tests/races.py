"""What the race tests share: requests run at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rest_framework_simplejwt.tokens import RefreshToken

Call = Callable[[], tuple[int, Any, dict[str, str]]]
MAX_THREADS = 8


def token(user: Any) -> str:
    return str(RefreshToken.for_user(user).access_token)


def together(*calls: Call, threads: int = MAX_THREADS) -> list[tuple[int, Any]]:
    """Run the calls at the same moment, each on its own thread; (status, body) in order."""
    assert len(calls) <= threads, f"{len(calls)} calls at once need threads={len(calls)}"
    barrier = threading.Barrier(len(calls))

    def run(fn: Call) -> tuple[int, Any]:
        barrier.wait(timeout=30)
        status, body, _ = fn()
        return status, body

    with ThreadPoolExecutor(max_workers=min(len(calls), threads)) as pool:
        return list(pool.map(run, calls))
