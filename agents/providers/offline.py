"""The offline provider: extractive answers, summaries and extraction, no network.

Everything it says is a sentence copied from the passages, ranked with the same
embeddings the search index uses, so every answer is cited by construction.
Deterministic: the same passages and encoder give the same result.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
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
# documents are taken not to cover the question (bench/results/answers.md). A question
# is declined too when the sentence that best answers it says the opposite of what it
# asks about ("after" asked, "until" written), or when it asks for a date or a number
# and no sentence near the best holds one.
MIN_ANSWER_SCORE = 0.43
ABSENT_PENALTY = 0.20
# Choosing sentences: cosine + LEXICAL_BONUS x the idf-weighted share of the query's
# content words the sentence has + CUE_BONUS when it holds the kind of answer asked
# for (who -> a name, when -> a date, how many -> a number, where -> a place).
LEXICAL_BONUS = 0.30
CUE_BONUS = 0.05
# A word of the question found only in the heading a sentence sits under counts this
# much of a word the sentence has ("Slide 2: SOC 2" over "Notes: the auditor is ...").
HEADING_WEIGHT = 0.5
ANSWER_SPREAD = 0.15  # sentences this far below the best one are not worth quoting
# ... unless none of those holds the kind of answer asked for and one this far below does.
CUE_SPREAD = 0.2
MAX_ANSWER_SENTENCES = 3
MAX_SENTENCES = 2_000  # sentences embedded per call; longer inputs are sampled evenly
MIN_SUMMARY_SENTENCES = 3
MAX_SUMMARY_SENTENCES = 7
# A summary of several documents quotes one or two sentences of each, at most this many in all.
MAX_PROJECT_SUMMARY_SENTENCES = 12
MAX_SENTENCES_PER_DOCUMENT = 2
MMR_LAMBDA = 0.7  # relevance to the centroid versus redundancy with what is already chosen
MAX_KEYWORDS = 10
MAX_TAGS = 5
MAX_ENTITIES = 15
MAX_ENTITY_CITATIONS = 10
# Streaming: a short pause between the sentences of an answer, so a reader (the page,
# `curl -N`) sees it arrive sentence by sentence as it would from a model.
STREAM_PAUSE_S = 0.04

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

# Common English words that name no topic: everyday verbs (with their irregular forms),
# adjectives, adverbs and general nouns, beyond the function words above. A keyword is
# never one of these ("covers", "year", "end"), and a capitalised pair of them is no
# person's name ("Project Plan"). Inflections are matched through `_stem`.
_COMMON_TEXT = """
    accept achieve act add admit affect agree aim allow announce answer appear apply
    approach argue arise arrange arrive ask assume attach attempt attend avoid base
    bear beat become begin believe belong bend bring build buy call care carry catch
    cause change charge check choose claim clean clear close collect come compare
    complete concern confirm connect consider contain continue contribute control
    copy correct count cover create cross cut deal decide declare define deliver
    depend describe deserve determine develop die discover discuss divide do draw
    drive drop earn eat enable encourage end enjoy ensure enter establish estimate
    examine exist expect experience explain express extend face fail fall feel fight
    fill find finish fit fix fly focus follow force forget form gain gather generate
    get give go grow guess handle hang happen hate have head hear help hide hit hold
    hope hurry identify ignore imagine imply improve include increase indicate inform
    insist intend introduce invite involve join jump keep kill kick knock know lack
    last laugh lay lead lean learn leave lend let lie lift like limit link listen
    live look lose love maintain make manage mark matter mean meet mention mind miss
    mix move need note notice obtain occur offer open operate order organise organize
    own pass pay perform pick place plan play point possess prefer prepare present
    pretend prevent produce promise propose protect prove provide pull push put
    raise reach read realise realize receive recognise recognize recommend reduce refer
    reflect refuse regard relate release rely remain remember remind remove repeat
    replace reply request require respond rest result retain return reveal ride ring
    rise roll run save say see seek seem select sell send separate serve set settle
    shake share shoot show shut sign sing sit sleep slip solve sort sound speak spend
    spread stand start state stay step stick stop strike study succeed suffer suggest
    suit supply support suppose surround survive take talk teach tell tend thank think
    throw touch track treat try turn understand update urge use vary view visit wait
    wake walk want warn wash watch wear win wish wonder work worry write
    ate awoke began begun bent bore born bought brought built came caught chose chosen
    dealt did done drew drawn drove driven eaten fell fallen felt fought found flew
    flown forgot forgotten gave given gone got gotten grew grown had heard held hid
    hidden hung kept knew known laid led left lent lost made meant met paid ran rang
    risen rode rose said sang sat saw seen sent shook shot shown slept sold spent
    spoke spoken spread stood stuck struck sung taken taught thought threw thrown
    told took understood went woke wore won worn wrote written
    able actual additional alternative appropriate available aware bad basic best
    better big brief broad busy central certain cheap clear close common complete
    complex concerned considerable correct current daily dear deep different difficult
    direct due early easy effective entire equal essential exact existing extra fair
    false familiar far fast final fine following former free frequent fresh full
    general given good great hard heavy high huge ideal immediate important individual
    initial interesting key large late latest likely little local long low main major
    minor modern monthly more most much narrow natural near nearby necessary negative
    new next nice normal obvious old only open original other overall own particular
    past perfect personal plain poor popular positive possible potential practical
    present pretty previous primary prior private proper public quick quiet rapid rare
    ready real reasonable recent regular related relevant remaining responsible rich
    right rough routine same second secure senior separate serious several short
    significant similar simple single slow small social soft special specific standard
    strong subsequent successful sudden sufficient suitable sure third tiny top total
    true typical unable unique unknown unusual upper usual valuable various vast
    visible weekly whole wide wrong yearly young
    actually additionally almost already also always approximately around away
    briefly certainly clearly closely completely currently definitely directly early
    easily effectively entirely especially essentially eventually exactly fairly
    finally firmly frequently fully generally gradually greatly hardly highly
    immediately increasingly instead largely lately later likely mainly merely mostly
    namely naturally nearly necessarily normally notably obviously often originally
    particularly partly possibly potentially precisely presumably previously primarily
    probably promptly properly quickly rarely readily recently regularly relatively
    roughly separately seriously shortly significantly similarly simply slightly soon
    specifically strictly strongly subsequently successfully suddenly sufficiently
    surely truly twice typically ultimately usually widely
    ability access account action activity addition address advice age agreement
    amount analysis approach area arrangement article aspect attempt attention
    average background balance base basis beginning benefit bit body bottom branch
    case category cause centre center chance chapter choice circumstance claim class
    comment condition consideration content context contrast cost couple course
    date day deal decision degree demand description detail development difference
    difficulty direction discussion document effect effort element end entry event
    evidence example exception experience extent fact factor feature figure file
    fine form front function future goal group guide half hand handbook help history
    hour idea impact importance improvement information instance interest introduction
    issue item job kind knowledge lack length level life line list lot majority manner
    manual material matter meaning means measure member method middle minute mistake
    model moment month most name nature need note notes number object occasion option
    order outcome output overview page pair paragraph part period person people
    percent percentage piece place plan point portion position possibility practice
    presence principle priority problem procedure process progress proportion purpose
    quality quantity question range rate reason record reference regard region
    relation relationship remainder report request requirement response rest result
    review right role row rule sample scale scope second section sense sequence series
    set share side sign situation size slide solution sort source space stage
    standard start state statement status step story structure style subject success
    suggestion summary support surface table target task term text thing time title
    topic total tour type unit use user value variety version view way week whole word
    work world year today tomorrow tonight yesterday everybody somebody sheet
    business customer client product platform portal project programme program policy
    strategy security safety service team meeting office staff install plan schedule
    budget cost contact phone email website online system systems data
"""

# Words a name does not begin with: days, months and the labels extraction writes.
_LABEL_WORDS = frozenset({"slide", "notes", "sheet", "page", "note"})


def _words(text: str) -> list[str]:
    return [match.group(0).lower() for match in WORD.finditer(text)]


# Suffixes stripped to match a word's forms ("audited", "auditor" and "audits" meet at
# "audit"), longest first. Agent and adverb endings need a longer base ("water" stays).
_SUFFIXES = (
    "ational",
    "ations",
    "ation",
    "ments",
    "ment",
    "ingly",
    "ings",
    "ing",
    "iest",
    "est",
    "ers",
    "ors",
    "ied",
    "ies",
    "er",
    "or",
    "ed",
    "es",
    "ly",
    "s",
)
_LONG_BASE_SUFFIXES = frozenset({"ers", "ors", "er", "or", "ly", "est"})


def _stem(word: str) -> str:
    """A light suffix-stripping stem, so 'embeddings' meets 'embedding' and 'measured'
    meets 'measurement'. Only for matching: stems are never shown."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix in _SUFFIXES:
        if not word.endswith(suffix):
            continue
        base = word[: -len(suffix)]
        if len(base) < (4 if suffix in _LONG_BASE_SUFFIXES else 3):
            continue
        if suffix in ("ied", "ies", "iest"):
            base += "y"
        elif suffix == "s" and word.endswith(("ss", "us", "is")):
            continue
        elif suffix == "es" and not base.endswith(("s", "x", "z", "ch", "sh")):
            base = word[:-1]  # "changes" -> "change"
        elif suffix == "ed" and base.endswith("e"):
            continue  # "speed", "need"
        word = base
        break
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]  # "running" -> "runn" -> "run"
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # "change" and "changed" meet at "chang"
    return word


def _is_content(word: str) -> bool:
    return word not in STOP_WORDS and (len(word) >= 3 or (word.isdigit() and len(word) >= 2))


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning."""
    return [_stem(word) for word in _words(text) if _is_content(word)]


COMMON_WORDS = frozenset(_COMMON_TEXT.split())
_COMMON_STEMS = frozenset(_stem(word) for word in COMMON_WORDS)


def is_common(word: str) -> bool:
    """Whether a (lower-case) word is a function word or a common English word of no topic."""
    return word in STOP_WORDS or word in COMMON_WORDS or _stem(word) in _COMMON_STEMS


# --- sentences: prose, headings and table rows -----------------------------------

PROSE, HEADING, TABLE_ROW = "prose", "heading", "row"
_TERMINAL = ".!?…"
_CLOSERS = "\"'”’»)]"
_LABELLED_HEADING = re.compile(r"^(?:slide|sheet|page|chapter|section|part|appendix)\b", re.IGNORECASE)
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s")
_NUMBERED_HEADING = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[IVX]+\.)\s+\S")
MAX_HEADING_WORDS = 12


def _is_heading(line: str) -> bool:
    """A title or heading line: short, without a sentence's closing punctuation, and
    either labelled ("Slide 2: ...", "# ..."), numbered ("3.1 Safety"), ending in a
    colon, or in title case ("Northwind Chiller X-40 Maintenance Handbook")."""
    text = line.strip()
    words = WORD.findall(text)
    if not words or len(words) > MAX_HEADING_WORDS:
        return False
    if text.rstrip(_CLOSERS)[-1:] in _TERMINAL or " | " in text:
        return False
    if _MARKDOWN_HEADING.match(text) or _LABELLED_HEADING.match(text) or text.endswith(":"):
        return True
    if ":" in text:
        return False  # a field ("Contact: Tomas Berg") is a statement
    if _NUMBERED_HEADING.match(text) and words[-1][:1].isupper():
        return True
    lettered = [word for word in words if word[:1].isalpha()]
    if not lettered or not lettered[0][:1].isupper():
        return False
    topical = [word for word in lettered if word.lower() not in STOP_WORDS]
    capitalised = [word for word in topical if word[:1].isupper()]
    return bool(topical) and len(capitalised) >= max(1, math.ceil(0.6 * len(topical)))


def _is_table_row(line: str) -> bool:
    return line.count(" | ") >= 1


def _segments(text: str, start: int, end: int) -> Iterator[tuple[int, int, str]]:
    """A sentence span cut at line breaks that end a heading or a table row: the
    pieces with their role. Hard-wrapped prose lines stay one sentence."""
    lines: list[tuple[int, int]] = []
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        stop = end if newline < 0 else newline
        lines.append((position, stop))
        position = stop + 1
    prose_start: int | None = None
    prose_end = start
    for line_start, line_end in lines:
        line = text[line_start:line_end]
        if not line.strip():
            continue
        role = TABLE_ROW if _is_table_row(line) else HEADING if _is_heading(line) else PROSE
        if role == PROSE:
            if prose_start is None:
                prose_start = line_start
            prose_end = line_end
            continue
        if prose_start is not None:
            yield prose_start, prose_end, PROSE
            prose_start = None
        yield line_start, line_end, role
    if prose_start is not None:
        yield prose_start, prose_end, PROSE


@dataclass(frozen=True)
class _Sentence:
    passage: Passage
    start: int  # offsets inside passage.text
    end: int
    doc_rank: int  # order of the sentence's document among the passages
    role: str = PROSE
    heading: str = ""  # the heading line the sentence sits under, in its passage

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

    @property
    def is_whole(self) -> bool:
        """Not a piece clipped at a chunk's edge: it opens like a sentence and closes like one."""
        text = self.text.rstrip(_CLOSERS + " ")
        first = text.lstrip("\"'“‘(«[")[:1]
        return bool(text) and text[-1] in _TERMINAL + ":;" and (first.isupper() or first.isdigit())

    def citation(self) -> Citation:
        return citation_in_passage(self.passage, self.start, self.end)


def _sentences(passages: list[Passage]) -> list[_Sentence]:
    """Every sentence of the passages once, in document order, with headings and table
    rows told apart from prose.

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
        heading = ""
        for raw_start, raw_end in split_sentences(passage.text):
            for seg_start, seg_end, role in _segments(passage.text, raw_start, raw_end):
                start, end = seg_start, seg_end
                while start < end and passage.text[start].isspace():
                    start += 1
                while end > start and passage.text[end - 1].isspace():
                    end -= 1
                if not WORD.search(passage.text[start:end]):
                    continue
                if role == HEADING:
                    heading = _prose(passage.text[start:end])
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
                under = "" if role == HEADING else heading
                out.append(_Sentence(passage, start, end, rank, role, under))
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


def _cited_text(sentences: list[_Sentence]) -> tuple[str, list[Citation]]:
    parts = [f"{_prose(sentence.text)} [{number}]" for number, sentence in enumerate(sentences, 1)]
    return " ".join(parts), [sentence.citation() for sentence in sentences]


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
    context: str = ""  # the heading it sits under and the sentence just before it

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

    def quote_pieces(self) -> list[str]:
        """The quote's sentences as prose, in order (one, or the two a pronoun joined)."""
        text = self.quote_text
        pieces = [_prose(text[start:end]) for start, end in split_sentences(text)]
        return [piece for piece in pieces if piece] or [_prose(text)]


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


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split(" | ")]


def _row_with_header(row: str, header: str) -> str:
    """A table row read with its column names: "Training | HR | 1500" under
    "Item | Owner | Q1" scores as "Item Training; Owner HR; Q1 1500"."""
    names, cells = _cells(header), _cells(row)
    if len(names) < 2 or len(cells) > len(names):
        return row
    return "; ".join(f"{name} {cell}" for name, cell in zip(names, cells, strict=False) if cell)


def _answer_units(passages: list[Passage]) -> list[_Unit]:
    """The passages' sentences as units to score and quote, in document order.

    A sentence opening with a pronoun ("It was designed by Marta Ruiz.") is scored with
    the subject of the sentence before in its place, and quoted together with that
    sentence (one exact span of a passage holding both) so the quote says what "it" is.
    Headings are context, never answers: nothing leans on them. A table row is scored
    with its table's column names.
    """
    every = _sentences(passages)
    units: list[_Unit] = []
    previous: _Sentence | None = None
    # The subject the sentences lean on and the sentence that named it, while a chain lasts.
    subject, named_in, chain = "", None, 0
    header = ""  # the first row of the table being read
    for sentence in every:
        text = sentence.text
        adjacent = (
            previous is not None
            and previous.passage.document_id == sentence.passage.document_id
            and 0 <= sentence.doc_start - previous.doc_end <= 3
        )
        if sentence.role != PROSE:
            if sentence.role == TABLE_ROW:
                continuing = adjacent and previous is not None and previous.role == TABLE_ROW
                if continuing and header:
                    scoring = _row_with_header(text, header)
                else:
                    header, scoring = text, text
                units.append(
                    _Unit(sentence, _scoring_form(scoring), sentence.passage, sentence.start, sentence.end)
                )
            subject, named_in, chain = "", None, 0
            previous = sentence
            continue
        first = WORD.match(text.lstrip("\"'“‘("))
        opener = first.group(0).lower() if first else ""
        quote = (sentence.passage, sentence.start, sentence.end)
        leans = adjacent and bool(subject) and (opener in _PRONOUNS or opener in _POSSESSIVES)
        if leans and named_in is not None and chain < MAX_CHAIN:
            holder = _covering_passage(
                passages, sentence.passage.document_id, named_in.doc_start, sentence.doc_end
            )
            if holder is not None:
                quote = (holder, named_in.doc_start - holder.start, sentence.doc_end - holder.start)
        scoring = _scoring_form(_with_subject(text, subject) if leans else text)
        before = previous.text if adjacent and previous is not None and previous.role == PROSE else ""
        units.append(_Unit(sentence, scoring, *quote, context=f"{sentence.heading}\n{before}".strip()))
        if leans:
            chain += 1  # "It ... . It ...": the subject stays the one named before
        else:
            subject, named_in, chain = _subject(text), sentence, 0
        previous = sentence
    # Fragments make poor answers, unless there is nothing else.
    return [unit for unit in units if len(_words(unit.text)) >= 3] or units


# --- question types ---------------------------------------------------------------

NUMBER, DATE, NAME, PLACE = "number", "date", "name", "place"
# "What does Obersee mean?", "What is the translation of Het Scheur?": the answer is a
# gloss of the term, which a sentence gives beside it ('the Obersee ("upper lake")').
GLOSS = "gloss"
_GLOSS_QUESTIONS = (
    re.compile(
        r"\bwhat\s+(?:does|do|did|would)\s+(?:the\s+(?:name|word|term)\s+)?(?P<term>.+?)\s+"
        r"(?:mean|means|stand\s+for|translate(?:\s+(?:to|into|as))?)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:translation|meaning|english\s+(?:name|word|term))\s+(?:of|for)\s+"
        r"(?:the\s+(?:name|word|term)\s+)?(?P<term>[^?!.,;]+)",
        re.IGNORECASE,
    ),
    re.compile(r"\bwhat\s+is\s+(?P<term>.+?)\s+in\s+english\b", re.IGNORECASE),
)
_GLOSS_FRAME = frozenset({"mean", "means", "meaning", "translation", "translate", "english", "stand"})
# A gloss beside a term: a quoted phrase in brackets ('("upper lake")'), or "meaning" /
# "which means" / "literally" before a phrase.
_GLOSS = re.compile(
    r"\(\s*[\"“‘'][^\"”’()]{1,80}[\"”’']\s*\)"
    r"|\b(?:meaning|which\s+means|literally|lit\.|translated\s+as|i\.e\.)\s+[\"“‘']?\w",
    re.IGNORECASE,
)
_WH_WORDS = frozenset({"who", "whom", "whose", "when", "where", "which", "what", "how"})
# Words before a question word that keep it the question's own ("in which year", "to whom").
_LEADING_PREPOSITIONS_TEXT = """
    in on at by for from to of with since until till during between after before under
    about into onto through within and or but
"""
_LEADING_PREPOSITIONS = frozenset(_LEADING_PREPOSITIONS_TEXT.split())
# A clause opening with one of these, before a comma, is a condition: "When the pump
# stops, who do I call?" asks "who".
_SUBORDINATORS = frozenset(
    {"when", "if", "after", "before", "once", "while", "since", "until", "as", "because"}
)
_AUXILIARIES_TEXT = """
    is was are were do does did can could will would should shall may might must has have had
"""
_AUXILIARIES = frozenset(_AUXILIARIES_TEXT.split())
_HOW_NUMBER_TEXT = """
    many much long far big large high tall deep wide old fast often heavy hot cold
    soon late early frequently small short
"""
_HOW_NUMBER = frozenset(_HOW_NUMBER_TEXT.split())
_DATE_NOUNS_TEXT = """
    year years date dates month months day days century centuries decade decades era eras
    period periods time times age ages epoch
"""
_DATE_NOUNS = frozenset(_DATE_NOUNS_TEXT.split())
_PLACE_NOUNS_TEXT = """
    country countries city cities town towns region regions state states place places river
    rivers lake lakes sea seas ocean oceans mountain mountains continent continents area areas
    location locations valley valleys island islands canton cantons province provinces county
    counties village villages site sites street address port
"""
_PLACE_NOUNS = frozenset(_PLACE_NOUNS_TEXT.split())
_NUMBER_NOUNS_TEXT = """
    percentage percent proportion share number numbers amount amounts fraction size length
    distance height depth speed temperature cost costs price prices width weight rate
    volume capacity population total sum budget fee fees salary
"""
_NUMBER_NOUNS = frozenset(_NUMBER_NOUNS_TEXT.split())
_NAME_NOUNS_TEXT = """
    person people company companies firm firms organisation organization organisations
    organizations supplier suppliers vendor vendors contractor contractors manufacturer
    manufacturers author authors founder founders man woman men women agency agencies
"""
_NAME_NOUNS = frozenset(_NAME_NOUNS_TEXT.split())


def _question_word_at(words: list[str], gaps: list[str]) -> int:
    """Where the question's own question word is in `words` (-1: none).

    Not a "when" or "where" that joins a clause ("What happens *when* the red button is
    pressed?") nor one opening a condition before a comma or before the real question
    ("When the pump stops, who do I call?").
    """
    candidates = [i for i, word in enumerate(words) if word in _WH_WORDS]
    if not candidates:
        return -1
    first = candidates[0]
    if words[first] in _SUBORDINATORS:
        later = [
            i
            for i in candidates[1:]
            if "," in "".join(gaps[first + 1 : i + 1])
            or (i + 1 < len(words) and words[i + 1] in _AUXILIARIES)
            or (i + 2 < len(words) and words[i + 2] in _AUXILIARIES)
        ]
        if later and first == 0:
            return later[0]
    for i in candidates:
        if i == 0 or words[i - 1] in _LEADING_PREPOSITIONS or "," in gaps[i]:
            return i
    return first


def _question_frame(question: str) -> tuple[str, set[str]]:
    """The kind of answer the question wants, and the words that only say so
    ("long" of "how long", "year" of "in what year"), which no answer needs to repeat."""
    if _gloss_term(question):
        return GLOSS, {word for word in _words(question) if word in _GLOSS_FRAME}
    matches = list(WORD.finditer(question))
    words = [match.group(0).lower() for match in matches]
    gaps = [question[matches[i - 1].end() : match.start()] if i else "" for i, match in enumerate(matches)]
    at = _question_word_at(words, gaps)
    if at < 0:
        return "", set()
    word = words[at]
    following = words[at + 1 : at + 3]
    if word in ("who", "whom", "whose"):
        return NAME, set()
    if word == "when":
        return DATE, set()
    if word == "where":
        return PLACE, set()
    if word == "how":
        if following and following[0] in _HOW_NUMBER:
            return NUMBER, {following[0]}
        return "", set()
    # what / which: the noun it asks for, over an adjective or two ("which major city")
    for noun in following:
        if noun in _DATE_NOUNS:
            return DATE, {noun}
        if noun in _NUMBER_NOUNS:
            return NUMBER, {noun}
        if noun in _PLACE_NOUNS:
            return PLACE, {noun}
        if noun in _NAME_NOUNS:
            return NAME, {noun}
        if noun in STOP_WORDS or noun in _AUXILIARIES:
            break
    return "", set()


def _gloss_term(question: str) -> set[str]:
    """The stemmed distinctive words of the term whose meaning or translation is asked
    ("obersee" of "What does Obersee mean?"); empty when the question asks no such thing."""
    for pattern in _GLOSS_QUESTIONS:
        found = pattern.search(question)
        if found:
            term = re.sub(r"['’]s\b", "", found.group("term"))  # "Colonia Agrippina's original name"
            words = [w for w in _words(term) if _is_content(w)]
            distinctive = [w for w in words if not is_common(w)] or words
            return {_stem(word) for word in distinctive}
    return set()


def question_kind(question: str) -> str:
    """What kind of answer the question wants: "number", "date", "name", "place" or "",
    read from the question's own question word and what follows it."""
    return _question_frame(question)[0]


_NUMBER_TEXT = """
    one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions dozen dozens half
    twice double triple once quarter percent daily weekly monthly yearly annually hourly
"""
_NUMBER_WORDS = frozenset(_NUMBER_TEXT.split())
_NUMBER = re.compile(r"\d")
_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2}|\d{1,4} ?(?:BC|AD|BCE|CE))s?\b")
# "the 19th century", "22,000 years ago", "13,000 BP", "the 1990s"
_DATE_PHRASE = re.compile(
    r"\b\d{1,2}(?:st|nd|rd|th)\s+(?:century|centuries|millennium)\b"
    r"|\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
    r"|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth"
    r"|twenty-first)\s+century\b"
    r"|\b[\d.,~]+\s*(?:years?|yrs?|yr)\s+(?:ago|before present)\b|\b[\d.,~]+\s*(?:BP|MBP|Ma|ka)\b"
    r"|\b\d{1,2}:\d{2}\b|\b\d{1,2}\s?(?:am|pm)\b",
    re.IGNORECASE,
)
# A named age: "the Jurassic Period", "the Bronze Age", "World War I".
_NAMED_AGE = re.compile(
    r"\b[A-Z]\w+\s+(?:[Pp]eriod|[Ee]ra|Age|[Ee]poch|Dynasty|War(?:\s+[IVX]+)?)\b"
    # geological and archaeological ages, named alone ("by the time of the Miocene")
    r"|\b(?:Palaeo|Paleo|Eo|Oligo|Mio|Plio|Pleisto|Holo)cene\b|\b(?:Cambrian|Ordovician|Silurian"
    r"|Devonian|Carboniferous|Permian|Triassic|Jurassic|Cretaceous|Tertiary|Quaternary|Palaeolithic"
    r"|Paleolithic|Mesolithic|Neolithic|Chalcolithic)\b|\bMiddle\s+Ages\b"
)
_DATE_TEXT = """
    january february march april may june july august september october november
    december monday tuesday wednesday thursday friday saturday sunday
"""
_DATE_WORDS = frozenset(_DATE_TEXT.split())
_DATE_WORDS_CUE = _DATE_WORDS | frozenset(
    {
        "century",
        "centuries",
        "decade",
        "decades",
        "bc",
        "ad",
        "bce",
        "ce",
        "today",
        "yesterday",
        "tomorrow",
        "spring",
        "summer",
        "autumn",
        "winter",
        "annually",
        "weekly",
        "daily",
        "monthly",
        "quarterly",
    }
)
_PLACE_PREPOSITIONS_TEXT = """
    in at near from into to through across between towards along via of on beside
    outside inside within
"""
_PLACE_PREPOSITIONS = frozenset(_PLACE_PREPOSITIONS_TEXT.split())


def _new_names(text: str, asked: set[str]) -> list[tuple[str, str]]:
    """Capitalised words of the text the question does not mention, with the word before
    each; labels ("Notes:", "Slide 2:"), months and days are not names."""
    out = []
    previous = ""
    for position, match in enumerate(WORD.finditer(text)):
        word = match.group(0)
        lowered = word.lower()
        if (
            word[:1].isupper()
            and lowered not in STOP_WORDS
            and lowered not in _DATE_WORDS
            and not (position == 0 and lowered in _LABEL_WORDS)
            and _stem(lowered) not in asked
            and (position > 0 or len(word) > 1)
        ):
            out.append((previous, word))
        previous = lowered
    return out


def _original_words(text: str, asked: set[str]) -> list[str]:
    """The text's words as written, less those the question has."""
    return [w for w in WORD.findall(text) if _stem(w.lower()) not in asked]


def _is_date_word(word: str) -> bool:
    """A month or day only when written as a name ("in May", not "may open"); a season,
    century or period word in any case."""
    lowered = word.lower()
    if lowered in _DATE_WORDS:
        return word[:1].isupper()
    return lowered in _DATE_WORDS_CUE


def has_answer_cue(kind: str, text: str, question: str) -> bool:
    """Whether the text holds something of the kind asked for that the question lacks."""
    if not kind:
        return False
    asked = {_stem(word) for word in _words(question)}
    words = [word for word in _words(text) if _stem(word) not in asked]
    if kind == NUMBER:
        return any(_NUMBER.search(word) or word in _NUMBER_WORDS for word in words)
    if kind == DATE:
        found = [m.group(0) for m in _YEAR.finditer(text)] + [m.group(0) for m in _DATE_PHRASE.finditer(text)]
        found += [m.group(0) for m in _NAMED_AGE.finditer(text)]
        fresh = [f for f in found if not {_stem(w) for w in _words(f)} <= asked]
        return bool(fresh) or any(_is_date_word(word) for word in _original_words(text, asked))
    if kind == NAME:
        return any(_name_like(text, asked))
    if kind == GLOSS:
        term = _gloss_term(question)
        said = {_stem(word) for word in _words(text)}
        return bool(term) and term <= said and bool(_GLOSS.search(text))
    names = _new_names(text, asked)
    if kind == PLACE:
        return any(before in _PLACE_PREPOSITIONS for before, _ in names)
    return bool(names)


def _name_like(text: str, asked: set[str]) -> Iterator[str]:
    """Names of people or organisations in the text that the question does not give: a
    capitalised run that is not a date, a label or a version ("Type II")."""
    for name, kind in _names_in(text):
        if kind in (DATE_ENTITY, PLACE_ENTITY):
            continue
        tokens = name.split()
        if {_stem(token.lower()) for token in WORD.findall(name)} <= asked:
            continue
        if len(tokens) > 1 and all(_ROMAN.match(t) or t.isdigit() for t in tokens[1:]) and kind != PERSON:
            continue
        yield name


# --- contradiction ---------------------------------------------------------------

# Pairs of opposites in general English. A sentence that answers the question in every
# other respect but has the opposite of one of its words ("after the early 1980s" asked,
# "until the early 1980s" written) does not answer it.
_ANTONYM_TEXT = """
    north:south east:west northern:southern eastern:western northward:southward
    eastward:westward northeast:southwest northwest:southeast first:last early:late
    before:after until:after increase:decrease rise:fall rose:fell raise:lower upper:lower
    large:small big:small high:low long:short wide:narrow more:less most:least many:few
    major:minor open:close first:second former:current old:new ancient:modern past:present
    inner:outer left:right dark:light warm:cold hot:cold wet:dry deep:shallow fast:slow
    strong:weak add:remove gain:lose win:lose accept:reject allow:forbid allow:ban
    include:exclude same:different merge:split merge:diverge join:separate
    upstream:downstream inflow:outflow import:export minimum:maximum internal:external
    private:public dominant:minor always:never above:below over:under top:bottom
    front:back inside:outside positive:negative success:failure legal:illegal
    natural:artificial male:female summer:winter spring:autumn morning:evening day:night
    buy:sell send:receive push:pull enter:leave arrive:depart light:heavy rural:urban
    rich:poor cheap:expensive safe:dangerous easy:hard possible:impossible true:false
    correct:incorrect present:absent known:unknown common:rare similar:different
    ally:enemy agree:disagree support:oppose permit:prohibit continue:stop start:stop
    begin:stop start:finish begin:finish win:defeat victory:defeat attack:defend
    import:export lend:borrow profit:loss asleep:awake above:beneath maximum:minimum
    heaviest:lightest increasing:decreasing larger:smaller higher:lower longer:shorter
"""


def _antonym_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for pair in _ANTONYM_TEXT.split():
        left, right = (_stem(word) for word in pair.split(":"))
        table.setdefault(left, set()).add(right)
        table.setdefault(right, set()).add(left)
    return {word: frozenset(opposites) for word, opposites in table.items()}


_ANTONYMS = _antonym_table()
# The share of the question's content words the sentence must have for an opposite in it
# to be about the same statement.
CONTRADICTION_OVERLAP = 0.5


def contradiction(question: str, text: str) -> str:
    """The question's word and its opposite, when the text has the opposite but not the
    word and otherwise matches the question; "" when it does not contradict it."""
    asked = {_stem(word) for word in _words(question)}
    said = {_stem(word) for word in _words(text)}
    topic = set(content_words(question))
    if not topic or len(topic & said) < CONTRADICTION_OVERLAP * len(topic):
        return ""
    for word in sorted(asked - said):
        opposite = sorted(_ANTONYMS.get(word, frozenset()) & (said - asked))
        if opposite:
            return f"{word}/{opposite[0]}"
    return ""


def _word_weights(query_words: set[str], unit_words: list[set[str]]) -> dict[str, float]:
    """Each query word's weight: rarer among the sentences at hand, worth more (BM25's idf).

    A word every passage repeats (the project's own subject) says little about which
    sentence answers; a word no sentence has weighs most, so missing it costs most.
    """
    count = len(unit_words)
    df = Counter(word for words in unit_words for word in words & query_words)
    return {word: math.log((count + 1) / (df[word] + 0.5)) for word in query_words}


def _support(
    weights: dict[str, float], kind: str, question: str, unit: _Unit, words: set[str], heading: set[str]
) -> float:
    """What a unit earns beyond its cosine: shared words (those only in its heading count
    less), and an answer of the kind asked."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    shared = sum(
        weight * (1.0 if word in words else HEADING_WEIGHT if word in heading else 0.0)
        for word, weight in weights.items()
    )
    cue = CUE_BONUS if has_answer_cue(kind, unit.text, question) else 0.0
    return LEXICAL_BONUS * shared / total + cue


def _near_duplicate(units: list[_Unit], vectors: np.ndarray, a: int, b: int) -> bool:
    if float(vectors[a] @ vectors[b]) >= 0.95:
        return True
    words_a, words_b = set(content_words(units[a].text)), set(content_words(units[b].text))
    union = words_a | words_b
    return bool(union) and len(words_a & words_b) / len(union) >= 0.8


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

    def _result(
        self, answer: str, citations: list[Citation], *, answered: bool = True, output: dict | None = None
    ) -> ProviderResult:
        return ProviderResult(
            answer=answer,
            citations=citations,
            provider=self.name,
            model=self.model,
            output=output or {},
            answered=answered,
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
        units = [unit for unit in units if unit.sentence.role != HEADING]
        if not units or not query.strip():
            return self._not_answered(best=0.0, on_delta=on_delta)

        # The embedding and the word overlap use the standalone query (a follow-up's
        # topic comes from the turns before); the type cue comes from the question asked now.
        kind, frame_words = _question_frame(question)
        query_words = set(content_words(query)) - {_stem(word) for word in frame_words}
        vectors = self._encode([query, *(u.scoring_text for u in units)])
        unit_words = [set(content_words(unit.scoring_text)) for unit in units]
        heading_words = [set(content_words(unit.context)) for unit in units]
        weights = _word_weights(query_words, unit_words)
        cosines = vectors[1:] @ vectors[0]
        scores = np.array(
            [
                float(cosines[i]) + _support(weights, kind, question, unit, unit_words[i], heading_words[i])
                for i, unit in enumerate(units)
            ],
            dtype=np.float32,
        )
        best = float(scores.max())
        # Declining rests on meaning alone (the best cosine), less what the question asks about
        # that no passage mentions: word overlap helps choose a sentence but, on questions
        # written to trap it, separates answerable from unanswerable worse (bench/results/answers.md).
        seen = set().union(*unit_words, *heading_words)
        absent = len(query_words - seen) / len(query_words) if query_words else 0.0
        support = float(cosines.max()) - ABSENT_PENALTY * absent
        output: dict[str, object] = {"best_score": round(support, 4)}
        if kind:
            output["question_type"] = kind
        if query != question:
            output["query"] = query
        ranked = sorted(range(len(units)), key=lambda i: (-float(scores[i]), i))
        if kind == GLOSS:
            # A sentence that glosses the very term asked about answers it, however little
            # its words mean to the encoder ("Obersee"): it goes first, and is not declined.
            glossing = [i for i in ranked if has_answer_cue(GLOSS, units[i].text, question)]
            if glossing:
                ranked = [glossing[0], *(i for i in ranked if i != glossing[0])]
                best = max(best, float(scores[glossing[0]]))
                output["vouched"] = GLOSS
        if support < self.min_answer_score and "vouched" not in output:
            return self._not_answered(
                best=support, on_delta=on_delta, output=output, nearest=self._nearest(units, ranked)
            )

        chosen: list[int] = []
        # Ties broken by document order, so the same input gives the same answer.
        for index in ranked:
            if chosen and float(scores[index]) < best - ANSWER_SPREAD:
                break
            if any(
                units[index].overlaps(units[j]) or _near_duplicate(units, vectors[1:], index, j)
                for j in chosen
            ):
                continue
            chosen.append(index)
            if len(chosen) == MAX_ANSWER_SENTENCES:
                break
        if kind and chosen and not any(has_answer_cue(kind, units[i].text, question) for i in chosen):
            # None of them holds what is asked for ("When ...?" and no date): the best one
            # that does, a little further down, takes the last place.
            for index in ranked:
                if float(scores[index]) < best - CUE_SPREAD:
                    break
                if index in chosen or any(units[index].overlaps(units[j]) for j in chosen):
                    continue
                if has_answer_cue(kind, units[index].text, question):
                    chosen = [*chosen[: MAX_ANSWER_SENTENCES - 1], index]
                    break
        reason = self._mismatch(question, kind, [units[i] for i in chosen])
        if reason:
            output["declined"] = reason
            return self._not_answered(
                best=support, on_delta=on_delta, output=output, nearest=self._nearest(units, ranked)
            )
        picked = sorted((units[i] for i in chosen), key=lambda u: u.order)
        # Which citation is the best-scoring one (the others are quoted in document order).
        output["best_citation"] = picked.index(units[chosen[0]]) + 1
        # One piece per sentence, each unit's marker after its last sentence.
        pieces: list[str] = []
        for number, unit in enumerate(picked, 1):
            sentences = unit.quote_pieces()
            for position, sentence in enumerate(sentences):
                marker = f" [{number}]" if position == len(sentences) - 1 else ""
                pieces.append(f"{'' if not pieces else ' '}{sentence}{marker}")
        if on_delta is not None:
            for position, piece in enumerate(pieces):
                if position and STREAM_PAUSE_S > 0:
                    time.sleep(STREAM_PAUSE_S)
                on_delta(piece)
        return self._result("".join(pieces), [unit.citation() for unit in picked], output=output)

    @staticmethod
    def _mismatch(question: str, kind: str, chosen: list[_Unit]) -> str:
        """Why the best sentences do not answer after all: the best one says the opposite of
        the question, or a date or number is asked for and none of them has one."""
        if not chosen:
            return "nothing to quote"
        opposite = contradiction(question, chosen[0].scoring_text)
        if opposite:
            return f"the best sentence says the opposite ({opposite})"
        if kind in (DATE, NUMBER) and not any(has_answer_cue(kind, unit.text, question) for unit in chosen):
            return f"no sentence near the best holds a {kind}"
        return ""

    @staticmethod
    def _nearest(units: list[_Unit], ranked: list[int], limit: int = 3) -> list[dict[str, object]]:
        """The best-matching sentence of each of the first few documents, for a declined answer."""
        out: list[dict[str, object]] = []
        documents: set[str] = set()
        for index in ranked:
            sentence = units[index].sentence
            if sentence.role != PROSE or sentence.passage.document_id in documents:
                continue
            documents.add(sentence.passage.document_id)
            out.append(
                {
                    "document": sentence.passage.document_id,
                    "chunk": sentence.passage.chunk_id,
                    "title": sentence.passage.document_title,
                    "text": _scoring_form(sentence.text),
                    "start": sentence.doc_start,
                    "end": sentence.doc_end,
                }
            )
            if len(out) == limit:
                break
        return out

    def _not_answered(
        self,
        *,
        best: float,
        on_delta: Callable[[str], None] | None = None,
        output: dict[str, object] | None = None,
        nearest: list[dict[str, object]] | None = None,
    ) -> ProviderResult:
        if on_delta is not None:
            on_delta(NOT_ANSWERED)
        extra: dict[str, object] = {**(output or {}), "best_score": round(best, 4)}
        if nearest:
            # The sentence that matched in each of the nearest documents (the run shows them).
            extra["nearest"] = nearest
        return self._result(NOT_ANSWERED, [], answered=False, output=extra)

    # --- summarize ---------------------------------------------------------

    def summarize(self, title: str, passages: list[Passage]) -> ProviderResult:
        """A few representative sentences: of one document, the ones nearest its centre
        and least alike; of several, one or two of each (more text, more sentences).

        Headings, table rows and pieces clipped at a chunk's edge are never quoted,
        unless a document has nothing else.
        """
        every = _sentences(passages)
        if not every:
            return self._result(
                "There is no text to summarize.",
                [],
                answered=False,
                output={"sentences": 0},
            )
        by_document: dict[str, list[_Sentence]] = {}
        for sentence in every:
            by_document.setdefault(sentence.passage.document_id, []).append(sentence)
        candidates = {doc: _summary_candidates(sentences) for doc, sentences in by_document.items()}
        if any(_has_prose(found) for found in candidates.values()):
            # A document of tables only (a spreadsheet) has no sentence to quote.
            candidates = {doc: found for doc, found in candidates.items() if _has_prose(found)}
        if len(candidates) == 1:
            (only,) = candidates.values()
            prose_count = sum(1 for s in every if s.role == PROSE) or len(every)
            wanted = {next(iter(candidates)): summary_length(prose_count)}
            sample = {doc: _sample_evenly(found, MAX_SENTENCES) for doc, found in candidates.items()}
        else:
            wanted = _allocate({doc: len(found) for doc, found in candidates.items()})
            limit = max(1, MAX_SENTENCES // max(1, len(wanted)))
            sample = {doc: _sample_evenly(candidates[doc], limit) for doc in wanted}
        texts = [s.text for doc in sample for s in sample[doc]]
        vectors = self._encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        picked: list[_Sentence] = []
        offset = 0
        for doc, found in sample.items():
            block = vectors[offset : offset + len(found)]
            offset += len(found)
            picked += [found[i] for i in _representative(block, min(wanted[doc], len(found)))]
        picked.sort(key=lambda s: s.order)
        parts: list[str] = []
        for number, sentence in enumerate(picked, 1):
            if parts:
                same = picked[number - 2].passage.document_id == sentence.passage.document_id
                parts.append(" " if same else "\n\n")
            parts.append(f"{_prose(sentence.text)} [{number}]")
        return self._result(
            "".join(parts),
            [s.citation() for s in picked],
            output={"sentences": len(picked), "documents": len({s.passage.document_id for s in picked})},
        )

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


def _has_prose(sentences: list[_Sentence]) -> bool:
    return any(s.role == PROSE for s in sentences)


def _summary_candidates(sentences: list[_Sentence]) -> list[_Sentence]:
    """The sentences of one document a summary may quote: whole prose sentences of four
    words or more; failing those, any prose; failing that (a table), its rows."""
    prose = [s for s in sentences if s.role == PROSE]
    whole = [s for s in prose if s.is_whole and len(_words(s.text)) >= 4]
    rows = [s for s in sentences if s.role == TABLE_ROW]
    return whole or [s for s in prose if len(_words(s.text)) >= 4] or prose or rows or sentences


def _allocate(sizes: dict[str, int]) -> dict[str, int]:
    """Sentences per document for a summary of several: one each, a second for the
    longer ones while the summary's length allows, the longest documents first when
    there are more documents than sentences."""
    total = sum(sizes.values())
    budget = min(MAX_PROJECT_SUMMARY_SENTENCES, max(len(sizes), summary_length(total)))
    by_size = sorted(sizes, key=lambda doc: -sizes[doc])  # stable: ties keep document order
    kept = set(by_size[:budget])
    wanted = {doc: 1 for doc in sizes if doc in kept}
    for doc in by_size[: budget - len(wanted)]:
        if sizes[doc] > 1 and sizes[doc] * len(sizes) >= total:  # at least an average share
            wanted[doc] = min(MAX_SENTENCES_PER_DOCUMENT, sizes[doc])
    return wanted


def _representative(vectors: np.ndarray, wanted: int) -> list[int]:
    """Indices of `wanted` rows near the centroid and unlike each other (MMR), ties to the earlier."""
    if wanted <= 0 or len(vectors) == 0:
        return []
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    relevance = vectors @ (centroid / norm) if norm > 0 else np.zeros(len(vectors))
    chosen: list[int] = []
    redundancy = np.full(len(vectors), -1.0, dtype=np.float32)
    available = np.ones(len(vectors), dtype=bool)
    while len(chosen) < wanted:
        mmr = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * np.maximum(redundancy, 0.0)
        mmr = np.where(available, mmr, -np.inf)
        index = int(np.argmax(mmr))  # first maximum: ties go to the earlier sentence
        chosen.append(index)
        available[index] = False
        redundancy = np.maximum(redundancy, vectors @ vectors[index])
    return chosen


# --- keywords ----------------------------------------------------------------


def _keyword_word(word: str) -> bool:
    return (
        not is_common(word)
        and word not in _DATE_WORDS
        and not word.isdigit()
        and len(word) >= 3
        and not _NUMBER.match(word)
    )


def _keywords(sentences: list[_Sentence]) -> list[str]:
    """Frequent topical words and two-word phrases, earlier ones favoured.

    Common English words ("covers", "year") are never keywords, nor labels ("Slide 2:");
    a word's forms count as one ("audit", "audits"), shown as written most often.
    Phrases never cross punctuation or a sentence edge, and hold at least one topical
    word. A word is dropped when a chosen phrase containing it accounts for most of its uses.
    """
    unigram_tf: Counter[str] = Counter()
    bigram_tf: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
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
            if word in STOP_WORDS or word.isdigit() or len(word) < 3 or _NUMBER.match(word):
                previous = None
                continue
            key = _stem(word)
            spellings.setdefault(key, Counter())[word] += 1
            topical = _keyword_word(word)
            if topical:
                unigram_tf[key] += 1
                first_seen.setdefault(key, position)
            if previous is not None and (topical or _keyword_word(previous)):
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

    def shown(term: str) -> str:
        if " " in term:
            return term
        return max(spellings[term].items(), key=lambda item: (item[1], -len(item[0])))[0]

    chosen: list[str] = []
    for _, term in scored:
        if " " not in term and any(
            term in {_stem(w) for w in phrase.split()} and bigram_tf[phrase] * 2 >= unigram_tf[term]
            for phrase in chosen
            if " " in phrase
        ):
            continue
        chosen.append(term)
        if len(chosen) == MAX_KEYWORDS:
            break
    return [shown(term) for term in chosen]


# --- entities ----------------------------------------------------------------

PERSON, ORG, PLACE_ENTITY, DATE_ENTITY, MISC = "PERSON", "ORG", "PLACE", "DATE", "MISC"
# Words allowed inside a name ("Bank of America"). Not "and": "PDF and HTML" is two names.
_CONNECTORS = frozenset({"of", "for", "de", "la", "van", "von", "der", "du", "&"})
_ORG_TEXT = """
    inc inc. ltd ltd. llc llp lp plc gmbh ag sa bv nv pty limited corp corp. corporation
    company co co. university institute foundation association agency ministry department
    bank group council committee society labs laboratory school college hospital center
    centre organization organisation commission federation union party trust partners
    associates services solutions systems technologies consulting holdings industries
    enterprises studio studios authority board office bureau
"""
_ORG_WORDS = frozenset(_ORG_TEXT.split())
_PLACE_TEXT = """
    city river mount mountain lake ocean sea valley county province state states
    republic kingdom island islands street avenue road bay coast north south east west
    canton region park square bridge harbour harbor port
"""
_PLACE_WORDS = frozenset(_PLACE_TEXT.split())
_TITLES_TEXT = """
    mr mrs ms miss mx dr prof professor sir dame lord lady
"""
_PERSON_TITLES = frozenset(_TITLES_TEXT.split())
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9&]{1,7}s?$")
_ROMAN = re.compile(r"^[IVXLC]+$")
_NAME_PART = re.compile(r"^[A-Z][a-z]+(?:['’\-][A-Z]?[a-z]+)*$")


def _is_capitalised(token: str) -> bool:
    return token[:1].isupper()


def _looks_like_person(tokens: list[str]) -> bool:
    """Two or three name-shaped words ("Sofia Marin", "Jean-Luc Picard"), none of them a
    common word or one that names an organisation, a place or a date."""
    parts = [token for token in tokens if token.lower() not in _CONNECTORS]
    if not 2 <= len(parts) <= 3:
        return False
    for part in parts:
        lowered = part.lower()
        if not _NAME_PART.match(part) or is_common(lowered) or lowered in _LABEL_WORDS:
            return False
        if lowered in _ORG_WORDS or lowered in _PLACE_WORDS or lowered in _DATE_WORDS:
            return False
    return True


def _entity_type(text: str, preceding: str) -> str:
    tokens = text.split()
    lowered = {token.lower().strip(".,") for token in tokens}
    if lowered & _DATE_WORDS:
        return DATE_ENTITY
    if (len(tokens) == 1 and _ACRONYM.match(text)) or lowered & _ORG_WORDS:
        return ORG
    if preceding.lower().rstrip(".") in _PERSON_TITLES:
        return PERSON
    if lowered & _PLACE_WORDS:
        return PLACE_ENTITY
    if _looks_like_person(tokens):
        return PERSON
    return MISC


@dataclass(frozen=True)
class _Run:
    start: int
    end: int
    at_start: bool  # the run opens its sentence
    length: int  # tokens
    preceding: str


def _capitalised_runs(text: str) -> Iterator[_Run]:
    """Runs of capitalised words (with connectors inside), leading stop words and labels dropped."""
    tokens = list(WORD.finditer(text))
    index = 0
    while index < len(tokens):
        if not _is_capitalised(tokens[index].group(0)):
            index += 1
            continue
        run = [index]
        cursor = index + 1
        while cursor < len(tokens):
            word = tokens[cursor].group(0)
            gap = text[tokens[cursor - 1].end() : tokens[cursor].start()]
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
        # Leading stop words ("The", "However") are sentence furniture, not names; a
        # label ("Notes:", "Slide 2:") opening a sentence neither.
        while run and (
            tokens[run[0]].group(0).lower() in STOP_WORDS
            or (run[0] == 0 and tokens[0].group(0).lower() in _LABEL_WORDS)
        ):
            run.pop(0)
        while run and tokens[run[-1]].group(0).lower() in _CONNECTORS:
            run.pop()
        if run:
            preceding = tokens[run[0] - 1].group(0) if run[0] > 0 else ""
            # After a label the sentence proper starts: "Notes: Budget ..." opens with "Budget".
            at_start = run[0] == 0 or (run[0] == 1 and tokens[0].group(0).lower() in _LABEL_WORDS)
            yield _Run(tokens[run[0]].start(), tokens[run[-1]].end(), at_start, len(run), preceding)
        index = max(cursor, index + 1)


def _names_in(text: str) -> list[tuple[str, str]]:
    """The names in one sentence with their types: multi-word runs, acronyms, and single
    capitalised words that do not open the sentence."""
    out = []
    for run in _capitalised_runs(text):
        name = text[run.start : run.end]
        if run.length > 1 or _ACRONYM.match(name) or not run.at_start:
            out.append((name, _entity_type(name, run.preceding)))
    return out


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
        for run in _capitalised_runs(sentence.text):
            text = sentence.text[run.start : run.end]
            is_acronym = run.length == 1 and bool(_ACRONYM.match(text))
            if not (run.length > 1 or is_acronym or not run.at_start):
                continue
            counts[text] += 1
            if not run.at_start:
                inside[text] += 1
            if text not in first:
                citation = citation_in_passage(
                    sentence.passage, sentence.start + run.start, sentence.start + run.end
                )
                first[text] = (serial, citation, run.preceding)
                serial += 1

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
_PERSON_PRONOUNS = frozenset({"he", "him", "his", "himself", "she", "her", "hers", "herself"})
# Pronouns that stand for a noun phrase and can be replaced by it.
_REPLACEABLE = frozenset({"it", "its", "they", "them", "their", "he", "him", "his", "she", "her"})
_POSSESSIVE_PRONOUNS = frozenset({"its", "their", "his"})
_DETERMINERS = frozenset(
    {"the", "a", "an", "this", "that", "these", "those", "my", "our", "your", "its", "their"}
)
_FOLLOW_UP_OPENERS = ("and ", "also ", "what about ", "how about ", "and what ", "then ")
MAX_TOPIC_WORDS = 6
MAX_ENTITY_WORDS = 4
_MARKERS = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


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


def _noun_phrases(text: str) -> list[tuple[str, bool]]:
    """Noun phrases a pronoun may stand for, in order, each with whether it holds a name.

    A phrase opens after a determiner ("the Brightwater pump") or at a capitalised word
    inside the sentence ("Marta Ruiz"), and runs over words that are neither function
    words nor verbs in -ed/-ing. The noun right after the question word ("*which filter*",
    "*what refrigerant*") is what is asked for, not what is talked about.
    """
    matches = list(WORD.finditer(text))
    words = [m.group(0) for m in matches]
    lowered = [w.lower() for w in words]
    asked_at = {i + 1 for i, w in enumerate(lowered) if w in ("which", "what", "whose")}
    asked_at |= {i + 2 for i, w in enumerate(lowered) if w == "how" and i + 1 < len(lowered)}
    phrases: list[tuple[str, bool]] = []
    index = 0
    while index < len(words):
        word = words[index]
        starts = lowered[index] in _DETERMINERS or (
            index > 0 and word[:1].isupper() and lowered[index] not in STOP_WORDS
        )
        if not starts:
            index += 1
            continue
        first = index + 1 if lowered[index] in _DETERMINERS else index
        end = first
        while end < len(words) and end - first < MAX_ENTITY_WORDS:
            candidate, low = words[end], lowered[end]
            gap = text[matches[end - 1].end() : matches[end].start()] if end > first else ""
            if gap.strip(" -&"):
                break
            if low in STOP_WORDS or low in _AUXILIARIES:
                break
            if candidate.islower() and low.endswith(("ed", "ing")) and len(low) > 4:
                break
            end += 1
        if end > first and first not in asked_at:
            phrase = text[matches[first].start() : matches[end - 1].end()]
            if first > index and not all(w[:1].isupper() for w in words[first:end]):
                # "the chiller" (a possessive or demonstrative becomes "the": "its filter" -> "the filter")
                phrase = f"{lowered[index] if lowered[index] in ('a', 'an') else 'the'} {phrase}"
            named = any(w[:1].isupper() for w in words[first:end])
            phrases.append((phrase, named))
        index = max(end, index + 1)
    return phrases


def _people(text: str) -> list[str]:
    return [name for name, kind in _names_in(text) if kind == PERSON]


def _referent(question: str, history: list[tuple[str, str]]) -> str:
    """What a follow-up's pronoun stands for: a person named in the latest turn for
    he/she, else the subject of the latest earlier question (its answer's, when the
    question names none), that the follow-up does not already name."""
    present = set(content_words(question))
    person = any(word in _PERSON_PRONOUNS for word in _words(question))

    def new(phrase: str) -> bool:
        return bool(phrase) and not set(content_words(phrase)) <= present

    for earlier_question, earlier_answer in reversed(history):
        answer = _MARKERS.sub("", earlier_answer) if earlier_answer and earlier_answer != NOT_ANSWERED else ""
        if person:
            for name in _people(earlier_question) + _people(answer):
                if new(name):
                    return name
        phrases = [p for p in _noun_phrases(earlier_question) if new(p[0])]
        if phrases:
            named = [phrase for phrase, has_name in phrases if has_name]
            return named[0] if named else phrases[0][0]
        if answer:
            # An earlier question with no subject of its own ("Who is it?") leans on its answer.
            for name, _ in _names_in(answer):
                if new(name):
                    return name
            subject = _subject(answer)
            if new(subject):
                return subject
    return ""


def _fallback_topic(question: str, history: list[tuple[str, str]]) -> str:
    """The topic words of the latest earlier question that has any new ones."""
    present = set(content_words(question))
    for earlier_question, earlier_answer in reversed(history):
        for text in (earlier_question, earlier_answer if earlier_answer != NOT_ANSWERED else ""):
            added: list[str] = []
            for word in _topic_words(_MARKERS.sub("", text)):
                stem = _stem(word.lower())
                if stem not in present and stem not in {_stem(w.lower()) for w in added}:
                    added.append(word)
            if added:
                return " ".join(added[:MAX_TOPIC_WORDS])
    return ""


def _bare(phrase: str) -> str:
    """A noun phrase without its leading determiner ("the chiller" -> "chiller")."""
    words = phrase.split(maxsplit=1)
    return words[1] if len(words) == 2 and words[0].lower() in _DETERMINERS else phrase


def standalone_query(question: str, history: list[tuple[str, str]]) -> str:
    """A follow-up rewritten into a query that stands alone.

    Its pronoun is replaced by what it stands for (see `_referent`): "Who do I call
    after shutting it down?" after "How do I shut down the chiller before handling
    refrigerant?" becomes "Who do I call after shutting the chiller down?", and "How
    often should its intake filter be cleaned?" after "Who designed the Brightwater
    pump?" becomes "How often should the Brightwater pump's intake filter be cleaned?".
    A follow-up with no pronoun to replace ("And when?") gets the subject appended.
    A question with no history, or one that names its own topic (no pronoun referring
    back, not "and ...?", more than one content word), is returned unchanged.
    Deterministic: only the words of the turns decide.
    """
    if not history or not _leans_on_earlier_turns(question):
        return question
    entity = _referent(question, history)
    if not entity:
        topic = _fallback_topic(question, history)
        return f"{question.rstrip()} {topic}" if topic else question
    matches = list(WORD.finditer(question))
    for position, match in enumerate(matches):
        word = match.group(0).lower()
        if word not in _REPLACEABLE:
            continue
        following = matches[position + 1].group(0).lower() if position + 1 < len(matches) else ""
        possessive = word in _POSSESSIVE_PRONOUNS or (
            word == "her"
            and bool(following)
            and following not in STOP_WORDS
            and following not in _AUXILIARIES
        )
        replacement = f"{entity}'s" if possessive else entity
        if match.start() == 0 or question[: match.start()].rstrip().endswith((".", "?", "!")):
            replacement = replacement[:1].upper() + replacement[1:]
        elif replacement[:1].isupper() and replacement.split()[0].lower() in _DETERMINERS:
            replacement = replacement[:1].lower() + replacement[1:]
        return question[: match.start()] + replacement + question[match.end() :]
    return f"{question.rstrip()} {_bare(entity)}"
