"""The API's JSON parser: deep nesting and text no store can hold are a 400, never a 500.

Python's decoder recurses once per level and fails with RecursionError near
the interpreter's limit (about 1,000 levels); code that walks the parsed data
(serializers, JSON fields, logging) recurses too. The parser refuses bodies
nested deeper than MAX_DEPTH, which no Docent request needs, before any view,
authentication or sign-in check sees them.

JSON may also spell strings that are not text: a lone surrogate (`"\\udfff"`)
cannot be encoded as UTF-8 (rate-limit keys, the JWT library, the database all
failed on it with a 500), and PostgreSQL cannot store a NUL. Such a body is
refused here too, before any other work.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 64


def too_deep_message() -> str:
    return f"JSON parse error - the body is nested deeper than {MAX_DEPTH} levels."


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects nest deeper than `limit`; iterative, so any depth is safe to check."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def bad_text_message() -> str:
    return (
        "JSON parse error - the body holds a lone surrogate (such as \\udfff) or a NUL "
        "character (\\u0000); text may contain neither."
    )


def holds_bad_text(value: Any) -> bool:
    """Whether any string in the parsed body (keys included) is not storable UTF-8 text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = [key for key in item if isinstance(key, str)]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            if "\x00" in text:
                return True
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep_message()) from None
        if depth_exceeds(data):
            raise ParseError(too_deep_message())
        if holds_bad_text(data):
            raise ParseError(bad_text_message())
        return data
