"""Web processes freeze their long-lived objects; other processes are left alone."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from config import heap

ROOT = Path(__file__).resolve().parents[2]

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


def test_the_web_process_freezes_django_then_the_encoder(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    done = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DOCENT_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["after_start"] > 10_000  # Django and the project's modules
    # The encoder's libraries are frozen once loaded ...
    assert counts["after_model"] > counts["after_start"] + 100_000
    # ... so a full collection walks only what was made since: a small fraction.
    assert counts["tracked"] < counts["after_model"] // 10
