"""The offline provider on the documents of a new team's first hour (issue 23): a
maintenance handbook, a slide deck with speaker notes, and a project of a spreadsheet
and prose. Each test is one thing people tripped over.

Answers run on the real sentence encoder (all-MiniLM-L6-v2, offline), as people get them.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents import presenting
from agents.models import AgentRun
from agents.providers import offline
from agents.providers.base import NOT_ANSWERED, Passage
from agents.providers.offline import (
    HEADING,
    PROSE,
    TABLE_ROW,
    OfflineProvider,
    contradiction,
    has_answer_cue,
    is_common,
    question_kind,
    standalone_query,
)
from agents.tests.fakes import hashed_bow_encode
from documents import embedder

# As a person types it: a title line, headings, short sections.
HANDBOOK = """Northwind Chiller X-40 Maintenance Handbook
This handbook covers the routine care of the Northwind X-40 water chiller installed in the plant room.

Safety
Before any work on the refrigerant circuit, shut the chiller down at the main isolator and lock it off. \
When the red button is pressed, the compressor stops at once and the alarm panel records an emergency \
stop. Only technicians certified for F-gas handling may open the refrigerant circuit.

Servicing
The condenser coils are cleaned every six months. The refrigerant charge is checked once a year by \
Coldline Services. After shutting the chiller down, call the duty engineer, Tomas Berg, on extension 4410.

Warranty
The compressor warranty lasts three years from the date of installation. Claims are handled by \
Northwind's service desk in Leeds.
"""

# As documents.extraction writes a PPTX: "Slide N: title", its text, then "Notes: ...".
DECK = """Slide 1: Security Programme 2027

Our plan for certifications, audits and supplier reviews next year.

Slide 2: SOC 2 Type II

We will complete the SOC 2 Type II audit by the end of September. Evidence collection for the audit starts in May.

Notes: The auditor for SOC 2 is Hartley & Moss LLP, who also reviewed our controls last year.

Slide 3: ISO 27001

The ISO 27001 surveillance audit is booked for November. Dr. Amira Haddad leads the certification work.

Notes: Budget for both audits is held by the finance team.
"""

# As documents.extraction writes an XLSX: "Sheet: name", then one line per row.
SHEET = """Sheet: Budget
Item | Owner | Q1 | Q2 | Q3
Hardware | Ops | 12000 | 8000 | 4000
Licences | IT | 3000 | 3000 | 3000
Training | HR | 1500 | 0 | 2500
Travel | Sales | 2200 | 2600 | 1800
Consulting | PMO | 9000 | 9000 | 6000"""

BRIEF = """Project Atlas Brief

Project Atlas moves the customer portal to the new cloud platform by the end of the year. The \
migration is led by Sofia Marin, who reports to the steering group every month. The main risk is the \
data transfer from the old billing system, which must finish before the October freeze. Testing happens \
in two rounds, first with internal users and then with a pilot group of customers."""

TEXTS = {"handbook": HANDBOOK, "deck": DECK, "sheet": SHEET, "brief": BRIEF}


def whole(document_id: str, chunk_id: int) -> Passage:
    text = TEXTS[document_id]
    return Passage(
        chunk_id=chunk_id,
        document_id=document_id,
        document_title=document_id.title(),
        text=text,
        start=0,
        end=len(text),
    )


def project() -> list[Passage]:
    return [whole("handbook", 1), whole("deck", 2), whole("sheet", 3), whole("brief", 4)]


def top_quote(result: Any) -> str:
    return result.citations[result.output["best_citation"] - 1].quote


def assert_exact_spans(result: Any) -> None:
    for citation in result.citations:
        assert TEXTS[citation.document_id][citation.start : citation.end] == citation.quote


@pytest.fixture(scope="module")
def real() -> OfflineProvider:
    return OfflineProvider(embedder.encode)


@pytest.fixture(autouse=True)
def no_stream_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "STREAM_PAUSE_S", 0.0)


# --- 1. the question type weighs the whole question ------------------------------------


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What happens when the red button is pressed?", ""),
        ("Who do I call when the alarm sounds?", "name"),
        ("When the compressor stops, who do I call?", "name"),
        ("When the compressor stops, which panel records it?", ""),
        ("When is the refrigerant charge checked?", "date"),
        ("How long is the warranty?", "number"),
        ("How many audits are booked?", "number"),
        ("How much does the hardware cost in Q1?", "number"),
        ("Where are warranty claims handled?", "place"),
        ("In which city is the service desk?", "place"),
        ("Which year does the security programme cover?", "date"),
        ("Which company audits SOC 2?", "name"),
        ("Which filter should be cleaned?", ""),
        ("The Aare doubles the discharge to what amount?", "number"),
    ],
)
def test_the_question_type_comes_from_the_questions_own_question_word(question, kind):
    assert question_kind(question) == kind


def test_what_happens_when_is_answered_not_declined_as_a_date_question(real):
    result = real.ask("What happens when the red button is pressed?", project(), [])

    assert result.answered
    assert "the compressor stops at once" in top_quote(result)
    assert "question_type" not in result.output
    assert_exact_spans(result)


def test_how_long_is_answered_by_a_duration(real):
    result = real.ask("How long is the warranty?", project(), [])

    assert result.answered
    assert "lasts three years" in top_quote(result)


def test_a_date_question_is_declined_when_no_sentence_near_the_best_has_a_date(real):
    result = real.ask("When was the chiller's compressor last replaced?", [whole("handbook", 1)], [])

    assert result.answered is False
    assert result.answer == NOT_ANSWERED


def test_may_the_verb_is_no_month():
    question = "When was the compressor replaced?"

    assert not has_answer_cue("date", "Only certified technicians may open the circuit.", question)
    assert has_answer_cue("date", "Evidence collection for the audit starts in May.", question)


def test_an_age_named_alone_is_a_date():
    question = "What time did a river system develop in the valley?"

    assert question_kind(question) == "date"
    assert has_answer_cue("date", "By the time of the Miocene, a river system had developed.", question)


@pytest.mark.parametrize(
    "question",
    [
        "What does Obersee mean?",
        "What does the word Seerhein translate to?",
        "What is the English translation of Het Scheur?",
        "What is the meaning of Obersee?",
        "What does SLA stand for?",
    ],
)
def test_a_meaning_or_translation_question_asks_for_a_gloss(question):
    assert question_kind(question) == "gloss"


def test_a_sentence_glossing_the_term_answers_however_foreign_the_term(real):
    lake = (
        'Lake Constance consists of three bodies of water: the Obersee ("upper lake"), the Untersee '
        '("lower lake"), and a connecting stretch of the Rhine, called the Seerhein ("Lake Rhine").'
    )
    other = "The lake lies in the Alpine foreland and is fed by the Rhine and many smaller streams."
    text = f"{other} {lake}"
    passages = [Passage(1, "lake", "Lake Constance", text, 0, len(text))]

    result = real.ask("What does Untersee mean?", passages, [])

    assert result.answered
    assert result.output["vouched"] == "gloss"
    assert "lower lake" in top_quote(result)
    # A term no sentence glosses is not vouched for.
    assert not has_answer_cue("gloss", other, "What does Untersee mean?")
    assert not has_answer_cue("gloss", lake, "What does Bodensee mean?")


def test_a_sentence_saying_the_opposite_of_the_question_does_not_answer_it(real):
    text = (
        "Until 1980, the tannery upstream was the main source of pollution in the river. "
        "Since then the water has been tested every spring."
    )
    passages = [Passage(1, "river", "River report", text, 0, len(text))]

    after = real.ask("What was the main source of pollution in the river after 1980?", passages, [])
    before = real.ask("What was the main source of pollution in the river before 1980?", passages, [])

    assert after.answered is False
    assert "opposite" in after.output["declined"]
    assert before.answered
    assert "tannery" in top_quote(before)


def test_contradiction_needs_the_opposite_and_the_rest_of_the_question():
    question = "Which tributary flows northward into the lake?"

    assert (
        contradiction(question, "The Alter Rhein tributary flows southward into the lake.")
        == "northward/southward"
    )
    assert contradiction(question, "The tributary flows northward, then southward, into the lake.") == ""
    # An opposite word in a sentence about something else is no contradiction.
    assert contradiction(question, "The southward road is closed in winter.") == ""


# --- 2. a title or heading is context, not an answer ----------------------------------


def test_a_title_line_is_a_heading_and_the_line_after_it_a_sentence():
    sentences = offline._sentences([whole("handbook", 1)])

    assert (sentences[0].text, sentences[0].role) == ("Northwind Chiller X-40 Maintenance Handbook", HEADING)
    assert sentences[1].text.startswith("This handbook covers") and sentences[1].role == PROSE
    assert [s.text for s in sentences if s.role == HEADING][1:] == ["Safety", "Servicing", "Warranty"]
    assert sentences[1].heading == "Northwind Chiller X-40 Maintenance Handbook"


def test_slide_titles_are_headings_and_table_rows_are_rows():
    deck = offline._sentences([whole("deck", 2)])
    sheet = offline._sentences([whole("sheet", 3)])

    assert {s.text for s in deck if s.role == HEADING} == {
        "Slide 1: Security Programme 2027",
        "Slide 2: SOC 2 Type II",
        "Slide 3: ISO 27001",
    }
    notes = next(s for s in deck if s.text.startswith("Notes: The auditor"))
    assert (notes.role, notes.heading) == (PROSE, "Slide 2: SOC 2 Type II")
    assert [s.role for s in sheet] == [HEADING] + [TABLE_ROW] * 6


def test_a_follow_up_answer_does_not_begin_with_the_documents_title(real):
    first = real.ask("What is the Northwind chiller handbook about?", project(), [])
    history = [("What is the Northwind chiller handbook about?", first.answer)]

    follow_up = real.ask("What does it cover?", project(), history)

    for result in (first, follow_up):
        assert result.answered
        assert not result.answer.startswith("Northwind Chiller X-40 Maintenance Handbook")
        assert all("Maintenance Handbook" not in c.quote for c in result.citations)
    assert "This handbook covers the routine care" in follow_up.answer


# --- 3. a follow-up's pronoun stands for the earlier question's subject ----------------


def test_a_follow_up_pronoun_is_replaced_by_the_earlier_questions_subject():
    history = [
        (
            "How do I shut down the chiller before handling refrigerant?",
            "Before any work on the refrigerant circuit, shut the chiller down at the main isolator. [1]",
        )
    ]

    query = standalone_query("Who do I call after shutting it down?", history)

    assert query == "Who do I call after shutting the chiller down?"
    assert "refrigerant" not in query


def test_she_and_he_stand_for_a_person_named_in_the_last_turn():
    history = [("Who leads the migration?", "The migration is led by Sofia Marin, who reports monthly. [1]")]

    assert standalone_query("Who does she report to?", history) == "Who does Sofia Marin report to?"
    assert standalone_query("What is her role?", history) == "What is Sofia Marin's role?"


def test_a_follow_up_with_nothing_to_replace_gets_the_subject_appended():
    history = [("Who audits the SOC 2 controls?", "Hartley & Moss LLP. [1]")]

    assert standalone_query("And when?", history) == "And when? SOC 2 controls"


def test_the_follow_up_finds_whom_to_call_after_shutting_the_chiller_down(real):
    question = "How do I shut down the chiller before handling refrigerant?"
    first = real.ask(question, project(), [])

    result = real.ask("Who do I call after shutting it down?", project(), [(question, first.answer)])

    assert result.answered
    assert "Tomas Berg" in top_quote(result)


# --- 4. who-questions find the person or organisation in the role ----------------------


def test_who_is_the_auditor_is_answered_from_the_slides_speaker_notes(real):
    result = real.ask("Who is the auditor for SOC 2?", project(), [])

    assert result.answered
    assert "Hartley & Moss LLP" in top_quote(result)
    assert_exact_spans(result)


def test_a_who_question_is_answered_by_a_person_the_question_does_not_name(real):
    result = real.ask("Who leads the ISO 27001 certification work?", project(), [])

    assert "Dr. Amira Haddad" in top_quote(result)


def test_a_name_cue_is_a_person_or_organisation_not_a_version_month_or_label():
    question = "Who is the auditor for SOC 2?"

    assert not has_answer_cue(
        "name", "We will complete the SOC 2 Type II audit by the end of September.", question
    )
    assert not has_answer_cue("name", "Notes: Budget for both audits is held by the finance team.", question)
    assert has_answer_cue("name", "Notes: The auditor for SOC 2 is Hartley & Moss LLP.", question)
    assert has_answer_cue("name", "The migration is led by Sofia Marin.", "Who leads the migration?")


# --- 5. a project summary covers each document, in sentences --------------------------


def test_a_project_summary_quotes_one_or_two_whole_sentences_of_each_document(fake_or_real):
    result = fake_or_real.summarize("Project", project())

    cited = [c.document_id for c in result.citations]
    assert set(cited) == {"handbook", "deck", "brief"}  # the spreadsheet has no sentence to quote
    assert all(1 <= cited.count(doc) <= 2 for doc in set(cited))
    for citation in result.citations:
        assert " | " not in citation.quote
        assert citation.quote.rstrip("\"')").endswith((".", "!", "?"))
        assert not citation.quote.startswith(
            ("Slide ", "Sheet:", "Northwind Chiller X-40 Maintenance Handbook")
        )
    assert_exact_spans(result)
    # One paragraph per document, ending on a citation, never on a fragment.
    assert result.answer.count("\n\n") == 2
    assert result.answer.endswith(f"[{len(result.citations)}]")


def test_a_summary_skips_a_sentence_clipped_at_a_chunks_edge(fake_or_real):
    cut = BRIEF.index("which must finish")
    clipped = Passage(9, "brief", "Brief", BRIEF[:cut], 0, cut)

    result = fake_or_real.summarize("Brief", [clipped])

    assert result.citations
    assert all(c.quote.endswith(".") for c in result.citations)


def test_a_spreadsheet_alone_is_summarized_by_its_rows(fake_or_real):
    result = fake_or_real.summarize("Budget", [whole("sheet", 3)])

    assert result.citations
    assert all(" | " in c.quote for c in result.citations)


@pytest.fixture(params=["fake", "real"])
def fake_or_real(request: pytest.FixtureRequest, real: OfflineProvider) -> OfflineProvider:
    return OfflineProvider(hashed_bow_encode) if request.param == "fake" else real


# --- 6. a declined answer shows the sentence that matched ------------------------------


def test_a_declined_answer_records_the_sentence_that_matched_in_each_passage(real):
    result = real.ask("What is the chief executive's salary?", project(), [])

    assert result.answered is False
    nearest = result.output["nearest"]
    assert 1 <= len(nearest) <= 3
    assert len({item["document"] for item in nearest}) == len(nearest)
    for item in nearest:
        text = TEXTS[item["document"]]
        assert " ".join(text[item["start"] : item["end"]].split()) == item["text"]
        assert item["text"] != text[:300]


def test_the_run_page_shows_the_matched_sentence_with_its_span():
    sentence = "The compressor warranty lasts three years from the date of installation."
    start = HANDBOOK.index(sentence)
    run = AgentRun(
        question="How much is the warranty extension?",
        output={
            "nearest": [
                {
                    "document": "d1",
                    "chunk": 7,
                    "title": "Handbook",
                    "text": sentence,
                    "start": start,
                    "end": start + len(sentence),
                },
                {"document": "d2", "chunk": 8, "title": "Brief", "text": BRIEF[:300]},
            ]
        },
    )
    spans = {7: ("d1", 0, len(HANDBOOK)), 8: ("d2", 0, len(BRIEF))}

    shown = presenting.nearest(run, {"d1": "Handbook", "d2": "Brief"}, spans)

    assert shown[0]["text"] == sentence
    assert (shown[0]["start"], shown[0]["end"]) == (start, start + len(sentence))
    # A passage's opening (as stored before) shows its whole sentence nearest the question.
    assert (
        shown[1]["text"]
        == "Project Atlas moves the customer portal to the new cloud platform by the end of the year."
    )
    assert (shown[1]["start"], shown[1]["end"]) == (0, len(BRIEF))


def test_a_passage_opening_never_shows_a_cut_off_sentence():
    opening = BRIEF[:300]

    chosen = presenting.matched_sentence(opening, "What must finish before the October freeze?")

    assert chosen.endswith(".")
    assert chosen in " ".join(BRIEF.split())


# --- 7. the answer streams sentence by sentence ----------------------------------------


def test_the_answer_streams_one_piece_per_sentence_with_a_pause_between(real, monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(offline, "STREAM_PAUSE_S", 0.05)
    monkeypatch.setattr(offline.time, "sleep", pauses.append)
    pieces: list[str] = []

    result = real.ask(
        "When the red button is pressed, what does the alarm panel record?",
        project(),
        [],
        on_delta=pieces.append,
    )

    assert result.answered
    assert "".join(pieces) == result.answer
    sentences = sum(len(offline.split_sentences(c.quote)) for c in result.citations)
    assert len(pieces) == sentences
    assert pauses == [0.05] * (len(pieces) - 1)


def test_a_quote_of_two_sentences_streams_as_two_pieces(real):
    text = "The Brightwater pump serves the Riverside plant. It was designed by Marta Ruiz in 2019."
    pieces: list[str] = []

    result = real.ask(
        "Who designed the Brightwater pump?",
        [Passage(1, "p", "Pump", text, 0, len(text))],
        [],
        on_delta=pieces.append,
    )

    assert len(result.citations) == 1 and result.citations[0].quote == text
    assert pieces == [
        "The Brightwater pump serves the Riverside plant.",
        " It was designed by Marta Ruiz in 2019. [1]",
    ]


# --- 8. tags: people are PERSON, common words are no keywords ---------------------------


def test_people_are_typed_person_and_organisations_org(fake_or_real):
    result = fake_or_real.extract("Project", [whole("deck", 2), whole("brief", 4), whole("handbook", 1)])

    types = {e["text"]: e["type"] for e in result.output["entities"]}
    assert types["Sofia Marin"] == "PERSON"
    assert types["Amira Haddad"] == "PERSON"
    assert types["Tomas Berg"] == "PERSON"
    assert types["Hartley & Moss LLP"] == "ORG"
    assert types["Coldline Services"] == "ORG"
    assert types.get("Security Programme") != "PERSON"


def test_keywords_are_topical_words_never_common_ones_or_labels(fake_or_real):
    handbook = fake_or_real.extract("Handbook", [whole("handbook", 1)]).output
    deck = fake_or_real.extract("Deck", [whole("deck", 2)]).output

    assert "covers" not in handbook["keywords"]
    assert {"chiller", "refrigerant"} <= set(handbook["keywords"])
    for keywords in (handbook["keywords"], deck["keywords"]):
        for keyword in keywords:
            assert not all(is_common(word) for word in keyword.split()), keyword
    assert not {"slide", "notes", "year", "end", "type", "september"} & set(deck["keywords"])
    assert "audit" in deck["keywords"] and "audits" not in deck["keywords"]


def test_the_common_word_list_is_a_real_list_with_inflections():
    assert len(offline.COMMON_WORDS) > 800
    for word in ("covers", "covered", "includes", "year", "years", "end", "important", "usually"):
        assert is_common(word), word
    for word in ("chiller", "refrigerant", "auditor", "warranty", "migration", "compressor"):
        assert not is_common(word), word
