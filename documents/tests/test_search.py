"""Search inside the database: fusion, both rankings, access, per-project statistics, and the
indexes following every write (PostgreSQL: pg_search and pgvector on partitions by project)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from conftest import make_project
from documents import embedder, search
from documents.models import Chunk, Document, DocumentStatus
from documents.search import engine
from documents.services import (
    document_purge,
    document_save_edits,
    search_indexes_compact,
    search_partitions_sweep,
)
from documents.tests.factories import ChunkFactory
from projects.models import Project
from projects.services import project_delete

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
    search.ensure_dimension(DIM)
    offset = 0
    for index, (text, vector) in enumerate(chunks):
        unit = np.asarray(vector, dtype=np.float32)
        ChunkFactory(
            document=doc, index=index, text=text, start=offset, embedding=unit / np.linalg.norm(unit), dim=DIM
        )
        offset += len(text) + 1
    return doc


def fixed_query_vector(monkeypatch: pytest.MonkeyPatch, vector: list[float]) -> None:
    unit = np.asarray([vector], dtype=np.float32)
    monkeypatch.setattr(
        embedder, "encode", lambda texts, **kw: np.repeat(unit / np.linalg.norm(unit), len(texts), 0)
    )


def ids(hits: list[search.Hit]) -> list[str]:
    return [h.external_id for h in hits]


def find(project: Project, query: str, mode: str = "lexical", k: int = 10) -> list[search.Hit]:
    """The ranking itself, weak hits and all (the cut has its own tests)."""
    return search.search(project_ids=[project.pk], query=query, k=k, mode=mode, cut=False).hits


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


# --- lexical ------------------------------------------------------------------


def test_lexical_search_finds_the_chunk_with_the_query_terms(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])], external_id="d1")
    add_document(project, "Light", [("Chlorophyll absorbs red light.", [0, 1, 0, 0])], external_id="d2")
    hits = find(project, "chlorophyll", k=5)
    assert ids(hits) == ["d2"]
    assert hits[0].text == "Chlorophyll absorbs red light."
    assert hits[0].project_id == str(project.pk) and hits[0].project_title == project.title


def test_lexical_search_matches_inflections_of_a_word(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(
        project, "Genes", [("Each mutation was binding to receptors.", [1, 0, 0, 0])], external_id="g"
    )
    assert ids(find(project, "mutations")) == ["g"]
    assert ids(find(project, "the receptor binds")) == ["g"]


def test_lexical_search_ranks_rarer_and_repeated_terms_higher(db: Any, user: Any) -> None:
    project = make_project(user)
    for n in range(6):
        add_document(
            project, f"Cell {n}", [(f"The cell number {n} divides.", [1, 0, 0, 0])], external_id=f"c{n}"
        )
    add_document(
        project, "Ribosome", [("A ribosome in the cell; ribosome again.", [1, 0, 0, 0])], external_id="r"
    )
    hits = find(project, "cell ribosome")
    # "ribosome" is in one chunk of seven, "cell" in all: the rare word decides the first place.
    assert ids(hits)[0] == "r" and len(hits) == 7
    assert hits[0].score > hits[1].score


def test_title_is_searchable_through_every_chunk(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Photosynthesis", [("Leaves are green.", [1, 0, 0, 0])], external_id="d1")
    assert ids(find(project, "photosynthesis")) == ["d1"]


def test_a_renamed_document_is_found_by_its_new_title_only(db: Any, user: Any) -> None:
    project = make_project(user)
    doc = add_document(project, "Photosynthesis", [("Leaves are green.", [1, 0, 0, 0])], external_id="d1")
    doc.title = "Respiration"
    document_save_edits(document=doc, fields=["title"])
    assert find(project, "photosynthesis") == []
    hits = find(project, "respiration")
    assert ids(hits) == ["d1"] and hits[0].document_title == "Respiration"


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "'",
        "\\",
        "a' | 'b",
        'NEAR("x" "y")',
        "col:value",
        "*",
        "-x",
        "^",
        "( )",
        "x AND",
        "!&|<->",
        "'; DROP TABLE documents_chunk; --",
        "ünïcødé ΑΒΓ 中文",
        "x" * 5000,
        "mitochondria " * 2000,
        "mito\x00chondria",
        'title:"x" AND (y OR z)~2^3 [a TO b] {c} +d -e f* g?',
        "Москва 日本語のテキスト",
    ],
)
def test_query_syntax_never_reaches_the_engine(db: Any, user: Any, query: str) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP near the membrane.", [1, 0, 0, 0])])
    for mode in ("lexical", "hybrid"):
        assert isinstance(find(project, query, mode=mode), list)
    assert Chunk.objects.count() == 1


def test_an_operator_word_is_just_a_word(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Logic", [("Near the border, or not.", [1, 0, 0, 0])], external_id="n")
    assert ids(find(project, "NEAR")) == ["n"]


# --- dense and hybrid ---------------------------------------------------------


def test_dense_and_hybrid_rank_by_the_query_embedding(
    db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])], external_id="d1")
    add_document(project, "Light", [("Chlorophyll absorbs red light.", [0, 1, 0, 0])], external_id="d2")
    fixed_query_vector(monkeypatch, [0.1, 1, 0, 0])
    dense = find(project, "plants", mode="dense", k=5)
    assert ids(dense) == ["d2", "d1"]
    # The rank score, not the cosine: 1/(k + rank).
    assert [h.score for h in dense] == pytest.approx(
        [1 / (settings.SEARCH_RRF_K + r) for r in (1, 2)], abs=1e-6
    )
    hybrid = find(project, "chlorophyll light", mode="hybrid", k=5)
    assert hybrid[0].external_id == "d2"


def test_dense_search_is_exact_on_a_project_of_many_chunks(
    db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    project = make_project(user)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    add_document(
        project, "Many", [(f"chunk {i}", v.tolist()) for i, v in enumerate(vectors)], external_id="m"
    )
    query = rng.normal(size=DIM).astype(np.float32)
    fixed_query_vector(monkeypatch, query.tolist())
    hits = find(project, "anything", mode="dense", k=20)
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = np.argsort(-(units @ (query / np.linalg.norm(query))), kind="stable")[:20]
    assert [int(h.text.split()[1]) for h in hits] == expected.tolist()


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
        long = find(project, "cell light gene", k=6, mode=mode)
        short = find(project, "cell light gene", k=3, mode=mode)
        assert short == long[:3]


def test_blank_query_and_unknown_mode(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert find(project, "   ") == []
    assert find(project, "the of and") == []
    with pytest.raises(ValueError, match="mode"):
        find(project, "cells", mode="semantic")


# --- the index follows every write, in the writing transaction ------------------


def test_a_new_document_is_found_by_the_next_search_with_no_rebuild(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert find(project, "ribosome") == []
    add_document(project, "Proteins", [("Ribosomes build proteins.", [0, 0, 1, 0])], external_id="r1")
    assert ids(find(project, "ribosome")) == ["r1"]


def test_a_deleted_document_is_gone_from_both_rankings(
    db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(user)
    doc = add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])], external_id="x")
    add_document(project, "Other", [("Chlorophyll.", [0, 1, 0, 0])], external_id="y")
    fixed_query_vector(monkeypatch, [1, 0, 0, 0])
    assert ids(find(project, "mitochondria")) == ["x"]
    assert ids(find(project, "q", mode="dense"))[0] == "x"
    document_purge(document=doc)
    assert find(project, "mitochondria") == []
    assert ids(find(project, "q", mode="dense")) == ["y"]


def test_deleting_a_project_empties_its_index(db: Any, user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    kept = make_project(user, "Kept")
    add_document(kept, "Cells", [("Mitochondria again.", [1, 0, 0, 0])], external_id="k")
    gone = project.pk
    assert gone in engine.existing_partitions([gone])
    project_delete(user=user, project=project)
    fixed_query_vector(monkeypatch, [1, 0, 0, 0])
    assert search.search(project_ids=[gone], query="mitochondria", mode="hybrid").hits == []
    assert ids(find(kept, "mitochondria", mode="hybrid")) == ["k"]


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_drops_the_partitions_of_deleted_projects_only(user: Any) -> None:
    """DETACH ... CONCURRENTLY cannot run in a transaction: this test commits for real."""
    search_partitions_sweep()  # what earlier tests' flushes left behind
    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    kept = make_project(user, "Kept")
    add_document(kept, "Cells", [("Mitochondria again.", [1, 0, 0, 0])], external_id="k")
    gone = project.pk
    project_delete(user=user, project=project)
    assert search_partitions_sweep() == 1
    assert engine.existing_partitions([gone, kept.pk]) == {kept.pk}
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [engine.partition_name(gone)])
        assert cursor.fetchone()[0] is None
    assert search_partitions_sweep() == 0
    assert ids(find(kept, "mitochondria")) == ["k"]


def test_a_document_being_reindexed_is_found_by_its_stored_chunks(db: Any, user: Any) -> None:
    project = make_project(user)
    add_document(
        project,
        "Draft",
        [("Chlorophyll is green.", [1, 0, 0, 0])],
        status=DocumentStatus.PROCESSING,
        external_id="p",
    )
    # The chunks in the database are the document's last ingest; the next one replaces them atomically.
    assert ids(find(project, "chlorophyll")) == ["p"]


# --- access -------------------------------------------------------------------


def test_each_project_is_searched_on_its_own(db: Any, user: Any) -> None:
    mine, theirs = make_project(user, "Mine"), make_project(user, "Theirs")
    add_document(theirs, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert find(mine, "mitochondria") == []
    assert len(find(theirs, "mitochondria")) == 1


def test_search_for_reads_only_the_callers_projects(
    db: Any, user: Any, other_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = make_project(user, "Mine")
    shared = make_project(other_user, "Shared", viewer=user)
    secret = make_project(other_user, "Secret")
    add_document(mine, "A", [("Mitochondria one.", [1, 0, 0, 0])], external_id="mine")
    add_document(shared, "B", [("Mitochondria two.", [1, 0, 0, 0])], external_id="shared")
    add_document(secret, "C", [("Mitochondria three.", [1, 0, 0, 0])], external_id="secret")
    fixed_query_vector(monkeypatch, [1, 0, 0, 0])
    for mode in search.MODES:
        everything = search.search_for(user=user, query="mitochondria", mode=mode)
        assert sorted(ids(everything)) == ["mine", "shared"]
        assert {h.project_title for h in everything} == {"Mine", "Shared"}
        # Naming someone else's project reads nothing from it.
        assert (
            search.search_for(user=user, query="mitochondria", mode=mode, project_ids=[secret.pk]).hits == []
        )
    assert search.readable_project_ids(user, [secret.pk, mine.pk]) == [mine.pk]


def test_anonymous_callers_search_nothing(db: Any, user: Any) -> None:
    from django.contrib.auth.models import AnonymousUser

    project = make_project(user)
    add_document(project, "Cells", [("Mitochondria make ATP.", [1, 0, 0, 0])])
    assert search.search_for(user=AnonymousUser(), query="mitochondria").hits == []


# --- per-project statistics -----------------------------------------------------------------


def test_a_projects_scores_and_order_ignore_other_projects_documents(
    db: Any, user: Any, other_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each project is ranked against its own chunks: another tenant adding documents full of
    the query's words changes nothing a search returns, neither its figures nor its order."""
    mine = make_project(user, "Mine")
    # Two chunks that each hold one of the query's words: which ranks first depends on how
    # rare each word is, the very statistic another tenant's documents would shift.
    add_document(mine, "A", [("The quartz crystal.", [1, 0, 0, 0])], external_id="quartz")
    add_document(mine, "B", [("The basalt column.", [0, 1, 0, 0])], external_id="basalt")
    add_document(mine, "C", [("Sand and wind.", [0, 0, 1, 0])], external_id="sand")
    fixed_query_vector(monkeypatch, [1, 1, 0.2, 0])

    def answers() -> dict[str, list[tuple[str, float]]]:
        out = {}
        for mode in search.MODES:
            hits = search.search(project_ids=[mine.pk], query="quartz basalt", k=10, mode=mode, cut=True)
            out[mode] = [(h.external_id, h.score) for h in hits]
        out["engine"] = [
            (str(pk), round(score, 9)) for pk, score in engine.lexical([mine.pk], "quartz basalt", 10)
        ]
        return out

    before = answers()
    theirs = make_project(other_user, "Theirs")
    for n in range(40):
        add_document(theirs, f"Q{n}", [(f"Quartz quartz quartz vein {n}.", [1, 0, 0, 0])])
    assert answers() == before


# --- the dense plan -----------------------------------------------------------------------


def test_every_connection_searches_the_graph_at_the_configured_depth(db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW hnsw.ef_search")
        assert cursor.fetchone()[0] == str(settings.SEARCH_HNSW_EF)
        cursor.execute("SHOW hnsw.iterative_scan")
        assert cursor.fetchone()[0] == "relaxed_order"
        cursor.execute("SHOW max_parallel_workers_per_gather")
        assert cursor.fetchone()[0] == str(settings.DB_PARALLEL_WORKERS)


def test_a_large_partition_is_searched_through_its_graph(db: Any, user: Any) -> None:
    project = make_project(user)
    rng = np.random.default_rng(3)
    add_document(
        project, "Many", [(f"chunk {i}", v.tolist()) for i, v in enumerate(rng.normal(size=(3000, DIM)))]
    )
    table = engine.partition_name(project.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(
            f"EXPLAIN SELECT id FROM {table} WHERE dim = {DIM} "  # noqa: S608 - a name made from a UUID
            f"ORDER BY embedding::vector({DIM}) <=> '[1,0,0,0]'::vector({DIM}) LIMIT 100"
        )
        explained = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using" in explained and "Sort" not in explained, explained


def test_a_query_is_read_as_its_distinct_words_and_at_most_a_bounded_number() -> None:
    assert engine.lexical_query('title:"Quartz" AND (quartz OR basalt)~2^3') == "title quartz basalt 2 3"
    many = " ".join(f"w{i}" for i in range(500))
    assert len(engine.lexical_query(many).split()) == engine.MAX_QUERY_WORDS
    assert engine.lexical_query("the of and") == ""
    assert "\x00" not in engine.lexical_query("a\x00b")


# --- compaction ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_partition_written_piece_by_piece_is_compacted_once_its_project_is_idle(user: Any) -> None:
    """Each ingest leaves a segment; the sweeper rebuilds the index into one once nothing waits."""
    project = make_project(user)
    for n in range(engine.COMPACT_SEGMENTS + 4):
        add_document(
            project, f"Note {n}", [(f"Pump {n} needs priming.", [1, 0, 0, n / 10])], external_id=f"n{n}"
        )
        engine.mark_written([project.pk])
    assert engine.segment_count(project.pk) > engine.COMPACT_SEGMENTS
    waiting = Document.objects.create(project=project, title="Waiting", status=DocumentStatus.PENDING)
    assert search_indexes_compact() == 0, "not while an import is still running"
    assert project.pk in engine.written()
    waiting.delete()
    assert search_indexes_compact() == 1
    assert engine.segment_count(project.pk) == 1
    assert project.pk not in engine.written()
    hits = search.search(project_ids=[project.pk], query="priming pump", mode="lexical", k=20, cut=False).hits
    assert len(hits) == engine.COMPACT_SEGMENTS + 4
    assert search_indexes_compact() == 0, "nothing written since"


def test_the_one_statement_fuses_exactly_as_reciprocal_rank_fusion_does(
    db: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine.ranked (rankings, fusion and rows in one query) against the two rankings run
    alone and fused by `rrf`, the reference."""
    project = make_project(user)
    rng = np.random.default_rng(17)
    words = ["pump", "valve", "seal", "motor", "filter", "pipe", "gauge", "tank"]
    for n in range(40):
        text = " ".join(rng.choice(words, size=6)) + f" item {n}."
        add_document(project, f"Doc {n}", [(text, rng.normal(size=DIM).tolist())], external_id=f"d{n}")
    query_vector = rng.normal(size=DIM).astype(np.float32)
    query_vector /= np.linalg.norm(query_vector)
    query = "pump seal gauge"
    depth, k = 25, 15
    dense = engine.dense([project.pk], query_vector, depth)
    lexical = engine.lexical([project.pk], query, depth)
    items, scores = search.rrf([[c for c, _ in dense], [c for c, _ in lexical]], settings.SEARCH_RRF_K)
    rows = engine.ranked(
        [project.pk], vector=query_vector, query=query, depth=depth, k=k, rank_k=settings.SEARCH_RRF_K
    )
    assert [row.chunk_id for row in rows] == items[:k].tolist()
    assert [row.score for row in rows] == pytest.approx(scores[:k].tolist(), abs=1e-12)
    cosines = dict(dense)
    bm25 = dict(lexical)
    for row in rows:
        if row.chunk_id in cosines:
            assert row.cosine == pytest.approx(cosines[row.chunk_id], abs=1e-6)
        assert row.bm25 == (pytest.approx(bm25[row.chunk_id]) if row.chunk_id in bm25 else None)
