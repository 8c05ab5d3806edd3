"""Web processes freeze their long-lived objects; other processes are left alone."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

from config.tests.processes import python
from core import heap
from tests.servers import call, web_server

# Loads the web application and runs the worker hook as gunicorn does, then loads the
# encoder as the first search does.
WEB_PROCESS = """
import gc, json, runpy
import config.wsgi
before = gc.get_freeze_count()
runpy.run_path("config/gunicorn.py")["post_worker_init"](None)
after_start = gc.get_freeze_count()
from documents import embedder
embedder.encode(["does aspirin prevent heart attacks?"])
after_model = gc.get_freeze_count()
gc.collect()
print(json.dumps({"before": before, "after_start": after_start, "after_model": after_model,
                  "tracked": len(gc.get_objects())}))
"""


def test_a_process_that_has_not_opted_in_freezes_nothing() -> None:
    before = gc.get_freeze_count()
    heap.freeze_long_lived("test")
    assert gc.get_freeze_count() == before


def test_the_web_process_freezes_django_then_the_encoder(tmp_path: Path, settings: Any) -> None:
    # The encoder export this run already made: loading the model takes seconds, not minutes.
    done = python(WEB_PROCESS, tmp_path, timeout=300, DOCENT_MODEL_DIR=str(settings.MODEL_DIR))
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["before"] == 0  # importing the application alone changes nothing
    assert counts["after_start"] > 10_000  # Django and the project's modules
    # The encoder's libraries (ONNX Runtime and tokenizers, no torch) are frozen once loaded ...
    assert counts["after_model"] > counts["after_start"]
    # ... so a full collection walks only what was made since: a small fraction.
    assert counts["tracked"] < counts["after_model"] // 10


def test_gunicorn_runs_the_hook_in_every_worker(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    with web_server({"DOCENT_DATA_DIR": str(tmp_path)}, log, workers=2) as base:
        assert call("GET", f"{base}/healthz")[0] == 200
        deadline = time.monotonic() + 30
        while log.read_text().count('"web worker started"') < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    frozen = [json.loads(line) for line in log.read_text().splitlines() if '"web worker started"' in line]
    assert len(frozen) == 2
    assert all(entry["objects"] > 10_000 for entry in frozen)
