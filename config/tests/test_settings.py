"""Settings come from the environment: production is safe, bad values are named."""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.tests.processes import ROOT, clean_env, manage, python


def production_env() -> dict[str, str]:
    return {
        "DOCENT_PRODUCTION": "true",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "docent.example.com",
    }


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(), tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_the_development_secret_key(tmp_path: Path) -> None:
    env = {**production_env(), "SECRET_KEY": ""}
    done = manage("check", env=env, tmp_path=tmp_path)
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr


PRINT_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def test_each_data_folder_gets_its_own_random_key_kept_between_starts(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    keys = []
    for folder in (first, first, second):
        done = python(PRINT_KEY, folder)
        assert done.returncode == 0, done.stderr
        keys.append(done.stdout.strip())
    assert keys[0] == keys[1], "a later start must reuse the folder's key"
    assert keys[0] != keys[2], "two data folders must not share a key"
    assert all(len(key) >= 50 for key in keys)
    assert "docent-insecure" not in keys[0]
    key_file = first / "secret_key"
    assert key_file.read_text().strip() == keys[0]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import django; django.setup();" + PRINT_KEY]
    env = clean_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    starts = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outputs = [process.communicate(timeout=120) for process in starts]
    assert all(process.returncode == 0 for process in starts), outputs
    assert len({out.strip() for out, _ in outputs}) == 1


@pytest.mark.parametrize("value", ["short-key", "docent-insecure-development-key-change-me-0123456789abcdef"])
def test_a_short_or_published_secret_key_is_refused(tmp_path: Path, value: str) -> None:
    done = manage("check", env={"SECRET_KEY": value}, tmp_path=tmp_path)
    assert done.returncode != 0
    assert "SECRET_KEY must be a private random value" in done.stderr
    assert value not in done.stderr, "the refusal must not print the key"


def test_an_empty_key_file_is_named_not_used(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("\n")
    os.utime(key_file, (time.time() - 60, time.time() - 60))  # left by a crash, not being written now
    done = manage("check", env={}, tmp_path=tmp_path)
    assert done.returncode != 0
    assert "secret_key holds fewer than 50 characters" in done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCENT_MAX_UPLOAD_MB", "lots"),
        ("DOCENT_MAX_UPLOAD_MB", "0"),
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://nowhere/x"),
        ("REDIS_URL", "http://localhost"),
        ("DOCENT_LLM_PROVIDER", "gpt"),
        ("DOCENT_EMBEDDING_BACKEND", "cuda"),
        ("DOCENT_BREAKER_WINDOW_S", "1.5"),
        ("DOCENT_AUTH_CACHE_S", "-1"),
        ("DOCENT_LIST_CACHE_S", "soon"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    done = manage("check", env={name: value}, tmp_path=tmp_path)
    assert done.returncode != 0
    assert name in done.stderr
    assert value in done.stderr


def test_every_environment_variable_is_documented_in_the_readme() -> None:
    readers = (ROOT / "config" / "settings.py").read_text() + (ROOT / "config" / "gunicorn.py").read_text()
    names = set(re.findall(r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"', readers))
    assert len(names) > 60
    readme = (ROOT / "README.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in readme) == []


def test_the_web_process_starts_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys, django; django.setup();"
        "from django.urls import resolve; import config.urls, config.wsgi;"
        "from django.test import Client; Client().get('/healthz');"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    done = python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "False"]
