"""Markdown documents as safe HTML for the document page.

The text is a stranger's: it is parsed as CommonMark (with tables and strikethrough)
with raw HTML switched off, so markup in it stays text, and the HTML that comes out is
cleaned again by nh3 against a short list of tags and attributes. The result needs no
inline script or style, so the site's CSP stays as strict as it is.

Parsing is slow in pure Python (about 5 s a megabyte), so the parser's output is cached
by the text's hash (and sanitised on every read), and texts beyond `MARKDOWN_MAX_CHARS`
are shown as plain text.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import nh3
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

log = logging.getLogger(__name__)

# Beyond this a Markdown document is shown as its plain text: a first rendering would take seconds.
MARKDOWN_MAX_CHARS = 300_000
CACHE_SECONDS = 24 * 3600
# Bumped when the rendering changes, so cached renderings of the old one are not served.
_VERSION = 1
# The page's title is its h1 and "Text" an h2: the document's headings start below them.
_HEADING_SHIFT = 2

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "hr",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"


def _image_as_link(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image becomes a link to it, named by its alt text: nothing loads unless it is followed."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escape(token.attrGet("src") or "")}">{escape(alt)}</a>'


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


_MD = _parser()


def _render(text: str) -> str:
    """CommonMark to HTML, not yet sanitised."""
    tokens = _MD.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + _HEADING_SHIFT)}"
    return _MD.renderer.render(tokens, _MD.options, {})


def sanitise(html: str) -> str:
    """Only the allowed tags and attributes, links to http(s) and mail only, with rel=nofollow."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        # Links relative to the file's old home lead nowhere here.
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )


def markdown_html(text: str) -> SafeString | None:
    """The Markdown `text` as sanitised HTML; None when it is too long to render on a page."""
    if len(text) > MARKDOWN_MAX_CHARS:
        return None
    key = f"workspace:markdown:{_VERSION}:{hashlib.sha256(text.encode()).hexdigest()}"
    try:
        html = cache.get(key)
    except Exception:  # noqa: BLE001 - without the cache the page is slower, not broken
        log.warning("markdown cache unavailable", exc_info=True)
        html = None
    if not isinstance(html, str):
        html = _render(text)
        try:
            cache.set(key, html, CACHE_SECONDS)
        except Exception:  # noqa: BLE001 - as above
            log.warning("markdown cache unavailable", exc_info=True)
    # Sanitised on every read (it is fast): what comes out of a cache is never trusted as HTML.
    return mark_safe(sanitise(html))  # noqa: S308
