"""The instance's `.env` file: settings every Docent process reads, written by `make run`.

`make run` (config/run.py) writes `.env` at the repository root on its first start with
the values it chose (the data folder, as an absolute path), so `manage.py createsuperuser`,
a Celery worker or gunicorn started by hand use the same data folder and the same private
servers. Variables set in the real environment win over the file; `DOCENT_ENV_FILE` names
another file. The file is read with python-dotenv (`KEY=value` lines, `#` comments, quotes;
values are taken as written, with no `${VAR}` expansion).

This module imports nothing of Django: manage.py and config/run.py call it before settings.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE_VARIABLE = "DOCENT_ENV_FILE"

HEADER = """\
# Docent's settings for every process of this instance: `make run`, `manage.py` commands,
# Celery and gunicorn started by hand. Written by `make run` on its first start with the
# values it chose; edit it freely: it is never overwritten. A variable set in the
# environment wins over this file. Every setting is listed in README.md (Configuration).
"""


def env_file_path() -> Path:
    """$DOCENT_ENV_FILE, or `.env` at the repository root."""
    named = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    return Path(named).expanduser() if named else ROOT / ".env"


def load_env_file(path: Path | None = None) -> dict[str, str]:
    """Put the file's variables into os.environ where the environment has none; returns those set.

    A missing file is no error (a fresh clone has none until `make run` starts).
    """
    path = path or env_file_path()
    if not path.is_file():
        return {}
    applied: dict[str, str] = {}
    for key, value in dotenv_values(path, interpolate=False).items():
        if value is None or key in os.environ:
            continue
        os.environ[key] = value
        applied[key] = value
    return applied


def write_env_file(values: dict[str, str], path: Path | None = None, notes: tuple[str, ...] = ()) -> bool:
    """Create the file with `values` (and `notes`, as comments), unless it exists; True when
    this call created it.

    Never overwrites: the file is the operator's once written (and two starts at once
    leave one file, the first one's).
    """
    path = path or env_file_path()
    lines = [
        HEADER,
        *(f"{key}={_quoted(value)}\n" for key, value in values.items()),
        *(f"# {line}\n" for note in notes for line in textwrap.wrap(note, 94)),
    ]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write("".join(lines))
    return True


def _quoted(value: str) -> str:
    """A value python-dotenv reads back unchanged (single quotes: no escapes, no ${} expansion)."""
    if value and all(ch.isalnum() or ch in "/._-:+@" for ch in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
