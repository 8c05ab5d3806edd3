"""The picture of the imports: every app imports only the apps below it, and none imports `config`.

The apps are layered workspace -> agents -> documents -> projects -> accounts, with `core`
(plumbing) under all of them. `config` is wiring (settings, URLs, Celery, servers): it may
import any app, and apps read settings through `django.conf.settings`, never `config`.
This reads every import statement of the apps' code (function-level ones too), so a new
arrow pointing up fails here with the file and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: an app may import the apps before it in this list.
LAYERS = ["core", "accounts", "projects", "documents", "agents", "workspace"]
WIRING = "config"


def _code_files(app: str) -> Iterator[Path]:
    for path in sorted((ROOT / app).rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if "tests" in parts or "migrations" in parts:
            continue
        yield path


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def arrows() -> list[tuple[str, str, str]]:
    """(importing app, imported app, "file:line module") for every import between apps."""
    found = []
    for app in [*LAYERS, WIRING]:
        for path in _code_files(app):
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top != app and top in [*LAYERS, WIRING]:
                    where = f"{path.relative_to(ROOT)}:{line} imports {module}"
                    found.append((app, top, where))
    return found


def test_the_picture_has_every_layer() -> None:
    found = {(a, b) for a, b, _ in arrows()}
    # The test reads real imports: each layer does use the ones below it.
    for upper, lower in [
        ("workspace", "agents"),
        ("agents", "documents"),
        ("documents", "projects"),
        ("projects", "accounts"),
    ]:
        assert (upper, lower) in found


@pytest.mark.parametrize("app", LAYERS)
def test_no_app_imports_one_above_it_or_config(app: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(app)])
    wrong = [where for source, target, where in arrows() if source == app and target not in allowed]
    assert wrong == [], "imports pointing up (or into config):\n" + "\n".join(wrong)
