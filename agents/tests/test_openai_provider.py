"""The OpenAI-compatible provider: the real `openai` client against a local fake server,
the prose streaming shared with Gemini, query rewriting, selection, breaker and fallback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured

from agents.providers import get_provider, resolve_provider_name, run_with_breaker
from agents.providers import offline as offline_module
from agents.providers.base import (
    CircuitOpenError,
    Passage,
    ProviderError,
    TransientProviderError,
)
from agents.providers.llm import REWRITE_MAX_CHARS, AnswerStream, PartialStreamError
from agents.providers.openai_compat import PLACEHOLDER_API_KEY, OpenAIProvider
from agents.tests.fake_openai import (
    FakeOpenAI,
    broken_stream,
    garbage_stream,
    hang,
    reply_json,
    reply_text,
    stalled_stream,
    status,
)
from agents.tests.fakes import hashed_bow_encode

BASE = 5_000  # the passages sit deep inside their document
CATS = "Cats sleep for most of the day. They purr when they are content."
DOGS = "Dogs bark at strangers.  Most dogs enjoy   long walks."
PURR = {
    "answer": "Cats purr when content [1].",
    "citations": [{"passage": 1, "quote": "They purr when they are content."}],
    "answered": True,
}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def passages() -> list[Passage]:
    return [
        Passage(1, "doc-a", "Cats", CATS, BASE, BASE + len(CATS)),
        Passage(2, "doc-b", "Dogs", DOGS, BASE + 100, BASE + 100 + len(DOGS)),
    ]


@pytest.fixture
def openai_settings(settings, fake_openai: FakeOpenAI, monkeypatch):
    """Settings that make `auto` pick the OpenAI-compatible fake, with fast failure."""
    monkeypatch.setattr("agents.providers.openai_compat.BACKOFF_INITIAL_S", 0.01)
    settings.LLM_PROVIDER = "auto"
    settings.GEMINI_API_KEY = ""
    settings.OPENAI_BASE_URL = fake_openai.url
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_MODEL = "local-model"
    settings.OPENAI_RESPONSE_FORMAT = "json_schema"
    settings.OPENAI_MAX_TOKENS = 512
    settings.OPENAI_CONNECT_TIMEOUT_S = 1.0
    settings.LLM_TIMEOUT_S = 1.0
    settings.LLM_MAX_RETRIES = 1
    settings.BREAKER_FAILURE_THRESHOLD = 2
    settings.BREAKER_WINDOW_S = 60
    settings.BREAKER_COOLDOWN_S = 30
    settings.BREAKER_FALLBACK = True
    return settings


def provider(server: FakeOpenAI, **kwargs) -> OpenAIProvider:
    options = {"timeout_s": 2.0, "max_retries": 2, "backoff_initial_s": 0.01}
    options.update(kwargs)
    return OpenAIProvider(server.url, "local-model", **options)


def documents_of(passages: list[Passage]) -> dict[str, str]:
    """Each passage's document text, padded so offsets line up."""
    docs: dict[str, str] = {}
    for p in passages:
        text = docs.get(p.document_id, "").ljust(p.start, "~")
        docs[p.document_id] = text[: p.start] + p.text + text[p.end :]
    return docs


def assert_citations_exact(result, documents: dict[str, str]) -> None:
    for citation in result.citations:
        assert documents[citation.document_id][citation.start : citation.end] == citation.quote


# --- answers, citations, usage, the request ---------------------------------------


def test_answer_citations_are_located_at_document_offsets_and_usage_is_recorded(fake_openai, passages):
    fake_openai.push(
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

    result = provider(fake_openai).ask("What do pets do?", passages, [])

    assert result.answered
    assert (result.provider, result.model) == ("openai", "local-model")
    assert result.answer == "Cats purr when content [1] and dogs like walks [2]."
    first, second = result.citations
    assert (first.document_id, first.chunk_id, first.start) == ("doc-a", 1, BASE + CATS.index("They purr"))
    assert second.quote == "Most dogs enjoy   long walks."  # the document's own spacing
    assert_citations_exact(result, documents_of(passages))
    assert (result.input_tokens, result.output_tokens) == (321, 45)
    assert result.output["dropped_citations"] == 0


def test_request_streams_with_usage_and_holds_the_reply_to_the_json_schema(fake_openai, passages):
    fake_openai.push(reply_json({"answer": "No.", "citations": [], "answered": False}))

    provider(fake_openai, max_tokens=300).ask(
        "Do cats bark?", passages, [("Do dogs purr?", "No, cats purr.")]
    )

    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"
    body = request.body
    assert body["model"] == "local-model"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 300
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "only the numbered passages" in request.system
    assert "[1] Cats\nCats sleep for most of the day." in request.prompt
    assert "Q: Do dogs purr?\nA: No, cats purr." in request.prompt
    assert request.prompt.rstrip().endswith("Question: Do cats bark?")
    schema_format = body["response_format"]
    assert schema_format["type"] == "json_schema"
    assert schema_format["json_schema"]["strict"] is True
    schema = schema_format["json_schema"]["schema"]
    assert list(schema["properties"]) == ["answer", "citations", "answered"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["citations"]["items"]["additionalProperties"] is False


def test_an_api_key_when_set_is_sent(fake_openai, passages):
    fake_openai.push(reply_json(PURR))

    provider(fake_openai, api_key="sk-test").ask("Do cats purr?", passages, [])

    assert fake_openai.requests[0].headers["authorization"] == "Bearer sk-test"


def test_json_object_mode_asks_for_any_json_object(fake_openai, passages):
    fake_openai.push(reply_json(PURR))

    result = provider(fake_openai, response_format="json_object").ask("Do cats purr?", passages, [])

    assert fake_openai.requests[0].body["response_format"] == {"type": "json_object"}
    assert result.answer == "Cats purr when content [1]."


def test_prompt_only_mode_sends_no_response_format_and_parses_fenced_json_in_prose(fake_openai, passages):
    fenced = f"Here is the JSON you asked for:\n```json\n{json.dumps(PURR, indent=2)}\n```\nHope it helps!"
    fake_openai.push(reply_text(fenced))

    result = provider(fake_openai, response_format="none").ask("Do cats purr?", passages, [])

    assert "response_format" not in fake_openai.requests[0].body
    assert result.answer == "Cats purr when content [1]."
    assert result.citations[0].quote == "They purr when they are content."


def test_an_unknown_response_format_is_refused():
    with pytest.raises(ValueError, match="json_schema"):
        OpenAIProvider("http://127.0.0.1:9/v1", "m", response_format="grammar")


def test_no_passages_means_no_call_and_no_answer(fake_openai):
    result = provider(fake_openai).ask("Anything?", [], [])

    assert result.answered is False and result.citations == []
    assert fake_openai.request_count == 0


def test_declined_answer_has_no_citations(fake_openai, passages):
    fake_openai.push(
        reply_json(
            {
                "answer": "The documents do not say.",
                "citations": [{"passage": 1, "quote": "Cats sleep for most of the day."}],
                "answered": False,
            }
        )
    )

    result = provider(fake_openai).ask("What do cats eat?", passages, [])

    assert (result.answered, result.citations, result.answer) == (False, [], "The documents do not say.")


# --- streaming prose ---------------------------------------------------------------


def test_streamed_deltas_are_the_answer_prose_in_order(fake_openai, passages):
    reply = {
        "answer": 'They "purr" [1],\nwhen content — 😀.',
        "citations": [{"passage": 1, "quote": "They purr when they are content."}],
        "answered": True,
    }
    fake_openai.piece_size = 3  # escapes and the emoji's \\ud83d\\ude00 split across pieces
    fake_openai.push(reply_json(reply, input_tokens=50, output_tokens=9))
    deltas: list[str] = []

    result = provider(fake_openai).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert len(deltas) > 5
    assert all(deltas)
    assert "".join(deltas) == reply["answer"]
    assert not any(mark in "".join(deltas) for mark in ('"answer"', "{", "citations"))
    assert result.answer == reply["answer"]
    assert (result.input_tokens, result.output_tokens) == (50, 9)


def test_the_answer_streams_when_it_comes_after_the_other_keys(fake_openai, passages):
    reply = {
        "answered": True,
        "citations": [{"passage": 1, "quote": 'They purr when they are content. {"answer": "no"}'}],
        "answer": "Yes [1].",
    }
    fake_openai.push(reply_json(reply))
    deltas: list[str] = []

    provider(fake_openai).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert "".join(deltas) == "Yes [1]."


def test_the_final_answer_renumbers_what_was_streamed(fake_openai, passages):
    reply = {
        "answer": "Cats fly [1]. Cats sleep a lot [2].",
        "citations": [
            {"passage": 1, "quote": "Cats can fly over rooftops."},
            {"passage": 1, "quote": "Cats sleep for most of the day."},
        ],
        "answered": True,
    }
    fake_openai.push(reply_json(reply))
    deltas: list[str] = []

    result = provider(fake_openai).ask("What do cats do?", passages, [], on_delta=deltas.append)

    assert "".join(deltas) == reply["answer"]  # as generated
    assert result.answer == "Cats fly. Cats sleep a lot [1]."  # what the caller shows in its place
    assert result.output["dropped_citations"] == 1


def test_a_stream_that_breaks_after_prose_was_handed_on_is_not_retried(fake_openai, passages):
    fake_openai.push(broken_stream(json.dumps(PURR), after=4), reply_json(PURR))
    deltas: list[str] = []

    with pytest.raises(PartialStreamError, match="stream broke midway") as caught:
        provider(fake_openai).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert isinstance(caught.value, TransientProviderError)  # the breaker counts it
    assert fake_openai.request_count == 1
    streamed = "".join(deltas)
    assert streamed and PURR["answer"].startswith(streamed) and streamed != PURR["answer"]


def test_a_stream_that_stalls_after_prose_times_out_without_a_retry(fake_openai, passages):
    fake_openai.push(stalled_stream(json.dumps(PURR), after=4, seconds=5), reply_json(PURR))
    deltas: list[str] = []
    started = time.monotonic()

    with pytest.raises(PartialStreamError, match="(?i)timed out"):
        provider(fake_openai, timeout_s=0.5).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert fake_openai.request_count == 1
    assert deltas
    assert time.monotonic() - started < 3


def test_a_stream_that_breaks_before_any_prose_is_retried_and_streams_once(fake_openai, passages):
    reply = {"citations": PURR["citations"], "answered": True, "answer": "Cats purr [1]."}
    fake_openai.push(broken_stream(json.dumps(reply), after=2), reply_json(reply))
    deltas: list[str] = []

    result = provider(fake_openai).ask("Do cats purr?", passages, [], on_delta=deltas.append)

    assert fake_openai.request_count == 2
    assert "".join(deltas) == "Cats purr [1]." == result.answer


def test_a_broken_stream_nobody_watches_is_retried(fake_openai, passages):
    fake_openai.push(broken_stream(json.dumps(PURR), after=4), reply_json(PURR))

    result = provider(fake_openai).ask("Do cats purr?", passages, [])

    assert result.answer == PURR["answer"]
    assert fake_openai.request_count == 2


def test_a_stream_of_garbage_is_malformed_output(fake_openai, passages):
    fake_openai.push(garbage_stream())

    with pytest.raises(ProviderError, match="malformed output") as caught:
        provider(fake_openai).ask("Do cats purr?", passages, [], on_delta=lambda text: None)

    assert not isinstance(caught.value, TransientProviderError)
    assert fake_openai.request_count == 1


def test_an_event_stream_with_no_events_is_malformed_output(fake_openai, passages):
    fake_openai.push(garbage_stream("this is not server-sent events\n"))

    with pytest.raises(ProviderError, match="the stream held no text"):
        provider(fake_openai).ask("Do cats purr?", passages, [])


def test_a_reply_cut_off_at_the_token_limit_says_so(fake_openai, passages):
    fake_openai.push(reply_text('{"answer": "Cats purr wh', finish_reason="length"))

    with pytest.raises(ProviderError, match="cut off at the token limit"):
        provider(fake_openai).ask("Do cats purr?", passages, [])


# --- the incremental extractor on its own ------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_answer_stream_decodes_escapes_split_anywhere(size):
    answer = 'Tab\there, "quoted" \\ back/slash \u00e9 \U0001f600 \u2028 [1].'
    raw = "```json\n" + json.dumps({"x": [1, {"answer": "nested"}], "n": -1.5e3, "answer": answer}) + "\n```"
    extractor = AnswerStream()

    pieces = [extractor.feed(raw[i : i + size]) for i in range(0, len(raw), size)]

    assert "".join(pieces) == answer
    assert extractor.done


def test_answer_stream_yields_nothing_for_a_reply_without_the_key():
    extractor = AnswerStream()

    assert extractor.feed('{"summary": "no answer here", "answered": false}') == ""
    assert extractor.feed(" trailing {") == ""


# --- retries, backoff and errors ---------------------------------------------------


def test_a_429_is_retried_after_the_retry_after_the_server_asked_for(fake_openai, passages):
    fake_openai.push(status(429, "slow down", retry_after=0.4), reply_json(PURR))
    started = time.monotonic()

    result = provider(fake_openai, backoff_max_s=5).ask("Do cats purr?", passages, [])

    assert result.answer == PURR["answer"]
    assert fake_openai.request_count == 2
    assert time.monotonic() - started >= 0.4


def test_retry_after_is_capped_by_the_backoff_maximum(fake_openai, passages):
    fake_openai.push(status(429, retry_after=60), reply_json(PURR))
    started = time.monotonic()

    provider(fake_openai, backoff_max_s=0.2).ask("Do cats purr?", passages, [])

    assert time.monotonic() - started < 3


def test_persistent_500s_give_up_after_the_retries(fake_openai, passages):
    fake_openai.always(status(500, "boom"))

    with pytest.raises(TransientProviderError, match="HTTP 500: boom.*after 3 attempts"):
        provider(fake_openai, max_retries=2).ask("Do cats purr?", passages, [])

    assert fake_openai.request_count == 3


def test_a_hang_is_a_transient_timeout(fake_openai, passages):
    fake_openai.always(hang(5))
    started = time.monotonic()

    with pytest.raises(TransientProviderError, match="(?i)timed out"):
        provider(fake_openai, timeout_s=0.5, max_retries=1).ask("Do cats purr?", passages, [])

    assert fake_openai.request_count == 2
    assert time.monotonic() - started < 4


def test_connection_refused_is_a_transient_error(passages):
    unreachable = OpenAIProvider("http://127.0.0.1:9/v1", "m", timeout_s=1, max_retries=0)

    with pytest.raises(TransientProviderError, match="ConnectError"):
        unreachable.ask("q", passages, [])


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_client_errors_are_permanent_and_not_retried(fake_openai, passages, code):
    fake_openai.push(status(code, "no such thing"))

    with pytest.raises(
        ProviderError, match=f"rejected the request \\(HTTP {code}\\): no such thing"
    ) as caught:
        provider(fake_openai).ask("Do cats purr?", passages, [])

    assert not isinstance(caught.value, TransientProviderError)
    assert fake_openai.request_count == 1


@pytest.mark.parametrize(
    "behaviour, message",
    [
        (reply_text("Sure! Cats sleep."), "not JSON"),
        (reply_text('["a list"]'), "expected a JSON object"),
        (reply_json({"citations": [], "answered": True}), "missing 'answer'"),
        (reply_json({"answer": "x", "citations": "none"}), "'citations' is not a list"),
        (reply_json({"answer": "x", "citations": [], "answered": "yes"}), "not a boolean"),
        (reply_text(""), "the stream held no text"),
    ],
)
def test_malformed_output_is_a_permanent_error(fake_openai, passages, behaviour, message):
    fake_openai.push(behaviour)

    with pytest.raises(ProviderError, match=message) as caught:
        provider(fake_openai).ask("Do cats purr?", passages, [])

    assert not isinstance(caught.value, TransientProviderError)
    assert "The OpenAI-compatible server returned malformed output" in str(caught.value)
    assert fake_openai.request_count == 1


# --- summarize and extract share Gemini's flow ---------------------------------------


def test_summary_map_reduces_a_long_document(fake_openai, passages):
    fake_openai.push(
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
        reply_json({"summary": "Cats sleep [1] while dogs walk [3]."}, input_tokens=30, output_tokens=8),
    )

    result = provider(fake_openai, char_budget=70).summarize("Pets", passages)

    assert fake_openai.request_count == 3
    assert "Dogs bark [2] and walk [3]." in fake_openai.requests[2].prompt
    assert fake_openai.requests[2].body["response_format"]["json_schema"]["name"] == "docent_reduce"
    assert result.answer == "Cats sleep [1] while dogs walk [2]."
    assert [c.quote for c in result.citations] == [
        "Cats sleep for most of the day.",
        "Most dogs enjoy   long walks.",
    ]
    assert (result.input_tokens, result.output_tokens) == (230, 28)
    assert_citations_exact(result, documents_of(passages))


def test_extract_normalises_and_locates_entities(fake_openai, passages):
    fake_openai.push(
        reply_json(
            {
                "tags": ["Pets", "pets"],
                "keywords": ["long walks"],
                "entities": [{"text": "Cats", "type": "animal"}, {"text": "Garfield", "type": "PERSON"}],
            }
        )
    )

    result = provider(fake_openai).extract("Pets", passages)

    assert fake_openai.requests[0].body["temperature"] == 0.0
    assert result.output["tags"] == ["pets"]
    assert result.output["entities"] == [
        {"text": "Cats", "type": "MISC"},
        {"text": "Garfield", "type": "PERSON"},
    ]
    assert [c.quote for c in result.citations] == ["Cats"]


# --- rewriting follow-up questions -------------------------------------------------

HISTORY = [("Who designed the Brightwater pump?", "Ada Lovelace designed it [1].")]
FOLLOW_UP = "How often should its intake filter be cleaned?"


def test_rewrite_without_history_returns_the_question_without_a_call(fake_openai):
    assert provider(fake_openai).rewrite_query(FOLLOW_UP, []) == FOLLOW_UP
    assert fake_openai.request_count == 0


def test_rewrite_is_one_short_plain_call_and_its_reply_is_cleaned(fake_openai):
    fake_openai.push(reply_text('Query: "How often should the Brightwater pump intake filter be cleaned?"'))

    query = provider(fake_openai).rewrite_query(FOLLOW_UP, HISTORY)

    assert query == "How often should the Brightwater pump intake filter be cleaned?"
    (request,) = fake_openai.requests
    body = request.body
    assert not body.get("stream")
    assert "response_format" not in body
    assert body["temperature"] == 0.0 and body["max_tokens"] <= 64 and body["stop"] == ["\n"]
    assert "query only" in request.system
    assert "Q: Who designed the Brightwater pump?" in request.prompt
    assert FOLLOW_UP in request.prompt


def offline_rewrite(question: str, history: list[tuple[str, str]]) -> str:
    return offline_module.standalone_query(question, history)


@pytest.mark.parametrize(
    "behaviour",
    [
        status(500, "down"),
        status(429, retry_after=30),
        status(400, "bad"),
        reply_text("   "),
        reply_text("x" * (REWRITE_MAX_CHARS + 1)),
        reply_text("How often should the pump filter be", finish_reason="length"),
        garbage_stream(),
    ],
    ids=["500", "429", "400", "empty", "overlong", "cut-off", "garbage"],
)
def test_a_failed_rewrite_falls_back_to_the_offline_rewrite_without_retrying(fake_openai, behaviour):
    fake_openai.push(behaviour)
    started = time.monotonic()

    query = provider(fake_openai, max_retries=3).rewrite_query(FOLLOW_UP, HISTORY)

    assert query == offline_rewrite(FOLLOW_UP, HISTORY)
    assert fake_openai.request_count == 1
    assert time.monotonic() - started < 2


def test_a_rewrite_against_an_unreachable_server_falls_back():
    unreachable = OpenAIProvider("http://127.0.0.1:9/v1", "m", timeout_s=1, max_retries=0)

    assert unreachable.rewrite_query(FOLLOW_UP, HISTORY) == offline_rewrite(FOLLOW_UP, HISTORY)


# --- selection, breaker and fallback -------------------------------------------------


def test_auto_picks_gemini_then_openai_then_offline_by_what_is_configured(settings):
    settings.LLM_PROVIDER = "auto"
    settings.GEMINI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    assert resolve_provider_name() == "offline"

    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.OPENAI_MODEL = "llama3.2"
    settings.OPENAI_RESPONSE_FORMAT = "json_object"
    assert resolve_provider_name() == "openai"
    built = get_provider(encode=hashed_bow_encode)
    assert isinstance(built, OpenAIProvider)
    assert (built.name, built.model, built.response_format) == ("openai", "llama3.2", "json_object")
    built.close()

    settings.GEMINI_API_KEY = "some-key"
    assert resolve_provider_name() == "gemini"


def test_openai_named_explicitly_needs_a_base_url(settings):
    settings.LLM_PROVIDER = "openai"
    settings.GEMINI_API_KEY = "some-key"
    settings.OPENAI_BASE_URL = ""

    with pytest.raises(ImproperlyConfigured, match="DOCENT_OPENAI_BASE_URL"):
        get_provider(encode=hashed_bow_encode)
    with pytest.raises(ImproperlyConfigured, match="unknown LLM provider"):
        resolve_provider_name("anthropic")


def ask(llm):
    return llm.ask("Do cats purr?", [Passage(1, "doc-a", "Cats", CATS, 0, len(CATS))], [])


def test_configured_server_answers_through_the_breaker(openai_settings, fake_openai):
    fake_openai.push(reply_json(PURR))

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert (result.provider, degraded, reason) == ("openai", False, "")
    assert result.citations[0].start == CATS.index("They purr")
    assert fake_openai.requests[0].body["model"] == "local-model"
    assert fake_openai.requests[0].body["max_tokens"] == 512


def test_a_failing_server_falls_back_to_offline_then_the_circuit_opens(openai_settings, fake_openai):
    fake_openai.always(status(503, "overloaded"))

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert result.provider == "offline" and degraded is True
    assert reason.startswith(
        "The OpenAI-compatible provider unavailable (The OpenAI-compatible server HTTP 503"
    )
    assert reason.endswith("answered by the offline provider")
    assert fake_openai.request_count == openai_settings.LLM_MAX_RETRIES + 1

    run_with_breaker(ask, encode=hashed_bow_encode)  # second failure: the threshold
    seen = fake_openai.request_count

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert fake_openai.request_count == seen  # failed fast: the server was not called
    assert degraded is True and result.provider == "offline" and result.answered
    assert (
        reason
        == "The OpenAI-compatible provider unavailable (circuit open); answered by the offline provider"
    )


def test_malformed_output_falls_back_and_without_fallback_the_open_circuit_fails_fast(
    openai_settings, fake_openai
):
    fake_openai.push(reply_text("I think cats purr"))

    result, degraded, reason = run_with_breaker(ask, encode=hashed_bow_encode)

    assert degraded and result.provider == "offline"
    assert reason.startswith(
        "The OpenAI-compatible provider failed (The OpenAI-compatible server returned malformed"
    )

    openai_settings.BREAKER_FALLBACK = False
    fake_openai.always(status(500))
    with pytest.raises(TransientProviderError):
        run_with_breaker(ask, encode=hashed_bow_encode)  # the second failure opens the circuit
    with pytest.raises(CircuitOpenError):
        run_with_breaker(ask, encode=hashed_bow_encode)
