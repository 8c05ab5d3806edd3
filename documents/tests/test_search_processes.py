"""Search across processes: another process sees a commit at once, and holds no copy of the corpus.

A child process (Django on this run's test database, the real encoder) answers
search requests read from its stdin; the test writes to the database in its
own process and asks again. With the old per-process index the child would
have needed a rebuild to see a change, and would have grown by the corpus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import make_project
from documents import search
from documents.models import Chunk, Document, DocumentStatus
from documents.search.engine import ensure_partitions
from documents.services import document_purge
from documents.tests.factories import ChunkFactory
from tests.worker import database_url

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
import django
django.setup()
from documents import search

def rss_kb():
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0])

for line in sys.stdin:
    request = json.loads(line)
    hits = []
    for _ in range(request.get("repeat", 1)):
        hits = search.search(project_ids=[request["project"]], query=request["q"], k=10, mode=request["mode"])
    print(json.dumps({"ids": [h.external_id for h in hits], "rss_kb": rss_kb()}), flush=True)
"""


class SearchProcess:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def ask(self, project: Any, q: str, mode: str = "hybrid", repeat: int = 1) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            json.dumps({"project": str(project.pk), "q": q, "mode": mode, "repeat": repeat}) + "\n"
        )
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"search process died (exit {self.proc.poll()})"
        return json.loads(line)


@pytest.fixture
def search_process(transactional_db: Any, tmp_path: Path) -> Iterator[SearchProcess]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield SearchProcess(proc)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def add_chunks(project: Any, title: str, texts: list[str], *, external_id: str, seed: int = 0) -> Document:
    """A ready document whose chunks carry random unit vectors (the encoder is the child's business)."""
    doc = Document.objects.create(
        project=project, title=title, format="txt", status=DocumentStatus.READY, external_id=external_id
    )
    vectors = np.random.default_rng(seed).normal(size=(len(texts), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ensure_partitions([project.pk])
    Chunk.objects.bulk_create(
        [
            ChunkFactory.build(document=doc, index=i, text=t, embedding=v)
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ],
        batch_size=500,
    )
    return doc


def test_another_process_finds_a_new_document_at_once_and_loses_a_deleted_one(
    search_process: SearchProcess, user: Any
) -> None:
    project = make_project(user)
    add_chunks(project, "Cells", ["Mitochondria make ATP."], external_id="cells")
    assert search_process.ask(project, "mitochondria")["ids"] == ["cells"]
    assert search_process.ask(project, "ribosome", mode="lexical")["ids"] == []

    proteins = add_chunks(project, "Proteins", ["Ribosomes build proteins."], external_id="proteins")
    # The very next search in the other process sees the commit: nothing to rebuild.
    assert search_process.ask(project, "ribosome", mode="lexical")["ids"] == ["proteins"]
    assert "proteins" in search_process.ask(project, "ribosome", mode="hybrid")["ids"]

    document_purge(document=proteins)
    assert search_process.ask(project, "ribosome", mode="lexical")["ids"] == []
    assert "proteins" not in search_process.ask(project, "ribosome", mode="dense")["ids"]


def test_a_search_process_does_not_grow_with_the_corpus(search_process: SearchProcess, user: Any) -> None:
    project = make_project(user)
    add_chunks(project, "Seed", ["Mitochondria make ATP in the cell."], external_id="seed")
    # Warm: the encoder and the database driver are loaded, the first queries are done.
    before = search_process.ask(project, "mitochondria cell energy", repeat=20)["rss_kb"]

    # About 20 MB of corpus (text + vectors) arrives; the process searches it 30 times.
    rng = np.random.default_rng(1)
    words = np.array(["cell", "energy", "protein", "membrane", "enzyme", "gene", "light", "water", "carbon"])
    chunks = 6_000
    for n in range(chunks // 1000):
        texts = [" ".join(rng.choice(words, size=300)) + f" filler{n}x{i}" for i in range(1000)]
        add_chunks(project, f"Bulk {n}", texts, external_id=f"bulk{n}", seed=n + 2)
    corpus_kb = (chunks * (300 * 7 + 384 * 4)) // 1024
    after = search_process.ask(project, "mitochondria cell energy", repeat=30)
    assert after["ids"]  # it really searched the larger corpus
    assert search.search(project_ids=[project.pk], query="membrane", mode="lexical")
    growth = after["rss_kb"] - before
    assert growth < corpus_kb / 4, (growth, corpus_kb)
