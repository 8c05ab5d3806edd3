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

# Best sentence score (cosine + lexical bonus) below which the documents are
# taken not to cover the question. Measured for all-MiniLM-L6-v2 on SciFact
# (bench/results/answer_threshold.md): 0.40 answers every claim whose abstract
# was retrieved and refuses 90% of passages on another topic; on-topic near
# misses score like real answers, so no threshold catches those.
MIN_ANSWER_SCORE = 0.40
LEXICAL_BONUS = 0.10  # added in proportion to the question's content words a sentence shares
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

# Words that make a follow-up question lean on the previous one.
_FOLLOW_UP_TEXT = """
    it its they them their theirs this that these those he him his she her hers there
    such same ones one
"""
FOLLOW_UP_WORDS = frozenset(_FOLLOW_UP_TEXT.split())


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
    parts = [f"{sentence.text} [{number}]" for number, sentence in enumerate(sentences, 1)]
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

    def ask(self, question: str, passages: list[Passage], history: list[tuple[str, str]]) -> ProviderResult:
        query = _query_with_context(question, history)
        sentences = _substantial(_sentences(passages), min_words=3)
        sentences = _sample_evenly(sentences, MAX_SENTENCES)
        # The embedding carries the conversation; the word bonus rewards what is asked now.
        query_words = set(content_words(question)) or set(content_words(query))
        if not sentences or not query.strip():
            return self._not_answered(best=0.0)

        vectors = self._encode([query, *(s.text for s in sentences)])
        cosine = vectors[1:] @ vectors[0]
        bonus = np.array(
            [
                LEXICAL_BONUS * len(query_words & set(content_words(s.text))) / len(query_words)
                if query_words
                else 0.0
                for s in sentences
            ],
            dtype=np.float32,
        )
        scores = cosine + bonus
        best = float(scores.max())
        if best < self.min_answer_score:
            return self._not_answered(best=best)

        chosen: list[int] = []
        # Ties broken by document order, so the same input gives the same answer.
        for index in sorted(range(len(sentences)), key=lambda i: (-float(scores[i]), i)):
            if float(scores[index]) < best - ANSWER_SPREAD:
                break
            if any(_near_duplicate(sentences, vectors[1:], index, j) for j in chosen):
                continue
            chosen.append(index)
            if len(chosen) == MAX_ANSWER_SENTENCES:
                break
        picked = sorted((sentences[i] for i in chosen), key=lambda s: s.order)
        answer, citations = _cited_text(picked)
        return self._result(answer, citations, output={"best_score": round(best, 4)})

    def _not_answered(self, *, best: float) -> ProviderResult:
        return self._result(NOT_ANSWERED, [], answered=False, output={"best_score": round(best, 4)})

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


def _query_with_context(question: str, history: list[tuple[str, str]]) -> str:
    """A follow-up ("and what about its cost?") is embedded with the question before it."""
    if not history:
        return question
    question_words = _words(question)
    leans_on_previous = len(content_words(question)) <= 2 or any(
        word in FOLLOW_UP_WORDS for word in question_words
    )
    if not leans_on_previous:
        return question
    previous_question = history[-1][0]
    return f"{previous_question} {question}"


def _near_duplicate(sentences: list[_Sentence], vectors: np.ndarray, a: int, b: int) -> bool:
    if float(vectors[a] @ vectors[b]) >= 0.95:
        return True
    words_a, words_b = (
        set(content_words(sentences[a].text)),
        set(content_words(sentences[b].text)),
    )
    union = words_a | words_b
    return bool(union) and len(words_a & words_b) / len(union) >= 0.8


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
