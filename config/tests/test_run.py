"""`make run`'s supervisor (config/run.py): one signal stops web and worker promptly
and quietly, and one child dying takes the other down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config.tests.processes import ROOT, clean_env, manage
from tests.servers import free_port

pytestmark = pytest.mark.worker


def start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    static = {"DOCENT_STATIC_ROOT": str(tmp_path / "static")}
    migrated = manage("migrate", "--noinput", env={}, tmp_path=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    # As `make run` does first, so WhiteNoise finds its folder.
    collected = manage("collectstatic", "--noinput", env=static, tmp_path=tmp_path)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.run", "--port", str(port)],
        cwd=ROOT,
        env=clean_env(tmp_path, DOCENT_STOP_GRACE_S="20", **static),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_stops_web_and_worker_promptly_and_quietly(tmp_path: Path, signum: int) -> None:
    proc, port, log = start(tmp_path)
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


def test_when_one_child_dies_the_other_is_stopped(tmp_path: Path) -> None:
    proc, _port, log = start(tmp_path)
    web = [pid for pid in descendants(proc.pid) if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(min(web), signal.SIGKILL)  # the gunicorn master: the oldest gunicorn process
    assert proc.wait(timeout=40) != 0
    assert "the web process exited" in log.read_text(errors="replace")
