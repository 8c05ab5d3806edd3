"""Fresh Python processes for tests of start-up: the embedded defaults, nothing from this run.

DOCENT_*, DATABASE_URL, REDIS_URL and SECRET_KEY are dropped from the environment, so a test
states exactly the settings its process runs with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env(tmp_path: Path, **env: str) -> dict[str, str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCENT_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY"))
    }
    return {**inherited, "DOCENT_DATA_DIR": str(tmp_path), **env}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`manage.py args` with `env` on top of the clean environment."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def python(
    code: str, tmp_path: Path, *, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -c code` with Django's settings module and `env` on top of the clean environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
