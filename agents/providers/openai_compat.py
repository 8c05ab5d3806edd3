"""The OpenAI-compatible provider, through the official `openai` client.

One provider for every server that speaks the Chat Completions API: OpenAI
itself and the ones people run themselves (Ollama, vLLM, llama.cpp's server,
LM Studio). Everything that does not depend on the model lives in
`agents.providers.llm`; this module makes the calls. The SDK's own retries are
off (`max_retries=0`) so tenacity there is the one policy.

Structured output: `json_schema` (the reply is held to the schema; llama.cpp,
Ollama, vLLM, LM Studio and OpenAI support it), `json_object` (any JSON
object), or `none` (the prompt alone asks for JSON, and the reply is parsed
leniently, inside a ```json fence or surrounding prose).
"""

from __future__ import annotations

import copy
import email.utils
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion

from agents.providers.base import ProviderError, TransientProviderError
from agents.providers.llm import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    CHAR_BUDGET,
    LLMProvider,
    Reply,
    Request,
)

RESPONSE_FORMATS = ("json_schema", "json_object", "none")
PLACEHOLDER_API_KEY = "docent-no-key"  # local servers ask for none; the client insists on one
LABEL = "The OpenAI-compatible server"


class OpenAIProvider(LLMProvider):
    """Ask, summarise, extract and rewrite queries with a model behind the Chat Completions API."""

    name = "openai"
    label = LABEL

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 3,
        response_format: str = "json_schema",
        max_tokens: int | None = None,
        backoff_initial_s: float | None = None,
        backoff_max_s: float | None = None,
        char_budget: int = CHAR_BUDGET,
    ) -> None:
        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}")
        super().__init__(
            model,
            max_retries=max_retries,
            backoff_initial_s=BACKOFF_INITIAL_S if backoff_initial_s is None else backoff_initial_s,
            backoff_max_s=BACKOFF_MAX_S if backoff_max_s is None else backoff_max_s,
            char_budget=char_budget,
        )
        self.response_format = response_format
        self.max_tokens = max_tokens or None
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or PLACEHOLDER_API_KEY,
            # While streaming, the read timeout bounds the wait for the next piece, not the whole reply.
            timeout=httpx2.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            max_retries=0,
        )

    def close(self) -> None:
        self._client.close()

    def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "temperature": request.temperature,
        }
        max_tokens = request.max_tokens or self.max_tokens
        if max_tokens:
            params["max_tokens"] = max_tokens
        if request.stop:
            params["stop"] = list(request.stop)
        if request.schema is not None and self.response_format == "json_schema":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": _strict(request.schema),
                    "strict": True,
                },
            }
        elif request.schema is not None and self.response_format == "json_object":
            params["response_format"] = {"type": "json_object"}
        return params

    def _generate_once(self, request: Request) -> Reply:
        if request.schema is not None:
            # JSON replies stream even when nobody watches them: a slow local server then
            # only has to produce a token per read timeout, not the whole reply.
            return self._stream_once(request, lambda piece: None)
        with _translated_errors():
            completion = self._client.chat.completions.create(**self._params(request))
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            raise ProviderError(f"{LABEL} returned malformed output: no completion in the response")
        choice = completion.choices[0]
        text = (choice.message.content if choice.message else None) or ""
        if not text:
            raise ProviderError(
                f"{LABEL} returned malformed output: no text (finish reason {choice.finish_reason})"
            )
        input_tokens, output_tokens = _usage(completion.usage)
        return Reply(text, input_tokens, output_tokens, truncated=choice.finish_reason == "length")

    def _stream_once(self, request: Request, sink: Callable[[str], None]) -> Reply:
        pieces: list[str] = []
        usage = (0, 0)
        finish = ""
        with _translated_errors():
            stream = self._client.chat.completions.create(
                **self._params(request), stream=True, stream_options={"include_usage": True}
            )
            with stream:
                for chunk in stream:
                    if getattr(chunk, "usage", None) is not None:
                        usage = _usage(chunk.usage)
                    for choice in (getattr(chunk, "choices", None) or [])[:1]:
                        piece = choice.delta.content if choice.delta is not None else None
                        if piece:
                            pieces.append(piece)
                            sink(piece)
                        finish = choice.finish_reason or finish
        if not pieces:
            raise ProviderError(f"{LABEL} returned malformed output: the stream held no text")
        return Reply("".join(pieces), *usage, truncated=finish == "length")


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema for strict mode: every object closed, every property required."""
    strict = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(strict)
    return strict


def _usage(usage: Any) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Map the SDK's and httpx's exceptions onto ProviderError / TransientProviderError."""
    try:
        yield
    except ProviderError:
        raise
    except openai.APIStatusError as exc:
        code = exc.status_code
        detail = _detail(exc.body) or exc.message
        if code in (408, 429) or code >= 500:
            error = TransientProviderError(f"{LABEL} HTTP {code}: {detail}")
            error.retry_after = _retry_after(exc.response.headers)
            raise error from exc
        raise ProviderError(f"{LABEL} rejected the request (HTTP {code}): {detail}") from exc
    except openai.APITimeoutError as exc:
        raise TransientProviderError(f"{LABEL} request failed: timed out ({_cause(exc)})") from exc
    except openai.APIConnectionError as exc:
        raise TransientProviderError(f"{LABEL} request failed: {_cause(exc)}") from exc
    except openai.APIResponseValidationError as exc:
        raise ProviderError(f"{LABEL} returned malformed output: {exc.message}") from exc
    except openai.APIError as exc:  # an error event inside a stream
        code = exc.body.get("code") if isinstance(exc.body, dict) else None
        detail = _detail(exc.body) or exc.message
        if isinstance(code, int) and (code == 429 or code >= 500):
            raise TransientProviderError(f"{LABEL} error in the stream ({code}): {detail}") from exc
        raise ProviderError(f"{LABEL} reported an error: {detail}") from exc
    except httpx2.TransportError as exc:
        raise TransientProviderError(
            f"{LABEL} request failed: {type(exc).__name__}: {exc or 'no detail'}"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProviderError(f"{LABEL} returned malformed output: the response is not JSON ({exc})") from exc


def _cause(exc: BaseException) -> str:
    """The transport error under an SDK connection error: ConnectError, ReadTimeout, ..."""
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return str(exc) or type(exc).__name__
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


def _detail(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return ""


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asked us to wait: Retry-After-Ms, Retry-After (seconds or a date)."""
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            moment = email.utils.parsedate_to_datetime(value)
            return max(0.0, moment.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
