"""One set of settings for every process: `.env`, written by `make run`, read by all.

`make run` writes `.env` on its first start with the data folder it chose (absolute);
manage.py, the settings (Celery, gunicorn) and config.run itself read it, the real
environment winning over it; it is never overwritten. The email backend and the first
sign-up's administrator follow from the settings read that way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dotenv import dotenv_values

from config import run
from config.tests.processes import ROOT, python
from core import envfile
from tests.servers import free_port

# --- the file ----------------------------------------------------------------------------


def test_the_file_fills_in_what_the_environment_lacks_and_never_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# a comment\nDOCENT_TEST_A=/from/the/file\nexport DOCENT_TEST_B='kept as ${written}'\n"
        'DOCENT_TEST_C="from the file"\n'
    )
    monkeypatch.delenv("DOCENT_TEST_A", raising=False)
    monkeypatch.delenv("DOCENT_TEST_B", raising=False)
    monkeypatch.setenv("DOCENT_TEST_C", "from the environment")
    applied = envfile.load_env_file(path)
    assert applied == {"DOCENT_TEST_A": "/from/the/file", "DOCENT_TEST_B": "kept as ${written}"}
    assert os.environ["DOCENT_TEST_C"] == "from the environment"
    for key in applied:
        monkeypatch.delenv(key)


def test_a_missing_file_is_no_error_and_docent_env_file_names_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert envfile.load_env_file(tmp_path / "absent.env") == {}
    monkeypatch.delenv(envfile.ENV_FILE_VARIABLE, raising=False)
    assert envfile.env_file_path() == ROOT / ".env"
    monkeypatch.setenv(envfile.ENV_FILE_VARIABLE, str(tmp_path / "instance.env"))
    assert envfile.env_file_path() == tmp_path / "instance.env"


def test_make_run_writes_the_data_folder_it_chose_once_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a folder" / ".env"
    monkeypatch.setenv(envfile.ENV_FILE_VARIABLE, str(path))
    data = tmp_path / "data it chose"
    run.remember_settings(data, data_dir_given=False)
    assert path.stat().st_mode & 0o777 == 0o600
    assert dotenv_values(path) == {"DOCENT_DATA_DIR": str(data)}  # read back as every process reads it
    assert "# The secret key that signs sessions and tokens is kept in DOCENT_DATA_DIR/secret_key" in (
        path.read_text()
    )
    assert f"wrote {path}" in capsys.readouterr().err
    path.write_text("DOCENT_DATA_DIR=/the/operators/choice\n")
    run.remember_settings(tmp_path / "another", data_dir_given=False)
    assert path.read_text() == "DOCENT_DATA_DIR=/the/operators/choice\n"


def test_a_data_folder_from_the_environment_is_not_written_but_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(envfile.ENV_FILE_VARIABLE, str(tmp_path / ".env"))
    run.remember_settings(tmp_path / "given", data_dir_given=True)
    assert not (tmp_path / ".env").exists()
    assert "DOCENT_DATA_DIR comes from the environment" in capsys.readouterr().err


# --- settings read through it ----------------------------------------------------------------

SHOW = "from django.conf import settings; print(settings.EMAIL_BACKEND, settings.FIRST_SIGNUP_ADMIN)"


@pytest.mark.parametrize(
    ("env", "backend", "first_admin"),
    [
        ({}, "accounts.mail.OutboxBackend", True),
        ({"EMAIL_HOST": "mail.example.com"}, "django.core.mail.backends.smtp.EmailBackend", True),
        ({"DOCENT_EMAIL_BACKEND": "console"}, "django.core.mail.backends.console.EmailBackend", True),
        (
            {"DOCENT_EMAIL_BACKEND": "outbox", "EMAIL_HOST": "mail.example.com"},
            "accounts.mail.OutboxBackend",
            True,
        ),
        (
            {"DOCENT_PRODUCTION": "1", "SECRET_KEY": "k" * 60},
            "django.core.mail.backends.smtp.EmailBackend",
            False,
        ),
        ({"DOCENT_FIRST_SIGNUP_ADMIN": "false"}, "accounts.mail.OutboxBackend", False),
    ],
)
def test_mail_goes_to_the_outbox_unless_smtp_is_configured(
    tmp_path: Path, env: dict[str, str], backend: str, first_admin: bool
) -> None:
    done = python(SHOW, tmp_path, DOCENT_ENV_FILE=str(tmp_path / "none.env"), **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [backend, str(first_admin)]


def test_a_bad_mail_setting_is_named(tmp_path: Path) -> None:
    done = python(SHOW, tmp_path, DOCENT_ENV_FILE=str(tmp_path / "none.env"), DOCENT_EMAIL_BACKEND="pigeon")
    assert done.returncode != 0
    assert "DOCENT_EMAIL_BACKEND must be one of" in done.stderr


def test_settings_read_the_env_file_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "instance.env"
    env_file.write_text("DOCENT_EMAIL_BACKEND=console\nDOCENT_FIRST_SIGNUP_ADMIN=false\n")
    done = python(SHOW, tmp_path, DOCENT_ENV_FILE=str(env_file))
    assert done.stdout.split() == ["django.core.mail.backends.console.EmailBackend", "False"], done.stderr
    done = python(SHOW, tmp_path, DOCENT_ENV_FILE=str(env_file), DOCENT_EMAIL_BACKEND="dummy")
    assert done.stdout.split() == ["django.core.mail.backends.dummy.EmailBackend", "False"], done.stderr


# --- make run, then manage.py with no environment ---------------------------------------------

SOURCES = (
    "accounts",
    "agents",
    "config",
    "core",
    "documents",
    "projects",
    "workspace",
    "templates",
    "static",
)


def a_clone(where: Path) -> Path:
    """A fresh checkout's files, with this one's virtualenv: its `.env` is its own."""
    clone = where / "docent"
    clone.mkdir()
    for name in SOURCES:
        shutil.copytree(ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    shutil.copy2(ROOT / "manage.py", clone / "manage.py")
    (clone / ".venv").symlink_to(ROOT / ".venv")
    return clone


def no_environment(**extra: str) -> dict[str, str]:
    """What a new terminal has: no Docent setting at all."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    return {**keep, **extra}


@pytest.mark.worker
def test_manage_py_with_no_environment_uses_the_data_folder_and_servers_make_run_chose(
    tmp_path: Path,
) -> None:
    clone = a_clone(tmp_path)
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "config.run", "--port", str(port)],
            cwd=clone,
            env=no_environment(DOCENT_MODEL_DIR=str(tmp_path / "models")),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()  # noqa: S310
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
    data = (clone / "var").resolve()
    written = (clone / ".env").read_text()
    assert f"DOCENT_DATA_DIR={data}\n" in written, written
    assert f"wrote {clone / '.env'}" in log.read_text()

    def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=clone,
            env=no_environment(**env),
            capture_output=True,
            text=True,
            timeout=180,
        )

    # The command's own answers go in its environment; no Docent setting does.
    made = manage(
        "createsuperuser", "--noinput", "--email", "root@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-pass-phrase-for-root",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    shown = manage(
        "shell", "-c",
        "from django.conf import settings; from accounts.models import User; "
        "print(settings.DATA_DIR); print(User.objects.filter(is_superuser=True).count())",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[-2:] == [str(data), "1"], shown.stdout
    # The same cluster make run migrated: no other folder was made or used.
    assert (data / "postgres" / "PG_VERSION").is_file()
    # ... and the same secret key, so sessions and tokens made by one are good in the other.
    key = manage("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)")
    assert key.stdout.split()[-1] == (data / "secret_key").read_text().strip(), key.stderr

    # A Celery worker or beat, and gunicorn, started by hand: the same data folder.
    def entry_point(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=clone, env=no_environment(), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.split()[-1]

    assert entry_point("from config.celery import app; print(app.conf.beat_schedule_filename)") == str(
        data / "celerybeat-schedule"
    )
    assert entry_point(
        "import os, runpy; runpy.run_path('config/gunicorn.py'); print(os.environ['DOCENT_DATA_DIR'])"
    ) == str(data)
    assert (clone / ".env").read_text() == written  # read, never rewritten
