"""The API's JSON parser: deep nesting is a 400, never a RecursionError (a 500).

Python's decoder recurses once per level and fails with RecursionError near
the interpreter's limit (about 1,000 levels); code that walks the parsed data
(serializers, JSON fields, logging) recurses too. The parser refuses bodies
nested deeper than MAX_DEPTH, which no Docent request needs, before any view,
authentication or sign-in check sees them.
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


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep_message()) from None
        if depth_exceeds(data):
            raise ParseError(too_deep_message())
        return data
