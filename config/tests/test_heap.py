"""Web processes freeze their long-lived objects; other processes are left alone."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from config import heap
from config.tests.processes import python

# Loads the web application as gunicorn does, then the encoder as the first search does.
WEB_PROCESS = """
import gc, json
import config.wsgi
after_start = gc.get_freeze_count()
from documents import embedder
embedder.encode(["does aspirin prevent heart attacks?"])
after_model = gc.get_freeze_count()
gc.collect()
print(json.dumps({"after_start": after_start, "after_model": after_model,
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
    assert counts["after_start"] > 10_000  # Django and the project's modules
    # The encoder's libraries are frozen once loaded ...
    assert counts["after_model"] > counts["after_start"] + 100_000
    # ... so a full collection walks only what was made since: a small fraction.
    assert counts["tracked"] < counts["after_model"] // 10
