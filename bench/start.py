"""How long `make run` takes to show its first page on a fresh data folder.

    .venv/bin/python bench/start.py [--rounds 3] [--compare PATH_TO_OTHER_CHECKOUT]

Each round starts from an empty data folder (a fresh clone's `var/`): this checkout runs
`python -m config.run` (private servers, migrate, collectstatic, web and worker), and a
checkout named with `--compare` (with its own `.venv`) runs what its `make run` ran. The
time is from the start to the first 200 of the sign-in page, then everything is stopped.
The ONNX model copy is kept between rounds (`make install` state), as the first page never
waits for the encoder. Results: bench/results/start.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_page(checkout: Path, *, old_make_run: bool) -> float:
    """Seconds from `make run` to the first page, on an empty data folder."""
    python = str(checkout / ".venv" / "bin" / "python")
    data = Path(tempfile.mkdtemp(prefix="docent-start-"))
    data.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCENT_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY"))
    }
    env.update(
        DOCENT_DATA_DIR=str(data),
        DOCENT_STATIC_ROOT=str(data / "static"),
        DOCENT_MODEL_DIR=str(checkout / "var" / "models"),
    )
    port = free_port()
    log = (data / "run.log").open("wb")
    started = time.monotonic()
    if old_make_run:  # what the SQLite-default Makefile ran before config.run
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput", "--verbosity", "0"]):
            subprocess.run(
                [python, "manage.py", *command], cwd=checkout, env=env, check=True, stdout=log, stderr=log
            )
    proc = subprocess.Popen(
        [python, "-m", "config.run", "--port", str(port)], cwd=checkout, env=env, stdout=log, stderr=log
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError((data / "run.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2) as reply:  # noqa: S310
                    if reply.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compare", type=Path, help="another checkout (with .venv) whose make run ran migrate first"
    )
    args = parser.parse_args()
    results: dict[str, list[float]] = {"this": [], "compare": []}
    for _ in range(args.rounds):  # interleaved, so a busy moment hits both alike
        results["this"].append(first_page(ROOT, old_make_run=False))
        if args.compare:
            results["compare"].append(first_page(args.compare.resolve(), old_make_run=True))
    summary = {name: {"median_s": round(statistics.median(v), 2), "runs_s": [round(x, 2) for x in v]}
               for name, v in results.items() if v}  # fmt: skip
    print(json.dumps(summary, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "start.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# make run: seconds to the first page",
        "",
        f"`bench/start.py --rounds {args.rounds}"
        + (f" --compare {args.compare}`" if args.compare else "`")
        + f", {time.strftime('%Y-%m-%d')}, on this 2-core machine. Each round starts from an empty data",
        "folder and stops everything after the sign-in page answers 200; the ONNX model copy is kept",
        "(the first page never waits for the encoder). Target (issue 22): no more than 10 s later than before.",
        "",
        "| setup | median | rounds |",
        "| --- | ---: | --- |",
    ]
    labels = {
        "this": "one stack: private PostgreSQL + Valkey started, migrated, web + worker",
        "compare": "before (SQLite, filesystem broker): migrate, collectstatic, web + worker",
    }
    for name, figures in summary.items():
        runs = ", ".join(f"{x:.1f}" for x in figures["runs_s"])
        lines.append(f"| {labels[name]} | {figures['median_s']:.1f} s | {runs} |")
    if "compare" in summary:
        later = summary["this"]["median_s"] - summary["compare"]["median_s"]
        lines += [
            "",
            f"{later:+.1f} s against before: target (<= +10 s) {'met' if later <= 10 else 'not met'}.",
        ]
    (RESULTS / "start.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
