"""`make run`'s supervisor (config/run.py): it starts the private PostgreSQL and Valkey,
migrates, runs web and worker; one signal stops everything promptly and quietly, the
servers last; one child dying takes the rest down; a kill -9 is recovered from; a server
or a port that cannot be had is named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config import servers
from config.tests.processes import ROOT, clean_env
from tests.servers import free_port

pytestmark = pytest.mark.worker


def isolated_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """clean_env, and no `.env` file but the test's own (none, unless the test writes one)."""
    return clean_env(tmp_path, DOCENT_ENV_FILE=str(tmp_path / ".env"), **env)


def launch(tmp_path: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "config.run", "--port", str(port)],
        cwd=ROOT,
        env=isolated_env(
            tmp_path, DOCENT_STOP_GRACE_S="20", DOCENT_STATIC_ROOT=str(tmp_path / "static"), **env
        ),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def start(
    tmp_path: Path, port: int | None = None, log_name: str = "run.log"
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`python -m config.run` on a fresh (or the same) data folder, as `make run` starts it.

    Each start writes a log of its own: processes a killed start left behind still hold its
    log open, and what they print while they are stopped belongs to it, not to the next one.
    """
    port = port or free_port()
    log = tmp_path / log_name
    log.write_text("")
    proc = launch(tmp_path, port, log)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()  # noqa: S310
            break
        except OSError:
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
    # The worker is up once it says so.
    while "ready." not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)
    return proc, port, log


def servers_running(data_dir: Path) -> dict[str, bool]:
    stack = servers.Stack(data_dir)
    return {"postgres": stack.postgres_up(), "valkey": stack.valkey_up()}


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(entry.name)
            found |= {child} | descendants(child)
    return found


def running(pid: int) -> bool:
    """Alive, and not a zombie waiting for a parent that is gone to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stops_promptly_and_quietly(
    proc: subprocess.Popen[bytes], port: int, log: Path, signum: int, tmp_path: Path
) -> None:
    """One signal stops web and worker promptly and quietly, then the servers."""
    children = descendants(proc.pid)
    assert len(children) >= 4  # gunicorn + its workers, celery + its pool
    sent = time.monotonic()
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 0
    took = time.monotonic() - sent
    text = log.read_text(errors="replace")
    assert took < 15, f"took {took:.1f} s"
    assert text.count("Warm shutdown") == 1, text[-3000:]
    assert "Segmentation" not in text and "Traceback" not in text, text[-3000:]
    assert "exited with 'signal" not in text, "pool processes must stop, not be killed"
    assert "No directory at" not in text, "WhiteNoise warned about a missing static folder"
    time.sleep(0.5)
    alive = [pid for pid in children if running(pid)]
    assert not alive, f"left running: {alive}"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310
    assert servers_running(tmp_path) == {"postgres": False, "valkey": False}
    assert "PostgreSQL and Valkey stopped" in text


def test_a_term_stops_web_and_worker_promptly_and_quietly_and_the_servers_last(tmp_path: Path) -> None:
    proc, port, log = start(tmp_path)
    stops_promptly_and_quietly(proc, port, log, signal.SIGTERM, tmp_path)


def test_when_one_child_dies_the_other_is_stopped(tmp_path: Path) -> None:
    proc, port, log = start(tmp_path)
    children = descendants(proc.pid)
    web = [pid for pid in children if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(min(web), signal.SIGKILL)  # the gunicorn master: the oldest gunicorn process
    assert proc.wait(timeout=40) != 0
    assert "the web process exited" in log.read_text(errors="replace")
    time.sleep(0.5)
    assert not [pid for pid in children if running(pid)], "its workers and the worker went too"
    with pytest.raises(OSError):  # nothing answers on the port any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310


def test_after_a_kill_9_the_next_start_recovers_and_loses_nothing(tmp_path: Path) -> None:
    proc, port, log = start(tmp_path)
    children = descendants(proc.pid)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from accounts.models import User; "
         "User.objects.create_user(email='kept@example.com', password='a-long-pass-phrase')"],
        cwd=ROOT, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor only: its servers and children are orphaned
    proc.wait()
    assert servers_running(tmp_path) == {"postgres": True, "valkey": True}
    # The port is free again: the old web server was stopped.
    again, _, again_log = start(tmp_path, port, "run-again.log")
    assert not [pid for pid in children if running(pid)], "the killed supervisor's children are stopped"
    # ... cleanly: the orphaned worker made its warm shutdown (into the first start's log, which it holds).
    assert "Warm shutdown" in log.read_text(errors="replace")
    counted = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from accounts.models import User; print(User.objects.filter(email='kept@example.com').count())"],
        cwd=ROOT, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert counted.stdout.strip().splitlines()[-1] == "1", counted.stderr
    # A Ctrl-C stops this second start as cleanly as a first one.
    stops_promptly_and_quietly(again, port, again_log, signal.SIGINT, tmp_path)


def test_a_data_folder_of_another_postgresql_version_is_named_with_its_log(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "PG_VERSION").write_text("16\n")
    done = subprocess.run(
        [sys.executable, "-m", "config.run", "--port", str(free_port())],
        cwd=ROOT, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "holds data of PostgreSQL 16, and Docent runs PostgreSQL 17" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "config.run", "--port", str(port)],
            cwd=ROOT, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr
    assert not (tmp_path / "postgres").exists(), "nothing was started"
