"""The offline provider (with a deterministic fake encoder) and the Gemini provider
(the real google-genai client against a local fake Gemini server)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from agents.providers import get_provider, resolve_provider_name
from agents.providers.base import (
    NOT_ANSWERED,
    Passage,
    ProviderError,
    TransientProviderError,
    find_quote,
)
from agents.providers.gemini import GeminiProvider
from agents.providers.offline import MAX_SENTENCES, OfflineProvider, standalone_query
from agents.tests.fake_gemini import FakeGemini, broken_stream, hang, reply_json, reply_text, status
from agents.tests.fakes import hashed_bow_encode
from documents.chunking import split_sentences

DOC = (
    "Docent is a workspace for project documents. People upload files and ask questions "
    "about them.\n\nThe worker extracts text from PDF, DOCX and HTML files. Every document "
    "is split into chunks of about two hundred tokens. Chunks are embedded with a small "
    "sentence encoder model. The search index fuses lexical and dense rankings with "
    "reciprocal rank fusion.\n\nThe Acme Corporation sponsored the project in 2024. "
    "Dr. Jane Smith leads the research team at Stanford University. The team meets in "
    "Paris every March. Jane Smith said the NASA grant covers compute costs. The NASA "
    "grant ends in December 2026."
)


def chunked(
    text: str,
    *,
    document_id: str = "doc-1",
    title: str = "Docent overview",
    per_chunk: int = 3,
    overlap: int = 1,
    first_chunk_id: int = 100,
) -> list[Passage]:
    """Passages the way the ingest pipeline makes them: sentence-aligned, overlapping."""
    spans = split_sentences(text)
    passages = []
    step = per_chunk - overlap
    for number, first in enumerate(range(0, len(spans), step)):
        group = spans[first : first + per_chunk]
        start, end = group[0][0], group[-1][1]
        passages.append(
            Passage(
                chunk_id=first_chunk_id + number,
                document_id=document_id,
                document_title=title,
                text=text[start:end],
                start=start,
                end=end,
            )
        )
        if first + per_chunk >= len(spans):
            break
    return passages


def assert_citations_exact(result, documents: dict[str, str]) -> None:
    for citation in result.citations:
        assert documents[citation.document_id][citation.start : citation.end] == citation.quote
        assert citation.quote.strip() == citation.quote and citation.quote


@pytest.fixture
def offline() -> OfflineProvider:
    return OfflineProvider(hashed_bow_encode)


# --- offline: ask ------------------------------------------------------------


def test_offline_ask_cites_whole_sentences_at_their_document_offsets(offline):
    passages = chunked(DOC)

    result = offline.ask("Who leads the research team?", passages, [])

    assert result.answered
    assert result.provider == "offline"
    assert result.citations
    assert_citations_exact(result, {"doc-1": DOC})
    sentences = {DOC[s:e] for s, e in split_sentences(DOC)}
    assert all(c.quote in sentences for c in result.citations)
    assert "Dr. Jane Smith leads the research team at Stanford University." in [
        c.quote for c in result.citations
    ]
    for number, citation in enumerate(result.citations, 1):
        assert f"{citation.quote} [{number}]" in result.answer
    assert len(result.citations) <= 3


def test_offline_ask_refuses_when_nothing_relevant(offline):
    result = offline.ask("What is the capital of Peru?", chunked(DOC), [])

    assert result.answered is False
    assert result.answer == NOT_ANSWERED
    assert result.citations == []


def test_offline_ask_refuses_without_passages(offline):
    result = offline.ask("Who leads the research team?", [], [])

    assert result.answered is False
    assert result.citations == []


def test_offline_ask_cites_a_sentence_once_even_when_chunks_overlap(offline):
    passages = chunked(DOC, per_chunk=3, overlap=2)  # every sentence is in up to 3 chunks

    result = offline.ask("When does the NASA grant end?", passages, [])

    spans = [(c.start, c.end) for c in result.citations]
    assert len(spans) == len(set(spans))
    assert_citations_exact(result, {"doc-1": DOC})
    assert "The NASA grant ends in December 2026." in [c.quote for c in result.citations]


def test_offline_ask_orders_citations_by_document_then_position(offline):
    other = "The team also meets in Berlin during the summer. Berlin hosts the research team."
    passages = chunked(other, document_id="doc-2", title="Travel") + chunked(DOC)

    result = offline.ask("Where does the research team meet?", passages, [])

    keys = [(c.document_id != "doc-2", c.start) for c in result.citations]
    assert keys == sorted(keys)
    assert_citations_exact(result, {"doc-1": DOC, "doc-2": other})


def test_offline_follow_up_question_leans_on_the_previous_one(offline):
    passages = chunked(DOC)
    vague = "And what of it?"

    alone = offline.ask(vague, passages, [])
    follow_up = offline.ask(vague, passages, [("Where does the team meet?", "In Paris.")])

    assert alone.answered is False
    assert follow_up.answered
    assert "The team meets in Paris every March." in [c.quote for c in follow_up.citations]


def test_query_context_only_added_to_short_or_pronoun_questions():
    history = [("Who funds the project?", "NASA.")]

    # The pronoun stands for the earlier question's subject, not every word of the last turn.
    assert standalone_query("When does it end?", history) == "When does the project end?"
    assert (
        standalone_query("Which encoder model embeds the document chunks?", history)
        == "Which encoder model embeds the document chunks?"
    )
    assert standalone_query("When does it end?", []) == "When does it end?"


def test_offline_threshold_is_configurable():
    strict = OfflineProvider(hashed_bow_encode, min_answer_score=0.99)

    assert strict.ask("Who leads the research team?", chunked(DOC), []).answered is False


def test_offline_ask_is_deterministic(offline):
    passages = chunked(DOC)

    first = offline.ask("What does the worker extract?", passages, [])
    second = offline.ask("What does the worker extract?", passages, [])

    assert first == second


# --- offline: summarize --------------------------------------------------------


LONG_DOC = " ".join(
    f"Section {n} reports that the {topic} measurements improved by {n} percent in trial {n}."
    for n, topic in enumerate(
        ["soil", "water", "air", "noise", "light", "heat", "pressure", "humidity"] * 5,
        1,
    )
)


def test_offline_summary_is_cited_ordered_and_deterministic(offline):
    passages = chunked(LONG_DOC, per_chunk=4, overlap=1)

    first = offline.summarize("Trials", passages)
    second = offline.summarize("Trials", passages)

    assert first == second
    assert 3 <= first.output["sentences"] <= 7
    assert len(first.citations) == first.output["sentences"]
    assert_citations_exact(first, {"doc-1": LONG_DOC})
    starts = [c.start for c in first.citations]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    assert first.answer.endswith(f"[{len(first.citations)}]")


def test_offline_summary_length_grows_with_the_text(offline):
    short = offline.summarize("Overview", chunked(DOC))
    long = offline.summarize("Trials", chunked(LONG_DOC, per_chunk=4, overlap=1))

    assert short.output["sentences"] == 3
    assert long.output["sentences"] > short.output["sentences"]


def test_offline_summary_of_a_huge_document_embeds_a_bounded_sample():
    batches: list[int] = []

    def counting_encoder(texts: list[str]) -> np.ndarray:
        batches.append(len(texts))
        return hashed_bow_encode(texts)

    text = " ".join(f"Finding {n} concerns sample {n % 97} of the cohort." for n in range(6000))
    passages = chunked(text, per_chunk=40, overlap=0)
    started = time.monotonic()

    result = OfflineProvider(counting_encoder).summarize("Cohort", passages)

    assert max(batches) <= MAX_SENTENCES
    assert result.output["sentences"] == 7
    assert_citations_exact(result, {"doc-1": text})
    assert time.monotonic() - started < 20


def test_offline_summary_of_nothing_says_so(offline):
    result = offline.summarize("Empty", [])

    assert result.answered is False
    assert result.citations == []


# --- offline: extract ----------------------------------------------------------


def test_offline_extract_finds_keywords_tags_and_typed_entities(offline):
    passages = chunked(DOC)

    result = offline.extract("Docent overview", passages)

    output = result.output
    assert set(output) == {"tags", "keywords", "entities"}
    assert 1 <= len(output["tags"]) <= 5
    assert all(tag == tag.lower() for tag in output["tags"])
    assert output["tags"] == [k.lower() for k in output["keywords"][: len(output["tags"])]]
    assert "nasa grant" in output["keywords"]
    entities = {e["text"]: e["type"] for e in output["entities"]}
    assert entities["Stanford University"] == "ORG"
    assert entities["NASA"] == "ORG"
    assert entities["Acme Corporation"] == "ORG"
    assert entities["Jane Smith"] == "PERSON"
    assert not {"The", "Every", "People", "Chunks"} & set(entities)
    assert "Stanford University (ORG)" in result.answer
    assert result.citations
    assert_citations_exact(result, {"doc-1": DOC})
    assert {c.quote for c in result.citations} <= set(entities)


def test_offline_extract_is_deterministic(offline):
    passages = chunked(DOC)

    assert offline.extract("a", passages) == offline.extract("a", passages)


# --- quote finding -------------------------------------------------------------


def test_find_quote_maps_whitespace_and_case_differences_back_to_the_original():
    text = "Alpha beta.\n  The   Grant ENDS\tin 2026. Omega."

    start, end = find_quote(text, "the grant ends in 2026.")

    assert text[start:end] == "The   Grant ENDS\tin 2026."
    assert find_quote(text, "“Alpha beta.”") == (0, 11)
    assert find_quote(text, "not there") is None
    assert find_quote(text, "   ") is None


# --- provider selection ----------------------------------------------------------


def test_auto_picks_gemini_only_when_a_key_is_set(settings):
    settings.LLM_PROVIDER = "auto"
    settings.GEMINI_API_KEY = ""
    assert resolve_provider_name() == "offline"
    assert get_provider(encode=hashed_bow_encode).name == "offline"

    settings.GEMINI_API_KEY = "some-key"
    settings.GEMINI_BASE_URL = "http://127.0.0.1:9"
    provider = get_provider(encode=hashed_bow_encode)
    assert provider.name == "gemini"
    assert provider.model == settings.GEMINI_MODEL


def test_explicit_provider_names_are_honoured(settings):
    settings.GEMINI_API_KEY = ""
    settings.LLM_PROVIDER = "gemini"
    with pytest.raises(ImproperlyConfigured):
        get_provider(encode=hashed_bow_encode)
    assert get_provider("offline", encode=hashed_bow_encode).name == "offline"
    with pytest.raises(ImproperlyConfigured):
        get_provider("offline")


# --- Gemini against the fake server -----------------------------------------------

BASE = 5_000  # the passages sit deep inside their document


@pytest.fixture
def passages() -> list[Passage]:
    first = "Cats sleep for most of the day. They purr when they are content."
    second = "Dogs bark at strangers.  Most dogs enjoy   long walks."
    return [
        Passage(1, "doc-a", "Cats", first, BASE, BASE + len(first)),
        Passage(2, "doc-b", "Dogs", second, BASE + 100, BASE + 100 + len(second)),
    ]


def gemini(server: FakeGemini, **kwargs) -> GeminiProvider:
    options = {"timeout_s": 2.0, "max_retries": 2, "backoff_initial_s": 0.01}
    options.update(kwargs)
    return GeminiProvider("test-key", "gemini-test", server.url, **options)


def documents_of(passages: list[Passage]) -> dict[str, str]:
    """Each passage's document text, padded so offsets line up."""
    docs: dict[str, str] = {}
    for p in passages:
        text = docs.get(p.document_id, "")
        text = text.ljust(p.start, "~")
        docs[p.document_id] = text[: p.start] + p.text + text[p.end :]
    return docs


def test_gemini_answer_citations_are_mapped_to_document_offsets(fake_gemini, passages):
    fake_gemini.push(
        reply_json(
            {
                "answer": "Cats purr when content [1] and dogs like walks [2].",
                "citations": [
                    {"passage": 1, "quote": "They purr when they are content."},
                    {"passage": 2, "quote": "most dogs enjoy long walks."},
                ],
                "answered": True,
            },
            input_tokens=321,
            output_tokens=45,
        )
    )

    result = gemini(fake_gemini).ask("What do pets do?", passages, [])

    assert result.answered
    assert result.provider == "gemini" and result.model == "gemini-test"
    assert result.answer == "Cats purr when content [1] and dogs like walks [2]."
    first, second = result.citations
    assert (first.document_id, first.chunk_id) == ("doc-a", 1)
    assert first.start == BASE + passages[0].text.index("They purr")
    assert first.quote == "They purr when they are content."
    assert second.quote == "Most dogs enjoy   long walks."  # the document's own spacing
    assert second.start == BASE + 100 + passages[1].text.index("Most dogs")
    assert_citations_exact(result, documents_of(passages))
    assert (result.input_tokens, result.output_tokens) == (321, 45)
    assert result.output["dropped_citations"] == 0


def test_gemini_request_carries_numbered_passages_history_and_json_mode(fake_gemini, passages):
    fake_gemini.push(reply_json({"answer": "No.", "citations": [], "answered": False}))

    gemini(fake_gemini).ask("Do cats bark?", passages, [("Do dogs purr?", "No, cats purr.")])

    (request,) = fake_gemini.requests
    assert request.path == "/v1beta/models/gemini-test:generateContent"
    assert request.headers["x-goog-api-key"] == "test-key"
    assert "[1] Cats\nCats sleep for most of the day." in request.prompt
    assert "[2] Dogs\nDogs bark at strangers." in request.prompt
    assert "Q: Do dogs purr?\nA: No, cats purr." in request.prompt
    assert request.prompt.rstrip().endswith("Question: Do cats bark?")
    assert "only the numbered passages" in request.system
    assert request.body["generationConfig"]["responseMimeType"] == "application/json"


def test_gemini_drops_and_counts_a_citation_whose_quote_is_not_in_the_passages(fake_gemini, passages):
    fake_gemini.push(
        reply_json(
            {
                "answer": "Cats fly [1]. Cats sleep a lot [2].",
                "citations": [
                    {"passage": 1, "quote": "Cats can fly over rooftops."},
                    {
                        "passage": 2,
                        "quote": "Cats sleep for most of the day.",
                    },  # misnumbered
                    {"passage": 9, "quote": "nowhere"},
                ],
                "answered": True,
            }
        )
    )

    result = gemini(fake_gemini).ask("What do cats do?", passages, [])

    assert result.output["dropped_citations"] == 2
    (citation,) = result.citations
    assert citation.document_id == "doc-a" and citation.start == BASE
    assert result.answer == "Cats fly. Cats sleep a lot [1]."


def test_gemini_not_answered_has_no_citations(fake_gemini, passages):
    fake_gemini.push(
        reply_json(
            {
                "answer": "The documents do not say.",
                "citations": [{"passage": 1, "quote": "Cats sleep for most of the day."}],
                "answered": False,
            }
        )
    )

    result = gemini(fake_gemini).ask("What do cats eat?", passages, [])

    assert result.answered is False
    assert result.citations == []
    assert result.answer == "The documents do not say."


def test_gemini_retries_a_429_then_succeeds(fake_gemini, passages):
    fake_gemini.push(
        status(429, "quota"),
        reply_json({"answer": "Yes.", "citations": [], "answered": True}),
    )

    result = gemini(fake_gemini).ask("Do cats sleep?", passages, [])

    assert result.answer == "Yes."
    assert fake_gemini.request_count == 2


def test_gemini_gives_up_on_persistent_500s_after_its_retries(fake_gemini, passages):
    fake_gemini.always(status(500, "boom"))

    with pytest.raises(TransientProviderError, match="HTTP 500.*after 3 attempts"):
        gemini(fake_gemini, max_retries=2).ask("Do cats sleep?", passages, [])

    assert fake_gemini.request_count == 3


def test_gemini_timeout_is_a_transient_error(fake_gemini, passages):
    fake_gemini.always(hang(5))
    started = time.monotonic()

    with pytest.raises(TransientProviderError, match="(?i)timeout|timed out"):
        gemini(fake_gemini, timeout_s=0.5, max_retries=1).ask("Do cats sleep?", passages, [])

    assert fake_gemini.request_count == 2
    assert time.monotonic() - started < 4


def test_gemini_connection_refused_is_a_transient_error(passages):
    provider = GeminiProvider(
        "k",
        "m",
        "http://127.0.0.1:9",
        timeout_s=1,
        max_retries=0,
        backoff_initial_s=0.01,
    )

    with pytest.raises(TransientProviderError, match="ConnectError"):
        provider.ask("q", passages, [])


@pytest.mark.parametrize(
    "behaviour, message",
    [
        (reply_text("Sure! Cats sleep."), "not JSON"),
        (reply_text('["a list"]'), "expected a JSON object"),
        (reply_json({"citations": [], "answered": True}), "missing 'answer'"),
        (reply_json({"answer": "x", "citations": "none"}), "'citations' is not a list"),
        (
            reply_json({"answer": "x", "citations": [], "answered": "yes"}),
            "not a boolean",
        ),
    ],
)
def test_gemini_malformed_output_is_a_permanent_error(fake_gemini, passages, behaviour, message):
    fake_gemini.push(behaviour)

    with pytest.raises(ProviderError, match=message) as caught:
        gemini(fake_gemini).ask("Do cats sleep?", passages, [])

    assert not isinstance(caught.value, TransientProviderError)
    assert "malformed output" in str(caught.value)
    assert fake_gemini.request_count == 1  # not retried


def test_gemini_json_in_a_code_fence_is_accepted(fake_gemini, passages):
    body = json.dumps({"answer": "Yes.", "citations": [], "answered": True})
    fake_gemini.push(reply_text(f"```json\n{body}\n```"))

    assert gemini(fake_gemini).ask("Do cats sleep?", passages, []).answer == "Yes."


def test_gemini_client_errors_are_permanent_and_not_retried(fake_gemini, passages):
    fake_gemini.push(status(400, "bad request"))

    with pytest.raises(ProviderError, match="HTTP 400") as caught:
        gemini(fake_gemini).ask("Do cats sleep?", passages, [])

    assert not isinstance(caught.value, TransientProviderError)
    assert fake_gemini.request_count == 1


def test_gemini_streaming_hands_on_the_answer_prose_and_parses_the_whole_reply(fake_gemini, passages):
    reply = {
        "answer": "They purr [1].",
        "citations": [{"passage": 1, "quote": "They purr when they are content."}],
        "answered": True,
    }
    fake_gemini.stream_pieces = 12  # so the answer itself arrives in several pieces
    fake_gemini.push(status(503), reply_json(reply, input_tokens=50, output_tokens=9))
    deltas: list[str] = []

    result = gemini(fake_gemini).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert len(deltas) > 1
    assert "".join(deltas) == "They purr [1]."  # the prose, never the JSON around it
    assert result.answer == "They purr [1]."
    assert result.citations[0].quote == "They purr when they are content."
    assert (result.input_tokens, result.output_tokens) == (50, 9)
    assert fake_gemini.requests[-1].path.endswith(":streamGenerateContent?alt=sse")
    assert fake_gemini.request_count == 2


def test_gemini_stream_broken_after_prose_was_handed_on_is_not_retried(fake_gemini, passages):
    reply = json.dumps({"answer": "Cats purr when content [1].", "citations": [], "answered": True})
    fake_gemini.stream_pieces = 10
    fake_gemini.push(broken_stream(reply, after=4), reply_text(reply))
    deltas: list[str] = []

    with pytest.raises(TransientProviderError, match="stream broke midway"):
        gemini(fake_gemini).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert fake_gemini.request_count == 1
    assert deltas and "Cats purr when content [1].".startswith("".join(deltas))


def test_gemini_rewrite_query_is_one_short_plain_call(fake_gemini):
    fake_gemini.push(reply_text("How often should the Brightwater pump intake filter be cleaned?\n"))
    history = [("Who designed the Brightwater pump?", "Ada Lovelace [1].")]

    query = gemini(fake_gemini).rewrite_query("How often should its intake filter be cleaned?", history)

    assert query == "How often should the Brightwater pump intake filter be cleaned?"
    (request,) = fake_gemini.requests
    config = request.body["generationConfig"]
    assert "responseMimeType" not in config
    assert config["temperature"] == 0.0 and config["maxOutputTokens"] <= 64
    assert config["stopSequences"] == ["\n"]
    assert "query only" in request.system
    assert gemini(fake_gemini).rewrite_query("Who designed it?", []) == "Who designed it?"
    assert fake_gemini.request_count == 1  # no history, no call


def test_gemini_flash_rewrites_without_spending_its_few_tokens_on_thinking(fake_gemini):
    fake_gemini.push(reply_text("Brightwater pump intake filter cleaning"))
    flash = GeminiProvider("k", "gemini-2.5-flash", fake_gemini.url, max_retries=0)

    flash.rewrite_query("And its filter?", [("Who designed the Brightwater pump?", "Ada.")])

    config = fake_gemini.requests[0].body["generationConfig"]
    assert list(config["thinkingConfig"].values()) == [0]  # the SDK sends thinking_budget


def test_gemini_rewrite_query_falls_back_to_the_offline_rewrite_on_any_error(fake_gemini):
    from agents.providers.offline import standalone_query

    fake_gemini.push(status(503), reply_text(""))
    history = [("Who designed the Brightwater pump?", "Ada Lovelace [1].")]
    follow_up = "How often should its intake filter be cleaned?"

    assert gemini(fake_gemini).rewrite_query(follow_up, history) == standalone_query(follow_up, history)
    assert gemini(fake_gemini).rewrite_query(follow_up, history) == standalone_query(follow_up, history)
    assert fake_gemini.request_count == 2  # one call each, not retried


def test_gemini_json_requests_carry_the_schema_with_the_answer_first(fake_gemini, passages):
    fake_gemini.push(reply_json({"answer": "No.", "citations": [], "answered": False}))

    gemini(fake_gemini).ask("Do cats bark?", passages, [])

    config = fake_gemini.requests[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseJsonSchema"]
    assert list(schema["properties"]) == ["answer", "citations", "answered"]
    assert schema["properties"]["citations"]["items"]["required"] == ["passage", "quote"]


def test_gemini_summary_in_one_call_when_the_document_fits(fake_gemini, passages):
    fake_gemini.push(
        reply_json(
            {
                "summary": "Cats sleep most of the day [1]. Dogs bark at strangers [2].",
                "citations": [
                    {"passage": 1, "quote": "Cats sleep for most of the day."},
                    {"passage": 2, "quote": "Dogs bark at strangers."},
                ],
            }
        )
    )

    result = gemini(fake_gemini).summarize("Pets", passages)

    assert result.answer == "Cats sleep most of the day [1]. Dogs bark at strangers [2]."
    assert [c.document_id for c in result.citations] == ["doc-a", "doc-b"]
    assert result.output["calls"] == 1
    assert_citations_exact(result, documents_of(passages))


def test_gemini_summary_map_reduces_a_long_document(fake_gemini, passages):
    fake_gemini.push(
        reply_json(
            {
                "summary": "Cats sleep a lot [1].",
                "citations": [{"passage": 1, "quote": "Cats sleep for most of the day."}],
            },
            input_tokens=100,
            output_tokens=10,
        ),
        reply_json(
            {
                "summary": "Dogs bark [1] and walk [2].",
                "citations": [
                    {"passage": 1, "quote": "Dogs bark at strangers."},
                    {"passage": 1, "quote": "Most dogs enjoy long walks."},
                ],
            },
            input_tokens=100,
            output_tokens=10,
        ),
        reply_json(
            {"summary": "Cats sleep [1] while dogs walk [3]."},
            input_tokens=30,
            output_tokens=8,
        ),
    )

    result = gemini(fake_gemini, char_budget=70).summarize("Pets", passages)

    assert fake_gemini.request_count == 3
    reduce_prompt = fake_gemini.requests[2].prompt
    assert "Cats sleep a lot [1]." in reduce_prompt
    assert "Dogs bark [2] and walk [3]." in reduce_prompt  # numbered across the document
    assert result.answer == "Cats sleep [1] while dogs walk [2]."
    assert [c.quote for c in result.citations] == [
        "Cats sleep for most of the day.",
        "Most dogs enjoy   long walks.",
    ]
    assert result.output["calls"] == 3 and result.output["groups"] == 2
    assert (result.input_tokens, result.output_tokens) == (230, 28)
    assert_citations_exact(result, documents_of(passages))


def test_gemini_extract_normalises_and_locates_entities(fake_gemini, passages):
    fake_gemini.push(
        reply_json(
            {
                "tags": ["Pets", "pets", "Animal Behaviour"],
                "keywords": ["sleep", "long walks"],
                "entities": [
                    {"text": "Cats", "type": "animal"},
                    {"text": "dogs", "type": "MISC"},
                    {"text": "Garfield", "type": "PERSON"},
                ],
            }
        )
    )

    result = gemini(fake_gemini).extract("Pets", passages)

    assert result.output["tags"] == ["pets", "animal behaviour"]
    assert result.output["keywords"] == ["sleep", "long walks"]
    assert result.output["entities"] == [
        {"text": "Cats", "type": "MISC"},
        {"text": "dogs", "type": "MISC"},
        {"text": "Garfield", "type": "PERSON"},
    ]
    assert [c.quote for c in result.citations] == [
        "Cats",
        "dogs",
    ]  # no Garfield in the text
    assert_citations_exact(result, documents_of(passages))


def test_gemini_extract_rejects_a_reply_without_the_lists(fake_gemini, passages):
    fake_gemini.push(reply_json({"tags": ["x"]}))

    with pytest.raises(ProviderError, match="missing 'keywords'"):
        gemini(fake_gemini).extract("Pets", passages)
