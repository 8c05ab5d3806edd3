"""`make run`: the web server and a Celery worker (with its beat), stopped together.

Both children run in their own process groups, so a Ctrl-C reaches only this
supervisor, which passes one TERM to each: gunicorn stops gracefully, and the
worker makes a warm shutdown (it finishes the job in hand; a job it had not
started stays on the broker, so no acknowledged work is lost). A second Ctrl-C,
or a child that outlives the grace period, is stopped with SIGKILL. When either
child exits on its own, the other is stopped too.

    python -m config.run [--port 8000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# How long the worker may take to finish the job in hand before it is killed.
GRACE_S = float(os.environ.get("DOCENT_STOP_GRACE_S", "30"))


def commands(port: int) -> dict[str, list[str]]:
    return {
        "worker": [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--beat",
            "--schedule",
            str(Path(os.environ.get("DOCENT_DATA_DIR", ROOT / "var")) / "celerybeat-schedule"),
            "-Q",
            "ingest,agents,default",
            "--concurrency",
            os.environ.get("DOCENT_WORKER_CONCURRENCY", "2"),
            "--loglevel",
            "INFO",
        ],
        "web": [
            str(BIN / "gunicorn"),
            "config.asgi",
            "--config",
            "config/gunicorn.py",
            "--bind",
            f"127.0.0.1:{port}",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping: list[float] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping:  # a second Ctrl-C: do not wait any longer
            for child in children.values():
                _signal(child, signal.SIGKILL)
            return
        stopping.append(time.monotonic())
        for child in children.values():
            # The main process only: it stops its own pool (a TERM to the whole group
            # would kill the worker's pool processes mid-job).
            try:
                child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, command in commands(args.port).items():
        children[name] = subprocess.Popen(command, cwd=ROOT, start_new_session=True)

    status = 0
    while children:
        for name, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            del children[name]
            if not stopping:  # one child died on its own: stop the other too
                print(f"docent: the {name} process exited ({code}); stopping", file=sys.stderr)
                status = code or 1
                stop(signal.SIGTERM, None)
        if stopping and time.monotonic() - stopping[0] > GRACE_S:
            for child in children.values():
                _signal(child, signal.SIGKILL)
        time.sleep(0.1)
    return status


def _signal(child: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
