"""Load benchmark: gunicorn on the one stack under wrk, on loopback (a benchmark, not a test).

    .venv/bin/python bench/load.py [--fresh] [--duration 30] [--rounds 3] [--connections 20]
        [--scenarios projects,documents,search] [--workers N] [--web-threads N]
        [--env KEY=VALUE ...] [--limit-docs N] [--label NAME] [--no-write] [--results-dir DIR]
        [--render-only]

The servers are the private PostgreSQL 17 (pgvector, ParadeDB pg_search) and Valkey that
`make run` starts (`config.servers.Stack`), in a data folder of this benchmark's own
(`bench/.data/load/stack`, unix sockets only), started at the beginning and stopped at the
end. The first run imports the SciFact corpus into it through Docent's own
`import_documents --sync`; later runs find the documents there and only measure
(`--fresh` deletes the folder and imports again). Then it starts gunicorn as `make serve`
does (`config.asgi` with config/gunicorn.py's uvicorn workers) on a free loopback port,
gets a JWT from /api/v1/auth/token, warms every worker up (the first search in a worker
loads the query encoder), and drives each scenario with wrk for a bounded time at a fixed
number of connections (closed loop: each connection sends its next request when the
previous answer arrived):

- `projects`:  GET /api/v1/projects/                 (authenticated list)
- `documents`: GET /api/v1/documents/?project=<id>   (first page of 50 of 5,183)
- `search`:    GET /api/v1/projects/<id>/search/?q=<SciFact claim>&k=10
               (hybrid; bench/wrk/load.lua rotates over the 809 training claims)

Server settings are production-like (DOCENT_PRODUCTION on, DEBUG off, a random
64-character SECRET_KEY), but with no HTTPS redirect and no secure cookies, because this
is plain HTTP on loopback. Every knob named DOCENT_RATE_* in config/settings.py is raised
far above the offered load, so the benchmark measures throughput, not the rate limiter.

CPU is measured per request for gunicorn (master and workers), the PostgreSQL cluster
(the postmaster, its backends and background processes, polled so that a backend which
exits mid-run still counts) and Valkey; "web + database" (gunicorn + PostgreSQL) is the
figure issue 22's target reads. Targets: zero errors; search >= 164 req/s (4x the 41 of
2026-12-04) with p95 <= 150 ms and <= 10 ms of web + database CPU a search; the list
endpoints no slower than the 2026-12-04 PostgreSQL + Redis run.

Results: bench/results/load.json and load.md (the analysis section at the end of load.md
is kept on rewrite). The runs from before the one stack (2026-12-04: PostgreSQL 18 +
Redis, and the SQLite embedded default) stay in load.json under `previous` and are shown
beside the new figures. `--label NAME` records a run as a tuning variant next to the main
one instead of replacing it; `--limit-docs N` (a smoke run) imports only the first N
abstracts, into a data folder of its own, and never writes the results.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
LUA_SCRIPT = BENCH_DIR / "wrk" / "load.lua"
DEFAULT_DATA = Path("/work/shared/data/scifact")
# Under bench/.data/ (ignored by git through the .gitignore this script writes there).
DATA_ROOT = BENCH_DIR / ".data"
DEFAULT_SCRATCH = DATA_ROOT / "load"
BENCH_EMAIL = "load-bench@docent.invalid"
PROJECT_TITLE = "SciFact load benchmark"
SCENARIOS = ("projects", "documents", "search")
SETUP = "stack"
# Issue 22. The list endpoints' targets are the previous PostgreSQL + Redis run's req/s.
TARGETS = {"errors": 0, "search_rps": 164.0, "search_p95_ms": 150.0, "search_cpu_ms": 10.0}
PREVIOUS_BASELINE = "production"  # the setup of the previous run the list targets compare with
ANALYSIS_MARKER = "<!-- analysis: everything below this line is kept when bench/load.py rewrites the file -->"
# Variables inherited from the caller's shell that would change what is measured.
INHERITED_DROP = {
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "WEB_CONCURRENCY",
    "GEMINI_API_KEY",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
}
RATE_LIMIT_VALUE = 10_000_000

_children: list[subprocess.Popen[bytes]] = []


def say(message: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else ""


def system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """The root and its direct children (gunicorn master and workers)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[1]) == root:
                pids.append(int(entry.name))
    return pids


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[1]) == parent:
                pids.append(int(entry.name))
    return pids


def pid_from_file(path: Path) -> int | None:
    """The first line of a pid file (PostgreSQL's postmaster.pid, Valkey's valkey.pid)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class ProcessCpu(threading.Thread):
    """CPU ticks of a changing set of processes over a run, polled so that a process which
    exits mid-run (a PostgreSQL backend: Django closes connections older than CONN_MAX_AGE)
    still counts up to its last poll."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.initial = self._poll()
        self.last = dict(self.initial)
        self._stop_event = threading.Event()

    def _poll(self) -> dict[int, int]:
        return {pid: cpu_ticks([pid]) for pid in self.pids()}

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.last.update(self._poll())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.last.update(self._poll())
        return sum(ticks - self.initial.get(pid, 0) for pid, ticks in self.last.items())


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def load_queries(data_dir: Path) -> list[str]:
    with (data_dir / "queries-train.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def corpus_path(data_dir: Path) -> Path:
    for name in ("corpus.jsonl.gz", "corpus.jsonl"):
        if (data_dir / name).exists():
            return data_dir / name
    raise SystemExit(f"no corpus.jsonl[.gz] in {data_dir}")


def corpus_size(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return sum(1 for line in fh if line.strip())


def limited_corpus(path: Path, limit: int, scratch: Path) -> Path:
    """The first `limit` documents of the corpus, in a file of their own (a smoke run)."""
    if not limit:
        return path
    out = scratch / f"corpus-first-{limit}.jsonl"
    if not out.exists():
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
            kept = 0
            for line in src:
                if line.strip() and kept < limit:
                    dst.write(line)
                    kept += 1
    return out


# --------------------------------------------------------------------------
# The servers, and the environment of gunicorn and the management commands
# --------------------------------------------------------------------------


def rate_limit_knobs() -> dict[str, str]:
    """Every DOCENT_RATE_* variable the settings read, set far above the offered load."""
    text = (ROOT / "config" / "settings.py").read_text(encoding="utf-8")
    knobs: dict[str, str] = {}
    for name in sorted(set(re.findall(r"\bDOCENT_RATE_[A-Z0-9_]+\b", text))):
        call = re.search(rf"(env_\w+)\(\s*[\"']{name}[\"']\s*,\s*([^)\n]*)", text)
        helper, default = (call.group(1), call.group(2)) if call else ("", "")
        if helper == "env_bool":
            continue  # an on/off switch: leave it on, raise the numbers instead
        if helper in {"env_int", "env_float"}:
            knobs[name] = str(RATE_LIMIT_VALUE)
        elif "/" in default:  # a django-ratelimit style rate, "60/m"
            knobs[name] = f"{RATE_LIMIT_VALUE}/s"
        else:
            knobs[name] = str(RATE_LIMIT_VALUE)
    return knobs


COMPACT = (
    "import django; django.setup()\n"
    "from documents import services\n"
    "from documents.search import engine\n"
    "engine.mark_written(engine.existing_partitions())\n"
    "print(services.search_indexes_compact())\n"
)


def base_env(args: argparse.Namespace, servers_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_") and k not in INHERITED_DROP}
    env.update(
        {
            "DOCENT_PRODUCTION": "true",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
            "DOCENT_SSL_REDIRECT": "false",
            "DOCENT_SECURE_COOKIES": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DOCENT_LOG_FORMAT": "json",
            "DOCENT_LLM_PROVIDER": "offline",
            # One token serves every scenario.
            "DOCENT_ACCESS_TOKEN_MINUTES": "240",
            "DOCENT_DATA_DIR": str(data_dir),
            "DOCENT_MEDIA_ROOT": str(data_dir / "media"),
            # The encoder's ONNX export, kept between runs (seconds to make).
            "DOCENT_MODEL_DIR": str(args.scratch / "models"),
            "DOCENT_STATIC_ROOT": str(args.scratch / "static"),
            "WEB_CONCURRENCY": str(args.workers),
            "DOCENT_WEB_THREADS": str(args.web_threads),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **servers_env,  # DATABASE_URL, REDIS_URL: the private servers
        }
    )
    env.update(rate_limit_knobs())
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


class Bench:
    """The private servers of the benchmark's data folder, and how to run Docent against them."""

    def __init__(self, args: argparse.Namespace, run_id: str) -> None:
        from config.servers import Stack

        self.args = args
        self.name = SETUP
        name = f"stack-docs{args.limit_docs}" if args.limit_docs else "stack"
        self.data_dir = args.scratch / name
        if args.fresh and self.data_dir.exists():
            Stack(self.data_dir).stop()  # left running by a killed run
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stack = Stack(self.data_dir)
        self.log_dir = args.scratch / "logs" / run_id
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = {}

    def start(self) -> None:
        from config.servers import ServerError

        started = time.monotonic()
        try:
            self.stack.start()
        except ServerError as exc:
            raise SystemExit(f"the private servers did not start: {exc}") from None
        self.env = base_env(self.args, self.stack.environment(), self.data_dir)
        say(f"PostgreSQL and Valkey up for {self.data_dir} in {time.monotonic() - started:.1f} s")

    def stop(self) -> None:
        self.stack.stop()
        say("PostgreSQL and Valkey stopped")

    def database_pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, autovacuum...)."""
        postmaster = pid_from_file(self.stack.pg_data / "postmaster.pid")
        return [postmaster, *children_of(postmaster)] if postmaster else []

    def valkey_pids(self) -> list[int]:
        pid = pid_from_file(self.stack.run_dir / "valkey.pid")
        return [pid] if pid else []

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.stack.environment()["DATABASE_URL"], autocommit=True)

    def valkey(self) -> Any:
        import redis

        return redis.Redis.from_url(self.stack.environment()["REDIS_URL"])

    def manage(
        self, *argv: str, log_name: str, timeout: float = 3600, env: dict[str, str] | None = None
    ) -> str:
        log_path = self.log_dir / f"{log_name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.run(
                [sys.executable, "manage.py", *argv],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=timeout,
                check=False,
            )
            log.write(proc.stdout)
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"manage.py {' '.join(argv)} failed:\n{tail}")
        return proc.stdout.decode(errors="replace")

    def python(self, code: str, *, log_name: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=600,
            check=False,
        )
        (self.log_dir / f"{log_name}.log").write_bytes(proc.stderr)
        if proc.returncode != 0:
            raise SystemExit(f"{log_name} failed:\n{proc.stderr.decode(errors='replace')[-3000:]}")
        return proc.stdout.decode()


def server_facts(bench: Bench) -> dict[str, Any]:
    """Versions and the settings that shape the figures, read from the running servers."""
    out: dict[str, Any] = {}
    try:
        with bench.connect() as conn:
            out["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])
            for ext, ver in conn.execute(
                "SELECT extname, extversion FROM pg_extension WHERE extname IN ('vector', 'pg_search')"
            ).fetchall():
                out[ext] = ver
            out["postgresql_settings"] = {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])
                for name in (
                    "shared_buffers",
                    "work_mem",
                    "max_connections",
                    "max_parallel_workers_per_gather",
                    "autovacuum",
                    "fsync",
                    "synchronous_commit",
                )
            }
    except Exception as exc:  # noqa: BLE001 - informational only
        out["postgresql"] = f"unavailable ({type(exc).__name__})"
    try:
        info = bench.valkey().info("server")
        out["valkey"] = str(info.get("valkey_version") or info.get("redis_version", ""))
    except Exception as exc:  # noqa: BLE001
        out["valkey"] = f"unavailable ({type(exc).__name__})"
    return out


ENSURE_FIXTURE = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from documents.models import Chunk, Document, DocumentStatus
from projects import services
from projects.models import Membership, Project, Role
User = get_user_model()
user = User.objects.filter(email={email!r}).first()
if user is None:
    user = User.objects.create_user({email!r}, {password!r})
else:
    user.set_password({password!r}); user.is_active = True; user.save()
membership = Membership.objects.filter(user=user, role=Role.OWNER, project__title={title!r}).first()
project = membership.project if membership else services.project_create(user=user, title={title!r})
docs = Document.objects.filter(project=project)
# Leftovers of an interrupted import in this scratch database: import them again.
docs.exclude(status=DocumentStatus.READY).delete()
print(json.dumps({{
    "project": str(project.pk),
    "documents": docs.count(),
    "ready": docs.filter(status=DocumentStatus.READY).count(),
    "chunks": Chunk.objects.filter(project_id=project.pk).count(),
}}))
"""


def prepare(
    bench: Bench, args: argparse.Namespace, password: str, corpus: Path, expected: int
) -> dict[str, Any]:
    """Schema, user, project and the imported corpus (imported once, then reused)."""
    info: dict[str, Any] = {}
    started = time.monotonic()
    bench.manage("migrate", "--noinput", log_name="migrate")
    info["migrate_s"] = round(time.monotonic() - started, 1)
    code = ENSURE_FIXTURE.format(email=BENCH_EMAIL, password=password, title=PROJECT_TITLE)
    state = json.loads(bench.python(code, log_name="fixture").strip().splitlines()[-1])
    info["project"] = state["project"]
    if state["ready"] < expected:
        say(f"importing {corpus.name} ({expected - state['ready']} documents to ingest, --sync; minutes)")
        started = time.monotonic()
        out = bench.manage(
            "import_documents",
            "--project",
            state["project"],
            "--sync",
            "--verbosity",
            "1",
            str(corpus),
            log_name="import",
            timeout=7200,
            # One intra-op thread: with other processes on the 2 cores, torch's default
            # (one thread per core, spin-waiting) makes ingest ~10x slower, not faster.
            env={"OMP_NUM_THREADS": str(args.import_torch_threads)},
        )
        elapsed = time.monotonic() - started
        before = state["ready"]
        state = json.loads(bench.python(code, log_name="fixture").strip().splitlines()[-1])
        info["import"] = {
            "seconds": round(elapsed, 1),
            "documents_ingested": state["ready"] - before,
            "docs_per_s": round((state["ready"] - before) / elapsed, 1) if elapsed > 0 else None,
            "summary": [line for line in out.splitlines() if line.strip()][-3:],
        }
        say(f"import done in {elapsed:.0f} s")
    else:
        info["import"] = "reused"
    # Planner statistics and no dead row versions left by the import: the steady state a
    # production database reaches once autovacuum has passed.
    started = time.monotonic()
    with bench.connect() as conn:
        conn.execute("VACUUM (ANALYZE)")
    info["vacuum_analyze_s"] = round(time.monotonic() - started, 1)
    # What the sweeper does once an import has settled: the BM25 index, written document by
    # document, rebuilt into one segment (documents.services.search_indexes_compact).
    started = time.monotonic()
    bench.python(COMPACT, log_name="compact")
    info["compact_s"] = round(time.monotonic() - started, 1)
    with bench.connect() as conn:
        info["database_bytes"] = int(
            conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        )
    info.update({"documents": state["documents"], "ready": state["ready"], "chunks": state["chunks"]})
    if state["ready"] != expected:
        say(f"WARNING: {state['ready']} ready documents, expected {expected}")
    # A cold cache, as after a deploy: nothing cached by an earlier run (Valkey keeps its
    # append-only file between runs).
    bench.valkey().flushdb()
    return info


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, setup: Bench) -> None:
        self.setup = setup
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = setup.log_dir / "gunicorn.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {**self.setup.env, "DOCENT_BIND": f"127.0.0.1:{self.port}"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.asgi",  # what `make serve` runs: uvicorn workers (config/gunicorn.py)
                "--config",
                "config/gunicorn.py",
                "--bind",
                f"127.0.0.1:{self.port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _children.append(self.proc)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=2).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        # Wait until every worker has booted.
        workers = int(self.setup.env["WEB_CONCURRENCY"])
        deadline = time.monotonic() + 60
        while len(self.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        say(f"gunicorn pid {self.proc.pid} on {self.base}, workers {self.worker_pids()}")
        return self

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)[1:]

    def pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)

    def log_count(self, needle: str) -> int:
        return self.log_path.read_text(errors="replace").count(needle)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc in _children:
            _children.remove(self.proc)


def call(method: str, url: str, *, token: str = "", body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


def scenario_paths(name: str, project: str, queries: list[str]) -> list[str]:
    if name == "projects":
        return ["/api/v1/projects/"]
    if name == "documents":
        return [f"/api/v1/documents/?project={project}"]
    return [f"/api/v1/projects/{project}/search/?q={urllib.parse.quote_plus(q)}&k=10" for q in queries]


def check_scenario(name: str, server: Server, token: str, paths: list[str], expected_docs: int) -> None:
    """One request by hand, so a broken scenario fails loudly instead of timing 4xx answers."""
    status, body = call("GET", server.base + paths[0], token=token)
    if status != 200:
        raise SystemExit(f"{name}: {paths[0]} answered {status}: {str(body)[:500]}")
    if name == "projects" and not body.get("results"):
        raise SystemExit(f"projects: empty list: {body}")
    if name == "documents" and body.get("count") != expected_docs:
        say(f"WARNING documents: count {body.get('count')} != {expected_docs}")
    if name == "search" and len(body.get("results", [])) != 10:
        raise SystemExit(f"search: expected 10 hits, got {len(body.get('results', []))}")


def warm_up(
    server: Server, token: str, search_paths: list[str], workers: int, threads: int
) -> dict[str, Any]:
    """Waves of concurrent searches until every worker has loaded the encoder and answers fast.

    The first search in a worker loads the query encoder (seconds); the index lives in the
    database. The warm-up ends when each worker logged its encoder and two waves in a row
    finished within 3 s.
    """
    started = time.monotonic()
    # Above INFO the server logs no "loading embedding model": rely on the timing alone.
    logs_info = server.setup.env.get("DOCENT_LOG_LEVEL", "INFO") in {"DEBUG", "INFO"}
    width = max(4, 2 * workers * threads)
    sent = 0
    failures = 0
    fast_waves = 0

    def one(i: int) -> int:
        status, _ = call("GET", server.base + search_paths[i % len(search_paths)], token=token, timeout=180)
        return status

    with ThreadPoolExecutor(max_workers=width) as pool:
        while time.monotonic() - started < 300:
            wave_started = time.monotonic()
            statuses = list(pool.map(one, range(sent, sent + width)))
            sent += width
            failures += sum(1 for s in statuses if s != 200)
            fast_waves = fast_waves + 1 if time.monotonic() - wave_started < 3 else 0
            loaded = server.log_count("loading embedding model") >= workers or not logs_info
            if loaded and fast_waves >= 2:
                break
    info = {
        "seconds": round(time.monotonic() - started, 1),
        "requests": sent,
        "non200": failures,
        "models_loaded": server.log_count("loading embedding model"),
    }
    say(f"warm-up: {info}")
    if info["models_loaded"] < workers and logs_info:
        say("WARNING: not every worker loaded the encoder during warm-up")
    return info


def run_wrk(
    server: Server,
    bench: Bench,
    token: str,
    paths: list[str],
    *,
    duration: float,
    connections: int,
    threads: int,
    scratch: Path,
    tag: str,
) -> dict[str, Any]:
    paths_file = scratch / f"paths-{tag}.txt"
    result_file = scratch / f"wrk-{tag}.json"
    paths_file.write_text("\n".join(paths) + "\n", encoding="utf-8")
    result_file.unlink(missing_ok=True)
    env = {**os.environ, "DOCENT_WRK_PATHS": str(paths_file), "DOCENT_WRK_RESULT": str(result_file)}
    cmd = [
        "wrk",
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "5s",
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        "Accept: application/json",
        "-s",
        str(LUA_SCRIPT),
        server.base + paths[0],
    ]
    server_pids = server.pids()
    meters = {
        "server": ProcessCpu(lambda: server_pids),
        "db": ProcessCpu(bench.database_pids),
        "valkey": ProcessCpu(bench.valkey_pids),
    }
    for meter in meters.values():
        meter.start()
    load_before = os.getloadavg()
    sys_before = system_cpu()
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall_started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 120, check=False)
    wall = time.monotonic() - wall_started
    child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys_after = system_cpu()
    ticks = {name: max(0, meter.stop()) for name, meter in meters.items()}
    if proc.returncode != 0 or not result_file.exists():
        raise SystemExit(f"wrk failed ({proc.returncode}): {proc.stderr[-2000:]} {proc.stdout[-2000:]}")
    raw = json.loads(result_file.read_text(encoding="utf-8"))
    tick = os.sysconf("SC_CLK_TCK")
    seconds = raw["duration_us"] / 1e6
    requests = int(raw["requests"])
    errs = raw["errors"]
    socket_errors = int(errs["connect"]) + int(errs["read"]) + int(errs["write"]) + int(errs["timeout"])
    pct = raw["latency_us"]["percentiles"]
    cpu_s = {name: value / tick for name, value in ticks.items()}
    wrk_cpu_s = (child_after.ru_utime + child_after.ru_stime) - (
        child_before.ru_utime + child_before.ru_stime
    )
    busy_s = (sys_after[0] - sys_before[0]) / tick
    ms = 1 / 1000

    def per_request(value: float) -> float | None:
        return round(value * 1000 / requests, 2) if requests else None

    return {
        "connections": connections,
        "wrk_threads": min(threads, connections),
        "duration_s": round(seconds, 2),
        "requests": requests,
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "latency_ms": {
            "p50": round(pct["50"] * ms, 1),
            "p75": round(pct["75"] * ms, 1),
            "p90": round(pct["90"] * ms, 1),
            "p95": round(pct["95"] * ms, 1),
            "p99": round(pct["99"] * ms, 1),
            "max": round(raw["latency_us"]["max"] * ms, 1),
            "mean": round(raw["latency_us"]["mean"] * ms, 1),
        },
        "errors": {
            "total": int(raw["non2xx"]) + socket_errors,
            "non2xx": int(raw["non2xx"]),
            "connect": int(errs["connect"]),
            "read": int(errs["read"]),
            "write": int(errs["write"]),
            "timeout": int(errs["timeout"]),
        },
        "statuses": raw.get("statuses", {}),
        "distinct_paths": len(paths),
        "cpu": {
            "server_cores": round(cpu_s["server"] / wall, 2),
            "server_ms_per_request": per_request(cpu_s["server"]),
            "db_cores": round(cpu_s["db"] / wall, 2),
            "db_ms_per_request": per_request(cpu_s["db"]),
            "valkey_cores": round(cpu_s["valkey"] / wall, 2),
            "valkey_ms_per_request": per_request(cpu_s["valkey"]),
            "web_db_ms_per_request": per_request(cpu_s["server"] + cpu_s["db"]),
            "wrk_cores": round(wrk_cpu_s / wall, 2),
            "other_cores": round(max(0.0, busy_s - sum(cpu_s.values()) - wrk_cpu_s) / wall, 2),
        },
        "loadavg_before": [round(x, 2) for x in load_before],
    }


def summarise(name: str, result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    cpu = result["cpu"]
    return (
        f"{name:9s} {result['rps']:8.1f} req/s  p50 {lat['p50']:6.1f}  p95 {lat['p95']:6.1f}  "
        f"p99 {lat['p99']:6.1f} ms  errors {result['errors']['total']}  "
        f"cpu-ms/req web {cpu['server_ms_per_request']} db {cpu['db_ms_per_request']} "
        f"valkey {cpu['valkey_ms_per_request']} (web+db {cpu['web_db_ms_per_request']}); "
        f"cores: web {cpu['server_cores']} db {cpu['db_cores']} valkey {cpu['valkey_cores']} "
        f"wrk {cpu['wrk_cores']} others {cpu['other_cores']}"
    )


def bench_stack(
    bench: Bench, args: argparse.Namespace, *, password: str, corpus: Path, expected: int, queries: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"setup": SETUP}
    out["data"] = prepare(bench, args, password, corpus, expected)
    project = out["data"]["project"]
    with Server(bench) as server:
        status, body = call(
            "POST", f"{server.base}/api/v1/auth/token", body={"email": BENCH_EMAIL, "password": password}
        )
        if status != 200:
            raise SystemExit(f"token: {status} {body}")
        token = body["access"]
        paths = {name: scenario_paths(name, project, queries) for name in SCENARIOS}
        for name in args.scenarios:
            check_scenario(name, server, token, paths[name], expected)
        out["warm_up"] = warm_up(server, token, paths["search"], args.workers, args.web_threads)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.scenarios}
        # Rounds interleave the scenarios, so a slow spell of a shared (virtual) machine
        # lands on every scenario alike; each scenario reports its median round.
        for round_no in range(1, args.rounds + 1):
            for name in args.scenarios:
                common = {
                    "connections": args.connections,
                    "threads": args.wrk_threads,
                    "scratch": bench.log_dir,
                }
                if args.warmup > 0:
                    run_wrk(
                        server, bench, token, paths[name], duration=args.warmup, tag=f"{name}-warm", **common
                    )
                time.sleep(args.pause)
                result = run_wrk(
                    server, bench, token, paths[name], duration=args.duration, tag=name, **common
                )
                rounds[name].append(result)
                say(f"round {round_no}: {summarise(name, result)}")
                time.sleep(args.pause)
        out["scenarios"] = {name: median_round(runs) for name, runs in rounds.items()}
        out["worker_rss_mib"] = [rss_mib(pid) for pid in server.worker_pids()]
        out["server_errors_logged"] = server.log_count('"level": "ERROR"')
    return out


def median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput, carrying every round's req/s, p95 and errors."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds"] = [
        {"rps": r["rps"], "p95_ms": r["latency_ms"]["p95"], "errors": r["errors"]["total"]} for r in runs
    ]
    # Errors count in every round, not only the median one.
    chosen["errors_all_rounds"] = sum(r["errors"]["total"] for r in runs)
    return chosen


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def load_results(results_dir: Path) -> dict[str, Any]:
    path = results_dir / "load.json"
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return {}
        return keep_previous(doc)
    return {}


def keep_previous(doc: dict[str, Any]) -> dict[str, Any]:
    """A main run from before the one stack (its setups `production` and `embedded`) moves to
    `previous`, where it stays, shown beside the new figures."""
    main = doc.get("main")
    if main and SETUP not in main.get("setups", {}):
        main.setdefault(
            "label", "before the one stack: PostgreSQL 18 + pgvector + Redis, and the SQLite embedded default"
        )
        doc["previous"] = [*doc.get("previous", []), main]
        del doc["main"]
    return doc


PREVIOUS_NAMES = {"production": "PostgreSQL + Redis", "embedded": "SQLite (embedded)"}


def previous_rps(doc: dict[str, Any], scenario: str) -> dict[str, float]:
    """req/s of a scenario in the latest run from before the one stack, by setup."""
    runs = doc.get("previous") or []
    if not runs:
        return {}
    setups = runs[-1].get("setups", {})
    return {
        name: s["scenarios"][scenario]["rps"]
        for name, s in setups.items()
        if scenario in s.get("scenarios", {})
    }


def verdict(scenario: str, result: dict[str, Any], doc: dict[str, Any]) -> str:
    misses = []
    if result.get("errors_all_rounds", result["errors"]["total"]) > TARGETS["errors"]:
        misses.append("errors")
    cpu = result["cpu"]
    if scenario == "search":
        if result["rps"] < TARGETS["search_rps"]:
            misses.append(f"req/s < {TARGETS['search_rps']:g}")
        if result["latency_ms"]["p95"] > TARGETS["search_p95_ms"]:
            misses.append(f"p95 > {TARGETS['search_p95_ms']:g} ms")
        web_db = cpu.get("web_db_ms_per_request")
        if web_db is None or web_db > TARGETS["search_cpu_ms"]:
            misses.append(f"CPU > {TARGETS['search_cpu_ms']:g} ms")
    else:
        before = previous_rps(doc, scenario).get(PREVIOUS_BASELINE)
        if before is not None and result["rps"] < before:
            misses.append(f"req/s < {before:g} before")
    return "met" if not misses else "**missed**: " + ", ".join(misses)


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value}"


def scenario_rows(
    run: dict[str, Any], doc: dict[str, Any], *, label: str = "", targets: bool = True
) -> list[str]:
    rows = []
    for setup_name, setup in run["setups"].items():
        for name, r in setup["scenarios"].items():
            lat, cpu = r["latency_ms"], r["cpu"]
            web_db = cpu.get("web_db_ms_per_request")
            if web_db is None and cpu.get("server_ms_per_request") is not None:
                web_db = round(cpu["server_ms_per_request"] + (cpu.get("db_ms_per_request") or 0), 2)
            cells = [label] if label else []
            cells += [
                PREVIOUS_NAMES.get(setup_name, setup_name),
                name,
                f"{r['rps']:.1f}",
                rounds_text(r),
                f"{lat['p50']:.1f}",
                f"{lat['p95']:.1f}",
                f"{lat['p99']:.1f}",
                str(r.get("errors_all_rounds", r["errors"]["total"])),
                f"{_ms(cpu.get('server_ms_per_request'))} / {_ms(cpu.get('db_ms_per_request') or 0)} / "
                f"{_ms(cpu.get('valkey_ms_per_request'))}",
                _ms(web_db),
                f"{cpu['server_cores']} / {cpu.get('db_cores', 0)} / {_ms(cpu.get('valkey_cores'))} / "
                f"{cpu['wrk_cores']} / {cpu['other_cores']}",
                f"{r['loadavg_before'][0]:.2f}",
            ]
            if targets:
                cells.append(verdict(name, r, doc))
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def rounds_text(r: dict[str, Any]) -> str:
    runs = r.get("rounds") or []
    if len(runs) < 2:
        return "-"
    return (
        " / ".join(f"{x['rps']:.0f}" for x in runs)
        + " (p95 "
        + " / ".join(f"{x['p95_ms']:.0f}" for x in runs)
        + ")"
    )


HEADER = (
    "| setup | scenario | req/s | every round: req/s (p95 ms) | p50 ms | p95 ms | p99 ms | errors "
    "| CPU ms/req: web / PostgreSQL / Valkey | web + database ms/req "
    "| cores: web / PostgreSQL / Valkey / wrk / others | load avg (1 min) before"
)
ALIGN = "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---:"


def versions_text(m: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v and not isinstance(v, dict))


def render_markdown(doc: dict[str, Any], analysis: str) -> str:
    lines = ["# Load benchmark", ""]
    lines += [
        "Written by `bench/load.py` (run it again to refresh the numbers; the analysis at the end is kept).",
        "Closed-loop load from wrk on loopback: each connection sends its next request as soon as the",
        "previous answer arrives. Errors = non-2xx answers + socket errors (connect, read, write, timeout",
        "after 5 s). CPU columns: CPU time per request of gunicorn (master + workers), of the PostgreSQL",
        "cluster (postmaster, backends, background processes) and of Valkey, and the cores used during",
        "the run by each of them, wrk, and everything else on the machine (other people's work).",
        f"Targets (issue 22): zero errors; search >= {TARGETS['search_rps']:g} req/s (4x 41) with p95 <= "
        f"{TARGETS['search_p95_ms']:g} ms and <= {TARGETS['search_cpu_ms']:g} ms of web + database CPU a "
        "search; list endpoints no slower than the previous PostgreSQL + Redis run; at 20 connections.",
        "",
    ]
    main = doc.get("main")
    if main:
        m, c = main["machine"], main["config"]
        s = main["setups"][SETUP]
        pg = m.get("postgresql_settings") or {}
        lines += [
            "## Main run: the one stack",
            "",
            f"- date: {main['date']}",
            f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, "
            f"{m['kernel']}; load average before the run {m['loadavg_at_start']}",
            "- servers: the private PostgreSQL and Valkey of `make run` (config/servers.py), unix sockets; "
            + ", ".join(f"{k} {v}" for k, v in pg.items()),
            f"- gunicorn: {c['workers']} workers x {c['web_threads']} threads "
            "(uvicorn workers serving config.asgi, sync views in the thread pool), "
            f"config/gunicorn.py; wrk: {c['wrk_threads']} threads, {c['connections']} connections, "
            f"{c['duration_s']:g} s per scenario after {c['warmup_s']:g} s of warm-up load, "
            f"{c.get('rounds', 1)} interleaved rounds; the table shows the median round by req/s "
            "(errors: all rounds)",
            f"- software: {versions_text(m)}",
            f"- extra environment: {c['extra_env'] or 'none'}",
            "- rate limits: "
            + (
                f"every DOCENT_RATE_* knob ({len(c['rate_limit_knobs'].split())}) raised to "
                f"{RATE_LIMIT_VALUE:,} per hour, far above the offered load, so the runs measure throughput"
                if c["rate_limit_knobs"]
                else "no DOCENT_RATE_* knob in config/settings.py"
            ),
            f"- data: SciFact, {main['corpus_documents']} abstracts imported with "
            "`import_documents --sync`; search rotates over the "
            f"{main['queries']} training claims, k=10, hybrid",
            "",
            HEADER + " | target |",
            ALIGN + " | --- |",
            *scenario_rows(main, doc),
            "",
        ]
        data = s["data"]
        imp = data["import"]
        imp_text = (
            f"import {imp['seconds']} s ({imp['docs_per_s']} docs/s)"
            if isinstance(imp, dict)
            else "import reused"
        )
        lines.append(
            f"- {data['ready']} ready documents, {data['chunks']} chunks; {imp_text}; database "
            f"{data.get('database_bytes', 0) / 1024 / 1024:,.0f} MB; warm-up {s['warm_up']['seconds']} s; "
            f"worker RSS {s['worker_rss_mib']} MiB; ERROR lines in the server log: {s['server_errors_logged']}"
        )
        lines += ["", "Beside the runs before the one stack (req/s of the median round):", ""]
        lines += [
            "| scenario | now | PostgreSQL + Redis | SQLite (embedded) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, r in s["scenarios"].items():
            before = previous_rps(doc, name)
            lines.append(
                f"| {name} | {r['rps']:.1f} | {_ms(before.get('production'))} | {_ms(before.get('embedded'))} |"
            )
        lines.append("")
    sweep = doc.get("sweep") or []
    if sweep:
        lines += [
            "## Tuning variants",
            "",
            "Each variant is one `bench/load.py --label NAME` run; what it changed is in its row's label",
            "and in load.json (`sweep[].config`).",
            "",
            "| variant " + HEADER + " | target |",
            "| --- " + ALIGN + " | --- |",
        ]
        for run in sorted(sweep, key=lambda r: r["label"]):
            c = run["config"]
            lines += scenario_rows(run, doc, label=f"{run['label']} ({c['workers']}w x {c['web_threads']}t)")
        lines += ["", "Variant settings (server environment on top of the main run's; date of the run):", ""]
        for run in sorted(sweep, key=lambda r: r["label"]):
            lines.append(f"- {run['label']}: {run['config']['extra_env'] or 'nothing'} ({run['date'][:16]})")
        lines.append("")
    for run in reversed(doc.get("previous") or []):
        m, c = run["machine"], run["config"]
        lines += [
            f"## Previous run ({run['date'][:10]}): {run.get('label', '')}",
            "",
            f"Kept for comparison. {c['workers']} workers x {c['web_threads']} threads, {c['connections']} "
            f"connections, {c['duration_s']:g} s x {c.get('rounds', 1)} rounds; {versions_text(m)}; "
            f"load average before the run {m['loadavg_at_start']}. Its targets were search p95 < 150 ms "
            "and lists >= 300 req/s.",
            "",
            HEADER + " |",
            ALIGN + " |",
            *scenario_rows(run, doc, targets=False),
            "",
        ]
        for name, setup in run["setups"].items():
            data = setup["data"]
            lines.append(
                f"- {PREVIOUS_NAMES.get(name, name)}: {data['ready']} ready documents, {data['chunks']} chunks; "
                f"worker RSS {setup['worker_rss_mib']} MiB"
            )
        lines.append("")
    lines += [ANALYSIS_MARKER, "", analysis.strip() or "## Analysis\n\n(to be written)", ""]
    return "\n".join(lines)


def write_results(run: dict[str, Any], label: str, results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    doc = load_results(results_dir)
    if label:
        run["label"] = label
        doc["sweep"] = [r for r in doc.get("sweep", []) if r.get("label") != label] + [run]
    else:
        doc["main"] = run
    doc["targets"] = TARGETS
    (results_dir / "load.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    write_markdown(doc, results_dir)


def write_markdown(doc: dict[str, Any], results_dir: Path) -> None:
    md = results_dir / "load.md"
    analysis = ""
    if md.exists():
        text = md.read_text(encoding="utf-8")
        if ANALYSIS_MARKER in text:
            analysis = text.split(ANALYSIS_MARKER, 1)[1]
    md.write_text(render_markdown(doc, analysis), encoding="utf-8")
    say(f"wrote {results_dir / 'load.json'} and {md}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated: projects, documents, search"
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds of measured load per scenario")
    p.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of unmeasured load before each scenario"
    )
    p.add_argument("--pause", type=float, default=2.0, help="seconds of quiet between runs")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of every scenario; the median round is reported",
    )
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    # config/asgi.py's default: the threads each worker serves ordinary requests on.
    p.add_argument("--web-threads", type=int, default=int(os.environ.get("DOCENT_WEB_THREADS", "2")))
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra server environment")
    p.add_argument(
        "--import-torch-threads", type=int, default=1, help="OMP_NUM_THREADS of the import (not the server)"
    )
    p.add_argument("--fresh", action="store_true", help="delete the data folder and import again")
    p.add_argument(
        "--limit-docs",
        type=int,
        default=0,
        help="import only the first N abstracts (a smoke run; never written)",
    )
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="data folder, logs, wrk files")
    p.add_argument("--label", default="", help="record as a tuning variant with this name")
    p.add_argument("--no-write", action="store_true", help="print only; leave the results alone")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where load.json and load.md are")
    p.add_argument(
        "--render-only", action="store_true", help="rewrite load.md from load.json (no benchmark), then exit"
    )
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    for item in args.env:
        if "=" not in item:
            p.error(f"--env needs KEY=VALUE, got {item!r}")
    args.scratch = args.scratch.resolve()
    return args


def _stop_children(*_: object) -> None:
    for proc in list(_children):
        if proc.poll() is None:
            proc.terminate()
    sys.exit(130)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        write_markdown(load_results(args.results_dir), args.results_dir)
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    (DATA_ROOT / ".gitignore").write_text("*\n")
    args.scratch.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop_children)

    run_id = f"{datetime.now(UTC).strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    corpus = limited_corpus(corpus_path(args.data_dir), args.limit_docs, args.scratch)
    expected = corpus_size(corpus)
    queries = load_queries(args.data_dir)
    password = secrets.token_urlsafe(18)
    bench = Bench(args, run_id)
    bench.start()
    try:
        facts = server_facts(bench)
        versions = {
            "django": package_version("django"),
            "gunicorn": package_version("gunicorn"),
            "uvicorn": package_version("uvicorn"),
            "onnxruntime": package_version("onnxruntime"),
            "psycopg": package_version("psycopg"),
            "wrk": wrk_version().replace("wrk ", "").split(" ")[0],
            **{k: v for k, v in facts.items() if k != "postgresql_settings"},
        }
        run: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cores": os.cpu_count(),
                "cpu": cpu_model(),
                "memory_gib": memory_gib(),
                "python": platform.python_version(),
                "kernel": f"{platform.system()} {platform.release()}",
                "versions": versions,
                "postgresql_settings": facts.get("postgresql_settings", {}),
                "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            },
            "config": {
                "workers": args.workers,
                "web_threads": args.web_threads,
                "connections": args.connections,
                "wrk_threads": args.wrk_threads,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "extra_env": " ".join(args.env),
                "rate_limit_knobs": " ".join(f"{k}={v}" for k, v in rate_limit_knobs().items()),
                "data_folder": str(bench.data_dir),
                "limit_docs": args.limit_docs,
            },
            "corpus_documents": expected,
            "queries": len(queries),
            "setups": {},
        }
        say(f"run {run_id}: {args.workers} workers x {args.web_threads} threads, load {os.getloadavg()}")
        # Hashed static files, as `make serve` does (production mode serves them from the manifest).
        if not (args.scratch / "static" / "staticfiles.json").exists():
            bench.manage("collectstatic", "--noinput", log_name="collectstatic")
        run["setups"][SETUP] = bench_stack(
            bench, args, password=password, corpus=corpus, expected=expected, queries=queries
        )
    finally:
        for proc in list(_children):
            if proc.poll() is None:
                proc.terminate()
        bench.stop()

    run["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(run, indent=2))
    if args.limit_docs and not args.no_write and args.results_dir == RESULTS_DIR:
        say(
            "a --limit-docs run is a smoke run: bench/results left alone (use --results-dir to write elsewhere)"
        )
    elif not args.no_write:
        write_results(run, args.label, args.results_dir)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
