"""Progress bars for long document work (import, re-index) run from the command line."""

from __future__ import annotations

import sys
import time
from collections import Counter

from django.db.models import Count
from tqdm import tqdm

from documents.models import Document, DocumentStatus

POLL_INTERVAL_S = 1.0
# Ids per status query while waiting (stays under every database's parameter limit).
POLL_BATCH = 500
UNFINISHED = (DocumentStatus.PENDING, DocumentStatus.PROCESSING)
# tqdm's bar without its own rate (of bar steps): the postfix carries the rate that matters.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


def rate_text(count: int, since: float) -> str:
    """`count` documents since the monotonic time `since`, as "12.3 docs/s"."""
    seconds = time.monotonic() - since
    return f"{count / seconds if count and seconds > 0 else 0.0:.1f} docs/s"


def status_counts(ids: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for i in range(0, len(ids), POLL_BATCH):
        rows = (
            Document.objects.filter(pk__in=ids[i : i + POLL_BATCH])
            .order_by()
            .values("status")
            .annotate(n=Count("pk"))
        )
        for row in rows:
            counts[row["status"]] += row["n"]
    return counts


def wait_until_finished(
    ids: list[str], timeout: float, *, quiet: bool, started: float | None = None
) -> tuple[Counter[str], bool]:
    """Poll until every document is ready or failed, with a bar; returns the counts and whether time ran out.

    The bar shows documents ready per second since `started` (a time.monotonic()
    reading; default: now). Ctrl-C stops the waiting (the worker carries on) and
    returns what was seen.
    """
    since = time.monotonic() if started is None else started
    deadline = time.monotonic() + timeout
    counts: Counter[str] = Counter()
    with tqdm(
        total=len(ids),
        desc="ingest",
        unit="doc",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format=BAR_FORMAT,
    ) as bar:
        try:
            while True:
                counts = status_counts(ids)
                done = len(ids) - sum(counts[s] for s in UNFINISHED)
                ready = counts[DocumentStatus.READY]
                bar.set_postfix_str(
                    f"ready={ready}, failed={counts[DocumentStatus.FAILED]}, {rate_text(ready, since)}",
                    refresh=False,
                )
                bar.update(done - bar.n)
                if done >= len(ids):
                    return counts, False
                if time.monotonic() >= deadline:
                    return counts, True
                time.sleep(POLL_INTERVAL_S)
        except KeyboardInterrupt:
            sys.stderr.write("Stopped waiting; the worker carries on with the rest.\n")
            return counts, False
