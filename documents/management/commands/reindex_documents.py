"""Re-extract and re-embed documents (after a model change, or to retry failures), with progress.

python manage.py reindex_documents [--project <uuid> ...] [--failed-only] [--sync] [--no-wait]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents import selectors, services
from documents.management.progress import wait_until_finished
from documents.models import DocumentStatus


class Command(BaseCommand):
    help = "Queue documents to be extracted, chunked and embedded again, and show the progress."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--project", action="append", default=[], help="project id (UUID); repeatable; default: all"
        )
        parser.add_argument("--failed-only", action="store_true", help="only documents whose ingest failed")
        parser.add_argument("--sync", action="store_true", help="re-index in this process (no worker needed)")
        parser.add_argument(
            "--wait", action=argparse.BooleanOptionalAction, default=True, help="wait until all are finished"
        )
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default: 3600)")

    def handle(self, *args: Any, **options: Any) -> None:
        project_ids = None
        if options["project"]:
            try:
                project_ids = [UUID(p) for p in options["project"]]
            except ValueError:
                raise CommandError("--project takes project ids (UUIDs).") from None
        documents = selectors.documents_for_reindex(
            project_ids=project_ids, failed_only=options["failed_only"]
        )
        quiet = int(options["verbosity"]) == 0
        ids = [str(pk) for pk in documents.values_list("pk", flat=True)]
        if not ids:
            self.stdout.write("Nothing to re-index.")
            return
        with tqdm(
            total=len(ids),
            desc="reindex" if options["sync"] else "queue",
            unit="doc",
            disable=quiet,
            file=sys.stderr,
        ) as bar:
            services.documents_reindex(
                documents=documents.iterator(chunk_size=500),
                sync=options["sync"],
                progress=lambda _doc: bar.update(1),
            )
        if not (options["wait"] or options["sync"]):
            self.stdout.write(f"Queued {len(ids)} documents; the worker re-indexes them.")
            return
        counts, timed_out = wait_until_finished(ids, options["timeout"], quiet=quiet or options["sync"])
        self.stdout.write(
            f"Re-indexed: {counts[DocumentStatus.READY]} ready, {counts[DocumentStatus.FAILED]} failed "
            f"of {len(ids)}."
        )
        if timed_out:
            raise CommandError("Timed out waiting for the worker (is one running? --sync needs none).")
