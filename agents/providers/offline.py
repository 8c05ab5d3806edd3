"""The offline provider: extractive answers, summaries and extraction, no network.

Everything it says is a sentence copied from the passages, ranked with the same
embeddings the search index uses, so every answer is cited by construction.
Deterministic: the same passages and encoder give the same result.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from agents.providers.base import (
    NOT_ANSWERED,
    Citation,
    Passage,
    ProviderResult,
    citation_in_passage,
)
from documents.chunking import split_sentences

Encoder = Callable[[list[str]], np.ndarray]
_T = TypeVar("_T")

# Declining: the best cosine between the question and a sentence, less ABSENT_PENALTY
# times the share of the question's content words no passage has, below which the
# documents are taken not to cover the question. Measured on SQuAD 2.0 "Rhine"
# (bench/results/answers.md): the highest threshold that wrongly declines at most 5%
# of the answerable questions on each half of the paragraphs. Its unanswerable
# questions are written to look answerable, so most of them still get an answer.
MIN_ANSWER_SCORE = 0.43
ABSENT_PENALTY = 0.20
# Choosing sentences: cosine + LEXICAL_BONUS x the idf-weighted share of the query's
# content words the sentence has + CUE_BONUS when it holds the kind of answer asked
# for (who -> a name, when -> a date, how many -> a number, where -> a place).
LEXICAL_BONUS = 0.30
CUE_BONUS = 0.05
ANSWER_SPREAD = 0.15  # sentences this far below the best one are not worth quoting
MAX_ANSWER_SENTENCES = 3
MAX_SENTENCES = 2_000  # sentences embedded per call; longer inputs are sampled evenly
MIN_SUMMARY_SENTENCES = 3
MAX_SUMMARY_SENTENCES = 7
MMR_LAMBDA = 0.7  # relevance to the centroid versus redundancy with what is already chosen
MAX_KEYWORDS = 10
MAX_TAGS = 5
MAX_ENTITIES = 15
MAX_ENTITY_CITATIONS = 10

WORD = re.compile(r"\w+(?:['’\-]\w+)*")

# A compact English stop-word list: function words plus question words and
# fillers that carry no topic.
_STOP_WORDS_TEXT = """
    a about above according across after afterwards again against all almost alone along
    already also although always am among amongst an and another any anybody anyhow
    anyone anything anyway anywhere are around as at be became because become becomes
    becoming been before beforehand behind being below beside besides between beyond
    both but by can cannot could did do does doing done down due during each either else
    elsewhere enough etc even ever every everyone everything everywhere except few for
    former formerly from further had has have having he hence her here hereafter hereby
    herein hers herself him himself his how however i if in indeed into is it its itself
    just last latter least less like made make many may me meanwhile might mine more
    moreover most mostly much must my myself namely neither never nevertheless next no
    nobody none nor not nothing now nowhere of off often on once one only onto or other
    others otherwise our ours ourselves out over own per perhaps please put quite rather
    re really regarding same say says said see seem seemed seeming seems several she
    should show shown shows since so some somehow someone something sometime sometimes
    somewhere still such than that the their theirs them themselves then thence there
    thereafter thereby therefore therein thereupon these they this those though through
    throughout thru thus to together too toward towards under until up upon us use used
    uses using very via was we well were what whatever when whence whenever where
    whereafter whereas whereby wherein whereupon wherever whether which while whither
    who whoever whole whom whose why will with within without would yet you your yours
    yourself yourselves tell explain describe give get got know let lets want wants need
    needs new also
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def _words(text: str) -> list[str]:
    return [match.group(0).lower() for match in WORD.finditer(text)]


def _stem(word: str) -> str:
    """A very light stem, so 'embeddings' meets 'embedding'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _is_content(word: str) -> bool:
    return word not in STOP_WORDS and (len(word) >= 3 or (word.isdigit() and len(word) >= 2))


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning."""
    return [_stem(word) for word in _words(text) if _is_content(word)]


@dataclass(frozen=True)
class _Sentence:
    passage: Passage
    start: int  # offsets inside passage.text
    end: int
    doc_rank: int  # order of the sentence's document among the passages

    @property
    def text(self) -> str:
        return self.passage.text[self.start : self.end]

    @property
    def doc_start(self) -> int:
        return self.passage.start + self.start

    @property
    def doc_end(self) -> int:
        return self.passage.start + self.end

    @property
    def order(self) -> tuple[int, int]:
        return (self.doc_rank, self.doc_start)

    def citation(self) -> Citation:
        return citation_in_passage(self.passage, self.start, self.end)


def _sentences(passages: list[Passage]) -> list[_Sentence]:
    """Every sentence of the passages once, in document order.

    Chunks overlap, so the same sentence (or a clipped piece of it at a chunk
    edge) can arrive twice: a span that mostly overlaps one already kept from the
    same document is skipped.
    """
    doc_ranks: dict[str, int] = {}
    kept: dict[str, tuple[list[int], list[int]]] = {}  # doc -> (sorted starts, ends)
    out: list[_Sentence] = []
    for passage in passages:
        rank = doc_ranks.setdefault(passage.document_id, len(doc_ranks))
        starts, ends = kept.setdefault(passage.document_id, ([], []))
        for raw_start, raw_end in split_sentences(passage.text):
            start, end = raw_start, raw_end
            while start < end and passage.text[start].isspace():
                start += 1
            while end > start and passage.text[end - 1].isspace():
                end -= 1
            if not WORD.search(passage.text[start:end]):
                continue
            doc_start, doc_end = passage.start + start, passage.start + end
            at = bisect.bisect_left(starts, doc_start)
            if any(
                _mostly_overlap(doc_start, doc_end, starts[i], ends[i])
                for i in (at - 1, at, at + 1)
                if 0 <= i < len(starts)
            ):
                continue
            starts.insert(at, doc_start)
            ends.insert(at, doc_end)
            out.append(_Sentence(passage, start, end, rank))
    out.sort(key=lambda sentence: sentence.order)
    return out


def _mostly_overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    overlap = min(a_end, b_end) - max(a_start, b_start)
    shorter = min(a_end - a_start, b_end - b_start)
    return shorter > 0 and overlap > shorter / 2


def _sample_evenly(items: list[_T], limit: int) -> list[_T]:
    if len(items) <= limit:
        return items
    picks = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))
    return [items[i] for i in picks]


def _substantial(sentences: list[_Sentence], min_words: int) -> list[_Sentence]:
    """Sentences with enough words to stand alone (headings make poor answers)."""
    long_enough = [s for s in sentences if len(_words(s.text)) >= min_words]
    return long_enough or sentences


def _cited_text(sentences: list[_Sentence]) -> tuple[str, list[Citation]]:
    parts = [f"{_prose(sentence.text)} [{number}]" for number, sentence in enumerate(sentences, 1)]
    return " ".join(parts), [sentence.citation() for sentence in sentences]


class OfflineProvider:
    """Extractive, deterministic, no network and no key."""

    name = "offline"
    model = "extractive-v1"

    def __init__(self, encode: Encoder, *, min_answer_score: float = MIN_ANSWER_SCORE) -> None:
        self._encode_fn = encode
        self.min_answer_score = min_answer_score

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._encode_fn(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"encoder returned shape {vectors.shape} for {len(texts)} texts")
        return vectors

    def _result(self, answer: str, citations: list[Citation], **extra: object) -> ProviderResult:
        return ProviderResult(
            answer=answer,
            citations=citations,
            provider=self.name,
            model=self.model,
            **extra,
        )

    # --- ask ---------------------------------------------------------------

    def rewrite_query(self, question: str, history: list[tuple[str, str]]) -> str:
        """The question as a standalone search query (see `standalone_query`)."""
        return standalone_query(question, history)

    def ask(
        self,
        question: str,
        passages: list[Passage],
        history: list[tuple[str, str]],
        on_delta: Callable[[str], None] | None = None,
    ) -> ProviderResult:
        query = standalone_query(question, history)
        units = _sample_evenly(_answer_units(passages), MAX_SENTENCES)
        if not units or not query.strip():
            return self._not_answered(best=0.0, on_delta=on_delta)

        # The embedding and the word overlap use the standalone query (a follow-up's
        # topic comes from the turns before); the type cue comes from the question asked now.
        query_words = set(content_words(query))
        kind = question_kind(question)
        vectors = self._encode([query, *(u.scoring_text for u in units)])
        unit_words = [set(content_words(unit.scoring_text)) for unit in units]
        weights = _word_weights(query_words, unit_words)
        scores = np.array(
            [
                float(vectors[1 + i] @ vectors[0]) + _support(weights, kind, question, unit, unit_words[i])
                for i, unit in enumerate(units)
            ],
            dtype=np.float32,
        )
        best = float(scores.max())
        # Declining rests on meaning alone (the best cosine), less what the question asks about
        # that no passage mentions: word overlap helps choose a sentence but, on questions
        # written to trap it, separates answerable from unanswerable worse (bench/results/answers.md).
        seen = set().union(*unit_words)
        absent = len(query_words - seen) / len(query_words) if query_words else 1.0
        support = float((vectors[1:] @ vectors[0]).max()) - ABSENT_PENALTY * absent
        output: dict[str, object] = {"best_score": round(support, 4)}
        if kind:
            output["question_type"] = kind
        if query != question:
            output["query"] = query
        if support < self.min_answer_score:
            return self._not_answered(best=support, on_delta=on_delta, output=output)

        chosen: list[int] = []
        # Ties broken by document order, so the same input gives the same answer.
        for index in sorted(range(len(units)), key=lambda i: (-float(scores[i]), i)):
            if float(scores[index]) < best - ANSWER_SPREAD:
                break
            if any(
                units[index].overlaps(units[j]) or _near_duplicate(units, vectors[1:], index, j)
                for j in chosen
            ):
                continue
            chosen.append(index)
            if len(chosen) == MAX_ANSWER_SENTENCES:
                break
        picked = sorted((units[i] for i in chosen), key=lambda u: u.order)
        # Which citation is the best-scoring one (the others are quoted in document order).
        output["best_citation"] = picked.index(units[chosen[0]]) + 1
        pieces = [
            f"{'' if number == 1 else ' '}{_prose(unit.quote_text)} [{number}]"
            for number, unit in enumerate(picked, 1)
        ]
        if on_delta is not None:
            for piece in pieces:
                on_delta(piece)
        return self._result("".join(pieces), [unit.citation() for unit in picked], output=output)

    def _not_answered(
        self,
        *,
        best: float,
        on_delta: Callable[[str], None] | None = None,
        output: dict[str, object] | None = None,
    ) -> ProviderResult:
        if on_delta is not None:
            on_delta(NOT_ANSWERED)
        return self._result(
            NOT_ANSWERED, [], answered=False, output={**(output or {}), "best_score": round(best, 4)}
        )

    # --- summarize ---------------------------------------------------------

    def summarize(self, title: str, passages: list[Passage]) -> ProviderResult:
        every = _sentences(passages)
        if not every:
            return self._result(
                "There is no text to summarize.",
                [],
                answered=False,
                output={"sentences": 0},
            )
        candidates = _sample_evenly(_substantial(every, min_words=4), MAX_SENTENCES)
        wanted = min(summary_length(len(every)), len(candidates))
        vectors = self._encode([s.text for s in candidates])
        centroid = vectors.mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        relevance = vectors @ (centroid / norm) if norm > 0 else np.zeros(len(candidates))

        chosen: list[int] = []
        redundancy = np.full(len(candidates), -1.0, dtype=np.float32)
        available = np.ones(len(candidates), dtype=bool)
        while len(chosen) < wanted:
            mmr = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * np.maximum(redundancy, 0.0)
            mmr = np.where(available, mmr, -np.inf)
            index = int(np.argmax(mmr))  # first maximum: ties go to the earlier sentence
            chosen.append(index)
            available[index] = False
            redundancy = np.maximum(redundancy, vectors @ vectors[index])
        picked = sorted((candidates[i] for i in chosen), key=lambda s: s.order)
        answer, citations = _cited_text(picked)
        return self._result(answer, citations, output={"sentences": len(picked)})

    # --- extract -----------------------------------------------------------

    def extract(self, title: str, passages: list[Passage]) -> ProviderResult:
        sentences = _sentences(passages)
        keywords = _keywords(sentences)
        tags = [keyword.lower() for keyword in keywords[:MAX_TAGS]]
        entities, mentions = _entities(sentences)
        citations = [mentions[entity["text"]] for entity in entities[:MAX_ENTITY_CITATIONS]]
        lines = [
            f"Tags: {', '.join(tags) or 'none'}.",
            f"Keywords: {', '.join(keywords) or 'none'}.",
            "Entities: " + (", ".join(f"{e['text']} ({e['type']})" for e in entities) or "none") + ".",
        ]
        return self._result(
            "\n".join(lines),
            citations,
            answered=bool(sentences),
            output={"tags": tags, "keywords": keywords, "entities": entities},
        )


def summary_length(sentence_count: int) -> int:
    """3 sentences for a short text, one more each time the text doubles, at most 7."""
    if sentence_count <= 15:
        return MIN_SUMMARY_SENTENCES
    extra = int(math.log2(sentence_count / 15))
    return min(MAX_SUMMARY_SENTENCES, MIN_SUMMARY_SENTENCES + extra)


# --- keywords ----------------------------------------------------------------


def _keywords(sentences: list[_Sentence]) -> list[str]:
    """Frequent content words and two-word phrases, earlier ones favoured.

    Phrases never cross a stop word or a sentence edge. A word is dropped when a
    chosen phrase containing it accounts for most of its uses.
    """
    unigram_tf: Counter[str] = Counter()
    bigram_tf: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    position = 0
    for sentence in sentences:
        previous: str | None = None
        previous_end = 0
        for match in WORD.finditer(sentence.text):
            word = match.group(0).lower()
            position += 1
            if sentence.text[previous_end : match.start()].strip():
                previous = None  # punctuation between the words: not a phrase
            previous_end = match.end()
            if not _is_content(word) or word.isdigit() or len(word) < 3:
                previous = None
                continue
            unigram_tf[word] += 1
            first_seen.setdefault(word, position)
            if previous is not None:
                phrase = f"{previous} {word}"
                bigram_tf[phrase] += 1
                first_seen.setdefault(phrase, position - 1)
            previous = word
    total = max(position, 1)

    def score(term: str, tf: int, weight: float) -> float:
        earliness = 1.0 - first_seen[term] / total
        return weight * tf * (1.0 + 0.5 * earliness)

    scored = [(score(t, tf, 1.0), t) for t, tf in unigram_tf.items()]
    scored += [(score(t, tf, 1.5), t) for t, tf in bigram_tf.items() if tf >= 2]
    scored.sort(key=lambda item: (-item[0], first_seen[item[1]], item[1]))

    chosen: list[str] = []
    for _, term in scored:
        if " " not in term and any(
            term in phrase.split() and bigram_tf[phrase] * 2 >= unigram_tf[term]
            for phrase in chosen
            if " " in phrase
        ):
            continue
        chosen.append(term)
        if len(chosen) == MAX_KEYWORDS:
            break
    return chosen


# --- entities ----------------------------------------------------------------

# Words allowed inside a name ("Bank of America"). Not "and": "PDF and HTML" is two names.
_CONNECTORS = frozenset({"of", "for", "de", "la", "van", "von", "der", "du", "&"})
_ORG_TEXT = """
    inc inc. ltd ltd. llc corp corp. corporation company co co. university institute
    foundation association agency ministry department bank group council committee
    society labs laboratory gmbh ag plc school college hospital center centre
    organization organisation commission federation union party trust
"""
_ORG_WORDS = frozenset(_ORG_TEXT.split())
_PLACE_TEXT = """
    city river mount mountain lake ocean sea valley county province state states
    republic kingdom island islands street avenue road bay coast north south east west
"""
_PLACE_WORDS = frozenset(_PLACE_TEXT.split())
_DATE_TEXT = """
    january february march april may june july august september october november
    december monday tuesday wednesday thursday friday saturday sunday
"""
_DATE_WORDS = frozenset(_DATE_TEXT.split())
_TITLES_TEXT = """
    mr mrs ms dr prof professor sir dame lord lady
"""
_PERSON_TITLES = frozenset(_TITLES_TEXT.split())
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9&]{1,7}s?$")


def _is_capitalised(token: str) -> bool:
    return token[:1].isupper()


def _entity_type(text: str, preceding: str) -> str:
    tokens = text.split()
    lowered = {token.lower().strip(".,") for token in tokens}
    if lowered & _DATE_WORDS:
        return "DATE"
    if (len(tokens) == 1 and _ACRONYM.match(text)) or lowered & _ORG_WORDS:
        return "ORG"
    if preceding.lower().rstrip(".") in _PERSON_TITLES:
        return "PERSON"
    if lowered & _PLACE_WORDS:
        return "PLACE"
    return "MISC"


def _entities(
    sentences: list[_Sentence],
) -> tuple[list[dict[str, str]], dict[str, Citation]]:
    """Capitalised runs and acronyms, typed by simple cues.

    A capitalised word at the start of a sentence is only a candidate when it is
    seen again elsewhere: otherwise "However" and "The" would be entities.
    """
    counts: Counter[str] = Counter()
    inside: Counter[str] = Counter()  # occurrences not at the start of a sentence
    first: dict[str, tuple[int, Citation, str]] = {}
    serial = 0
    for sentence in sentences:
        tokens = list(WORD.finditer(sentence.text))
        index = 0
        while index < len(tokens):
            token = tokens[index].group(0)
            if not _is_capitalised(token):
                index += 1
                continue
            run = [index]
            cursor = index + 1
            while cursor < len(tokens):
                word = tokens[cursor].group(0)
                gap = sentence.text[tokens[cursor - 1].end() : tokens[cursor].start()]
                if gap.strip(" &") or "\n" in gap:
                    break  # punctuation ends a name
                if _is_capitalised(word) or (
                    word in _CONNECTORS
                    and cursor + 1 < len(tokens)
                    and _is_capitalised(tokens[cursor + 1].group(0))
                ):
                    run.append(cursor)
                else:
                    break
                cursor += 1
            # Leading stop words ("The", "However") are sentence furniture, not names.
            while run and tokens[run[0]].group(0).lower() in STOP_WORDS:
                run.pop(0)
            while run and tokens[run[-1]].group(0).lower() in _CONNECTORS:
                run.pop()
            if run:
                start, end = tokens[run[0]].start(), tokens[run[-1]].end()
                text = sentence.text[start:end]
                is_acronym = len(run) == 1 and bool(_ACRONYM.match(text))
                if len(run) > 1 or is_acronym or run[0] > 0:
                    counts[text] += 1
                    at_start = run[0] == 0
                    if not at_start:
                        inside[text] += 1
                    if text not in first:
                        preceding = tokens[run[0] - 1].group(0) if run[0] > 0 else ""
                        citation = citation_in_passage(
                            sentence.passage,
                            sentence.start + start,
                            sentence.start + end,
                        )
                        first[text] = (serial, citation, preceding)
                        serial += 1
            index = max(cursor, index + 1)

    kept = []
    for text, count in counts.items():
        multi_word = " " in text
        acronym = bool(_ACRONYM.match(text))
        if not (inside[text] or count > 1):
            continue
        if not (multi_word or acronym or count > 1):
            continue
        kept.append((text, count))
    kept.sort(key=lambda item: (-item[1], first[item[0]][0]))
    entities = [{"text": text, "type": _entity_type(text, first[text][2])} for text, _ in kept][:MAX_ENTITIES]
    return entities, {text: first[text][1] for text, _ in kept}


# --- follow-ups ----------------------------------------------------------------

# Words that make a question lean on an earlier turn ("How often should *its* filter be cleaned?").
_REFERRING_TEXT = """
    it its itself they them their theirs themselves he him his himself she her hers herself
    this these those such
"""
_REFERRING_WORDS = frozenset(_REFERRING_TEXT.split())
_FOLLOW_UP_OPENERS = ("and ", "also ", "what about ", "how about ", "and what ", "then ")
MAX_TOPIC_WORDS = 6


def _leans_on_earlier_turns(question: str) -> bool:
    lowered = question.strip().lower()
    return (
        any(word in _REFERRING_WORDS for word in _words(question))
        or lowered.startswith(_FOLLOW_UP_OPENERS)
        or len(content_words(question)) <= 1
    )


def _topic_words(text: str) -> list[str]:
    """Content words of an earlier question that name its topic, in order, original spelling.

    Lower-case words ending in -ed or -ing are usually its verb ("Who *designed* the
    pump?"): the follow-up asks something else about the same thing.
    """
    out = []
    for match in WORD.finditer(text):
        word = match.group(0)
        lowered = word.lower()
        if not _is_content(lowered):
            continue
        if word.islower() and lowered.endswith(("ed", "ing")) and len(lowered) > 5:
            continue
        out.append(word)
    return out


def standalone_query(question: str, history: list[tuple[str, str]]) -> str:
    """A follow-up rewritten into a query that stands alone: the question, then the topic
    words of the latest earlier question that has any it does not already contain.

    "How often should its intake filter be cleaned?" after "Who designed the Brightwater
    pump?" becomes "How often should its intake filter be cleaned? Brightwater pump".
    A question with no history, or one that names its own topic (no pronoun referring
    back, not "and ...?", more than one content word), is returned unchanged.
    Deterministic: only the words of the turns decide.
    """
    if not history or not _leans_on_earlier_turns(question):
        return question
    present = set(content_words(question))

    def new_words(text: str) -> list[str]:
        added: list[str] = []
        for word in _topic_words(text):
            stem = _stem(word.lower())
            if stem not in present and stem not in {_stem(w.lower()) for w in added}:
                added.append(word)
        return added[:MAX_TOPIC_WORDS]

    for earlier_question, earlier_answer in reversed(history):
        added = new_words(earlier_question)
        if not added and earlier_answer and earlier_answer != NOT_ANSWERED:
            # An earlier question with no topic of its own ("Who made it?") leans on its answer.
            added = new_words(earlier_answer)
        if added:
            return f"{question.rstrip()} {' '.join(added)}"
    return question


# --- answer units: sentences with their context -----------------------------------

# A sentence opening with one of these leans on the one before for its subject.
_PRONOUNS = frozenset({"it", "he", "she", "they", "this", "these", "that", "those"})
_POSSESSIVES = frozenset({"its", "his", "her", "their"})
# Where the subject of a sentence usually ends: its first auxiliary or common verb.
_VERB_TEXT = """
    is was are were be been being has have had can could will would shall should may might
    must does did do became become becomes remains remained lies lay runs ran flows flowed
    forms formed begins began includes included contains contained consists makes made
    uses used lead leads led took takes gave gives said says which who that where when
"""
_VERBS = frozenset(_VERB_TEXT.split())
MAX_SUBJECT_WORDS = 8
MAX_CHAIN = 2  # pronoun sentences quoted back to the sentence that named their subject
_HYPHEN_WRAP = re.compile(r"(\w)-\n(?=[a-z])")
_WHITESPACE = re.compile(r"\s+")


def _prose(text: str) -> str:
    """A quote as one line: hard-wrapped lines joined, whitespace runs made one space."""
    return _WHITESPACE.sub(" ", text).strip()


def _scoring_form(text: str) -> str:
    """What is embedded and matched: the prose, with words hyphenated across a wrap rejoined."""
    return _prose(_HYPHEN_WRAP.sub(r"\1", text))


def _subject(sentence: str) -> str:
    """The noun phrase a sentence opens with ("The Brightwater pump" of "The Brightwater
    pump is a ..."), or "" when there is no short one."""
    words = list(WORD.finditer(sentence))
    for position, match in enumerate(words[: MAX_SUBJECT_WORDS + 1]):
        word = match.group(0)
        lowered = word.lower()
        gap = sentence[words[position - 1].end() : match.start()] if position else ""
        named = any(_is_content(w.group(0).lower()) for w in words[:position])
        ends_here = (
            lowered in _VERBS
            or (named and word.islower() and lowered.endswith(("ed", "s")) and not lowered.endswith("ss"))
            or any(mark in gap for mark in ",;:()")
        )
        if ends_here:
            if position == 0:
                return ""
            return sentence[words[0].start() : words[position - 1].end()]
    return ""


@dataclass(frozen=True)
class _Unit:
    """A sentence to score and quote; one opening with a pronoun brings the one before."""

    sentence: _Sentence
    scoring_text: str
    quote_passage: Passage
    quote_start: int  # offsets inside quote_passage.text
    quote_end: int

    @property
    def order(self) -> tuple[int, int]:
        return self.sentence.order

    @property
    def text(self) -> str:
        return self.sentence.text

    @property
    def quote_text(self) -> str:
        return self.quote_passage.text[self.quote_start : self.quote_end]

    @property
    def doc_span(self) -> tuple[str, int, int]:
        passage = self.quote_passage
        return passage.document_id, passage.start + self.quote_start, passage.start + self.quote_end

    def overlaps(self, other: _Unit) -> bool:
        doc, start, end = self.doc_span
        other_doc, other_start, other_end = other.doc_span
        return doc == other_doc and start < other_end and other_start < end

    def citation(self) -> Citation:
        return citation_in_passage(self.quote_passage, self.quote_start, self.quote_end)


def _with_subject(sentence: str, subject: str) -> str:
    """ "It was designed by ..." read as "The Brightwater pump was designed by ..."."""
    first = WORD.match(sentence.lstrip("\"'“‘("))
    if not first or not subject:
        return sentence
    offset = len(sentence) - len(sentence.lstrip("\"'“‘("))
    lowered = first.group(0).lower()
    if lowered in _POSSESSIVES:
        replacement = f"{subject}'s"
    elif lowered in _PRONOUNS:
        replacement = subject
    else:
        return sentence
    return sentence[:offset] + replacement + sentence[offset + first.end() :]


def _covering_passage(passages: list[Passage], document_id: str, start: int, end: int) -> Passage | None:
    for passage in passages:
        if passage.document_id == document_id and passage.start <= start and end <= passage.end:
            return passage
    return None


def _answer_units(passages: list[Passage]) -> list[_Unit]:
    """The passages' sentences as units to score and quote, in document order.

    A sentence opening with a pronoun ("It was designed by Marta Ruiz.") is scored with
    the subject of the sentence before in its place, and quoted together with that
    sentence (one exact span of a passage holding both) so the quote says what "it" is.
    """
    every = _sentences(passages)
    units: list[_Unit] = []
    previous: _Sentence | None = None
    # The subject the sentences lean on and the sentence that named it, while a chain lasts.
    subject, named_in, chain = "", None, 0
    for sentence in every:
        text = sentence.text
        first = WORD.match(text.lstrip("\"'“‘("))
        opener = first.group(0).lower() if first else ""
        adjacent = (
            previous is not None
            and previous.passage.document_id == sentence.passage.document_id
            and 0 <= sentence.doc_start - previous.doc_end <= 3
        )
        quote = (sentence.passage, sentence.start, sentence.end)
        leans = adjacent and bool(subject) and (opener in _PRONOUNS or opener in _POSSESSIVES)
        if leans and named_in is not None and chain < MAX_CHAIN:
            holder = _covering_passage(
                passages, sentence.passage.document_id, named_in.doc_start, sentence.doc_end
            )
            if holder is not None:
                quote = (holder, named_in.doc_start - holder.start, sentence.doc_end - holder.start)
        scoring = _scoring_form(_with_subject(text, subject) if leans else text)
        units.append(_Unit(sentence, scoring, *quote))
        if leans:
            chain += 1  # "It ... . It ...": the subject stays the one named before
        else:
            subject, named_in, chain = _subject(text), sentence, 0
        previous = sentence
    # Headings and fragments make poor answers, unless there is nothing else.
    return [unit for unit in units if len(_words(unit.text)) >= 3] or units


# --- question types ---------------------------------------------------------------

_QUESTION_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "number",
        re.compile(
            r"\bhow (?:many|much|long|far|big|large|high|tall|deep|wide|old|fast|often|heavy|hot|cold)\b"
            r"|\bwhat (?:percentage|percent|proportion|share|number|amount|fraction|size|length"
            r"|distance|height|depth|speed|temperature)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "date",
        re.compile(
            r"\bwhen\b|\b(?:what|which|in what|in which) (?:year|date|month|day|century|decade|era|period)\b",
            re.IGNORECASE,
        ),
    ),
    ("name", re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE)),
    (
        "place",
        re.compile(
            r"\bwhere\b|\b(?:what|which|in what|in which) (?:country|countries|city|cities|town|region"
            r"|state|place|river|lake|sea|ocean|mountain|continent|area|location|valley|island|canton)\b",
            re.IGNORECASE,
        ),
    ),
)

_NUMBER_TEXT = """
    one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions dozen dozens half
    twice double triple once quarter percent
"""
_NUMBER_WORDS = frozenset(_NUMBER_TEXT.split())
_DATE_WORDS_CUE = _DATE_WORDS | frozenset(
    {"century", "centuries", "decade", "decades", "bc", "ad", "bce", "ce", "today", "yesterday"}
)
_NUMBER = re.compile(r"\d")
_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2}|\d{1,4} ?(?:BC|AD|BCE|CE))s?\b")
_PLACE_PREPOSITIONS = frozenset(
    {
        "in",
        "at",
        "near",
        "from",
        "into",
        "to",
        "through",
        "across",
        "between",
        "towards",
        "along",
        "via",
        "of",
    }
)


def question_kind(question: str) -> str:
    """What kind of answer the question wants: "number", "date", "name", "place" or ""
    (the first cue in the question wins)."""
    found = [
        (match.start(), kind) for kind, pattern in _QUESTION_KINDS if (match := pattern.search(question))
    ]
    return min(found)[1] if found else ""


def _new_names(text: str, asked: set[str]) -> list[tuple[str, str]]:
    """Capitalised words of the text the question does not mention, with the word before each."""
    out = []
    previous = ""
    for position, match in enumerate(WORD.finditer(text)):
        word = match.group(0)
        lowered = word.lower()
        if (
            word[:1].isupper()
            and lowered not in STOP_WORDS
            and _stem(lowered) not in asked
            and (position > 0 or len(word) > 1)
        ):
            out.append((previous, word))
        previous = lowered
    return out


def has_answer_cue(kind: str, text: str, question: str) -> bool:
    """Whether the text holds something of the kind asked for that the question lacks."""
    if not kind:
        return False
    asked = {_stem(word) for word in _words(question)}
    words = [word for word in _words(text) if _stem(word) not in asked]
    if kind == "number":
        return any(_NUMBER.search(word) or word in _NUMBER_WORDS for word in words)
    if kind == "date":
        years = [m.group(0) for m in _YEAR.finditer(text) if _stem(m.group(0).lower()) not in asked]
        return bool(years) or any(word in _DATE_WORDS_CUE for word in words)
    names = _new_names(text, asked)
    if kind == "place":
        return any(before in _PLACE_PREPOSITIONS for before, _ in names)
    return bool(names)


def _word_weights(query_words: set[str], unit_words: list[set[str]]) -> dict[str, float]:
    """Each query word's weight: rarer among the sentences at hand, worth more (BM25's idf).

    A word every passage repeats (the project's own subject) says little about which
    sentence answers; a word no sentence has weighs most, so missing it costs most.
    """
    count = len(unit_words)
    df = Counter(word for words in unit_words for word in words & query_words)
    return {word: math.log((count + 1) / (df[word] + 0.5)) for word in query_words}


def _support(weights: dict[str, float], kind: str, question: str, unit: _Unit, words: set[str]) -> float:
    """What a unit earns beyond its cosine: shared words, and an answer of the kind asked."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    shared = sum(weight for word, weight in weights.items() if word in words) / total
    cue = CUE_BONUS if has_answer_cue(kind, unit.text, question) else 0.0
    return LEXICAL_BONUS * shared + cue


def _near_duplicate(units: list[_Unit], vectors: np.ndarray, a: int, b: int) -> bool:
    if float(vectors[a] @ vectors[b]) >= 0.95:
        return True
    words_a, words_b = set(content_words(units[a].text)), set(content_words(units[b].text))
    union = words_a | words_b
    return bool(union) and len(words_a & words_b) / len(union) >= 0.8
