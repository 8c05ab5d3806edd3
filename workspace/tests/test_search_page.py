"""The search pages: best sentences with the query's words marked, weak hits cut, honest notices."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from documents import services
from documents.models import Chunk, Document, DocumentStatus
from documents.search import Hit
from documents.tests.factories import DocumentFactory
from projects.models import Project
from workspace import search_presenting as sp

# --- the pure functions ----------------------------------------------------------


def hit(
    chunk_id: int, score: float, text: str = "nothing in common", title: str = "Doc", start: int = 0
) -> Hit:
    return Hit(
        chunk_id=chunk_id,
        document_id="7b0c2a52-5a3e-4f4e-9d7c-3f1f0f9b6a11",
        document_title=title,
        external_id="",
        project_id="p",
        project_title="P",
        text=text,
        start=start,
        end=start + len(text),
        score=score,
    )


def shown(snippet: sp.Snippet) -> str:
    """The snippet's text as a reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", str(snippet.html)))


def marked(snippet: sp.Snippet) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", str(snippet.html))


def test_query_terms_drop_stop_words_and_fold_word_endings() -> None:
    assert sp.query_terms("Who lit THE lamps at the Lighthouses?") == ["who", "lit", "lamp", "lighthous"]
    assert sp.query_terms("the of a") == []


def test_the_best_sentence_is_the_one_sharing_most_query_words() -> None:
    text = (
        "Reefs cover a small part of the ocean floor and shelter a quarter of its species. "
        "Coral bleaching follows warm water, when the algae leave the coral and it turns white. "
        "Divers count the fish along fixed lines every spring, in every bay they can reach by boat."
    )
    snippet = sp.best_snippet(text, sp.query_terms("coral bleaching in warm water"))
    sentence = "Coral bleaching follows warm water, when the algae leave the coral and it turns white."
    assert text[snippet.start : snippet.end] == sentence
    assert shown(snippet) == sentence
    assert snippet.matched


def test_query_words_are_marked_whatever_their_case_and_ending() -> None:
    text = "Bleached corals recover slowly. Nothing else here is relevant to that topic at all, truly."
    snippet = sp.best_snippet(text, sp.query_terms("coral BLEACHING"))
    assert marked(snippet) == ["Bleached", "corals"]
    assert "<mark>recover</mark>" not in str(snippet.html)


def test_two_short_sentences_are_shown_together() -> None:
    text = "The keeper lit the lamp. Fog rolled in. " + "A much longer sentence follows here. " * 12
    snippet = sp.best_snippet(text, sp.query_terms("lamp"))
    assert text[snippet.start : snippet.end] == "The keeper lit the lamp. Fog rolled in."


def test_a_short_sentence_is_not_joined_to_the_heading_of_the_next_section() -> None:
    text = "## Fishing\n\nThe nets were torn by storms.\n\n## Lighthouse\n\nThe keeper lit the lamp."
    snippet = sp.best_snippet(text, sp.query_terms("storms"))
    assert text[snippet.start : snippet.end] == "The nets were torn by storms."
    heading = sp.best_snippet(text, sp.query_terms("lighthouse"))
    assert shown(heading) == "Lighthouse\nThe keeper lit the lamp."


def test_a_long_sentence_is_cut_to_a_window_around_its_first_match() -> None:
    text = "word " * 120 + "target reached " + "more " * 120
    snippet = sp.best_snippet(text.strip(), ["target"])
    assert snippet.end - snippet.start <= sp.SNIPPET_MAX
    assert "target" in text[snippet.start : snippet.end]
    assert shown(snippet).startswith("… ") and shown(snippet).endswith(" …")
    assert marked(snippet) == ["target"]


def test_without_a_matching_word_the_snippet_is_the_chunks_opening_after_its_heading() -> None:
    text = "## Harbour\n\nThe harbour freezes in January. Boats stay ashore until March, and the nets are mended."
    snippet = sp.best_snippet(text, sp.query_terms("winter ice"))
    assert not snippet.matched
    assert text[snippet.start : snippet.end].startswith("The harbour freezes in January.")
    assert "<mark>" not in str(snippet.html)


def test_markdown_marks_are_stripped_from_the_snippet() -> None:
    assert sp.strip_markdown("## The **bold** claim ##") == "The bold claim"
    assert sp.strip_markdown("- [x] a *task* with `code`") == "a task with code"
    assert sp.strip_markdown("1. see [the report](http://example.com/r) and ![a chart](c.png)") == (
        "see the report and a chart"
    )
    assert sp.strip_markdown("> quoted __strong__ ~~gone~~ text") == "quoted strong gone text"
    assert sp.strip_markdown("| year | catch |\n|---|:---:|\n| 2024 | 12 t |") == "year · catch 2024 · 12 t"
    # Not Markdown: snake_case names and arithmetic stay as they are.
    assert sp.strip_markdown("set max_tokens to 2 * 3 * 4") == "set max_tokens to 2 * 3 * 4"


def test_a_markdown_chunk_shows_no_marks_but_the_highlight() -> None:
    text = "# Fishing log\n\n- **Cod** were *plentiful* near the [north pier](http://x).\n- Nets torn twice."
    snippet = sp.best_snippet(text, sp.query_terms("cod pier"))
    assert "#" not in str(snippet.html) and "**" not in str(snippet.html) and "](" not in str(snippet.html)
    assert shown(snippet).startswith("Cod were plentiful near the north pier.")
    assert marked(snippet) == ["Cod", "pier"]


def test_a_hostile_chunk_is_escaped_and_its_words_still_marked() -> None:
    text = 'The <script>alert("x")</script> tag sits in this sentence.'
    snippet = sp.best_snippet(text, sp.query_terms("script"))
    assert "<script>" not in str(snippet.html)
    assert str(snippet.html) == (
        "The &lt;<mark>script</mark>&gt;alert(&quot;x&quot;)&lt;/<mark>script</mark>&gt; tag sits in this sentence."
    )


def test_a_query_holding_markup_is_only_words_and_the_markup_in_a_chunk_is_escaped() -> None:
    terms = sp.query_terms("<b>bold</b> claims")
    assert terms == ["bold", "claim"]
    snippet = sp.best_snippet("A <b>bold</b> claim.", terms)
    assert str(snippet.html) == "A &lt;b&gt;<mark>bold</mark>&lt;/b&gt; <mark>claim</mark>."
    assert str(sp.highlight("<b>", terms)) == "&lt;b&gt;"


def test_a_shown_hit_has_document_offsets_and_its_place_in_the_document() -> None:
    text = "An opening sentence with nothing in it. The lamp was lit at dusk by the keeper of the light, who climbed the hundred stairs every evening."
    [one] = sp.present_hits([hit(7, 1.0, text, start=500)], terms=["lamp"], positions={7: (2, 12)})
    assert (one.position, one.chunk_count) == (3, 12)
    assert one.start == 500 + text.index("The lamp") and one.end == 500 + len(text)


# --- the pages -------------------------------------------------------------------

HARBOUR = """# Harbour notes

## Winter

The harbour freezes in January, and the boats stay ashore until the thaw comes in March.

## Fishing

- **Cod** were plentiful near the north pier this year, and the catch was sold in town.
- The nets were torn twice by storms in the autumn.

## Lighthouse

The lighthouse keeper lit the lamp at dusk every evening. Fog rolled over the bay most mornings.
The keeper wrote the weather in a log book that is kept at the museum today.
"""


@pytest.fixture
def harbour(project: Project, user: Any, settings: Any, django_capture_on_commit_callbacks: Any) -> Document:
    settings.CHUNK_TOKENS = 40
    settings.CHUNK_OVERLAP_TOKENS = 0
    with django_capture_on_commit_callbacks(execute=True):
        doc = services.document_create(user=user, project=project, title="Harbour notes", text=HARBOUR)
        services.document_create(
            user=user,
            project=project,
            title="Tax forms",
            text="Fill in form B before April. Receipts must be kept for six years.",
        )
    doc.refresh_from_db()
    assert doc.status == DocumentStatus.READY, doc.error
    assert doc.chunk_count > 2
    return doc


def results(body: str) -> list[str]:
    return re.findall(r'<li class="result">(.*?)</li>', body, re.DOTALL)


def test_project_search_shows_the_matching_sentence_marked_without_scores(
    owner_client: Client, project: Project, harbour: Document
) -> None:
    body = owner_client.get(f"/projects/{project.pk}/search/", {"q": "who lit the lamp"}).content.decode()
    found = results(body)
    assert found, body
    first = found[0]
    assert "Harbour notes" in first
    assert "<mark>lit</mark>" in first and "<mark>lamp</mark>" in first
    assert "#" not in re.sub(r'href="[^"]*"', "", first)
    chunk = Chunk.objects.get(document=harbour, text__contains="lit the lamp")
    assert f"passage {chunk.index + 1} of {harbour.chunk_count}" in first
    section = body.split('id="results-heading"', 1)[1]
    assert not re.search(r"\d\.\d{3,}", section), "a raw score is on the page"
    assert 'class="score"' not in body


def test_open_passage_highlights_the_sentence_not_the_whole_chunk(
    owner_client: Client, project: Project, harbour: Document
) -> None:
    body = owner_client.get(
        f"/projects/{project.pk}/search/", {"q": "lit the lamp", "mode": "lexical"}
    ).content.decode()
    first = results(body)[0]
    link = html.unescape(re.findall(r'href="(/documents/[^"]+)">Open passage', first)[0])
    span = re.search(r"start=(\d+)&end=(\d+)", link)
    assert span, link
    start, end = (int(n) for n in span.groups())
    chunk = Chunk.objects.get(document=harbour, text__contains="lit the lamp")
    assert chunk.start <= start < end <= chunk.end and (start, end) != (chunk.start, chunk.end)
    assert harbour.text[start:end].startswith("The lighthouse keeper lit the lamp at dusk every evening.")
    page = owner_client.get(link.split("#")[0]).content.decode()
    highlighted = page.split('<mark id="passage">', 1)[1].split("</mark>", 1)[0]
    assert html.unescape(highlighted) == harbour.text[start:end]


def test_weak_matches_are_left_out_and_counted(
    owner_client: Client, project: Project, harbour: Document
) -> None:
    body = owner_client.get(
        f"/projects/{project.pk}/search/", {"q": "xqzv blorf", "mode": "dense"}
    ).content.decode()
    assert "Tax forms" not in body
    match = re.search(r"(\d+) weaker match(es)? not shown", body)
    assert match, body
    assert int(match.group(1)) + len(results(body)) == Chunk.objects.filter(project=project).count()


def test_failed_documents_are_not_called_not_ready(owner_client: Client, project: Project) -> None:
    DocumentFactory(project=project, status=DocumentStatus.FAILED, error="unreadable")
    DocumentFactory(project=project, status=DocumentStatus.FAILED, error="unreadable")
    DocumentFactory(project=project, status=DocumentStatus.PROCESSING)
    body = owner_client.get(f"/projects/{project.pk}/search/", {"q": "anything"}).content.decode()
    assert "1 document is not ready yet: still being processed" in body
    assert "2 documents could not be read" in body
    assert f'<a href="/projects/{project.pk}/">See them on the project page</a>' in body
    assert "3 documents" not in body


def test_only_failed_documents_get_no_processing_notice(owner_client: Client, project: Project) -> None:
    DocumentFactory(project=project, status=DocumentStatus.FAILED)
    body = owner_client.get(f"/projects/{project.pk}/search/").content.decode()
    assert "1 document could not be read" in body
    assert "not ready yet" not in body


def test_all_projects_search_names_the_project_and_shows_no_scores(
    owner_client: Client, project: Project, harbour: Document
) -> None:
    body = owner_client.get("/search/", {"q": "cod near the pier"}).content.decode()
    first = results(body)[0]
    assert "Harbour notes" in first and f'href="/projects/{project.pk}/"' in first
    assert html.escape(project.title) in first
    assert "<mark>Cod</mark>" in first and "**" not in first
    assert not re.search(r"\d\.\d{3,}", body.split('id="results-heading"', 1)[1])
