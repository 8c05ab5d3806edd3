"""Ingest throughput end to end: SciFact through the real worker, on both stacks.

    python bench/ingest.py [--stack embedded|production|both] [--limit N]   (make bench-ingest)

embedded: `python -m config.run` (what `make run` starts: gunicorn web and a Celery worker
with beat, on SQLite and the filesystem broker) in a fresh data folder.
production: PostgreSQL 18 + pgvector (tests/pgvector_server.py, a fresh database), Redis
as broker and cache, the worker command of `make worker-ingest` and the web command of
`make serve`.

Each run imports the corpus with `manage.py import_documents` and is timed from the
command's start until every document is ready (the command waits for that). After it:
the resident memory of every worker process, and of each web worker with whether it
has ONNX Runtime mapped (the encoder loads there only when someone searches).
Results go to bench/results/ingest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CORPUS = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
RESULTS_JSON = BENCH_DIR / "results" / "ingest.json"
RESULTS_MD = BENCH_DIR / "results" / "ingest.md"
TARGETS = {"docs_per_s": 30.0, "worker_rss_mb": 600.0}
BIN = Path(sys.executable).parent
# The one-time ONNX export (which loads PyTorch) is kept out of the timed runs.
MODEL_DIR = ROOT / "var" / "models"

sys.path.insert(0, str(BENCH_DIR))
from load import cpu_model, free_port, memory_gib  # noqa: E402
from streams import environment, say, start_web  # noqa: E402


def prepare(env: dict[str, str]) -> str:
    """Migrate, export the ONNX model once (as a first start does), and create an owner with
    one empty project; returns the project id."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    code = """
import django
django.setup()
from documents import embedder
embedder.ensure_onnx_export()
from accounts.models import User
from projects.services import project_create
user = User.objects.create_user(email="ingest@docent.invalid", password="bench-password-123")
print(project_create(user=user, title="SciFact").pk)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def limited_corpus(limit: int, folder: Path) -> Path:
    if not limit:
        return CORPUS
    import gzip

    path = folder / f"corpus-{limit}.jsonl"
    with gzip.open(CORPUS, "rt") as src, path.open("w") as dst:
        for i, line in enumerate(src):
            if i >= limit:
                break
            dst.write(line)
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def has_onnxruntime(pid: int) -> bool:
    try:
        return "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def memory(worker_root: int, web_root: int) -> dict[str, Any]:
    """RSS of the worker processes (main and pool) and of the web workers."""
    workers = [worker_root, *[p for p in descendants(worker_root) if "celery" in command_of(p)]]
    webs = [p for p in descendants(web_root) if "gunicorn" in command_of(p) or "config.asgi" in command_of(p)]
    return {
        "worker_rss_mb": [round(rss_mb(p), 1) for p in workers],
        "web_rss_mb": [round(rss_mb(p), 1) for p in webs],
        "web_has_encoder": any(has_onnxruntime(p) for p in webs),
    }


def import_corpus(env: dict[str, str], project: str, corpus: Path, log: Path) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "import_documents",
            "--project",
            project,
            "--timeout",
            "7200",
            str(corpus),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"import_documents failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    ready = re.search(r"Ingest: (\d+) ready, (\d+) failed", done.stdout)
    if not ready:
        raise SystemExit(f"no ingest summary in the output:\n{done.stdout[-2000:]}")
    return {"seconds": round(elapsed, 1), "ready": int(ready.group(1)), "failed": int(ready.group(2))}


def single_upload(env: dict[str, str], project: str) -> float:
    """Seconds from one pasted document's commit to ready, with the worker idle (median of 5)."""
    code = f"""
import django, statistics, time
django.setup()
from accounts.models import User
from documents.models import Document
from documents.services import document_create
from projects.models import Project
user = User.objects.get(email="ingest@docent.invalid")
project = Project.objects.get(pk="{project}")
took = []
for i in range(5):
    started = time.monotonic()
    doc = document_create(user=user, project=project, title=f"Single {{i}}", text="A lone upload about tides and the moon.")
    while Document.objects.filter(pk=doc.pk, status="ready").count() == 0:
        time.sleep(0.01)
    took.append(time.monotonic() - started)
print(round(statistics.median(took), 2))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def broker_messages(env: dict[str, str], data_dir: Path) -> int | None:
    """Ingest messages the import left on the broker (deduplicated wake-ups)."""
    if "REDIS_URL" in env:
        out = subprocess.run(
            ["redis-cli", "-u", env["REDIS_URL"], "LLEN", "ingest"], capture_output=True, text=True
        )
        return int(out.stdout.strip() or 0)
    folder = data_dir / "broker" / "queue"
    return len(list(folder.glob("*"))) if folder.exists() else None


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_worker(log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.3)


def run_embedded(corpus: Path, folder: Path) -> dict[str, Any]:
    data = folder / "embedded"
    env = environment(data, "")
    env["DOCENT_MODEL_DIR"] = str(MODEL_DIR)
    env["DOCENT_LOG_LEVEL"] = "INFO"  # the worker prints "ready." at INFO
    project = prepare(env)
    port = free_port()
    log = folder / "run.log"
    say(f"embedded: python -m config.run on port {port}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_worker(log, proc)
        # config.run's children: the worker (celery) and the web (gunicorn).
        roots = {("celery" if "celery" in command_of(p) else "web"): p for p in children(proc.pid)}
        result = import_corpus(env, project, corpus, folder / "import-embedded.log")
        result.update(memory(roots["celery"], roots["web"]))
        result["broker_messages_left"] = broker_messages(env, data)
        result["single_upload_s"] = single_upload(env, project)
    finally:
        stop(proc)
    return {"stack": "embedded (make run: SQLite, filesystem broker)", **result}


def run_production(corpus: Path, folder: Path) -> dict[str, Any]:
    base = subprocess.run(
        [sys.executable, "tests/pgvector_server.py", "--port", "5433"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    name = f"bench_ingest_{int(time.time())}"
    redis_url = "redis://127.0.0.1:6379/13"
    subprocess.run(["redis-cli", "-n", "13", "FLUSHDB"], check=True, capture_output=True)
    env = environment(folder / "production", redis_url)
    env["DOCENT_MODEL_DIR"] = str(MODEL_DIR)
    env["DATABASE_URL"] = f"{base.rsplit('/', 1)[0]}/{name}"
    env["DOCENT_LOG_LEVEL"] = "INFO"
    code = (
        f"import psycopg; c=psycopg.connect('{base}', autocommit=True); c.execute('CREATE DATABASE {name}')"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    project = prepare(env)
    worker_log, web_log = folder / "worker-production.log", folder / "web-production.log"
    say("production: celery worker -Q ingest --concurrency 2, gunicorn config.asgi")
    worker = subprocess.Popen(
        # The command of `make worker-ingest`.
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            "ingest",
            "--concurrency",
            "2",
            "-n",
            "ingest@%h",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web = None
    try:
        wait_for_worker(worker_log, worker)
        web = start_web(env, free_port(), web_log)
        result = import_corpus(env, project, corpus, folder / "import-production.log")
        result.update(memory(worker.pid, web.pid))
        result["broker_messages_left"] = broker_messages(env, folder)
        result["single_upload_s"] = single_upload(env, project)
    finally:
        stop(worker)
        if web is not None:
            stop(web)
        drop = f"import psycopg; c=psycopg.connect('{base}', autocommit=True); c.execute('DROP DATABASE IF EXISTS {name} WITH (FORCE)')"
        subprocess.run([sys.executable, "-c", drop], cwd=ROOT, check=False)
    return {"stack": "production (PostgreSQL + pgvector, Redis; make worker-ingest)", **result}


def render(payload: dict[str, Any]) -> str:
    lines = [
        "# Ingest throughput (bench/ingest.py)",
        "",
        f"{payload['documents']} SciFact abstracts imported with `manage.py import_documents`, timed from the",
        "command's start until every document is ready; the worker runs as its command line",
        "starts it (concurrency 2). Memory read after the import; then one pasted document at a",
        "time, from its commit to ready with the worker idle (median of 5).",
        f"Machine: {payload['machine']}. Run {payload['date']}.",
        f"Targets: >= {TARGETS['docs_per_s']:g} docs/s; worker RSS <= {TARGETS['worker_rss_mb']:g} MB per process;",
        "no encoder in the web processes.",
        "",
        "| stack | seconds | docs/s | ready | failed | worker RSS MB (main, pool) | web RSS MB | encoder in web | ingest messages left | one upload to ready (s) |",
        "|---|---:|---:|---:|---:|---|---|---|---:|---:|",
    ]
    for r in payload["results"]:
        lines.append(
            f"| {r['stack']} | {r['seconds']} | {r['docs_per_s']} | {r['ready']} | {r['failed']} | "
            f"{', '.join(str(m) for m in r['worker_rss_mb'])} | {', '.join(str(m) for m in r['web_rss_mb'])} | "
            f"{'yes' if r['web_has_encoder'] else 'no'} | {r['broker_messages_left']} | {r['single_upload_s']} |"
        )
    lines += ["", *payload.get("notes", [])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", choices=["embedded", "production", "both"], default="both")
    parser.add_argument("--limit", type=int, default=0, help="import only the first N documents")
    parser.add_argument("--no-save", action="store_true", help="print, do not write bench/results")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="docent-bench-ingest-") as tmp:
        folder = Path(os.environ.get("DOCENT_BENCH_KEEP", tmp))
        folder.mkdir(parents=True, exist_ok=True)
        corpus = limited_corpus(args.limit, folder)
        stacks = ["embedded", "production"] if args.stack == "both" else [args.stack]
        for stack in stacks:
            result = (run_embedded if stack == "embedded" else run_production)(corpus, folder)
            result["docs_per_s"] = round(result["ready"] / result["seconds"], 1)
            say(json.dumps(result))
            results.append(result)
    payload = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib()} GiB, Python {platform.python_version()}",
        "documents": results[0]["ready"] + results[0]["failed"] if results else 0,
        "results": results,
    }
    print(render(payload))
    if not args.no_save:
        RESULTS_JSON.write_text(json.dumps(payload, indent=2) + "\n")
        RESULTS_MD.write_text(render(payload))


if __name__ == "__main__":
    main()
