"""Streaming benchmark: open event streams must not slow the rest of the site, and a
delta must reach its reader quickly.

On `make run`'s web setup and servers: gunicorn with WEB_CONCURRENCY=2 uvicorn workers,
on the private PostgreSQL 17 and Valkey of `config.servers.Stack` (started in a scratch
folder for the run, stopped and removed at the end), run events carried by Redis Streams
in that Valkey (agents/events.py):

1. reference: the same list load on sync WSGI workers, the web setup before streaming;
2. baseline: closed-loop clients call GET /api/v1/projects/ for `--seconds`;
3. the same load while `--streams` clients each hold GET /api/v1/runs/<id>/events/
   open, and another process publishes deltas into the runs' logs (as the worker does)
   at `--rate` per second, each stamped with the time it was produced.

Reports the project list's p50/p95 in both phases and their ratio (target: p95 within
1.5x), and the delay from a delta's publication to its arrival at the reader (target:
p95 <= 150 ms). Results: bench/results/streams.{json,md}; a new run replaces the row of
the same setup, and the rows measured before the one stack (2026-12-02: SQLite with events
in files, and SQLite with Redis Streams) are kept beside it.

    .venv/bin/python bench/streams.py [--streams 100] [--seconds 20] [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CARRIER = "valkey"
WEB = "gunicorn + 2 uvicorn workers, PostgreSQL 17 + Valkey (the one stack)"
TARGETS = {"p95_ratio": 1.5, "delta_p95_ms": 150.0}

sys.path.insert(0, str(BENCH_DIR))
from load import cpu_model, free_port, memory_gib, rate_limit_knobs  # noqa: E402
from retrieval import percentile  # noqa: E402


def say(message: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}", flush=True)


def environment(
    data_dir: Path, redis_url: str = "", servers_env: dict[str, str] | None = None
) -> dict[str, str]:
    """Docent's environment for the run: its data folder, and the servers' URLs when given
    (unset, settings find the private servers of the data folder)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCENT_", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DOCENT_DATA_DIR": str(data_dir),
            "DOCENT_MEDIA_ROOT": str(data_dir / "media"),
            "DOCENT_LLM_PROVIDER": "offline",
            "DOCENT_ACCESS_TOKEN_MINUTES": "240",
            "DOCENT_LOG_LEVEL": "WARNING",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            **rate_limit_knobs(),
        }
    )
    env.update(servers_env or {})
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def prepare(env: dict[str, str], streams: int) -> dict[str, Any]:
    """Migrate, and make a user with 20 projects and `streams` runs still generating."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    code = f"""
import django, json
django.setup()
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import User
from agents.models import AgentRun, RunKind, RunStatus
from projects.services import project_create
user = User.objects.create_user(email="streams@docent.invalid", password="bench-password-123")
projects = [project_create(user=user, title=f"Project {{i}}") for i in range(20)]
runs = AgentRun.objects.bulk_create(
    AgentRun(project=projects[0], kind=RunKind.ASK, question=f"q{{i}}", status=RunStatus.GENERATING, created_by=user)
    for i in range({streams})
)
print(json.dumps({{"token": str(AccessToken.for_user(user)), "runs": [str(r.pk) for r in runs]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_web(env: dict[str, str], port: int, log: Path, *, sync: bool = False) -> subprocess.Popen[bytes]:
    """The default web setup; with `sync`, the one before streaming (sync WSGI workers)."""
    app = ["config.wsgi", "--worker-class", "sync"] if sync else ["config.asgi"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            *app,
            "--config",
            "config/gunicorn.py",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the web server did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.3)


def list_load(port: int, token: str, seconds: float, clients: int) -> dict[str, Any]:
    """Closed-loop clients on GET /api/v1/projects/; latencies in ms."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("GET", "/api/v1/projects/", headers={"Authorization": f"Bearer {token}"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            if ok:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
    }


async def hold_streams(
    port: int, token: str, runs: list[str], ready: threading.Event, stop: threading.Event, delays: list[float]
) -> dict[str, int]:
    """Open one stream per run; record each delta's delay (now - its stamp), until `stop`."""
    opened = [0]
    failed = [0]

    async def one(run_id: str) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            failed[0] += 1
            return
        writer.write(
            (
                f"GET /api/v1/runs/{run_id}/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            failed[0] += 1
            writer.close()
            return
        opened[0] += 1
        try:
            while not stop.is_set():
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=0.5)
                except TimeoutError:
                    continue
                if not line:
                    break
                if line.startswith(b"data: ") and b'"stamp"' in line:
                    stamp = json.loads(line[6:])["stamp"]
                    delays.append((time.time() - stamp) * 1000)
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(run_id)) for run_id in runs]
    while opened[0] + failed[0] < len(runs):
        await asyncio.sleep(0.05)
    ready.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"opened": opened[0], "failed": failed[0]}


PUBLISHER = """
import django, json, random, sys, time
django.setup()
from agents import events
runs, rate, seconds = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sent, interval = 0, 1.0 / rate
start = next_at = time.monotonic()
while time.monotonic() - start < seconds:
    events.publish(random.choice(runs), "delta", text="word ", stamp=time.time())
    sent += 1
    next_at += interval
    time.sleep(max(0.0, next_at - time.monotonic()))
print(sent)
"""


def publisher(env: dict[str, str], runs: list[str], rate: float, seconds: float) -> subprocess.Popen[str]:
    """A separate process publishing stamped deltas into random runs' logs, as the worker does."""
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, json.dumps(runs), str(rate), str(seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from config.servers import ServerError, Stack

    scratch = Path(tempfile.mkdtemp(prefix="docent-streams-"))
    stack = Stack(scratch)
    try:
        try:
            stack.start()
        except ServerError as exc:
            raise SystemExit(f"the private servers did not start: {exc}") from None
        say(f"PostgreSQL and Valkey up in {scratch}")
        env = environment(scratch, servers_env=stack.environment())
        # One person holds every stream here: lift the per-person cap (20 by default).
        env["DOCENT_STREAMS_PER_USER"] = str(max(args.streams, 20))
        say(f"preparing {args.streams} runs in {scratch}")
        made = prepare(env, args.streams)
        port = free_port()
        say("reference: the same load on sync WSGI workers (no streaming possible there)")
        web = start_web(env, port, scratch / "web-sync.log", sync=True)
        try:
            list_load(port, made["token"], 3, args.clients)
            reference = list_load(port, made["token"], args.seconds, args.clients)
            say(f"  {reference}")
        finally:
            web.terminate()
            web.wait(30)
        web = start_web(env, port, scratch / "web.log")
        try:
            say("warming up")
            list_load(port, made["token"], 3, args.clients)
            say(f"baseline: {args.clients} clients on the project list for {args.seconds:g} s")
            baseline = list_load(port, made["token"], args.seconds, args.clients)
            say(f"  {baseline}")
            ready, stop = threading.Event(), threading.Event()
            delays: list[float] = []
            outcome: dict[str, Any] = {}

            def streams_thread() -> None:
                outcome.update(
                    asyncio.run(hold_streams(port, made["token"], made["runs"], ready, stop, delays))
                )

            holder = threading.Thread(target=streams_thread)
            holder.start()
            ready.wait(60)
            say(f"streams open: {outcome or 'all requested'}; publishing {args.rate:g} deltas/s")
            producer = publisher(env, made["runs"], args.rate, args.seconds + 2)
            time.sleep(1)
            loaded = list_load(port, made["token"], args.seconds, args.clients)
            say(f"  with streams: {loaded}")
            sent = [int(producer.communicate(timeout=60)[0].strip() or 0)]
            time.sleep(0.5)
            stop.set()
            holder.join()
        finally:
            web.terminate()
            web.wait(30)
        result = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB, Python {platform.python_version()}",
            "carrier": CARRIER,
            "web": WEB,
            "streams": args.streams,
            "streams_opened": outcome.get("opened", 0),
            "streams_failed": outcome.get("failed", 0),
            "list_clients": args.clients,
            "seconds": args.seconds,
            "sync_reference": reference,
            "baseline": baseline,
            "with_streams": loaded,
            "p95_ratio": round(loaded["p95_ms"] / baseline["p95_ms"], 2) if baseline["p95_ms"] else None,
            "deltas_sent": sent[0],
            "deltas_received": len(delays),
            "delta_p50_ms": round(percentile(delays, 50), 1) if delays else None,
            "delta_p95_ms": round(percentile(delays, 95), 1) if delays else None,
            "delta_max_ms": round(max(delays), 1) if delays else None,
        }
        return result
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _ref(r: dict[str, Any]) -> str:
    ref = r.get("sync_reference")
    return f"{ref['p50_ms']} / {ref['p95_ms']} ({ref['rps']} req/s)" if ref else "-"


# What the rows measured before the one stack carried their events in, and on what.
BEFORE = {
    "file": "files (the embedded default until 2026-12-07), SQLite",
    "redis": "Redis Streams, SQLite (Redis also the cache)",
}


def _setup(r: dict[str, Any]) -> str:
    if r.get("carrier") in BEFORE and "SQLite" in r.get("web", ""):
        return f"before the one stack: {BEFORE[r['carrier']]}"
    return f"{r.get('carrier')}: {r.get('web')}"


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Streaming benchmark",
        "",
        "`.venv/bin/python bench/streams.py`: the project list under closed-loop load, first alone, then "
        "while 100 clients hold a run's event stream open and deltas are published into their logs; and "
        "the delay from a delta's publication to its arrival at its reader. "
        f"Targets: list p95 within {TARGETS['p95_ratio']}x of the baseline; delta p95 <= "
        f"{TARGETS['delta_p95_ms']:g} ms.",
        "",
        "| date | events carried by, web setup | streams open | list p50 / p95 alone (ms) | with streams (ms) "
        "| p95 ratio | deltas sent / received | delta p50 / p95 / max (ms) | sync WSGI reference (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        b, w = r["baseline"], r["with_streams"]
        lines.append(
            f"| {r['date']} | {_setup(r)} | {r['streams_opened']} / {r['streams']} | "
            f"{b['p50_ms']} / {b['p95_ms']} ({b['rps']} req/s) | {w['p50_ms']} / {w['p95_ms']} ({w['rps']} req/s) | "
            f"{r['p95_ratio']} | {r['deltas_sent']} / {r['deltas_received']} | "
            f"{r['delta_p50_ms']} / {r['delta_p95_ms']} / {r['delta_max_ms']} | {_ref(r)} |"
        )
    if results:
        machines = sorted({r["machine"] for r in results})
        lines += [
            "",
            f"Machine: {'; '.join(machines)}. Since 2026-12-07 there is one stack: run events travel "
            "through Redis Streams in the private Valkey that `make run` starts, beside PostgreSQL 17; "
            'the file carrier and SQLite are gone. The rows marked "before the one stack" were measured '
            "on 2026-12-02 with gunicorn + 2 uvicorn workers on SQLite and are kept for comparison: the "
            "`files` row was the embedded default then (events in files, the disk cache), the `Redis "
            "Streams` row used Redis as carrier and cache. The last column is the same list load on sync "
            "WSGI workers, the web setup before streaming.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4, help="closed-loop clients on the project list")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="deltas published per second, in all")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where streams.json and .md are"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results alone")
    # Events always travel through Valkey now; accepted so that older commands still run.
    parser.add_argument("--redis", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.no_write:
        return
    results_json, results_md = args.results_dir / "streams.json", args.results_dir / "streams.md"
    previous = json.loads(results_json.read_text()) if results_json.exists() else []
    previous = [
        r for r in previous if (r.get("carrier"), r.get("web")) != (result["carrier"], result["web"])
    ] + [result]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    results_json.write_text(json.dumps(previous, indent=2) + "\n")
    results_md.write_text(render(previous))
    say(f"wrote {results_md}")


if __name__ == "__main__":
    main()
