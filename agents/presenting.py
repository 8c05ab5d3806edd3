"""How a run reads on a page: numbered citations with their documents' titles, the
nearest passages of a declined question, and the answer with its citation chips."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from agents.models import AgentRun, RunStatus
from documents import locations
from documents import selectors as document_selectors

# Where a citation's quote was, once its document was deleted (agents.forgetting).
DELETED_QUOTE = "From a deleted document: the quote was removed with it."
# [1], [1, 2] or [1][2] after a statement: the citations it rests on.
MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def uuids(values: Any) -> list[UUID]:
    ids = []
    for value in values:
        try:
            ids.append(UUID(str(value)))
        except ValueError:
            continue
    return ids


def visible_titles(user: Any, ids: Any) -> dict[str, str]:
    """Titles of the documents (of these ids) the user may still read."""
    return {pk: title for pk, (title, _) in visible_documents(user, ids).items()}


def visible_documents(user: Any, ids: Any) -> dict[str, tuple[str, str]]:
    """(title, format) of the documents (of these ids) the user may still read."""
    rows = (
        document_selectors.documents_visible_to(user)
        .filter(pk__in=uuids(ids))
        .values_list("pk", "title", "format")
    )
    return {str(pk): (title, fmt) for pk, title, fmt in rows}


def _raw_citations(run: AgentRun) -> list[dict[str, Any]]:
    return [c for c in run.citations if isinstance(c, dict)] if isinstance(run.citations, list) else []


def _raw_nearest(run: AgentRun) -> list[dict[str, Any]]:
    raw = run.output.get("nearest") if isinstance(run.output, dict) else None
    return [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []


def citations(run: AgentRun, titles: dict[str, str]) -> list[dict[str, Any]]:
    """The run's citations, numbered, with the title of each document still readable."""
    return [
        {
            "number": number,
            "document": str(c.get("document", "")),
            "title": titles.get(str(c.get("document", ""))),
            "start": c.get("start"),
            "end": c.get("end"),
            "quote": c.get("quote", ""),
            "deleted": bool(c.get("deleted")),  # its document was deleted, and the quote with it
            **({"location": c["location"]} if "location" in c else {}),
        }
        for number, c in enumerate(_raw_citations(run), start=1)
    ]


def with_locations(items: list[dict[str, Any]], *, project_ids: Any = None) -> list[dict[str, Any]]:
    """Each citation or nearest passage with where it is in its file, and that place's label:
    the one recorded when the run finished, or (runs from before locations were recorded)
    looked up now, in one query for all of them."""
    missing = [item for item in items if "location" not in item and item.get("start") is not None]
    if missing:
        locations.located(missing, project_ids=project_ids)
    for item in items:
        item.setdefault("location", None)
        item["location_label"] = locations.label(item["location"])
    return items


def nearest(
    run: AgentRun, titles: dict[str, str], spans: dict[int, tuple[str, int, int]]
) -> list[dict[str, Any]]:
    """The sentences closest to an unanswered question, with their spans while their
    passage is still indexed.

    The offline provider records the sentence that matched in each passage (its text and
    span); an item that holds a passage's opening instead (other providers, earlier runs)
    shows its sentence that shares most words with the question, never a cut-off piece.
    """
    found = []
    for item in _raw_nearest(run):
        doc_id = str(item.get("document", ""))
        span = spans.get(item["chunk"]) if doc_id in titles and isinstance(item.get("chunk"), int) else None
        if span is not None and span[0] != doc_id:
            span = None
        start, end = (span[1], span[2]) if span else (None, None)
        text = str(item.get("text", "") or "")
        sentence_start, sentence_end = item.get("start"), item.get("end")
        if isinstance(sentence_start, int) and isinstance(sentence_end, int):
            if span is not None and span[1] <= sentence_start < sentence_end <= span[2]:
                start, end = sentence_start, sentence_end
        elif text:
            text = matched_sentence(text, run.question)
        found.append(
            {
                "document": doc_id,
                "exists": doc_id in titles,
                "title": titles.get(doc_id) or item.get("title", ""),
                "text": text,
                "start": start,
                "end": end,
            }
        )
    return found


_CLOSING = ".!?…\"'”’)]"


def matched_sentence(text: str, question: str) -> str:
    """A stored passage as it may be shown: whole when it ends on a whole sentence, else
    its whole sentence that shares most words with the question (the first on a tie), so
    a piece cut off at the end is never shown while a whole sentence is there."""
    from agents.providers.offline import content_words
    from documents.chunking import split_sentences

    if text.rstrip().endswith(tuple(_CLOSING)):
        return " ".join(text.split())
    sentences = [" ".join(text[a:b].split()) for a, b in split_sentences(text)]
    whole = [s for s in sentences if s.rstrip().endswith(tuple(_CLOSING))]
    if not whole:
        cut = " ".join(text.split())
        return cut if len(sentences) <= 1 and cut.endswith(tuple(_CLOSING)) else cut.rsplit(" ", 1)[0] + " …"
    asked = set(content_words(question))
    return max(whole, key=lambda s: (len(asked & set(content_words(s))), -whole.index(s)))


def output_list(run: AgentRun, key: str) -> list[Any]:
    value = run.output.get(key) if isinstance(run.output, dict) else None
    return value if isinstance(value, list) else []


def _chip(run: AgentRun, citation: dict[str, Any]) -> SafeString:
    number = citation["number"]
    tip_id = f"tip-{run.pk}-{number}"
    source = citation["title"] or "A deleted document"
    place = citation.get("location_label") or ""
    if citation["quote"]:
        tip = format_html(
            '<span class="cite-tip" role="tooltip" id="{}"><q>{}</q> <span class="muted">— {}{}</span></span>',
            tip_id,
            citation["quote"],
            source,
            f", {place}" if place else "",
        )
    else:
        tip = format_html(
            '<span class="cite-tip" role="tooltip" id="{}"><span class="muted">{}</span></span>',
            tip_id,
            DELETED_QUOTE,
        )
    if citation["title"]:
        chip = format_html(
            '<a class="cite-chip" href="{}" aria-describedby="{}" aria-label="Source {}: {}{}">{}</a>',
            citation["href"],
            tip_id,
            number,
            source,
            f", {place}" if place else "",
            number,
        )
    else:
        chip = format_html(
            '<span class="cite-chip" tabindex="0" aria-describedby="{}">{}</span>', tip_id, number
        )
    return format_html('<span class="cite">{}{}</span>', chip, tip)


def answer_html(run: AgentRun, numbered: list[dict[str, Any]]) -> SafeString:
    """The answer, escaped, in paragraphs, with each [n] turned into citation chip n.

    Markers that name no citation (dropped as unverifiable) are removed; citations
    no marker names are chipped at the end, so every source stays one focus away.
    """
    by_number = {c["number"]: c for c in numbered}
    used: set[int] = set()
    paragraphs = []
    for block in re.split(r"\n\s*\n", run.answer.strip()):
        pieces: list[str] = []
        position = 0
        for match in MARKER.finditer(block):
            pieces.append(escape(block[position : match.start()]))
            for number in (int(n) for n in match.group(1).split(",")):
                if number in by_number:
                    used.add(number)
                    pieces.append(_chip(run, by_number[number]))
            position = match.end()
        pieces.append(escape(block[position:]))
        paragraphs.append("".join(pieces).replace("\n", "<br>"))
    rest = [_chip(run, c) for c in numbered if c["number"] not in used]
    if rest and paragraphs:
        paragraphs[-1] += " " + "".join(rest)
    return mark_safe("".join(f"<p>{p}</p>" for p in paragraphs if p))  # noqa: S308  (escaped above)


def turns(user: Any, runs: Iterable[AgentRun]) -> list[dict[str, Any]]:
    """Everything a page shows of each run, with one query for the documents' titles and
    one for the nearest passages' spans, however many runs there are."""
    runs = list(runs)
    done = [run for run in runs if run.status == RunStatus.SUCCEEDED]
    readable = visible_documents(
        user,
        {c.get("document") for run in done for c in _raw_citations(run)}
        | {i.get("document") for run in done for i in _raw_nearest(run)},
    )
    titles = {pk: title for pk, (title, _) in readable.items()}
    chunk_ids = {i["chunk"] for run in done for i in _raw_nearest(run) if isinstance(i.get("chunk"), int)}
    spans = (
        document_selectors.chunk_spans(project_id=runs[0].project_id, chunk_ids=chunk_ids)
        if chunk_ids
        else {}
    )
    shown = [_turn(run, titles, spans) for run in runs]
    with_locations(
        [item for t in shown for item in (*t["citations"], *t["nearest"])],
        project_ids={run.project_id for run in runs},
    )
    for t in shown:
        for c in t["citations"]:
            if c["title"]:
                fmt = readable[c["document"]][1]
                c["href"] = locations.source_href(
                    c["document"], fmt, c["start"], c["end"], run=t["run"].pk, cite=c["number"]
                )
        for item in t["nearest"]:
            if item["exists"] and item["start"] is not None:
                item["href"] = locations.source_href(
                    item["document"], readable[item["document"]][1], item["start"], item["end"]
                )
        if t["run"].status == RunStatus.SUCCEEDED:
            t["answer_html"] = answer_html(t["run"], t["citations"])
    return shown


def turn(user: Any, run: AgentRun) -> dict[str, Any]:
    """Everything a page shows of one run."""
    return turns(user, [run])[0]


def _turn(run: AgentRun, titles: dict[str, str], spans: dict[int, tuple[str, int, int]]) -> dict[str, Any]:
    """A run's parts; `turns` adds the places of its citations, their links and the answer."""
    done = run.status == RunStatus.SUCCEEDED
    output = run.output if isinstance(run.output, dict) else {}
    return {
        "run": run,
        "answered": run.answered is not False,
        "citations": citations(run, titles) if done else [],
        "answer_html": "",
        "nearest": nearest(run, titles, spans) if done else [],
        "dropped": output.get("dropped_citations", 0),
        "search_query": output.get("search_query", ""),
    }
