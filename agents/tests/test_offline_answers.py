"""What the offline provider answers: the cases people reported, question-type cues,
hard-wrapped lines, streamed pieces and standalone follow-up queries.

The reported cases run on the real sentence encoder (all-MiniLM-L6-v2, offline): the
failures lived in how its scores were used, so a stand-in encoder would not show them.
"""

from __future__ import annotations

import pytest

from agents.providers import offline
from agents.providers.base import NOT_ANSWERED, Passage
from agents.providers.offline import (
    OfflineProvider,
    has_answer_cue,
    question_kind,
    standalone_query,
)
from agents.tests.fakes import hashed_bow_encode
from documents import embedder
from documents.chunking import split_sentences

PUMP = (
    "The Brightwater pump is a centrifugal pump used at the Riverside treatment plant. "
    "It was designed by Marta Ruiz, an engineer at Halden Works, in 2019. "
    "The pump moves up to 400 litres of water a minute.\n\n"
    "Its intake filter should be cleaned every two weeks and replaced once a year. "
    "The drive motor is serviced by the plant's own technicians."
)
COMPRESSOR = (
    "The Kestrel compressor supplies air to the aeration tanks. "
    "It runs day and night during the summer. "
    "Its intake filter is cleaned every month by the contractor."
)
DOCUMENTS = {"pump": PUMP, "compressor": COMPRESSOR}
DESIGNER_QUESTION = "Who designed the Brightwater pump?"
FILTER_FOLLOW_UP = "How often should its intake filter be cleaned?"


def whole(document_id: str, text: str, chunk_id: int = 1, offset: int = 0) -> Passage:
    return Passage(
        chunk_id=chunk_id,
        document_id=document_id,
        document_title=document_id.title(),
        text=text,
        start=offset,
        end=offset + len(text),
    )


def notes() -> list[Passage]:
    return [whole("pump", PUMP, 1), whole("compressor", COMPRESSOR, 2)]


def top_quote(result) -> str:
    return result.citations[result.output["best_citation"] - 1].quote


def assert_exact_spans(result, documents: dict[str, str]) -> None:
    for citation in result.citations:
        assert documents[citation.document_id][citation.start : citation.end] == citation.quote


@pytest.fixture(scope="module")
def real() -> OfflineProvider:
    return OfflineProvider(embedder.encode)


@pytest.fixture
def fake() -> OfflineProvider:
    return OfflineProvider(hashed_bow_encode)


# --- the reported cases ------------------------------------------------------------


def test_who_designed_quotes_the_it_sentence_with_the_sentence_naming_the_machine(real):
    result = real.ask(DESIGNER_QUESTION, notes(), [])

    assert result.answered
    quote = top_quote(result)
    assert "designed by Marta Ruiz" in quote
    # "It was designed ..." alone would not say what was designed.
    assert quote.startswith("The Brightwater pump is a centrifugal pump")
    assert_exact_spans(result, DOCUMENTS)
    assert "Marta Ruiz" in result.answer


def test_its_intake_filter_follow_up_answers_about_the_machine_asked_about_before(real):
    history = [
        (DESIGNER_QUESTION, "It was designed by Marta Ruiz, an engineer at Halden Works, in 2019. [1]")
    ]

    result = real.ask(FILTER_FOLLOW_UP, notes(), history)

    assert result.answered
    assert "every two weeks" in top_quote(result)
    assert result.citations[result.output["best_citation"] - 1].document_id == "pump"
    assert result.output["query"] == standalone_query(FILTER_FOLLOW_UP, history)
    assert_exact_spans(result, DOCUMENTS)


def test_a_question_about_what_the_documents_never_mention_is_declined(real):
    streamed: list[str] = []

    result = real.ask(
        "Who is the chief executive of Brightwater and what is their salary?",
        notes(),
        [],
        on_delta=streamed.append,
    )

    assert result.answered is False
    assert result.answer == NOT_ANSWERED
    assert result.citations == []
    assert "".join(streamed) == NOT_ANSWERED


def test_the_same_documents_still_answer_what_they_do_cover(real):
    result = real.ask("How much water does the Brightwater pump move?", notes(), [])

    assert result.answered
    assert "400 litres" in top_quote(result)


# --- question-type cues --------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who designed the pump?", "name"),
        ("Whose engineers serviced it?", "name"),
        ("When was the pump designed?", "date"),
        ("In what year did the plant open?", "date"),
        ("How many litres does it move?", "number"),
        ("How much does the filter cost?", "number"),
        ("Where is the pump used?", "place"),
        ("Which city is the plant in?", "place"),
        ("What does the drive motor do?", ""),
    ],
)
def test_question_kind_reads_the_question_word(question, kind):
    assert question_kind(question) == kind


def test_answer_cues_need_something_new_of_the_kind_asked():
    question = "When was the Brightwater pump designed?"

    assert has_answer_cue("date", "It was designed in 2019.", question)
    assert not has_answer_cue("date", "It was designed by Marta Ruiz.", question)
    assert has_answer_cue("number", "It moves 400 litres a minute.", "How much water does it move?")
    assert has_answer_cue("number", "It is cleaned every two weeks.", "How often is it cleaned?")
    assert not has_answer_cue("number", "It is cleaned by the contractor.", "How often is it cleaned?")
    assert has_answer_cue("name", "It was designed by Marta Ruiz.", "Who designed the Brightwater pump?")
    # The name the question already gives is not an answer to it.
    assert not has_answer_cue("name", "The Brightwater pump is large.", "Who designed the Brightwater pump?")
    assert has_answer_cue("place", "The plant is in Basel.", "Where is the plant?")
    assert not has_answer_cue("", "It was designed in 2019.", question)


def test_a_when_question_prefers_the_sentence_with_a_date(fake):
    text = (
        "The archive team digitised the harbour records carefully. "
        "The archive team digitised the harbour records in 1998."
    )

    result = fake.ask("When did the archive team digitise the harbour records?", [whole("d", text)], [])

    assert result.answered
    assert top_quote(result) == "The archive team digitised the harbour records in 1998."


def test_a_how_many_question_prefers_the_sentence_with_a_number(fake):
    # Worded alike, so that only the cue can tell them apart.
    text = "The depot keeps spare turbines for the old ferries. The depot keeps twelve spare turbines for the ferries."

    result = fake.ask("How many spare turbines does the depot keep?", [whole("d", text)], [])

    assert top_quote(result) == "The depot keeps twelve spare turbines for the ferries."


# --- pronouns and hard-wrapped lines -------------------------------------------------


def test_a_pronoun_sentence_is_scored_with_the_subject_of_the_one_before(fake):
    text = "The Norvik bridge crosses the fjord. It was painted red by the Tollak crew."
    passages = [whole("d", text, offset=50)]

    result = fake.ask("Who painted the Norvik bridge red?", passages, [])

    assert result.answered
    assert len(result.citations) == 1
    citation = result.citations[0]
    assert citation.quote == text  # both sentences, one exact span
    assert (citation.start, citation.end) == (50, 50 + len(text))


def test_a_sentence_wrapped_across_lines_is_one_sentence_quoted_whole(fake):
    text = (
        "Site notes for the lower basin.\n\n"
        "The sluice gate on the lower basin is opened by\n"
        "the night warden at four o'clock every morning.\n"
        "Visitors park behind the boathouse."
    )
    wrapped = (
        "The sluice gate on the lower basin is opened by\nthe night warden at four o'clock every morning."
    )

    result = fake.ask("Who opens the sluice gate on the lower basin?", [whole("d", text)], [])

    assert top_quote(result) == wrapped
    assert_exact_spans(result, {"d": text})
    # The answer reads as prose: the wrap is joined, the quote stays the exact span.
    assert "is opened by the night warden at four o'clock every morning. [" in result.answer
    assert "\n" not in result.answer


def test_a_word_hyphenated_across_a_wrap_is_matched_whole(fake):
    text = "The survey counted 340 migra-\ntory birds on the estuary. The harbour opened in spring."

    result = fake.ask("How many migratory birds were counted?", [whole("d", text)], [])

    assert result.answered
    assert top_quote(result).startswith("The survey counted 340 migra-\ntory birds")


# --- streaming -------------------------------------------------------------------------


def test_on_delta_pieces_arrive_in_order_and_join_to_the_answer(real, monkeypatch):
    monkeypatch.setattr(offline, "STREAM_PAUSE_S", 0.0)
    pieces: list[str] = []
    passages = notes()

    result = real.ask(DESIGNER_QUESTION, passages, [], on_delta=pieces.append)

    assert result.answered
    # One piece per sentence; each citation's marker ends the piece of its last sentence.
    assert len(pieces) == sum(len(split_sentences(c.quote)) for c in result.citations) >= 2
    assert "".join(pieces) == result.answer
    assert [piece[-3:] for piece in pieces if piece.endswith("]")] == [
        f"[{number}]" for number in range(1, len(result.citations) + 1)
    ]
    assert result == real.ask(DESIGNER_QUESTION, passages, [])


# --- standalone queries ----------------------------------------------------------------


def test_standalone_query_puts_the_earlier_subject_in_place_of_the_pronoun_but_not_its_verb():
    query = standalone_query(FILTER_FOLLOW_UP, [(DESIGNER_QUESTION, "Marta Ruiz designed it.")])

    assert query == "How often should the Brightwater pump's intake filter be cleaned?"


def test_standalone_query_leaves_a_question_that_stands_alone():
    history = [(DESIGNER_QUESTION, "Marta Ruiz.")]

    assert standalone_query(FILTER_FOLLOW_UP, []) == FILTER_FOLLOW_UP
    assert standalone_query("How often is the Kestrel compressor serviced?", history) == (
        "How often is the Kestrel compressor serviced?"
    )


def test_standalone_query_uses_the_latest_turn_with_a_topic():
    history = [
        ("Where is the Kestrel compressor?", "At the plant."),
        ("Who designed the Brightwater pump?", "Marta Ruiz."),
    ]

    assert standalone_query("And when?", history) == "And when? Brightwater pump"
    assert standalone_query("What powers it?", history[:1]) == "What powers the Kestrel compressor?"


def test_standalone_query_falls_back_on_the_answer_when_the_question_has_no_topic():
    history = [("Who is it?", "Marta Ruiz designed the Brightwater pump.")]

    assert standalone_query("Where does she work?", history) == "Where does Marta Ruiz work?"


def test_rewrite_query_is_standalone_query_and_deterministic(fake):
    history = [(DESIGNER_QUESTION, "Marta Ruiz.")]

    assert fake.rewrite_query(FILTER_FOLLOW_UP, history) == standalone_query(FILTER_FOLLOW_UP, history)
    assert fake.rewrite_query(FILTER_FOLLOW_UP, history) == fake.rewrite_query(FILTER_FOLLOW_UP, history)
