"""The document page: Markdown shown formatted and inert, passages still highlighted, the latest summary."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, RunKind, RunStatus
from documents.models import Document, DocumentStatus
from documents.tests.factories import DocumentFactory
from projects.models import Project
from workspace import rendering

pytestmark = pytest.mark.django_db

NOTES = """# Harbour notes

## Tides

The tide turns at **noon**, see [the tables](https://example.org/tides "Tide tables").

- Dredge the channel
- Rebuild the pier

```
# not a heading
```
"""

HOSTILE = """# Hello

<script>alert("raw script")</script>

<img src=x onerror=alert(1)>

<a href="javascript:alert(2)" onclick="alert(3)" style="color:red">raw link</a>

<iframe src="https://evil.example"></iframe>

[click](javascript:alert(4)) [upper](JAVASCRIPT:alert(5)) [data](data:text/html;base64,PHNjcmlwdD4=)
[relative](../secret) [fine](https://example.org/ok)

![pixel](https://tracker.example/p.png) ![inline](data:image/svg+xml;base64,PHN2Zz4=)

<div style="position:fixed">styled</div>

`<script>in code</script>`
"""


def markdown_doc(project: Project, text: str, **fields: Any) -> Document:
    defaults: dict[str, Any] = {
        "title": "Harbour notes",
        "original_filename": "notes.md",
        "pasted_text": "",
        "format": "md",
        "text": text,
        "status": DocumentStatus.READY,
        "chunk_count": 1,
        "size_bytes": len(text),
    }
    defaults.update(fields)
    return DocumentFactory(project=project, **defaults)


def page(client: Client, doc: Document, **params: Any) -> str:
    response = client.get(f"/documents/{doc.pk}/", params)
    assert response.status_code == 200
    return response.content.decode()


def formatted(body: str) -> str:
    match = re.search(r'<div class="doc-markdown">(.*?)</div>\s*</section>', body, re.DOTALL)
    assert match, "no formatted Markdown on the page"
    return match.group(1)


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser would build them."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_a_markdown_document_is_shown_formatted_without_raw_hashes(
    owner_client: Client, project: Project
) -> None:
    doc = markdown_doc(project, NOTES)
    shown = formatted(page(owner_client, doc))
    # Its headings start below the page's own h1 (the title) and h2 ("Text").
    assert "<h3>Harbour notes</h3>" in shown and "<h4>Tides</h4>" in shown
    assert "<strong>noon</strong>" in shown
    assert "<li>Dredge the channel</li>" in shown
    assert re.search(r"^\s*#", re.sub(r"<pre>.*?</pre>", "", shown, flags=re.DOTALL), re.MULTILINE) is None
    assert "<pre><code># not a heading\n</code></pre>" in shown
    assert (
        '<a href="https://example.org/tides" title="Tide tables" rel="noopener noreferrer nofollow">'
        "the tables</a>"
    ) in shown
    assert '<div class="doc-text">' not in shown


def test_hostile_markdown_comes_out_inert(owner_client: Client, project: Project) -> None:
    doc = markdown_doc(project, HOSTILE)
    body = page(owner_client, doc)
    shown = formatted(body)
    elements = Elements(shown).found
    tags = {tag for tag, _ in elements}
    assert tags <= set(rendering.ALLOWED_TAGS), tags
    assert not tags & {"script", "img", "iframe", "div", "style"}
    for tag, attrs in elements:
        assert not [name for name in attrs if name.startswith("on") or name == "style"], (tag, attrs)
        if tag == "a":
            assert attrs["rel"] == "noopener noreferrer nofollow"
            assert attrs.get("href") in (None, "https://example.org/ok", "https://tracker.example/p.png"), (
                attrs
            )
    # The raw markup is shown as text, escaped.
    assert '&lt;script&gt;alert("raw script")&lt;/script&gt;' in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown
    # The image is a link to follow, not a request the page makes.
    assert '<a href="https://tracker.example/p.png" rel="noopener noreferrer nofollow">pixel</a>' in shown
    assert '<script>alert("raw script")' not in body and "<img" not in shown


def test_a_highlighted_passage_of_markdown_shows_the_plain_text_with_a_way_back(
    owner_client: Client, project: Project
) -> None:
    doc = markdown_doc(project, NOTES)
    start, end = NOTES.index("The tide"), NOTES.index(", see")
    body = page(owner_client, doc, start=start, end=end)
    match = re.search(r'<div class="doc-text">(.*?)</div>', body, re.DOTALL)
    assert match, "no plain text on the page"
    assert match.group(1) == (
        html.escape(NOTES[:start])
        + '<mark id="passage">'
        + html.escape(NOTES[start:end])
        + "</mark>"
        + html.escape(NOTES[end:])
    )
    assert '<div class="doc-markdown">' not in body
    assert f'<a class="small" href="/documents/{doc.pk}/">Show formatted</a>' in body
    # Without the span, it is formatted again.
    assert "<h3>Harbour notes</h3>" in formatted(page(owner_client, doc))


def test_a_bad_span_on_markdown_shows_it_formatted(owner_client: Client, project: Project) -> None:
    doc = markdown_doc(project, NOTES)
    body = page(owner_client, doc, start="9", end="x")
    assert "<mark" not in body and "<h3>Harbour notes</h3>" in formatted(body)


def test_markdown_too_long_to_format_is_shown_as_text(
    owner_client: Client, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rendering, "MARKDOWN_MAX_CHARS", 20)
    doc = markdown_doc(project, NOTES)
    body = page(owner_client, doc)
    assert '<div class="doc-markdown">' not in body
    assert "too long to show formatted" in body
    assert html.escape(NOTES) in body


def test_plain_text_is_never_rendered_as_markdown(owner_client: Client, project: Project) -> None:
    doc = markdown_doc(project, NOTES, format="txt", original_filename="notes.txt")
    body = page(owner_client, doc)
    assert '<div class="doc-markdown">' not in body and "<h3>Harbour notes</h3>" not in body
    assert html.escape(NOTES) in body


def summary_run(doc: Document, user: Any, answer: str, *, age_minutes: int = 0, **fields: Any) -> AgentRun:
    values: dict[str, Any] = {
        "kind": RunKind.SUMMARIZE,
        "status": RunStatus.SUCCEEDED,
        "answer": answer,
        "output": {"answered": True},
        "document_scoped": True,
    }
    values.update(fields)
    run = AgentRun.objects.create(project=doc.project, document=doc, created_by=user, **values)
    when = timezone.now() - timedelta(minutes=age_minutes)
    AgentRun.objects.filter(pk=run.pk).update(created_at=when, finished_at=when)
    return run


def test_the_newest_summary_is_shown_on_its_documents_page(
    owner_client: Client, project: Project, user: Any
) -> None:
    doc = markdown_doc(project, NOTES)
    other = markdown_doc(project, NOTES, title="Other")
    summary_run(doc, user, "An older summary.", age_minutes=60)
    newest = summary_run(
        doc, user, "The harbour <b>turns</b> at noon.\n\nBoats plan around it.", age_minutes=30
    )
    summary_run(doc, user, "A failed one.", status=RunStatus.FAILED, age_minutes=5)
    summary_run(doc, user, "", status=RunStatus.GENERATING, age_minutes=1)
    summary_run(doc, user, "Tags.", kind=RunKind.EXTRACT, age_minutes=2)
    summary_run(other, user, "The other document's summary.", age_minutes=0)

    body = page(owner_client, doc)
    match = re.search(
        r'<section class="card" aria-labelledby="summary-heading">(.*?)</section>', body, re.DOTALL
    )
    assert match, "no summary on the page"
    card = match.group(1)
    assert '<h2 id="summary-heading">Summary</h2>' in card
    assert "<p>The harbour &lt;b&gt;turns&lt;/b&gt; at noon.</p><p>Boats plan around it.</p>" in card
    assert f'href="/runs/{newest.pk}/"' in card
    newest.refresh_from_db()
    assert f'<time datetime="{newest.finished_at.isoformat()}">' in card
    for absent in ("An older summary.", "A failed one.", "Tags.", "The other document's summary."):
        assert absent not in body


def test_a_summary_with_citations_links_back_into_the_document(
    owner_client: Client, project: Project, user: Any
) -> None:
    doc = markdown_doc(project, NOTES)
    start, end = NOTES.index("The tide"), NOTES.index(", see")
    summary_run(
        doc,
        user,
        "The tide turns at noon [1].",
        citations=[{"document": str(doc.pk), "start": start, "end": end, "quote": NOTES[start:end]}],
    )
    body = page(owner_client, doc)
    assert f'href="/documents/{doc.pk}/?start={start}&amp;end={end}#passage"' in body


def test_no_summary_no_summary_card(owner_client: Client, project: Project, user: Any) -> None:
    doc = markdown_doc(project, NOTES)
    summary_run(doc, user, "Not yet.", status=RunStatus.QUEUED)
    assert "summary-heading" not in page(owner_client, doc)


def test_an_outsider_sees_neither_the_page_nor_its_summary(project: Project, user: Any) -> None:
    doc = markdown_doc(project, NOTES)
    summary_run(doc, user, "Members only.")
    outsider = Client()
    outsider.force_login(UserFactory())
    response = outsider.get(f"/documents/{doc.pk}/")
    assert response.status_code == 404
    assert "Members only." not in response.content.decode()
