"""Bulk import sources: paths on disk -> a stream of records to create documents from.

A path is a plain file (imported as one document), a BEIR corpus (`.jsonl` or
`.jsonl.gz`, one `{"_id", "title", "text"}` object per line, one document per
line) or a folder walked recursively in sorted order, skipping hidden entries.
A malformed line does not stop the import: it comes out as a `BadRecord` so the
caller can count it and carry on.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

BEIR_SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class FileSource:
    """A file to import as one document."""

    path: Path
    name: str  # relative to the folder it was found in (or the file name)

    @property
    def label(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class BeirRecord:
    """One line of a BEIR corpus."""

    external_id: str
    title: str
    text: str
    path: Path
    line: int

    @property
    def label(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class BadRecord:
    """A line (or the rest of a file) that could not be read; reported, never fatal."""

    path: Path
    line: int
    reason: str

    @property
    def label(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


SourceRecord = FileSource | BeirRecord | BadRecord

CREATED = "created"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass(frozen=True)
class ImportEvent:
    """What happened to one record, handed to a progress callback."""

    source: str
    outcome: str  # CREATED, SKIPPED or FAILED
    document_id: str = ""
    reason: str = ""


@dataclass
class ImportReport:
    """The outcome of one bulk import."""

    created: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    document_ids: list[str] = field(default_factory=list)  # of the created documents, in order
    batch_id: str = ""  # the ImportBatch that records this import's progress


ProgressCallback = Callable[[ImportEvent], None]


def is_beir(path: Path) -> bool:
    return path.name.lower().endswith(BEIR_SUFFIXES)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: Path) -> Iterator[Path]:
    """Files under `folder`, depth first in sorted order; hidden entries and symlinked folders skipped."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if _is_hidden(entry.name):
            continue
        path = Path(entry.path)
        # Not following symlinked folders keeps a link cycle from walking forever.
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path)
        elif entry.is_file():
            yield path


def _files(paths: list[Path]) -> Iterator[tuple[Path, str]]:
    """Every file named by `paths`, with its name relative to the folder it came from."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist.")
        if path.is_dir():
            for found in _walk(path):
                yield found, found.relative_to(path).as_posix()
        else:
            yield path, path.name


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


class _BadLine(Exception):
    """A BEIR line that is not a usable record; the message says why."""


def _parse_line(raw: str) -> tuple[str, str, str]:
    """(external_id, title, text) of one BEIR line; raises _BadLine with a readable reason."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _BadLine("not a JSON object")
    ext = obj.get("_id")
    if isinstance(ext, bool) or not isinstance(ext, str | int) or not str(ext).strip():
        raise _BadLine('missing "_id" (a non-empty string or number)')
    title = obj.get("title", "")
    text = obj.get("text", "")
    if title is None:
        title = ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise _BadLine('"title" and "text" must be strings')
    return str(ext).strip(), title, text


def iter_beir(path: Path) -> Iterator[BeirRecord | BadRecord]:
    """Records of one BEIR corpus file; blank lines skipped, bad lines yielded as BadRecord."""
    line_no = 0
    try:
        with _open_text(path) as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    ext, title, text = _parse_line(raw)
                except _BadLine as exc:
                    yield BadRecord(path=path, line=line_no, reason=f"line {line_no}: {exc}")
                    continue
                yield BeirRecord(external_id=ext, title=title, text=text, path=path, line=line_no)
    except (OSError, EOFError, zlib.error) as exc:
        # A truncated or corrupt .gz: report where reading stopped, keep the records read so far.
        yield BadRecord(
            path=path,
            line=line_no + 1,
            reason=f"could not read past line {line_no}: {exc or type(exc).__name__}",
        )


def iter_sources(paths: list[Path]) -> Iterator[SourceRecord]:
    """Every record under `paths`, in a stable order; raises FileNotFoundError for a missing path."""
    for path, name in _files(paths):
        if is_beir(path):
            yield from iter_beir(path)
        else:
            yield FileSource(path=path, name=name)


def _count_lines(path: Path) -> int:
    count = 0
    try:
        with _open_text(path) as fh:
            for raw in fh:
                if raw.strip():
                    count += 1
    except (OSError, EOFError, zlib.error):
        count += 1  # the read error itself is one record
    return count


def count_sources(paths: list[Path]) -> int:
    """How many records `iter_sources` will yield (a first pass over compressed corpora)."""
    total = 0
    for path, _name in _files(paths):
        total += _count_lines(path) if is_beir(path) else 1
    return total
