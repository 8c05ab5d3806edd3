"""The sentence encoder: ONNX export once, int8 vectors that rank like the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.tests.processes import python
from documents import embedder

SENTENCES = [
    "Aspirin lowers the risk of a second heart attack.",
    "The committee approved the budget for next year.",
    "Antibiotics do not work against viral infections such as the common cold.",
    "Der Vertrag tritt am ersten Januar in Kraft.",
    "x",
]


@pytest.fixture
def fresh_model(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model folder of our own and no encoder loaded yet (restored afterwards)."""
    settings.MODEL_DIR = tmp_path / "models"
    monkeypatch.setattr(embedder, "_encoder", None)
    return settings.MODEL_DIR


@pytest.fixture
def reloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """This run's shared export, with the encoder loaded afresh (the process's own restored afterwards)."""
    monkeypatch.setattr(embedder, "_encoder", None)


@pytest.fixture
def copied_export(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of this run's export in a model folder of our own, to tamper with; no encoder loaded."""
    shared = embedder.ensure_onnx_export()
    settings.MODEL_DIR = tmp_path / "models"
    monkeypatch.setattr(embedder, "_encoder", None)
    # The fp32 file is not needed on the default backend: 90 MB less to copy.
    return Path(shutil.copytree(shared, embedder.onnx_dir(), ignore=shutil.ignore_patterns("model.*")))


def _torch_vectors(texts: list[str]) -> np.ndarray[Any, Any]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(embedder.model_path(), device="cpu", local_files_only=True)
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)


@pytest.mark.parametrize(("backend", "floor"), [("onnx-int8", 0.975), ("onnx", 0.9999)])
def test_onnx_backends_give_the_shipped_models_vectors(
    fresh_model: Path, settings: Any, backend: str, floor: float
) -> None:
    settings.EMBEDDING_BACKEND = backend
    vectors = embedder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    reference = _torch_vectors(SENTENCES)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= floor, cosines
    assert cosines.mean() >= min(0.99, floor), cosines
    # Same nearest neighbour for every sentence, as the shipped model ranks them.
    query = embedder.encode(["Does aspirin prevent heart attacks?"])[0]
    assert int(np.argmax(vectors @ query)) == int(np.argmax(reference @ query)) == 0
    assert (fresh_model / embedder.onnx_dir().name / embedder.onnx_file()).is_file()


def test_the_default_backend_is_int8_onnx_quantised_for_this_cpu(settings: Any) -> None:
    assert settings.EMBEDDING_BACKEND == "onnx-int8"
    assert embedder.onnx_file() == f"onnx/model_qint8_{embedder.quantization_target()}.onnx"
    assert embedder.quantization_target() in {"avx512_vnni", "avx512", "avx2", "arm64"}


def test_the_export_runs_once_and_is_reused(fresh_model: Path, settings: Any) -> None:
    first = embedder.ensure_onnx_export()
    model_file = first / embedder.onnx_file()
    stamp = model_file.stat().st_mtime_ns
    assert embedder.ensure_onnx_export() == first
    assert model_file.stat().st_mtime_ns == stamp
    # Both precisions come out of one export: switching backend needs no second one.
    settings.EMBEDDING_BACKEND = "onnx"
    assert (first / embedder.onnx_file()).is_file()
    # Nothing but the model folder and its lock file is left next to it.
    assert sorted(p.name for p in fresh_model.iterdir()) == sorted([first.name, f"{first.name}.lock"])


def test_a_failed_export_leaves_nothing_half_written(
    fresh_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime.quantization

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        embedder.ensure_onnx_export()
    assert not embedder.onnx_dir().exists()
    assert [p.name for p in fresh_model.iterdir()] == [f"{embedder.onnx_dir().name}.lock"]
    monkeypatch.undo()
    # The next attempt starts clean and succeeds.
    assert (embedder.ensure_onnx_export() / embedder.onnx_file()).is_file()


def test_a_model_the_exporter_cannot_handle_is_encoded_with_torch(
    fresh_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The export runs in a child process: this one fails as the exporter does on such a model.
    monkeypatch.setattr(embedder, "EXPORT_ARGS", ["-c", "raise ValueError('unsupported architecture')"])
    with caplog.at_level("ERROR", logger="documents.embedder"):
        vectors = embedder.encode(SENTENCES[:2])
    assert "ONNX export failed" in caplog.text
    np.testing.assert_allclose(vectors, _torch_vectors(SENTENCES[:2]), atol=1e-5)


EXPORT_SCRIPT = """
import django, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from documents import embedder
print(embedder.encode(["Aspirin lowers the risk of a second heart attack."])[0][:8].tolist())
print("torch loaded:", "torch" in sys.modules)
"""


def test_processes_starting_together_share_one_export(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DOCENT_DATA_DIR": str(tmp_path),
        "DOCENT_MODEL_DIR": str(tmp_path / "models"),
        "DOCENT_LOG_FORMAT": "json",
    }
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORT_SCRIPT],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    # Exactly one of them exported; both encode the same vector from the same file.
    exports = sum(err.count("exported embedding model to ONNX") for _, err in outputs)
    assert exports == 1
    assert outputs[0][0] == outputs[1][0]
    # The export loaded PyTorch in a child process: neither long-lived process holds it.
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == ["torch loaded: False"] * 2
    folders = [p for p in (tmp_path / "models").iterdir() if p.is_dir()]
    assert len(folders) == 1


# --- the torch-free encoder on the ONNX backends ------------------------------------

# The inputs where a tokenizer, padding or pooling detail would show: nothing, one
# character, twice the model's 256-token limit, non-ASCII, stray whitespace, and
# mixed lengths (with a tie) in one batch.
LONG = " ".join(SENTENCES[:4] * 30)
VARIED = [
    *SENTENCES,
    "",
    " ",
    "word " * 400,
    LONG,
    "  Ça coûte 5 € — 日本語のテキスト, naïve café\t\n",
    "Émojis 🙂 and ℌ𝔢𝔩𝔩𝔬, Ünïcödé, Привет мир, مرحبا",
    " ".join(SENTENCES),
    "a b",
    "b a",
]

NO_TORCH_SCRIPT = """
import json, sys
import django
django.setup()
from documents import embedder
texts = json.loads(sys.argv[1])
one = embedder.encode(texts[:1])
many = embedder.encode(texts, batch_size=3)
status = open("/proc/self/status").read()
rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "sentence_transformers", "transformers"})
print(json.dumps({"heavy": heavy, "rss_mb": rss_kb / 1024, "encoder": type(embedder.get_encoder()).__name__,
                  "one": one.tolist(), "many": many.tolist()}))
"""


def _sentence_transformers_onnx(folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(folder),
        backend="onnx",
        device="cpu",
        local_files_only=True,
        model_kwargs={"file_name": embedder.onnx_file(), "provider": "CPUExecutionProvider"},
    )


def test_a_process_on_the_default_backend_encodes_without_torch(
    settings: Any, reloaded: None, tmp_path: Path
) -> None:
    assert settings.EMBEDDING_BACKEND == "onnx-int8"
    embedder.ensure_onnx_export()  # with its probes, so the child has nothing to make
    code = NO_TORCH_SCRIPT.replace("sys.argv[1]", repr(json.dumps(VARIED)))
    done = python(code, tmp_path, timeout=120, DOCENT_MODEL_DIR=os.environ["DOCENT_MODEL_DIR"])
    assert done.returncode == 0, done.stderr[-3000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["heavy"] == []
    assert child["encoder"] == "OnnxEncoder"
    # Django, NumPy, ONNX Runtime with the int8 model and its working memory: about 230 MB.
    # sentence-transformers' own ONNX path held about 600.
    assert child["rss_mb"] < 400, child["rss_mb"]
    # The same vectors as this process's torch-free encoder, for a query and for a batch.
    np.testing.assert_allclose(child["one"], embedder.encode(VARIED[:1]), atol=1e-6)
    np.testing.assert_allclose(child["many"], embedder.encode(VARIED, batch_size=3), atol=1e-6)


@pytest.mark.parametrize("backend", ["onnx-int8", "onnx"])
def test_the_torch_free_vectors_are_sentence_transformers_own(
    settings: Any, reloaded: None, backend: str
) -> None:
    settings.EMBEDDING_BACKEND = backend
    encoder = embedder.get_encoder()
    assert isinstance(encoder, embedder.OnnxEncoder), "the probes check passed"
    assert len(encoder.tokenizer.encode(LONG).ids) == 256, "cut at the model's maximum length"
    reference = _sentence_transformers_onnx(embedder.onnx_dir())
    # One at a time, as queries are encoded ...
    for text in VARIED:
        mine = embedder.encode([text])
        assert mine.shape == (1, 384) and mine.dtype == np.float32
        theirs = reference.encode([text], normalize_embeddings=True, show_progress_bar=False)
        np.testing.assert_allclose(mine, theirs, atol=1e-5, err_msg=repr(text))
    # ... and in batches of mixed lengths, as ingest does: int8 quantises each batch's
    # activations together, so only the same batches give the same vectors.
    for batch_size in (3, 64):
        mine = embedder.encode(VARIED, batch_size=batch_size)
        theirs = reference.encode(VARIED, batch_size=batch_size, normalize_embeddings=True)
        assert mine.shape == (len(VARIED), 384) and mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.dimension() == 384


def _fallback_gives_the_same_vectors(folder: Path, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    with caplog.at_level("INFO", logger="documents.embedder"):
        vectors = embedder.encode(VARIED, batch_size=3)
    assert isinstance(embedder.get_encoder(), embedder.SentenceTransformerEncoder)
    [warning] = [r for r in caplog.records if r.getMessage().startswith("torch-free ONNX encoder not used")]
    assert reason in warning.reason
    theirs = _sentence_transformers_onnx(folder).encode(VARIED, batch_size=3, normalize_embeddings=True)
    np.testing.assert_allclose(vectors, theirs, atol=1e-5)


def test_a_corrupt_probe_file_falls_back_to_sentence_transformers(
    copied_export: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = embedder.probe_file(copied_export, embedder.onnx_file())
    path.write_bytes(path.read_bytes()[:1000])  # as a full disk would leave it
    _fallback_gives_the_same_vectors(copied_export, caplog, "BadZipFile")


def test_probe_vectors_that_differ_fall_back_to_sentence_transformers(
    copied_export: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = embedder.probe_file(copied_export, embedder.onnx_file())
    with np.load(path) as saved:
        probes = dict(saved)
    probes["batched"] = probes["batched"][::-1].copy()  # batched right, single wrong would pass
    np.savez(path, **probes)
    _fallback_gives_the_same_vectors(copied_export, caplog, "batched vectors differ")


def test_a_pooling_it_was_not_built_for_stays_with_sentence_transformers(
    copied_export: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copied_export / "1_Pooling" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "pooling_mode": "max"}))
    _fallback_gives_the_same_vectors(copied_export, caplog, "unsupported pooling 'max'")


def test_an_export_made_before_probes_gets_them_once(
    copied_export: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    probes = embedder.probe_file(copied_export, embedder.onnx_file())
    expected = np.load(probes)["single"]
    probes.unlink()
    model_file = copied_export / embedder.onnx_file()
    stamp = model_file.stat().st_mtime_ns
    embedder.encode(["aspirin"])
    # Made by the export child, whose log lines reach this process's standard error.
    assert "made probe vectors for an earlier ONNX export" in capfd.readouterr().err
    assert isinstance(embedder.get_encoder(), embedder.OnnxEncoder)
    np.testing.assert_allclose(np.load(probes)["single"], expected, atol=1e-6)
    assert model_file.stat().st_mtime_ns == stamp, "the model itself is not exported again"


def test_the_pre_5_sentence_transformers_layout_is_read_too(copied_export: Path) -> None:
    # sentence-transformers before 5 kept one flag per pooling mode and the limit in its own config.
    (copied_export / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 384,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    (copied_export / "sentence_bert_config.json").write_text(
        '{"max_seq_length": 256, "do_lower_case": false}'
    )
    encoder = embedder.OnnxEncoder(copied_export, embedder.onnx_file(), threads=1)
    encoder.check_probes()
    assert (encoder.pooling, encoder.dimension) == ("mean", 384)


def test_the_torch_backend_encodes_with_sentence_transformers(fresh_model: Path, settings: Any) -> None:
    settings.EMBEDDING_BACKEND = "torch"
    assert isinstance(embedder.get_encoder(), embedder.SentenceTransformerEncoder)
    assert embedder.encode(["aspirin"]).shape == (1, 384)
    assert not fresh_model.exists(), "nothing exported for torch"
