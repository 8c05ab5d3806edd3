"""Move a data folder of the SQLite-based Docent into this PostgreSQL database, with progress.

python manage.py migrate_from_sqlite PATH [--media-root DIR] [--old-media DIR] [--dry-run]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from workspace import sqlite_move

PROGRESS_EVERY_S = 2.0
SHOW_TITLES = 20


class Command(BaseCommand):
    help = (
        "Copy the accounts, projects, documents (with their chunks and vectors), conversations and "
        "uploaded files of a data folder made by the SQLite-based Docent into this database. The old "
        "folder is only read. Running it again finishes an interrupted move and copies nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="the old data folder, or its docent.sqlite3 file")
        parser.add_argument(
            "--media-root",
            default="",
            metavar="DIR",
            help="where the uploaded files go (default: MEDIA_ROOT, i.e. DOCENT_MEDIA_ROOT or <data folder>/media)",
        )
        parser.add_argument(
            "--old-media",
            default="",
            metavar="DIR",
            help="the old uploads folder (default: media/ beside the .sqlite3 file)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check and count everything, then roll back: nothing is written and no file is copied",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lines = ProgressLines(self.stderr, quiet=int(options["verbosity"]) == 0)
        try:
            report = sqlite_move.sqlite_datafolder_move(
                path=Path(options["path"]),
                media_root=Path(options["media_root"]) if options["media_root"] else None,
                old_media=Path(options["old_media"]) if options["old_media"] else None,
                dry_run=bool(options["dry_run"]),
                progress=lines,
            )
        except sqlite_move.MoveRefused as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            if options["dry_run"]:
                raise CommandError("Interrupted; a dry run writes nothing.", returncode=130) from None
            raise CommandError(
                "Interrupted. What was copied so far is kept (each batch commits on its own, a document "
                "with all its chunks); run the same command again to finish the move.",
                returncode=130,
            ) from None
        self._summary(report)

    def _summary(self, report: sqlite_move.MoveReport) -> None:
        out = self.stdout
        copied = "would copy" if report.dry_run else "copied"
        if report.dry_run:
            out.write(f"Dry run of the move of {report.source}: nothing was written.")
        else:
            out.write(f"Moved {report.source} into the database.")
        width = max(len(label) for label in report.tables)
        for label, tally in report.tables.items():
            line = f"  {label:<{width}}  {tally.copied:>7,} {copied}, {tally.present:,} already there"
            if label == "chunks" and report.chunks_not_copied:
                line += (
                    f", {report.chunks_not_copied:,} not copied "
                    f"(vectors of another dimension than the encoder's {report.dimension}, or damaged)"
                )
            out.write(line)
        queued = "would be queued" if report.dry_run else "queued"
        if report.requeued:
            titles = ", ".join(report.requeued[:SHOW_TITLES])
            more = (
                f" and {len(report.requeued) - SHOW_TITLES} more"
                if len(report.requeued) > SHOW_TITLES
                else ""
            )
            out.write(
                f"Documents {queued} for re-embedding: {len(report.requeued):,} ({titles}{more}); "
                "their vectors were not the current encoder's."
            )
        else:
            out.write(f"Documents {queued} for re-embedding: 0.")
        if report.waiting:
            out.write(
                f"Documents waiting for the worker (pending): {report.waiting:,}; "
                "a running worker ingests them (`make worker`, or part of `make run`)."
            )
        out.write(
            f"Files: {report.files_copied:,} {copied}, {report.files_present:,} already there, "
            f"{len(report.files_missing):,} missing."
        )
        for missing in report.files_missing[:SHOW_TITLES]:
            self.stderr.write(f"  missing file (the document keeps its text): {missing}")
        if len(report.files_missing) > SHOW_TITLES:
            self.stderr.write(f"  ... and {len(report.files_missing) - SHOW_TITLES} more missing files")
        if report.not_moved:
            left = ", ".join(f"{n:,} {label}" for label, n in report.not_moved.items())
            out.write(f"Not moved: {left}.")


class ProgressLines:
    """Per-table progress as plain lines ("documents 1,200/5,183"), at most one every few
    seconds per table and always the last: readable in a terminal and in a log file."""

    def __init__(self, out: OutputWrapper, *, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.shown: dict[str, float] = {}

    def __call__(self, table: str, done: int, total: int) -> None:
        if self.quiet or (done == 0 and total > 0):
            return
        now = time.monotonic()
        if done < total and now - self.shown.get(table, 0.0) < PROGRESS_EVERY_S:
            return
        self.shown[table] = now
        self.out.write(f"{table} {done:,}/{total:,}")
