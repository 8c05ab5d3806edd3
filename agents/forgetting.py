"""What a deleted document leaves in runs: its quotes go with it.

Deleting a document removes every stored byte of it, and runs hold some: the quotes of
their citations, the passages shown under a declined question, answers built from its
sentences (the offline provider answers in quotes) and, for a run about that one
document, the whole summary or extraction. In the delete's own transaction, each run that
cites the document keeps its citations, marked as from a deleted document, without their
quotes; any verbatim quote is taken out of the answer; and a run about the document alone
keeps only that it was answered. Their live event logs (streamed answer text) are dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Q

from agents import events
from agents.models import AgentRun

log = logging.getLogger(__name__)

# What stands where a quote of a deleted document was, in an answer.
REMOVED_QUOTE = "[quote from a deleted document]"
# The answer of a run about a deleted document alone (a summary or extraction of it).
REMOVED_ANSWER = "This answer came from a document that was deleted."
# Run output that only ever holds text taken from the documents read.
_TEXT_OUTPUT = ("entities", "keywords", "tags", "key_points", "quotes")


def runs_forget_document(*, document_id: Any) -> int:
    """Take the document's text out of every run that holds some; how many runs changed.

    Called inside the transaction that deletes the document (agents.signals), before the
    runs' link to it is cleared, so it sees the runs about it too.
    """
    doc = str(document_id)
    runs = (
        AgentRun.objects.select_for_update()
        .filter(
            Q(citations__contains=[{"document": doc}])
            | Q(output__nearest__contains=[{"document": doc}])
            | Q(document_id=document_id, document_scoped=True)
        )
        .only("pk", "answer", "citations", "output", "document_id", "document_scoped")
    )
    changed = 0
    for run in runs:
        if _forget(run, doc):
            run.save(update_fields=["answer", "citations", "output", "updated_at"])
            pk = run.pk
            transaction.on_commit(lambda pk=pk: events.forget(pk))
            changed += 1
    if changed:
        log.info("runs forgot a deleted document", extra={"document_id": doc, "runs": changed})
    return changed


def _forget(run: AgentRun, doc: str) -> bool:
    citations = run.citations if isinstance(run.citations, list) else []
    output = dict(run.output) if isinstance(run.output, dict) else {}
    quotes: list[str] = []
    kept = []
    for c in citations:
        if isinstance(c, dict) and str(c.get("document", "")) == doc:
            if c.get("quote"):
                quotes.append(str(c["quote"]))
            c = {**c, "quote": "", "deleted": True}
        kept.append(c)
    nearest = output.get("nearest")
    if isinstance(nearest, list):
        output["nearest"] = [
            {**item, "text": "", "title": "", "deleted": True}
            if isinstance(item, dict) and str(item.get("document", "")) == doc
            else item
            for item in nearest
        ]
    answer = run.answer or ""
    if run.document_scoped and str(run.document_id) == doc:
        answer = REMOVED_ANSWER if answer else ""
        for key in _TEXT_OUTPUT:
            output.pop(key, None)
    else:
        # Longest first: a quote inside another goes with the one that holds it.
        for quote in sorted({q.strip() for q in quotes if q.strip()}, key=len, reverse=True):
            answer = answer.replace(quote, REMOVED_QUOTE)
    if answer == run.answer and kept == citations and output == run.output:
        return False
    run.answer, run.citations, run.output = answer, kept, output
    return True
