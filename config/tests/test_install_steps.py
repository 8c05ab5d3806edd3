"""`make install` (and so a first `make run`) says what each step does, and never works silently."""

from __future__ import annotations

import subprocess

from config.tests.processes import ROOT


def install_recipe() -> list[str]:
    """The install recipe as make would run it (-n: printed, not run; -B: as on a fresh clone)."""
    done = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def test_the_long_pip_steps_show_pips_progress_and_each_step_is_announced() -> None:
    lines = install_recipe()
    slow = [line for line in lines if "pip install" in line and "--upgrade pip" not in line]
    assert slow, lines
    for command in slow:
        assert "--quiet" not in command and " -q" not in command, command
        said = lines[lines.index(command) - 1]
        assert said.startswith('echo "docent: install'), f"{command!r} starts unannounced"
    servers = next(line for line in lines if "config.servers install" in line)
    assert lines[lines.index(servers) - 1].startswith('echo "docent: install')


def test_apt_get_is_announced_before_it_runs_and_can_be_skipped() -> None:
    recipe = "\n".join(install_recipe())
    said = recipe.index("running 'apt-get update' and 'apt-get install tesseract-ocr'")
    ran = recipe.index("{ apt-get update")
    assert said < ran
    assert "DOCENT_SKIP_APT" in recipe[: recipe.index("{ apt-get update")]
    apt_line = recipe[ran:].splitlines()[0]
    assert "/dev/null" not in apt_line and "-qq" not in apt_line, "apt-get's own output is not hidden"
