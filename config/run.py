"""`make run`: the private servers, then the web server and a Celery worker (with its beat).

In order: the private PostgreSQL and Valkey (config/servers.py) unless DATABASE_URL names
an external database, then `migrate` and `collectstatic`, then the web server (gunicorn
with uvicorn workers) and the worker. It stops them in the reverse order, the servers
last and cleanly, on Ctrl-C, TERM, or the exit of any child.

The web server and the worker run in process groups of their own, so a Ctrl-C reaches
only this supervisor, which passes one TERM to each: gunicorn stops gracefully, and the
worker makes a warm shutdown (it finishes the job in hand; a job it had not started stays
on the broker, whose append-only file survives the restart). A second Ctrl-C, or a child
that outlives the grace period, is stopped with SIGKILL.

Started again after a kill -9 of this supervisor, it finds the servers still running and
reuses them (PostgreSQL and Valkey each check their own pid file); web and worker
processes left behind are stopped first (their pids are in `<data>/run/children`).

It reads `.env` (core/envfile.py) like every other entry point, and on its first start,
when there is none, writes one with the data folder it chose (an absolute path), so
`manage.py createsuperuser` and other commands use the same folder and servers. A data
folder given in the environment is the operator's to pass on; it is not written.

Started by root (a container, a CI machine), the web server and worker run as root too
(PostgreSQL and Valkey run as the unprivileged `docent` account, config/servers.py); it
says so once, and tells Celery it knows (config/celery.py), instead of Celery's warning.

    python -m config.run [--port 8000]
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from config import servers
from core import envfile

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def grace_s() -> float:
    """How long the worker may take to finish the job in hand before it is killed (read after `.env`)."""
    return float(os.environ.get("DOCENT_STOP_GRACE_S", "30"))


def commands(port: int, data_dir: Path) -> dict[str, list[str]]:
    return {
        "worker": [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--beat",
            "--schedule",
            str(data_dir / "celerybeat-schedule"),
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


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def fresh_metrics_dir(data_dir: Path) -> Path:
    """The folder this start's web and worker processes write their metrics to, emptied.

    prometheus_client's multiprocess mode (core/metrics.py) keeps one file per process
    there and /metrics adds them up; the files of an earlier start are stale (their
    processes are gone), so every start begins from zero. PROMETHEUS_MULTIPROC_DIR given in
    the environment is used instead (only its metric files are removed).
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(given) if given else data_dir / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path.resolve()


def _children_file(data_dir: Path) -> Path:
    return data_dir / "run" / "children"


def _is_ours(pid: int) -> bool:
    """Whether the pid is still a Docent web server or worker (a pid may have been reused)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"config.asgi" in command or b"celery" in command


def stop_leftovers(data_dir: Path) -> None:
    """Stop web and worker processes a killed supervisor left running (their process groups)."""
    path = _children_file(data_dir)
    try:
        pids = [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return
    pids = [pid for pid in pids if _is_ours(pid)]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + grace_s()
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    data_dir_given = bool(os.environ.get("DOCENT_DATA_DIR"))
    env_file_existed = envfile.env_file_path().is_file()
    envfile.load_env_file()
    data_dir = servers.data_dir_from_env().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not env_file_existed:
        remember_settings(data_dir, data_dir_given=data_dir_given)
    stop_leftovers(data_dir)
    if port_taken(args.port):
        print(
            f"docent: port {args.port} on 127.0.0.1 is taken (another Docent, or another server); "
            "stop it or start with PORT=<another port>",
            file=sys.stderr,
        )
        return 1

    stack = None
    env = dict(os.environ)
    env["DOCENT_DATA_DIR"] = str(data_dir)
    # After stop_leftovers: no process of an earlier start writes there any more.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir(data_dir))
    if os.geteuid() == 0:
        env["DOCENT_WORKER_ROOT_OK"] = "1"
        print(
            "docent: started as root, so the web server and worker run as root (PostgreSQL and Valkey "
            "run as the `docent` account); start `make run` as an ordinary user on a shared machine",
            file=sys.stderr,
        )
    if not env.get("DATABASE_URL"):
        stack = servers.Stack(data_dir)
        try:
            stack.start()
        except servers.ServerError as exc:
            print(f"docent: {exc}", file=sys.stderr)
            return 1
        env.update({k: v for k, v in stack.environment().items() if not env.get(k)})
        print(
            f"docent: PostgreSQL and Valkey are running for {data_dir} (logs in {stack.logs})",
            file=sys.stderr,
        )
    try:
        return _serve(args.port, data_dir, env)
    finally:
        if stack is not None:
            stack.stop()
            print("docent: PostgreSQL and Valkey stopped", file=sys.stderr)


def remember_settings(data_dir: Path, *, data_dir_given: bool) -> None:
    """On the first start, write `.env` with the data folder chosen here (never overwriting)."""
    path = envfile.env_file_path()
    if data_dir_given:
        print(
            f"docent: DOCENT_DATA_DIR comes from the environment ({data_dir}); give it to manage.py "
            f"commands too, or put it in {path}",
            file=sys.stderr,
        )
        return
    try:
        written = envfile.write_env_file(
            {"DOCENT_DATA_DIR": str(data_dir)},
            path,
            notes=(
                "The secret key that signs sessions and tokens is kept in DOCENT_DATA_DIR/secret_key, so "
                "every process that reads this file uses it too; set SECRET_KEY here to use another "
                "(every session and token then ends).",
            ),
        )
    except OSError as exc:
        print(
            f"docent: could not write {path} ({exc.strerror}); manage.py uses {data_dir} anyway",
            file=sys.stderr,
        )
        return
    if written:
        print(
            f"docent: wrote {path} (DOCENT_DATA_DIR={data_dir}): manage.py commands, such as "
            "createsuperuser, use the same data folder and servers",
            file=sys.stderr,
        )


def _prepare(env: dict[str, str]) -> int:
    """migrate and collectstatic, with the servers up; a failure stops the start."""
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput", "--verbosity", "0"]):
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=False)
        if done.returncode != 0:
            print(f"docent: `manage.py {' '.join(command)}` failed ({done.returncode})", file=sys.stderr)
            return done.returncode
    return 0


def _serve(port: int, data_dir: Path, env: dict[str, str]) -> int:
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
    status = _prepare(env)
    if status or stopping:
        return status or 1
    print(f"Docent on http://127.0.0.1:{port}/  (Ctrl-C stops everything)", file=sys.stderr)
    for name, command in commands(port, data_dir).items():
        children[name] = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    _children_file(data_dir).parent.mkdir(parents=True, exist_ok=True)
    _children_file(data_dir).write_text("".join(f"{child.pid}\n" for child in children.values()))

    while children:
        for name, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            del children[name]
            # What the child started (gunicorn's workers, if its master was killed) goes with it.
            _signal(child, signal.SIGKILL)
            if not stopping:  # one child died on its own: stop the others too
                print(f"docent: the {name} process exited ({code}); stopping", file=sys.stderr)
                status = code or 1
                stop(signal.SIGTERM, None)
        if stopping and time.monotonic() - stopping[0] > grace_s():
            for child in children.values():
                _signal(child, signal.SIGKILL)
        time.sleep(0.1)
    _children_file(data_dir).unlink(missing_ok=True)
    return status


def _signal(child: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
