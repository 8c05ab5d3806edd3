"""The embedded default's disk cache: one set of SQLite shards per process and settings."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.core.cache import caches
from django.test import override_settings

from core.cache import SharedDiskCache


def disk_cache(location: Path) -> dict[str, dict[str, object]]:
    return {"default": {"BACKEND": "core.cache.SharedDiskCache", "LOCATION": str(location), "SHARDS": 2}}


def test_each_request_context_gets_a_backend_on_the_same_open_shards(tmp_path: Path) -> None:
    with override_settings(CACHES=disk_cache(tmp_path)):
        first = caches["default"]
        first.set("greeting", "hello")
        # The web server runs each request in a fresh context, where Django builds a new
        # backend object: it must not open the shards again.
        fresh = contextvars.Context().run(lambda: caches["default"])
        assert fresh is not first
        assert fresh._cache is first._cache  # type: ignore[attr-defined]
        assert fresh.get("greeting") == "hello"


def test_threads_share_the_shards_and_see_each_others_writes(tmp_path: Path) -> None:
    with override_settings(CACHES=disk_cache(tmp_path)):
        main = caches["default"]

        def count(_: int) -> object:
            backend = contextvars.Context().run(lambda: caches["default"])
            backend.add("hits", 0)
            backend.incr("hits")
            return backend._cache  # type: ignore[attr-defined]

        with ThreadPoolExecutor(max_workers=4) as pool:
            shards = set(map(id, pool.map(count, range(40))))
        assert shards == {id(main._cache)}  # type: ignore[attr-defined]
        assert main.get("hits") == 40


def test_other_settings_get_their_own_shards(tmp_path: Path) -> None:
    params = {"SHARDS": 2}
    a = SharedDiskCache(str(tmp_path / "a"), params)
    assert SharedDiskCache(str(tmp_path / "a"), dict(params))._cache is a._cache
    assert SharedDiskCache(str(tmp_path / "b"), params)._cache is not a._cache
    assert SharedDiskCache(str(tmp_path / "a"), {"SHARDS": 3})._cache is not a._cache
    assert SharedDiskCache(str(tmp_path / "a"), {"SHARDS": 3}).directory == str(tmp_path / "a")
