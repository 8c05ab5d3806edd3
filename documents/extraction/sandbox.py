"""Extraction in a child process with bounded memory and time.

PDF, Office, EPUB, HTML, CSV and image readers can be driven to exhaust memory
or loop for hours by hostile files (zip bombs, content streams that inflate to
gigabytes, page trees that fan out forever, millions of tiny tags, images that
decode to gigapixels). The ingest worker must survive all of them, so those
formats are read in a fresh interpreter with an address-space limit (RLIMIT_AS)
and a CPU limit, under a wall-clock timeout. Tesseract, which OCR runs, is a
process of the child: it inherits both limits, and the timeout ends the child's
whole process group. Whatever goes wrong there becomes an `ExtractionError` a
person can read, and the document fails with it. Plain text and Markdown only
need decoding, which the upload size already bounds, so they are read in-process.

The child is `python -m documents.extraction.sandbox MEMORY_MB CPU_S`: it reads a JSON
header line (the file name and the reader limits from the settings) and the
file's bytes on stdin, and writes one JSON object on stdout (the text, its format, the
title the file gives, if any, where each stretch of the text came from and the words OCR
read, with their boxes). It imports neither Django nor the project's settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from documents.extraction import readers

# Formats whose parsers can blow up; the others only decode text.
SANDBOXED_FORMATS = frozenset(
    {"pdf", "docx", "pptx", "xlsx", "epub", "html", "web", "csv", "png", "jpeg", "tiff"}
)
# The project root, where `python -m documents.extraction.sandbox` resolves.
ROOT = Path(__file__).resolve().parents[2]
_MEMORY_EXIT = 3
_CRASH_EXIT = 4


def _limits() -> tuple[float, int]:
    from django.conf import settings

    return float(settings.EXTRACT_TIMEOUT_S), int(settings.EXTRACT_MEMORY_MB)


def reader_limits() -> readers.ReaderLimits:
    """The readers' bounds from the settings (OCR pages and languages, image pixels, sheet cells)."""
    from django.conf import settings

    return readers.ReaderLimits(
        ocr_max_pages=int(settings.OCR_MAX_PAGES),
        ocr_languages=str(settings.OCR_LANGUAGES),
        image_max_pixels=int(settings.IMAGE_MAX_PIXELS),
        sheet_max_cells=int(settings.SHEET_MAX_CELLS),
    )


def extract_text_bounded(data: bytes, *, filename: str = "") -> readers.Extracted:
    """`readers.extract_text`, with every format but text and Markdown read in a limited child process."""
    fmt = readers.sniff_format(data, filename)
    if fmt not in SANDBOXED_FORMATS:
        return readers.extract_text(data, filename=filename)
    timeout_s, memory_mb = _limits()
    cpu_s = max(1, int(timeout_s) + 1)
    header = {"filename": filename, "limits": dataclasses.asdict(reader_limits())}
    command = [sys.executable, "-m", "documents.extraction.sandbox", str(memory_mb), str(cpu_s)]
    done = _run_child(command, json.dumps(header).encode() + b"\n" + bytes(data), timeout_s)
    return _result(done, timeout_s=timeout_s, memory_mb=memory_mb)


def _run_child(command: list[str], stdin: bytes, timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    """Run the child in a process group of its own, so a timeout also ends what it started (Tesseract)."""
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_child_env(),
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(stdin, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.communicate()
            raise _took_too_long(timeout_s) from None
        finally:
            # Nothing of the child's may outlive it (a crashed child's Tesseract, say).
            _kill_group(proc.pid)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT", "TESSDATA_PREFIX")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    # Tesseract's own threads: one per page is faster on a busy worker, and bounded.
    env["OMP_THREAD_LIMIT"] = "1"
    return env


def _took_too_long(timeout_s: float) -> readers.ExtractionError:
    return readers.ExtractionError(
        f"Reading the file took longer than {timeout_s:g} seconds, the limit per document; "
        "it may be damaged or built to exhaust the reader."
    )


def _too_big(memory_mb: int) -> readers.ExtractionError:
    return readers.ExtractionError(
        f"Reading the file needed more than {memory_mb:,} MB of memory, the limit per document. "
        "Split it into smaller files (or ask an operator to raise DOCENT_EXTRACT_MEMORY_MB); "
        "if it is small, it may be damaged or built to exhaust the reader (a zip bomb, or a stream "
        "that expands enormously)."
    )


def _result(
    done: subprocess.CompletedProcess[bytes], *, timeout_s: float, memory_mb: int
) -> readers.Extracted:
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise _took_too_long(timeout_s)
    if done.returncode == _MEMORY_EXIT or (done.returncode != 0 and b"MemoryError" in done.stderr):
        raise _too_big(memory_mb)
    try:
        reply: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        reply = {}
    if done.returncode == 0 and reply.get("ok") is True:
        return readers.Extracted(
            text=str(reply["text"]),
            format=str(reply["format"]),
            title=readers.tidy_title(reply.get("title")),
            locations=_locations(reply.get("locations")),
            ocr_words=_ocr_words(reply.get("ocr_words")),
        )
    if done.returncode == 0 and reply.get("ok") is False:
        raise readers.ExtractionError(str(reply.get("error") or "The file could not be read."))
    how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
    raise readers.ExtractionError(
        f"The reader stopped on this file ({how}); it may be damaged or built to exhaust the reader."
    )


def _locations(raw: Any) -> tuple[tuple[int, int, dict[str, Any]], ...]:
    """The child's [[start, end, locator], ...] as Extracted.locations."""
    if not isinstance(raw, list):
        return ()
    return tuple(
        (int(item[0]), int(item[1]), item[2])
        for item in raw
        if isinstance(item, list) and len(item) == 3 and isinstance(item[2], dict)
    )


def _ocr_words(raw: Any) -> dict[int, list[list[Any]]]:
    """The child's {"page": words} (JSON keys are strings) as Extracted.ocr_words."""
    if not isinstance(raw, dict):
        return {}
    return {int(page): words for page, words in raw.items() if isinstance(words, list)}


# --- the child ---------------------------------------------------------------


def _out_of_memory(exc: readers.ExtractionError) -> bool:
    """Whether a reader's error is the memory limit in disguise.

    Parsers that catch everything report a MemoryError as a damaged file; libxml2 (lxml,
    under python-docx, python-pptx, openpyxl) reports a failed allocation as "Memory
    allocation failed", or with no message at all: "unknown error (<string>, line 0)".
    """
    cause = exc.__cause__
    if isinstance(cause, MemoryError) or "MemoryError" in str(exc):
        return True
    if cause is not None and type(cause).__module__.startswith("lxml"):
        message = str(cause)
        return "Memory allocation failed" in message or message.startswith("unknown error")
    return False


def _child(memory_mb: int, cpu_s: int) -> int:
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    stdin = sys.stdin.buffer
    try:
        header = json.loads(stdin.readline() or b"{}")
        data = stdin.read()
        # A fresh process, reading one file: the module-wide limits are this file's.
        readers.LIMITS = readers.ReaderLimits(**header.get("limits", {}))
        result = readers.extract_text(data, filename=str(header.get("filename", "")))
        reply = {
            "ok": True,
            "text": result.text,
            "format": result.format,
            "title": result.title,
            "locations": [list(location) for location in result.locations],
            "ocr_words": result.ocr_words,
        }
    except MemoryError:
        return _MEMORY_EXIT
    except readers.ExtractionError as exc:
        if _out_of_memory(exc):
            return _MEMORY_EXIT
        reply = {"ok": False, "error": str(exc)}
    try:
        sys.stdout.buffer.write(json.dumps(reply).encode())
        sys.stdout.flush()
    except MemoryError:
        return _MEMORY_EXIT
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_child(int(sys.argv[1]), int(sys.argv[2])))
    except MemoryError:
        os._exit(_MEMORY_EXIT)
    except Exception:  # noqa: BLE001 - anything else is reported as a crash
        os._exit(_CRASH_EXIT)
