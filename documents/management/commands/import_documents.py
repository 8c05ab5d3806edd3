"""Bulk-import files, folders and BEIR corpora into a project, then wait for ingest.

python manage.py import_documents --project <uuid> [--user <email>]
    [--wait | --no-wait] [--timeout 3600] [--sync] PATH...
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404
from django.urls import reverse
from tqdm import tqdm

from documents import importing, services
from documents.management.progress import BAR_FORMAT, POLL_BATCH, rate_text, wait_until_finished
from documents.models import Document, DocumentStatus
from projects import selectors as project_selectors
from projects.access import require
from projects.models import Project, Role

SHOW_FAILURES = 20


class Command(BaseCommand):
    help = (
        "Import files, folders (recursively, hidden files skipped) and BEIR corpora "
        "(.jsonl / .jsonl.gz with _id, title, text) into a project. Sources already in "
        "the project (same external id, or same file bytes) are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "paths",
            nargs="+",
            metavar="PATH",
            help="files, folders or .jsonl[.gz] corpora",
        )
        parser.add_argument("--project", required=True, help="id (UUID) of the project to import into")
        parser.add_argument(
            "--user",
            default="",
            help="email of the importing user (an editor); default: the project's first owner",
        )
        parser.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="after importing, wait until every new document is ready or failed (default: on)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=3600.0,
            help="seconds to wait for ingest (default: 3600)",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="ingest each document in this process right after creating it (no worker needed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = self._project(options["project"])
        paths = [Path(p) for p in options["paths"]]
        for path in paths:
            if not path.exists():
                raise CommandError(f"Path does not exist: {path}")
        user = self._user(project, options["user"])
        verbosity = int(options["verbosity"])
        quiet = verbosity == 0
        sync = bool(options["sync"])

        restore = _quiet_logs() if verbosity < 2 else None
        try:
            started = time.monotonic()
            # With --sync each document is ingested here, so none is published to a worker.
            report = self._import(user=user, project=project, paths=paths, sync=sync, quiet=quiet)
            imported_s = time.monotonic() - started
            self._report_failures(report)

            counts: Counter[str] = Counter()
            timed_out = False
            # After --sync every document is already finished: the "wait" only counts them.
            if (options["wait"] or sync) and report.document_ids:
                counts, timed_out = wait_until_finished(
                    report.document_ids, options["timeout"], quiet=quiet, started=started
                )
            elapsed = time.monotonic() - started
        finally:
            if restore is not None:
                restore()

        self._summary(report, counts, elapsed=elapsed, imported_s=imported_s, waited=bool(counts))
        self._where_to_watch(report, project)
        if timed_out:
            pending = counts[DocumentStatus.PENDING] + counts[DocumentStatus.PROCESSING]
            raise CommandError(
                f"Timed out after {options['timeout']:g} s with {pending} documents not ready yet "
                "(is a worker running? --sync ingests without one)."
            )

    # --- arguments -----------------------------------------------------------

    def _project(self, raw: str) -> Project:
        try:
            pid = UUID(str(raw))
        except ValueError:
            raise CommandError(f"Unknown project id {raw!r}: not a UUID.") from None
        project = project_selectors.project_get(pid)
        if project is None:
            raise CommandError(f"Unknown project id {raw}: no such project.")
        return project

    def _user(self, project: Project, email: str) -> Any:
        if not email:
            owner = project_selectors.first_owner(project)
            if owner is None:
                raise CommandError(f"Project {project.pk} has no owner; name the importing user with --user.")
            return owner
        user = get_user_model().objects.filter(email__iexact=email.strip(), is_active=True).first()
        if user is None:
            raise CommandError(f"User not found: no active user has the email {email!r}.")
        try:
            require(user, project, Role.EDITOR)
        except (Http404, PermissionDenied):
            raise CommandError(
                f"{user.email} is not an editor of project {project.pk}; only editors and owners may import."
            ) from None
        return user

    # --- the two phases ------------------------------------------------------

    def _import(
        self, *, user: Any, project: Project, paths: list[Path], sync: bool, quiet: bool
    ) -> importing.ImportReport:
        total = importing.count_sources(paths)
        tally: Counter[str] = Counter()
        started = time.monotonic()
        with tqdm(
            total=total,
            desc="import+ingest" if sync else "import",
            unit="doc",
            disable=quiet,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format=BAR_FORMAT,
        ) as bar:

            def progress(event: importing.ImportEvent) -> None:
                tally[event.outcome] += 1
                created = tally[importing.CREATED]
                # With --sync each created document is also ingested: the rate is of both.
                bar.set_postfix_str(
                    f"created={created}, skipped={tally[importing.SKIPPED]}, "
                    f"failed={tally[importing.FAILED]}, {rate_text(created, started)}",
                    refresh=False,
                )
                bar.update(1)

            return services.documents_import(
                user=user, project=project, paths=paths, progress=progress, sync=sync
            )

    # --- output --------------------------------------------------------------

    def _report_failures(self, report: importing.ImportReport) -> None:
        for source, reason in report.failed[:SHOW_FAILURES]:
            self.stderr.write(f"  not imported: {source}: {reason}")
        if len(report.failed) > SHOW_FAILURES:
            self.stderr.write(f"  ... and {len(report.failed) - SHOW_FAILURES} more not imported")

    def _summary(
        self,
        report: importing.ImportReport,
        counts: Counter[str],
        *,
        elapsed: float,
        imported_s: float,
        waited: bool,
    ) -> None:
        created, skipped, failed = (
            report.created,
            report.skipped_existing,
            len(report.failed),
        )
        self.stdout.write(
            f"Imported in {imported_s:.1f} s: {created} created, {skipped} skipped (already in the project), "
            f"{failed} failed."
        )
        if not waited:
            if created:
                rate = created / imported_s if imported_s > 0 else 0.0
                self.stdout.write(f"Created {rate:.1f} docs/s; ingest continues in the worker.")
            return
        ready, ing_failed = counts[DocumentStatus.READY], counts[DocumentStatus.FAILED]
        pending = counts[DocumentStatus.PENDING] + counts[DocumentStatus.PROCESSING]
        rate = ready / elapsed if elapsed > 0 else 0.0
        self.stdout.write(
            f"Ingest: {ready} ready, {ing_failed} failed, {pending} not finished; "
            f"{rate:.1f} docs/s ready over {elapsed:.1f} s."
        )
        for title, error in _ingest_failures(report.document_ids, SHOW_FAILURES):
            self.stderr.write(f"  failed to ingest: {title}: {error}")
        if ready == created and created:
            self.stdout.write(self.style.SUCCESS("All imported documents are ready."))

    def _where_to_watch(self, report: importing.ImportReport, project: Project) -> None:
        if not report.batch_id:
            return
        page = reverse("projects:detail", args=[project.pk])
        self.stdout.write(
            f"Import {report.batch_id}: its progress and failures are on the project page ({page}), "
            f"and at GET /api/v1/projects/{project.pk}/imports/."
        )


def _ingest_failures(ids: list[str], limit: int) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for i in range(0, len(ids), POLL_BATCH):
        if len(found) >= limit:
            break
        found += (
            Document.objects.filter(pk__in=ids[i : i + POLL_BATCH], status=DocumentStatus.FAILED)
            .order_by()
            .values_list("title", "error")[: limit - len(found)]
        )
    return found


def _quiet_logs() -> Callable[[], None]:
    """Silence per-document INFO logs while the progress bars run; returns an undo."""
    loggers = [logging.getLogger(name) for name in ("documents", "projects", "sentence_transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)

    def restore() -> None:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)

    return restore
