"""The sentence encoder: ONNX export once, int8 vectors that rank like the shipped model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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
    monkeypatch.setattr(embedder, "_model", None)
    monkeypatch.setattr(embedder, "_text_encoder", None)
    return settings.MODEL_DIR


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
    import onnxruntime.quantization

    def unsupported(*args: Any, **kwargs: Any) -> None:
        raise ValueError("unsupported architecture")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", unsupported)
    with caplog.at_level("ERROR", logger="documents.embedder"):
        vectors = embedder.encode(SENTENCES[:2])
    assert "ONNX export failed" in caplog.text
    np.testing.assert_allclose(vectors, _torch_vectors(SENTENCES[:2]), atol=1e-5)


EXPORT_SCRIPT = """
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from documents import embedder
print(embedder.encode(["Aspirin lowers the risk of a second heart attack."])[0][:8].tolist())
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
    folders = [p for p in (tmp_path / "models").iterdir() if p.is_dir()]
    assert len(folders) == 1


# --- one text straight through the ONNX session ---------------------------------


def test_a_single_text_goes_straight_through_the_session_and_gives_the_same_vector() -> None:
    model = embedder.get_model()
    assert embedder._text_encoder is not None, "the default model takes the direct path"
    hard = ["word " * 400, "  Ça coûte 5 € — 日本語のテキスト, naïve café\t\n", "", "x"]
    for text in [*SENTENCES, *hard]:
        direct = embedder.encode([text])
        assert direct.shape == (1, 384) and direct.dtype == np.float32
        reference = model.encode([text], normalize_embeddings=True, show_progress_bar=False)
        np.testing.assert_allclose(direct, reference, atol=1e-5)


def test_a_model_the_direct_path_was_not_built_for_keeps_sentence_transformers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = embedder.get_model()
    pooling = model[1]
    monkeypatch.setattr(pooling, "get_config_dict", lambda: {"pooling_mode": "max"})
    assert embedder._fast_encoder(model) is None
    monkeypatch.undo()
    monkeypatch.setattr(embedder.OnnxTextEncoder, "__call__", lambda self, text: np.zeros(384, np.float32))
    assert embedder._fast_encoder(model) is None, "vectors that differ on the probes are never used"


def test_the_torch_backend_never_takes_the_direct_path(fresh_model: Path, settings: Any) -> None:
    settings.EMBEDDING_BACKEND = "torch"
    embedder.get_model()
    assert embedder._text_encoder is None
    assert embedder.encode(["aspirin"]).shape == (1, 384)
