"""Where should the offline provider refuse? Best-sentence scores on SciFact.

    .venv/bin/python bench/answer_threshold.py [--queries 200] [--data-dir DIR]

Uses the scratch database of bench/retrieval.py (importing the corpus first if
it is not there). For each sampled claim it builds the passages an `ask` run
would get (hybrid search, `AGENT_CONTEXT_CHUNKS` chunks) and records the
offline provider's best sentence score (cosine + lexical bonus) in three worlds:

- present: the corpus as it is; "present, retrieved" keeps the claims whose
  relevant abstract really is among the passages (answers not to refuse);
- absent, on-topic neighbours: the same search with every chunk of the claim's
  relevant abstracts removed. SciFact has many abstracts on each topic, so the
  passages still share most of the claim's words: a near miss;
- absent, other topic: the passages retrieved for another sampled claim (one
  with no relevant abstract in common), i.e. a project about something else.

It also scores "present, retrieved" with the claim asked as a question ("Is it
true that ...?"), and a few hand-written questions that paraphrase their answer
(SciFact claims share unusually many words with their abstracts; people's
questions often do not). The chosen threshold is the lowest that refuses at
least `REFUSE_TARGET` of the other-topic cases: the least risk to answerable
questions that reaching that refusal rate allows. No threshold separates the
on-topic near misses (see the AUC): that needs a support check, not a score.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.retrieval import (  # noqa: E402
    DEFAULT_DATA,
    RESULTS_DIR,
    SCRATCH_DIR,
    corpus_path,
    ingest,
    load_qrels,
    load_queries,
    percentile,
    probe_settings,
    scratch_key,
    setup_django,
)

# Enough absent-world candidates that removing the relevant chunks still leaves a full context.
SEARCH_DEPTH = 60
SEED = 13
PERCENTILES = (5, 10, 25, 50, 75, 90, 95)
REFUSE_TARGET = 0.90  # share of other-topic cases the threshold must refuse
# Answerable questions worded unlike their answer, and questions the passage cannot answer.
PARAPHRASES = {
    "Employees accrue 2.5 vacation days per month of service. Unused leave of up to ten days can be"
    " carried into the next calendar year. Sick leave requires a doctor's note after three consecutive"
    " days.": [
        ("How many days off do I get per year?", True),
        ("Can I carry over holidays?", True),
        ("Do I need a medical certificate when ill?", True),
        ("How do I reset my password?", False),
    ],
    "Either party may terminate this agreement with thirty days' written notice. The supplier shall"
    " invoice monthly and payment is due within 45 days. Liability is capped at the fees paid in the"
    " preceding twelve months.": [
        ("How much notice do I need to give to end the contract?", True),
        ("When do we have to pay invoices?", True),
        ("Is there a cap on damages?", True),
        ("Who won the 2018 World Cup?", False),
    ],
}
WORLDS = {
    "present": "present (all)",
    "retrieved": "present, relevant retrieved",
    "question": "present, retrieved, asked as a question",
    "near": "absent: on-topic neighbours",
    "other": "absent: another claim's passages",
}


def best_scores(
    project: Any, queries: list[tuple[str, str]], qrels: dict[str, dict[str, int]]
) -> list[dict[str, Any]]:
    from django.conf import settings

    from agents.providers.base import Passage
    from agents.providers.offline import OfflineProvider
    from documents import embedder, search

    provider = OfflineProvider(embedder.encode)
    context = settings.AGENT_CONTEXT_CHUNKS

    def passages(hits: list[search.Hit]) -> list[Passage]:
        return [
            Passage(
                chunk_id=h.chunk_id,
                document_id=h.document_id,
                document_title=h.document_title,
                text=h.text,
                start=h.start,
                end=h.end,
                score=h.score,
            )
            for h in hits
        ]

    def best(question: str, hits: list[search.Hit]) -> float:
        return float(provider.ask(question, passages(hits), []).output["best_score"])

    hits_of = {
        qid: search.search(project_id=project.pk, query=text, k=SEARCH_DEPTH, mode="hybrid")
        for qid, text in queries
    }
    # Each claim meets the passages of the next claim in a seeded shuffle that shares no relevant abstract.
    order = [qid for qid, _ in queries]
    random.Random(SEED + 1).shuffle(order)
    other_of: dict[str, str] = {}
    for i, qid in enumerate(order):
        for step in range(1, len(order)):
            candidate = order[(i + step) % len(order)]
            if not set(qrels[qid]) & set(qrels[candidate]):
                other_of[qid] = candidate
                break

    out = []
    for n, (qid, text) in enumerate(queries, start=1):
        relevant = set(qrels[qid])
        hits = hits_of[qid]
        present_hits = hits[:context]
        retrieved = any(h.external_id in relevant for h in present_hits)
        claim = text.strip().rstrip(".")
        out.append(
            {
                "query": qid,
                "retrieved": retrieved,
                "present": best(text, present_hits),
                "question": best(f"Is it true that {claim[:1].lower() + claim[1:]}?", present_hits)
                if retrieved
                else None,
                "near": best(text, [h for h in hits if h.external_id not in relevant][:context]),
                "other": best(text, hits_of[other_of[qid]][:context]),
            }
        )
        if n % 50 == 0:
            print(f"  {n}/{len(queries)}", flush=True)
    return out


def paraphrase_scores() -> list[tuple[str, bool, float]]:
    from agents.providers.base import Passage
    from agents.providers.offline import OfflineProvider
    from documents import embedder

    provider = OfflineProvider(embedder.encode)
    out = []
    for text, questions in PARAPHRASES.items():
        passage = Passage(
            chunk_id=0, document_id="0", document_title="Policy", text=text, start=0, end=len(text)
        )
        for question, answerable in questions:
            out.append(
                (question, answerable, float(provider.ask(question, [passage], []).output["best_score"]))
            )
    return out


def auc(positives: list[float], negatives: list[float]) -> float:
    """Chance that an answerable claim outscores an unanswerable one (ties count half)."""
    wins = sum((p > q) + 0.5 * (p == q) for p in positives for q in negatives)
    return wins / (len(positives) * len(negatives))


def rates(scores: list[float], threshold: float) -> float:
    """Share of scores at or above the threshold (answered)."""
    return sum(s >= threshold for s in scores) / len(scores) if scores else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--queries", type=int, default=200, help="queries sampled (seeded) from the train split"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--reuse-scores",
        action="store_true",
        help="re-render the report from the scores in answer_threshold.json (no search, no encoding)",
    )
    args = parser.parse_args()

    corpus = corpus_path(args.data_dir)
    scratch = SCRATCH_DIR / scratch_key(probe_settings(), corpus)
    setup_django(scratch)
    from django.conf import settings

    from agents.providers import offline
    from documents import embedder

    project, _ = ingest(corpus, scratch)
    qrels = load_qrels(args.data_dir)
    queries = [q for q in load_queries(args.data_dir) if q[0] in qrels]
    queries = sorted(
        random.Random(SEED).sample(queries, min(args.queries, len(queries))), key=lambda q: int(q[0])
    )
    saved = args.out_dir / "answer_threshold.json"
    if args.reuse_scores and saved.exists():
        rows = json.loads(saved.read_text())["rows"]
    else:
        rows = best_scores(project, queries, qrels)

    scores = {
        "present": [r["present"] for r in rows],
        "retrieved": [r["present"] for r in rows if r["retrieved"]],
        "question": [r["question"] for r in rows if r["retrieved"]],
        "near": [r["near"] for r in rows],
        "other": [r["other"] for r in rows],
    }
    candidates = [round(0.01 * i, 2) for i in range(10, 96)]
    chosen = min(t for t in candidates if 1 - rates(scores["other"], t) >= REFUSE_TARGET)
    paraphrases = paraphrase_scores()

    lines = [
        "# Offline `ask`: the refusal threshold (MIN_ANSWER_SCORE)",
        "",
        f"- date: {datetime.now(UTC).date().isoformat()}; command:"
        f" `bench/answer_threshold.py --queries {args.queries}`; model {embedder.model_name()}",
        f"- {len(rows)} SciFact train claims (seeded sample); passages = hybrid top"
        f" `AGENT_CONTEXT_CHUNKS` ({settings.AGENT_CONTEXT_CHUNKS}) chunks, as an `ask` run gets them",
        "- score = the offline provider's best sentence: cosine(question, sentence) + lexical bonus",
        "- worlds: see the docstring of bench/answer_threshold.py",
        "",
        "| scores | n | " + " | ".join(f"p{p}" for p in PERCENTILES) + " | mean |",
        "| --- | ---: | " + " | ".join("---:" for _ in PERCENTILES) + " | ---: |",
    ]
    for key, name in WORLDS.items():
        values = scores[key]
        cells = " | ".join(f"{percentile(values, p):.3f}" for p in PERCENTILES)
        lines.append(f"| {name} | {len(values)} | {cells} | {statistics.fmean(values):.3f} |")
    lines += [
        "",
        "Separation (AUC, present-retrieved against each absent world):"
        f" on-topic neighbours {auc(scores['retrieved'], scores['near']):.3f},"
        f" another claim's passages {auc(scores['retrieved'], scores['other']):.3f}.",
        "",
        "| threshold | answered: present (all) | answered: present, retrieved | answered: as a question"
        " | refused: on-topic neighbours | refused: other topic |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    shown = sorted({*candidates[::5], chosen, offline.MIN_ANSWER_SCORE})
    for t in shown:
        if t < 0.2 or t > 0.85:
            continue
        mark = " (chosen)" if t == chosen else ""
        lines.append(
            f"| {t:.2f}{mark} | {rates(scores['present'], t):.1%} | {rates(scores['retrieved'], t):.1%}"
            f" | {rates(scores['question'], t):.1%} | {1 - rates(scores['near'], t):.1%}"
            f" | {1 - rates(scores['other'], t):.1%} |"
        )
    lines += [
        "",
        f"Rule: the lowest threshold that refuses at least {REFUSE_TARGET:.0%} of the other-topic cases"
        f" -> {chosen:.2f}. The constant in agents/providers/offline.py is {offline.MIN_ANSWER_SCORE:.2f}.",
        "",
        "Hand-written check (one passage each; answerable questions worded unlike their answer):",
        "",
        "| question | answerable | score | at the chosen threshold |",
        "| --- | --- | ---: | --- |",
    ]
    for question, answerable, score in paraphrases:
        verdict = "answered" if score >= chosen else "refused"
        lines.append(f"| {question} | {'yes' if answerable else 'no'} | {score:.3f} | {verdict} |")
    lines.append("")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "answer_threshold.md").write_text("\n".join(lines))
    (args.out_dir / "answer_threshold.json").write_text(
        json.dumps(
            {
                "chosen": chosen,
                "current": offline.MIN_ANSWER_SCORE,
                "refuse_target": REFUSE_TARGET,
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
