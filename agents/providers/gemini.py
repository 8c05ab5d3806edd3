"""The Gemini provider, through the official `google-genai` client.

Everything that does not depend on the model (prompts, the JSON contract,
citations, map-reduce, retries, streaming prose) lives in
`agents.providers.llm`; this module makes the calls. The SDK's own retries are
switched off so tenacity there is the one policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from google import genai
from google.genai import errors, types

from agents.providers.base import ProviderError, TransientProviderError
from agents.providers.llm import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    CHAR_BUDGET,
    LLMProvider,
    Reply,
    Request,
)

API_VERSION = "v1beta"


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of whichever httpx flavour the SDK is using."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(module.TransportError)  # timeouts, connect/read errors, protocol errors
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


class GeminiProvider(LLMProvider):
    """Ask, summarise, extract and rewrite queries with a Gemini model."""

    name = "gemini"
    label = "Gemini"

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_initial_s: float | None = None,
        backoff_max_s: float | None = None,
        char_budget: int = CHAR_BUDGET,
    ) -> None:
        super().__init__(
            model,
            max_retries=max_retries,
            backoff_initial_s=BACKOFF_INITIAL_S if backoff_initial_s is None else backoff_initial_s,
            backoff_max_s=BACKOFF_MAX_S if backoff_max_s is None else backoff_max_s,
            char_budget=char_budget,
        )
        self._client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url or None,
                api_version=API_VERSION,
                timeout=int(timeout_s * 1000),
                # One attempt per SDK call: tenacity (LLMProvider._generate) owns the retry policy.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def close(self) -> None:
        self._client.close()

    def _config(self, request: Request) -> types.GenerateContentConfig:
        options: dict[str, Any] = {
            "system_instruction": request.system,
            "temperature": request.temperature,
            "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
        }
        if request.schema is not None:
            options["response_mime_type"] = "application/json"
            # JSON Schema as such (the API keeps its key order, so "answer" streams first).
            options["response_json_schema"] = request.schema
        if request.max_tokens is not None:
            options["max_output_tokens"] = request.max_tokens
            if "flash" in self.model:
                # Thinking tokens count against max_output_tokens; Flash models may skip it.
                options["thinking_config"] = types.ThinkingConfig(thinking_budget=0)
        if request.stop:
            options["stop_sequences"] = list(request.stop)
        return types.GenerateContentConfig(**options)

    def _generate_once(self, request: Request) -> Reply:
        with _translated_errors():
            response = self._client.models.generate_content(
                model=self.model, contents=request.prompt, config=self._config(request)
            )
        text = _response_text(response)
        return Reply(text, *_usage(response), truncated=_finish_reason(response) == "MAX_TOKENS")

    def _stream_once(self, request: Request, sink: Callable[[str], None]) -> Reply:
        pieces: list[str] = []
        usage = (0, 0)
        finish = ""
        with _translated_errors():
            for chunk in self._client.models.generate_content_stream(
                model=self.model, contents=request.prompt, config=self._config(request)
            ):
                piece = _chunk_text(chunk)
                if piece:
                    pieces.append(piece)
                    sink(piece)
                if chunk.usage_metadata is not None:
                    usage = _usage(chunk)
                finish = _finish_reason(chunk) or finish
        if not pieces:
            raise ProviderError("Gemini returned malformed output: the stream held no text")
        return Reply("".join(pieces), *usage, truncated=finish == "MAX_TOKENS")


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Map the SDK's and httpx's exceptions onto ProviderError / TransientProviderError."""
    try:
        yield
    except ProviderError:
        raise
    except errors.APIError as exc:
        code = exc.code or 0
        detail = exc.message or exc.status or "no detail"
        if code in (408, 429) or code >= 500:
            raise TransientProviderError(f"Gemini HTTP {code}: {detail}") from exc
        raise ProviderError(f"Gemini rejected the request (HTTP {code}): {detail}") from exc
    except _TRANSPORT_ERRORS as exc:
        raise TransientProviderError(
            f"Gemini request failed: {type(exc).__name__}: {exc or 'no detail'}"
        ) from exc
    except errors.UnknownApiResponseError as exc:
        raise ProviderError(f"Gemini returned malformed output: {exc}") from exc


def _usage(response: types.GenerateContentResponse) -> tuple[int, int]:
    usage = response.usage_metadata
    if usage is None:
        return 0, 0
    # Thinking tokens are billed as output, so they count as output here.
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return usage.prompt_token_count or 0, output


def _finish_reason(response: types.GenerateContentResponse) -> str:
    for candidate in (response.candidates or [])[:1]:
        if candidate.finish_reason is not None:
            return str(getattr(candidate.finish_reason, "value", candidate.finish_reason))
    return ""


def _chunk_text(response: types.GenerateContentResponse) -> str:
    parts = []
    for candidate in (response.candidates or [])[:1]:
        for part in (candidate.content.parts if candidate.content else None) or []:
            if part.text and not part.thought:
                parts.append(part.text)
    return "".join(parts)


def _response_text(response: types.GenerateContentResponse) -> str:
    text = _chunk_text(response)
    if text:
        return text
    reason = "no candidates"
    if response.candidates:
        reason = f"finish reason {response.candidates[0].finish_reason}"
    elif response.prompt_feedback is not None and response.prompt_feedback.block_reason:
        reason = f"prompt blocked ({response.prompt_feedback.block_reason})"
    raise ProviderError(f"Gemini returned malformed output: no text ({reason})")
