"""The search index: fusion, tokenisation, and rebuilding when the project changes."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from conftest import make_project
from documents import embedder, search
from documents.models import Chunk, Document, DocumentStatus
from projects.models import Project
from projects.services import project_touch_index

DIM = 4


def add_document(
    project: Project, title: str, chunks: list[tuple[str, list[float]]], **extra: Any
) -> Document:
    """A ready document with hand-made chunks and embeddings (no encoder needed)."""
    doc = Document.objects.create(
        project=project,
        title=title,
        format="txt",
        status=extra.pop("status", DocumentStatus.READY),
        text=" ".join(text for text, _ in chunks),
        **extra,
    )
    offset = 0
    for index, (text, vector) in enumerate(chunks):
        unit = np.asarray(vector, dtype=np.float32)
        unit = unit / np.linalg.norm(unit)
        Chunk.objects.create(
            document=doc,
            project=project,
            index=index,
            text=text,
            start=offset,
            end=offset + len(text),
            embedding=embedder.to_bytes(unit),
            dim=DIM,
        )
        offset += len(text) + 1
    project_touch_index(project_id=project.pk)
    return doc


def fixed_query_vector(monkeypatch: pytest.MonkeyPatch, vector: list[float]) -> None:
    unit = np.asarray([vector], dtype=np.float32)
    monkeypatch.setattr(
        embedder, "encode", lambda texts, **kw: np.repeat(unit / np.linalg.norm(unit), len(texts), 0)
    )


# --- fusion ---------------------------------------------------------------


def fused(rankings: list[list[Any]], k: int) -> list[tuple[Any, float]]:
    items, scores = search.rrf(rankings, k=k)
    return list(zip(items.tolist(), scores.tolist(), strict=True))


def test_rrf_sums_reciprocal_ranks_across_rankings() -> None:
    scores = dict(fused([[1, 2, 3], [3, 1]], k=60))
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[2] == pytest.approx(1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)


def test_rrf_puts_an_item_both_rankings_agree_on_above_one_ranking_alone() -> None:
    ranked = [item for item, _ in fused([["a", "b", "c"], ["b", "d", "a"]], k=60)]
    assert ranked[:2] == ["b", "a"]
    assert set(ranked) == {"a", "b", "c", "d"}


def test_rrf_breaks_ties_deterministically_by_item() -> None:
    assert [item for item, _ in fused([[2], [1]], k=10)] == [1, 2]


def test_rrf_small_k_rewards_the_top_of_each_ranking_more() -> None:
    # With a small k a first place outweighs two middling places; with a large k it does not.
    rankings = [[1, 9, 8, 7, 2], [3, 6, 5, 2, 4]]
    assert fused(rankings, k=1)[0][0] == 1
    assert fused(rankings, k=1000)[0][0] == 2


@given(
    st.lists(st.integers(0, 400), max_size=200, unique=True),
    st.lists(st.integers(0, 400), max_size=200, unique=True),
    st.integers(1, 100),
)
def test_rrf_matches_the_textbook_sum_exactly(dense: list[int], lexical: list[int], k: int) -> None:
    textbook: dict[int, float] = {}
    for ranking in (dense, lexical):
        for rank, item in enumerate(ranking, start=1):
            textbook[item] = textbook.get(item, 0.0) + 1.0 / (k + rank)
    expected = sorted(textbook.items(), key=lambda kv: (-kv[1], kv[0]))
    assert fused([dense, lexical], k=k) == expected


def test_rrf_of_nothing_is_empty() -> None:
    assert fused([[], []], k=60) == []


# --- tokenisation -----------------------------------------------------------


def test_tokenize_stems_and_drops_english_stop_words() -> None:
    tokens = search.tokenize(["The proteins were binding to the receptors"])
    words = {word for word, _ in tokens.vocab.items()}
    assert "the" not in words and "to" not in words
    assert {"protein", "bind", "receptor"} <= words


def test_tokenize_maps_inflections_to_one_term() -> None:
    tokens = search.tokenize(["mutation", "mutations"])
    assert tokens.ids[0] == tokens.ids[1]


# --- the index ----------------------------------------------------------------


def test_lexical_search_finds_the_chunk_with_the_query_terms(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])], external_id="d1")
    add_document(project, "Light", [("Chlorophyll absorbs red light.", [0, 1, 0, 0])], external_id="d2")
    hits = search.search(project_id=project.pk, query="chlorophyll", k=5, mode="lexical")
    assert [h.external_id for h in hits] == ["d2"]
    assert hits[0].text == "Chlorophyll absorbs red light."


def test_dense_and_hybrid_rank_by_the_query_embedding(
    db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])], external_id="d1")
    add_document(project, "Light", [("Chlorophyll absorbs red light.", [0, 1, 0, 0])], external_id="d2")
    fixed_query_vector(monkeypatch, [0.1, 1, 0, 0])
    dense = search.search(project_id=project.pk, query="plants", k=5, mode="dense")
    assert [h.external_id for h in dense] == ["d2", "d1"]
    hybrid = search.search(project_id=project.pk, query="chlorophyll light", k=5, mode="hybrid")
    assert hybrid[0].external_id == "d2"


def test_title_is_searchable_through_every_chunk(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Photosynthesis", [("Leaves are green.", [1, 0, 0, 0])], external_id="d1")
    assert [
        h.external_id for h in search.search(project_id=project.pk, query="photosynthesis", mode="lexical")
    ] == ["d1"]


def test_documents_that_are_not_ready_are_not_searched(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(
        project, "Draft", [("Chlorophyll is green.", [1, 0, 0, 0])], status=DocumentStatus.PROCESSING
    )
    assert search.search(project_id=project.pk, query="chlorophyll", mode="lexical") == []


def test_index_is_reused_while_the_version_stays(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    first = search.project_index(project.pk)
    assert search.project_index(project.pk) is first


def test_index_is_rebuilt_when_the_version_moves(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    before = search.project_index(project.pk)
    assert before.size == 1
    assert search.search(project_id=project.pk, query="ribosome", mode="lexical") == []

    # Another process adds a document: only the version in the database tells us.
    add_document(project, "Proteins", [("Ribosomes build proteins.", [0, 0, 1, 0])], external_id="r1")
    after = search.project_index(project.pk)
    assert after is not before
    assert after.size == 2 and after.version > before.version
    assert [
        h.external_id for h in search.search(project_id=project.pk, query="ribosome", mode="lexical")
    ] == ["r1"]


def test_threads_that_find_the_index_stale_together_build_it_once(
    transactional_db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    builds: list[int] = []
    load_rows = search._load_rows

    def slow_load(project_id: Any) -> list[dict[str, Any]]:
        builds.append(1)
        time.sleep(0.3)  # every thread arrives while the first build runs
        return load_rows(project_id)

    monkeypatch.setattr(search, "_load_rows", slow_load)
    start = threading.Barrier(4)
    found: list[search.ProjectIndex] = []

    def one() -> None:
        start.wait()
        found.append(search.project_index(project.pk))
        connection.close()

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(found) == 4 and all(index is found[0] for index in found)
    assert len(builds) == 1 and found[0].size == 1


def test_deleted_document_leaves_the_index_after_the_version_moves(db: Any, user: Any) -> None:
    project = make_project(user)
    doc = add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert search.search(project_id=project.pk, query="mitochondria", mode="lexical")
    doc.delete()
    project_touch_index(project_id=project.pk)
    assert search.search(project_id=project.pk, query="mitochondria", mode="lexical") == []


def test_each_project_has_its_own_index(db: Any, user: Any) -> None:
    mine, theirs = make_project(user, "Mine"), make_project(user, "Theirs")
    add_document(theirs, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert search.search(project_id=mine.pk, query="mitochondria", mode="lexical") == []
    assert len(search.search(project_id=theirs.pk, query="mitochondria", mode="lexical")) == 1


def test_blank_query_and_unknown_mode(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert search.search(project_id=project.pk, query="   ", mode="lexical") == []
    assert search.search(project_id=project.pk, query="the of and", mode="lexical") == []
    with pytest.raises(ValueError, match="mode"):
        search.search(project_id=project.pk, query="cells", mode="semantic")


def test_a_short_page_is_the_head_of_a_longer_one(
    db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(user)
    words = ["cell", "light", "protein", "membrane", "enzyme", "gene"]
    for n, word in enumerate(words):
        vector = [1.0, n / 10, (n % 3) / 5, 0.5 if n % 2 else 0.0]
        add_document(project, f"Doc {n}", [(f"The {word} and the cell.", vector)], external_id=f"d{n}")
    fixed_query_vector(monkeypatch, [1, 0.2, 0.1, 0.3])
    for mode in search.MODES:
        long = search.search(project_id=project.pk, query="cell light gene", k=6, mode=mode)
        short = search.search(project_id=project.pk, query="cell light gene", k=3, mode=mode)
        assert short == long[:3]
