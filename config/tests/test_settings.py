"""Settings come from the environment: production is safe, bad values are named."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from config.tests.processes import ROOT, manage, python


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


def test_caching_users_needs_a_cache_every_process_shares(tmp_path: Path) -> None:
    done = manage("check", env={"DOCENT_AUTH_CACHE_S": "60"}, tmp_path=tmp_path)
    assert done.returncode != 0
    assert "DOCENT_AUTH_CACHE_S needs REDIS_URL" in done.stderr


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
