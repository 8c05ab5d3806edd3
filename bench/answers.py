"""Answer quality of the offline provider on SQuAD 2.0 ("Rhine"): answers, quotes and declines.

    .venv/bin/python bench/answers.py [--data FILE] [--label NAME] [--limit N] [--no-write]

The article's 44 paragraphs become the documents of one project (Docent's own
services: pasted text, ingested with the real encoder) on private PostgreSQL and
Valkey servers (config/servers.py) in a temporary folder that is deleted afterwards. Every question then goes through the real
pipeline, the way a person's `ask` does: `agents.services.run_create` and
`run_execute` (retrieval with Docent's hybrid search and the project's
`AGENT_CONTEXT_CHUNKS`, the offline provider, citation verification), so what
is scored is the stored run.

Per question: does the answer contain a gold answer text (case- and
whitespace-insensitive), does a verified cited quote contain one, and was the
run declined. Answerable and unanswerable questions are scored apart, per half
of the paragraphs (even / odd paragraph positions) and overall: a rule that
only helps one half is fitted to it.

Then the same questions are run once more with declining switched off (the
threshold set to -inf through the provider's keyword default), which gives each
question's best score and undeclined answer; the sweep table says what each
threshold would have done. Besides the best-score test the provider declines
when the best sentence says the opposite of the question or no sentence near it
holds the date or number asked for; those rules decline with the threshold off
too, so a row of the sweep still equals a run at that threshold.

Results: bench/results/answers.md (a table per `--label`, merged with the
labels already there) and bench/results/answers.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DATA = Path("/work/shared/data/squad-rhine/dev-rhine.json")
BENCH_EMAIL = "answers-bench@docent.invalid"
PROJECT_TITLE = "SQuAD Rhine benchmark"
SWEEP = [round(0.05 * i, 2) for i in range(4, 17)]


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    paragraph: int
    golds: tuple[str, ...]  # empty: unanswerable

    @property
    def answerable(self) -> bool:
        return bool(self.golds)

    @property
    def half(self) -> int:
        return self.paragraph % 2


def load(path: Path) -> tuple[list[str], list[Question]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    paragraphs: list[str] = []
    questions: list[Question] = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            index = len(paragraphs)
            paragraphs.append(para["context"])
            for qa in para["qas"]:
                golds = () if qa.get("is_impossible") else tuple(a["text"] for a in qa["answers"])
                questions.append(Question(qa["id"], qa["question"].strip(), index, golds))
    return paragraphs, questions


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def contains_gold(text: str, golds: tuple[str, ...]) -> bool:
    folded = fold(text)
    return any(fold(gold) and fold(gold) in folded for gold in golds)


# --------------------------------------------------------------------------
# Django, the project, the runs
# --------------------------------------------------------------------------


def setup_django(scratch: Path) -> Any:
    """Docent on private servers in a scratch folder, in-memory broker, the offline provider."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from config.servers import Stack

    stack = Stack(scratch, throwaway=True).start()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DOCENT_DATA_DIR"] = str(scratch)
    os.environ["DOCENT_MEDIA_ROOT"] = str(scratch / "media")
    for name in ("DOCENT_TASKS_EAGER", "GEMINI_API_KEY", "SECRET_KEY"):
        os.environ.pop(name, None)
    os.environ.update(stack.environment())
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["DOCENT_LLM_PROVIDER"] = "offline"
    os.environ.setdefault("DOCENT_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DOCENT_MODEL_DIR", str(ROOT / "var" / "models"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    host = str(settings.DATABASES["default"]["HOST"])
    if scratch.resolve() not in Path(host).resolve().parents and Path(host) != stack.run_dir:
        raise SystemExit(f"refusing to run: database server {host} is not the scratch one")
    call_command("migrate", verbosity=0, interactive=False)
    return stack


def build_project(paragraphs: list[str]) -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    from documents import services as documents_services
    from documents.models import DocumentStatus
    from projects.services import project_create

    user = get_user_model().objects.create_user(email=BENCH_EMAIL, password=None)
    project = project_create(user=user, title=PROJECT_TITLE)
    for index, text in enumerate(paragraphs):
        doc = documents_services.document_create(
            user=user,
            project=project,
            title=f"Rhine, paragraph {index + 1}",
            text=text,
            external_id=str(index),
        )
        documents_services.document_ingest(document_id=doc.pk)
        doc.refresh_from_db()
        if doc.status != DocumentStatus.READY:
            raise SystemExit(f"paragraph {index} did not ingest: {doc.error}")
    return user, project


def ask_all(user: Any, project: Any, questions: list[Question], label: str) -> list[dict[str, Any]]:
    from agents import services
    from agents.models import AgentRun, RunStatus

    rows = []
    started = time.perf_counter()
    for n, q in enumerate(questions, start=1):
        run = services.run_create(user=user, project=project, kind="ask", question=q.text)
        services.run_execute(run_id=run.pk)
        run = AgentRun.objects.get(pk=run.pk)
        if run.status != RunStatus.SUCCEEDED:
            raise SystemExit(f"run for {q.qid} ended {run.status}: {run.error}")
        answered = bool(run.output.get("answered", True))
        quotes = [c["quote"] for c in run.citations]
        best = run.output.get("best_citation")  # the provider's top sentence, when it says which
        rows.append(
            {
                "id": q.qid,
                "half": q.half,
                "answerable": q.answerable,
                "answered": answered,
                "best": float(run.output.get("best_score", math.nan)),
                # answered whatever the score (a sentence glossing the very term asked about)
                "vouched": bool(run.output.get("vouched")),
                "in_answer": answered and contains_gold(run.answer, q.golds),
                "in_quote": answered and any(contains_gold(quote, q.golds) for quote in quotes),
                "in_best_quote": (
                    None
                    if not isinstance(best, int) or not 0 < best <= len(quotes)
                    else answered and contains_gold(quotes[best - 1], q.golds)
                ),
                "answer_chars": len(run.answer),
            }
        )
        if n % 100 == 0:
            rate = n / (time.perf_counter() - started)
            print(f"  {label}: {n}/{len(questions)} questions ({rate:.1f}/s)", flush=True)
    return rows


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def share(values: list[bool]) -> float:
    return sum(values) / len(values) if values else math.nan


def figures(rows: list[dict[str, Any]], threshold: float | None = None) -> dict[str, float]:
    """The four shares; with a threshold, as if runs scoring below it had been declined."""

    def answered(r: dict[str, Any]) -> bool:
        return r["answered"] and (threshold is None or r["best"] >= threshold or bool(r.get("vouched")))

    yes = [r for r in rows if r["answerable"]]
    no = [r for r in rows if not r["answerable"]]
    return {
        "answer_has_gold": share([answered(r) and r["in_answer"] for r in yes]),
        "quote_has_gold": share([answered(r) and r["in_quote"] for r in yes]),
        "unanswerable_declined": share([not answered(r) for r in no]),
        "answerable_declined": share([not answered(r) for r in yes]),
        "best_quote_has_gold": share([answered(r) and bool(r["in_best_quote"]) for r in yes])
        if yes and all(r.get("in_best_quote") is not None or not r["answered"] for r in yes)
        else math.nan,
        "answer_chars": statistics.fmean(r["answer_chars"] for r in yes if answered(r))
        if any(answered(r) for r in yes)
        else math.nan,
        "answerable": len(yes),
        "unanswerable": len(no),
    }


def by_half(rows: list[dict[str, Any]], threshold: float | None = None) -> dict[str, dict[str, float]]:
    return {
        "even": figures([r for r in rows if r["half"] == 0], threshold),
        "odd": figures([r for r in rows if r["half"] == 1], threshold),
        "all": figures(rows, threshold),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


NOTES = """\
How the shipped constants were chosen (agents/providers/offline.py):

- Declining: the best cosine between the question and a sentence, less `ABSENT_PENALTY` (0.20) times the
  share of the question's content words that no retrieved passage has. Word overlap is left out of it:
  on these questions, written to look answerable, it makes answerable and unanswerable ones harder to tell
  apart (AUC of the best score in the development loop: 0.72 on cosine alone, 0.66-0.68 with the overlap
  the ranking uses, 0.71 with the penalty; each half alike). The penalty is for the other failure,
  questions about what the documents never mention, and costs about 0.01 of that AUC here.
- `MIN_ANSWER_SCORE` 0.43: the highest threshold that wrongly declines at most 5% of the answerable
  questions on each half (even 4.9%, odd 0.7% above; 0.45 would be 7.0% on the even half). At about the
  same share of unanswerable questions declined, the code before (threshold 0.50 in its sweep: 11.1%
  declined) put a gold answer in 82.4% of answers; now 87.2% (10.6% declined).
- Choosing sentences: `LEXICAL_BONUS` 0.30 on an idf-weighted share of the query's words (0.10 unweighted
  before), `CUE_BONUS` 0.05 for an answer of the kind asked for, pronoun sentences scored with the subject
  of the sentence before. In the development loop (the same retrieved passages, cached) each raised the
  top quote's hit rate on both halves: lexical weight 0.1 -> 0.3 about +4 / +8 points (even / odd),
  pronoun context +1.4 / +1.4, the cue +0.7 on odd and -0.7 on even at 0.05 (helping when / how many
  questions, 0.10 and more hurt "where"), so it stays small.
- Another topic: 200 of these questions over 8 random SciFact abstracts, and 200 SciFact claims over 8
  random paragraphs of this article, are all declined, before and after (development loop).

Issue 23 (rows "issue-23 before" / "issue-23 after"; "before" is today's code on today's retrieval, one
search engine on PostgreSQL pg_search + pgvector). What changed in `agents/providers/offline.py`:

- Two declines besides the threshold, each general English, not fitted here: the best sentence says the
  opposite of a word of the question while matching at least half its other content words (a list of
  116 antonym pairs: "after"/"until", "northern"/"southern", "first"/"last", "increase"/"decrease"), and a
  "when" / "how many" question none of whose chosen sentences holds a date or number. In the development
  loop (the bench's retrieved passages, cached) these alone, with the threshold off, declined 21.9% / 27.2%
  (even / odd) of the unanswerable questions and 0.0% / 0.7% of the answerable ones.
- The question type comes from the question's own question word ("what happens *when*" is no date
  question; "how long" and "how often" ask for a number), and its type words ("long", "year") are not
  counted as words the documents lack. A who-question's cue is a person or organisation, not a month, a
  label or a version ("Type II"). When no sentence within `ANSWER_SPREAD` holds the kind asked for, the
  best one within `CUE_SPREAD` (0.20) that does takes the last place.
- Words meet through a suffix-stripping stem ("measured" / "measurement", "auditor" / "audited"); the
  sentence before a sentence and its heading count half for word overlap.
- Tuning protocol: `CUE_SPREAD` was chosen on the odd half (0.20: 93.2% answered with gold and 27.2% of
  unanswerable declined with the threshold off, against 93.9% / 21.4% at 0.30 and 93.2% / 25.2% at 0.25);
  `MIN_ANSWER_SCORE` stays 0.43, the highest threshold that keeps the odd half's wrong declines at 1.4%
  (0.44-0.47: 2.0-2.7%); the even half was held out and is reported as it came.

- A meaning or translation question ("What does Obersee mean?", "What is the translation of Het
  Scheur?", "What does X stand for?") asks for a gloss: a sentence holding the term's distinctive words
  and a gloss beside it (a quoted phrase in brackets, "meaning ...", "literally ...") is quoted first and
  not declined, whatever its cosine (the run says `vouched: gloss`; the sweep counts it answered at every
  threshold). A month or day name is a date only when capitalised ("may open" is no date), and a
  geological or archaeological age named alone ("the Miocene") is one. Neither rule was fitted to a
  question: both are what the words mean.

Before and after on issue 23's targets (answerable answered with the gold answer >= 90%, unanswerable
declined >= 30%, answerable wrongly declined <= 3%, on both halves; "committed" is the provider before
issue 23 as measured on 2026-12-02, row "after"):

| version | half | answer has gold | unanswerable declined | answerable declined |
| --- | --- | ---: | ---: | ---: |
| committed (2026-12-02) | even / odd / all | 81.0% / 93.2% / 87.2% | 10.5% / 10.7% / 10.6% | 4.9% / 0.7% / 2.8% |
| issue-23 before (today's retrieval) | even / odd / all | 81.7% / 91.9% / 86.9% | 11.4% / 12.6% / 12.0% | 4.9% / 1.4% / 3.1% |
| issue-23 after | even / odd / all | 83.8% / 93.2% / 88.6% | 32.4% / 37.9% / 35.1% | 2.1% / 0.0% / 1.0% |

- Met on both halves: unanswerable declined (32.4% / 37.9%) and answerable wrongly declined (2.1% /
  0.0%). Answered with gold: met on the odd half (93.2%), not on the even half (83.8%, 119 of 142).
- Where the even half's 23 misses come from: 6 gold answers are in none of the 8 retrieved passages ("How
  long is the Rhine?" twice, "Where does the Rhine begin / end?", the border coordinates, "What did the
  Rhine branch off to form in Austria?"), so 95.8% is its ceiling whatever the provider does; 3 are
  declined ("When did Augustus die?", best cosine 0.38; "What is the Almannic dialect to describe the
  islands ...?", 0.39; "When was Operation Market Garden?", for want of a date: the sentence with
  "September 1944" ranks beyond `CUE_SPREAD`); 14 quote the wrong sentence of a retrieved passage: the
  answer sits in the sentence after the one that matches the question ("What happened to the rate of
  flow ...?" three times), needs a comparison or a count the sentence does not state ("What river is
  larger than the Rhine?", "How many branches ...?" -> "three" of a list), or the matching sentence is
  one of several alike in a passage where Wikipedia's "[note 7]" markers glue two sentences together.
- Tried and left out: word overlap inside the decline score (0.15 of it, threshold 0.49: odd 91.2% /
  44.7% / 2.7%, even 79.6% / 39.0% / 5.6%; it never brought the even half's wrong declines under 4.2%);
  `CUE_SPREAD` 0.25 and 0.30 (+0.6 point of gold answers on the odd half, none on the even, 3-6 points
  fewer unanswerable questions declined); a lower threshold (0.35 before the gloss rule: even 83.8% /
  25.7% / 2.8%, so the decline target fails there instead). The threshold stays 0.43 (not re-tuned): in the sweep
  above 0.45 changes one odd-half question, and 0.50 declines more unanswerable questions but loses gold
  answers on both halves.
"""


def render(results: dict[str, Any]) -> str:
    lines = [
        '# Offline `ask` on SQuAD 2.0 (article "Rhine"): answers, quotes and declines',
        "",
        "Each row is one version of `agents/providers/offline.py`, measured by `bench/answers.py` through",
        "the real pipeline (paragraphs ingested as documents, `run_create` + `run_execute`: hybrid search,",
        "`AGENT_CONTEXT_CHUNKS` passages, the offline provider, verified citations). Halves: questions on",
        "even / odd paragraph positions. Shares of answerable questions whose answer (or a cited quote)",
        "contains a gold answer text, of unanswerable questions declined, of answerable ones declined.",
        "",
        "| version | half (answerable + not) | answer has gold | quote has gold | unanswerable declined"
        " | answerable declined | top quote has gold | answer length (chars) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, run in results["runs"].items():
        # From the stored rows, so figures added to the script later cover earlier runs too.
        halves = by_half(run["rows"]) if "rows" in run else run["figures"]
        for half in ("even", "odd", "all"):
            f = halves[half]
            best = f.get("best_quote_has_gold", math.nan)
            lines.append(
                f"| {label} | {half} ({f['answerable']} + {f['unanswerable']}) | {f['answer_has_gold']:.1%}"
                f" | {f['quote_has_gold']:.1%} | {f['unanswerable_declined']:.1%}"
                f" | {f['answerable_declined']:.1%} | {'n/a' if math.isnan(best) else f'{best:.1%}'}"
                f" | {f.get('answer_chars', math.nan):.0f} |"
            )
    lines += [
        "",
        "Top quote: the citation the provider scored best (it reports which as `best_citation`; the code",
        "before did not). Answer length: mean characters of the answers given to answerable questions.",
    ]
    lines += ["", NOTES]
    for label, run in results["runs"].items():
        meta = run["meta"]
        lines += [
            f"**{label}**: {meta['date']}; `{meta['command']}`; {meta['machine']};"
            f" model {meta['model']}; {meta['passages']} passages per question; threshold"
            f" {meta['threshold']}; {meta['seconds']:.0f} s for {meta['questions']} questions"
            f" (load average {meta['load_avg']}).",
            "",
        ]
    for label, run in results["runs"].items():
        if "sweep" not in run:
            continue
        lines += [
            f"Threshold sweep, {label} (the same runs with declining off, declined below the threshold;"
            " even / odd / all):",
            "",
            "| threshold | answer has gold | unanswerable declined | answerable declined |",
            "| ---: | --- | --- | --- |",
        ]
        for t, halves in run["sweep"].items():
            cells = [
                " / ".join(f"{halves[h][key]:.1%}" for h in ("even", "odd", "all"))
                for key in ("answer_has_gold", "unanswerable_declined", "answerable_declined")
            ]
            lines.append(f"| {float(t):.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SQuAD 2.0 JSON")
    parser.add_argument("--label", default="current", help="the row's name in the results table")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the pass with declining off")
    parser.add_argument("--no-write", action="store_true", help="print the figures only")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--render", action="store_true", help="only rewrite answers.md from answers.json")
    args = parser.parse_args()

    if args.render:
        results = json.loads((args.out_dir / "answers.json").read_text())
        (args.out_dir / "answers.md").write_text(render(results))
        return 0
    paragraphs, questions = load(args.data)
    if args.limit:
        questions = questions[: args.limit]
    scratch = Path(tempfile.mkdtemp(prefix="docent-answers-"))
    scratch.chmod(0o755)
    stack = None
    try:
        stack = setup_django(scratch)
        from django.conf import settings

        from agents.providers import offline
        from documents import embedder

        started = time.perf_counter()
        user, project = build_project(paragraphs)
        print(f"ingested {len(paragraphs)} paragraphs in {time.perf_counter() - started:.0f} s", flush=True)
        threshold = offline.OfflineProvider.__init__.__kwdefaults__["min_answer_score"]
        started = time.perf_counter()
        rows = ask_all(user, project, questions, args.label)
        seconds = time.perf_counter() - started
        run: dict[str, Any] = {
            "figures": by_half(rows),
            "meta": {
                "date": datetime.now(UTC).date().isoformat(),
                "command": " ".join(["bench/answers.py", *sys.argv[1:]]),
                "machine": machine(),
                "model": embedder.model_name(),
                "passages": settings.AGENT_CONTEXT_CHUNKS,
                "threshold": threshold,
                "seconds": seconds,
                "questions": len(questions),
                "load_avg": round(os.getloadavg()[0], 2),
            },
        }
        if not args.no_sweep:
            offline.OfflineProvider.__init__.__kwdefaults__["min_answer_score"] = -math.inf
            open_rows = ask_all(user, project, questions, f"{args.label}, declining off")
            offline.OfflineProvider.__init__.__kwdefaults__["min_answer_score"] = threshold
            # The shipped threshold applied to the open pass must reproduce the real run.
            replay = by_half(open_rows, threshold)["all"]
            mismatch = {
                k: (v, run["figures"]["all"][k]) for k, v in replay.items() if v != run["figures"]["all"][k]
            }
            if mismatch:
                print(f"warning: the sweep does not replay the real run: {mismatch}", flush=True)
            run["sweep"] = {f"{t:.2f}": by_half(open_rows, t) for t in sorted({*SWEEP, threshold})}
            run["best_scores"] = {
                "answerable": statistics.quantiles([r["best"] for r in open_rows if r["answerable"]], n=4),
                "unanswerable": statistics.quantiles(
                    [r["best"] for r in open_rows if not r["answerable"]], n=4
                ),
            }
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    for half, f in run["figures"].items():
        print(
            f"{args.label:12s} {half:4s} answer has gold {f['answer_has_gold']:.1%}  quote has gold"
            f" {f['quote_has_gold']:.1%}  unanswerable declined {f['unanswerable_declined']:.1%}"
            f"  answerable declined {f['answerable_declined']:.1%}",
            flush=True,
        )
    if args.no_write:
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    saved = args.out_dir / "answers.json"
    results = json.loads(saved.read_text()) if saved.exists() else {"runs": {}}
    results["runs"][args.label] = {**run, "rows": rows}
    saved.write_text(json.dumps(results, indent=1) + "\n")
    (args.out_dir / "answers.md").write_text(render(results))
    print(f"wrote {args.out_dir / 'answers.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
