"""Private: ONNX exports of sentence-transformers models, made once and cached on disk.

An export is made from the local weights, offline, the first time a recipe asks for an ONNX
backend (at ingest, at `prism validate --models`, or at the first query): torch traces the
transformer to `model.onnx` (torch's TorchScript exporter: optimum-onnx would do the same, but
its releases pin transformers < 4.58), the tokenizer is saved as transformers loads it, and the
export is checked against the torch model on probe texts before it is kept. The int8 variant is
the fp32 export with its MatMul weights quantized per channel by onnxruntime (dynamic
quantization: activations are quantized on the fly), which needs the `onnx` package, not torch.

Exports live next to the embedding cache (`$PRISMRAG_CACHE_DIR/onnx`, else
`~/.cache/prismrag/onnx`), one folder per (model files, kind, variant, export format). A folder
is built under a temporary name and renamed into place when complete, under a file lock, so a
crash or a second process never leaves a half-written export that a later run loads; a folder
that does not load (a damaged disk, a hand edit) is discarded and made again.

Only `find_or_export` decides; torch is imported inside the builders, so a cached export opens
without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from prismrag.contracts import Context, PrismError
from prismrag.contracts.weights import files_fingerprint
from prismrag.support import import_optional, is_local, model_errors, resolve_model_path

from ._cache_dir import cache_dir
from ._onnx_runtime import EXTRA, CorruptExport, OnnxEmbedder, OnnxScorer, read_st_config

Kind = Literal["embed", "score"]
"""embed: a sentence-transformers model's token states; score: a cross-encoder's logits."""
Variant = Literal["fp32", "int8"]

EXPORT_FORMAT = 1
"""Bumped when the way exports are made changes: older exports are then made again."""
OPSET = 17
QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "op_types": ["MatMul"]}
"""The int8 recipe: per-channel int8 weights of every MatMul; per-tensor quantization loses
~6% cosine on MiniLM, per-channel ~0.5%."""
FP32_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.95
"""An export whose vectors fall below this cosine with the torch (fp32: the fp32 export's)
vectors on the probe texts is refused."""
PROBES = (
    "What does vitamin D do for bones?",
    "",
    "Qdrant stores vectors and payloads; a cross-encoder reads the query and the passage together.",
    " ".join(["retrieval"] * 700),  # longer than any max_seq_length: truncation must agree
)
log = logging.getLogger("prismrag.onnx")
T = TypeVar("T")


def cache_root() -> Path:
    """Where exports live: an `onnx` folder next to the embedding cache."""
    return cache_dir() / "onnx"


def export_key(model_dir: Path, kind: Kind, variant: Variant) -> str:
    """Model files (names, sizes, sampled bytes) + what is exported and how."""
    record = {"format": EXPORT_FORMAT, "opset": OPSET, "kind": kind, "variant": variant,
              "weights": files_fingerprint(model_dir)}
    if variant == "int8":
        record["quantization"] = QUANTIZATION
    return hashlib.blake2b(json.dumps(record, sort_keys=True).encode(), digest_size=10).hexdigest()


def _slug(model_dir: Path) -> str:
    """A readable name for the export folder: `models--org--name` in the HF cache, else the
    folder's name (its parent's too when the folder is just called `model`)."""
    parts = model_dir.resolve().parts
    hub = [p for p in parts if p.startswith("models--")]
    name = hub[-1].removeprefix("models--") if hub else parts[-1]
    if not hub and name.lower() in ("model", "models", "onnx") and len(parts) > 1:
        name = f"{parts[-2]}-{name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:60] or "model"


def export_path(model_dir: Path, kind: Kind, variant: Variant) -> Path:
    slug = _slug(model_dir)
    return cache_root() / f"{slug}-{kind}-{variant}-{export_key(model_dir, kind, variant)}"


# ----------------------------------------------------------------------------- open, or export


def local_model_folder(model: str, context: Context, where: str) -> Path:
    """The model's local folder (a path, a shipped model, the HF cache) or, online, the hub id
    downloaded into the HF cache: an export needs the files."""
    resolved = resolve_model_path(model, context, where)
    if is_local(resolved):
        return Path(resolved)
    with model_errors(model, where):
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved))


def open_embedder(model_dir: Path, variant: Variant, *, max_seq_length: int | None, threads: int | None,
                  device: str | None, trust_remote_code: bool, where: str) -> OnnxEmbedder:
    """An `OnnxEmbedder` on the export of `model_dir` (made first when missing or damaged)."""
    config = read_st_config(model_dir, where)  # refuses unsupported models before any export
    _runtime_present(where)
    return _open(model_dir, "embed", variant, trust_remote_code, where, lambda export: OnnxEmbedder(
        export, config, max_seq_length=max_seq_length, threads=threads, device=device, where=where))


def open_scorer(model_dir: Path, variant: Variant, *, max_length: int | None, threads: int | None,
                device: str | None, where: str) -> OnnxScorer:
    """An `OnnxScorer` on the export of the cross-encoder in `model_dir`."""
    _runtime_present(where)
    return _open(model_dir, "score", variant, False, where, lambda export: OnnxScorer(
        export, model_dir, max_length=max_length, threads=threads, device=device, where=where))


def _runtime_present(where: str) -> None:
    """MissingDependencyError naming the `onnx` extra before anything is exported."""
    import_optional("onnxruntime", where, EXTRA)
    import_optional("tokenizers", where, EXTRA)


def _open(model_dir: Path, kind: Kind, variant: Variant, trust: bool, where: str, make: Callable[[Path], T]) -> T:
    export = find_or_export(model_dir, kind, variant, trust_remote_code=trust, where=where)
    try:
        return make(export)
    except CorruptExport as exc:
        log.warning("%s; discarding %s and exporting again", exc, export)
        discard(export)
        return make(find_or_export(model_dir, kind, variant, trust_remote_code=trust, where=where))


def find_or_export(model_dir: Path, kind: Kind, variant: Variant, *, trust_remote_code: bool = False,
                   where: str = "onnx") -> Path:
    """The folder of a complete export of `model_dir`; exports it (once, under a lock) if missing."""
    target = export_path(model_dir, kind, variant)
    if is_complete(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrismError(f"{where}: cannot create the ONNX export folder {target.parent} ({exc}); set "
                         f"PRISMRAG_CACHE_DIR to a writable folder") from exc
    with _locked(target.parent / f".{target.name}.lock"):
        if is_complete(target):  # another process finished it while this one waited
            return target
        if target.exists():
            discard(target)
        for stale in target.parent.glob(f".{target.name}.*-*"):  # left by a killed export: the lock is ours
            shutil.rmtree(stale, ignore_errors=True)
        source = find_or_export(model_dir, kind, "fp32", trust_remote_code=trust_remote_code, where=where) \
            if variant == "int8" else None

        def build(tmp: Path) -> dict[str, Any]:
            if source is not None:
                return _quantize(source, model_dir, kind, tmp, where)
            return _export_fp32(model_dir, kind, tmp, trust_remote_code, where)

        _build_atomically(target, build, model_dir, kind, variant, where)
    return target


def is_complete(export: Path) -> bool:
    """An export folder whose `export.json` was written last and whose model has the size it says."""
    try:
        meta = json.loads((export / "export.json").read_text(encoding="utf-8"))
        return (meta.get("format") == EXPORT_FORMAT and (export / "tokenizer.json").is_file()
                and (export / "model.onnx").stat().st_size == meta.get("model_bytes"))
    except (OSError, ValueError, AttributeError):
        return False


def discard(export: Path) -> None:
    """Move a damaged or unfinished export out of the way (renamed first: atomic), then delete it."""
    aside = export.with_name(f".{export.name}.discarded-{uuid.uuid4().hex[:8]}")
    with contextlib.suppress(OSError):
        export.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)


def _build_atomically(target: Path, build: Callable[[Path], dict[str, Any]], model_dir: Path, kind: Kind,
                      variant: Variant, where: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    started = time.perf_counter()
    log.info("%s: exporting %s to ONNX (%s, %s), once", where, model_dir, kind, variant)
    try:
        tmp.mkdir(parents=True)
        meta = build(tmp)
        meta.update(format=EXPORT_FORMAT, kind=kind, variant=variant, model=str(model_dir),
                    weights=files_fingerprint(model_dir), opset=OPSET,
                    model_bytes=(tmp / "model.onnx").stat().st_size, seconds=round(time.perf_counter() - started, 1))
        if variant == "int8":
            meta["quantization"] = QUANTIZATION
        (tmp / "export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.rename(tmp, target)
    except OSError as exc:
        raise PrismError(f"{where}: cannot write the ONNX export to {tmp.parent} ({exc}); free some space or set "
                         f"PRISMRAG_CACHE_DIR to another folder") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: ONNX export ready in %.1f s: %s", where, time.perf_counter() - started, target)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """A blocking cross-process lock (POSIX flock); released when the process dies, too."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the rename into place still keeps exports whole
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------ builders


def _torch_side(where: str) -> tuple[Any, Any]:
    from prismrag.support import ensure_torchvision_ops

    ensure_torchvision_ops()
    torch = import_optional("torch", where, "text")
    st = import_optional("sentence_transformers", where, "text", package="sentence-transformers")
    import_optional("onnx", where, EXTRA)  # torch's exporter writes through it
    return torch, st


def _export_fp32(model_dir: Path, kind: Kind, tmp: Path, trust_remote_code: bool, where: str) -> dict[str, Any]:
    torch, st = _torch_side(where)
    cls = st.SentenceTransformer if kind == "embed" else st.CrossEncoder
    try:
        model = cls(str(model_dir), device="cpu", trust_remote_code=trust_remote_code,
                    model_kwargs={"attn_implementation": "eager"})  # plain ops trace cleanly
        hf = model.transformers_model if kind == "score" else model[0].auto_model
        tokenizer = model.tokenizer
        names = _input_names(hf, tokenizer)
        sample = tokenizer(["a short probe", "a second, longer probe text"], padding=True, return_tensors="pt")
        output = "token_embeddings" if kind == "embed" else "logits"
        wrapper = _wrapper(torch, hf, names, "last_hidden_state" if kind == "embed" else "logits")
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        axes[output] = {0: "batch", 1: "tokens"} if kind == "embed" else {0: "batch"}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes on shape-dependent Python branches
            torch.onnx.export(wrapper.eval(), tuple(sample[n] for n in names), str(tmp / "model.onnx"),
                              dynamo=False, input_names=names, output_names=[output], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True)
        _save_tokenizer(tokenizer, tmp / "tokenizer.json")
    except PrismError:
        raise
    except Exception as exc:
        raise PrismError(f"{where}: cannot export {model_dir} to ONNX ({type(exc).__name__}: {exc}); "
                         f"check the model folder, or use backend: torch") from exc
    meta = {"pad_token_id": tokenizer.pad_token_id or 0, "truncation_side": tokenizer.truncation_side or "right",
            "inputs": names, "versions": _versions()}
    (tmp / "export.json").write_text(json.dumps(meta), encoding="utf-8")  # the runtime reads it to verify
    meta["verified_cosine"] = _verify_against_torch(model, model_dir, kind, tmp, where)
    return meta


def _input_names(hf: Any, tokenizer: Any) -> list[str]:
    import inspect

    accepted = set(inspect.signature(hf.forward).parameters)
    produced = set(tokenizer(["probe"]).keys())
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted and n in produced]


def _wrapper(torch: Any, hf: Any, names: list[str], field: str) -> Any:
    """A module taking the inputs positionally and returning one tensor (what tracing needs)."""

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *inputs: Any) -> Any:
            return getattr(self.hf(**dict(zip(names, inputs, strict=True))), field)

    return Wrapper()


def _save_tokenizer(tokenizer: Any, path: Path) -> None:
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(path))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _probe_outputs(runtime: OnnxEmbedder | OnnxScorer) -> np.ndarray:
    if isinstance(runtime, OnnxEmbedder):
        return runtime.encode(list(PROBES), prompt="")
    return runtime.predict([(PROBES[0], p) for p in PROBES]).reshape(len(PROBES), -1)


def _open_runtime(export: Path, model_dir: Path, kind: Kind, where: str) -> OnnxEmbedder | OnnxScorer:
    if kind == "embed":
        return OnnxEmbedder(export, read_st_config(model_dir, where), where=where)
    return OnnxScorer(export, model_dir, where=where)


def _agreement(ours: np.ndarray, reference: np.ndarray, kind: Kind) -> float:
    """Embeddings: the lowest cosine between rows. Scores: 1 - the largest absolute difference."""
    if kind == "score":
        return float(1.0 - np.abs(ours - reference).max())
    num = (ours * reference).sum(axis=1)
    den = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    return float((num / np.maximum(den, 1e-12)).min())


def _verify_against_torch(model: Any, model_dir: Path, kind: Kind, tmp: Path, where: str) -> float:
    if kind == "embed":
        raw = model.encode(list(PROBES), prompt="", convert_to_numpy=True, show_progress_bar=False)
    else:
        raw = model.predict([(PROBES[0], p) for p in PROBES], convert_to_numpy=True, show_progress_bar=False)
    reference = np.asarray(raw, dtype=np.float32).reshape(len(PROBES), -1)
    agreement = _agreement(_probe_outputs(_open_runtime(tmp, model_dir, kind, where)), reference, kind)
    if agreement < FP32_MIN_COSINE:
        raise PrismError(f"{where}: the ONNX export of {model_dir} does not reproduce the torch model "
                         f"(agreement {agreement:.5f} < {FP32_MIN_COSINE} on probe texts); use backend: torch")
    return round(agreement, 7)


def _quantize(source: Path, model_dir: Path, kind: Kind, tmp: Path, where: str) -> dict[str, Any]:
    import_optional("onnx", where, EXTRA)
    quantization = import_optional("onnxruntime.quantization", where, EXTRA, package="onnxruntime")
    shutil.copy2(source / "tokenizer.json", tmp / "tokenizer.json")
    shutil.copy2(source / "export.json", tmp / "export.json")
    big = (source / "model.onnx").stat().st_size > 1_500_000_000  # protobuf's 2 GB limit
    quiet = logging.getLogger()  # the quantizer logs advice about pre-processing to the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantization.quantize_dynamic(
            str(source / "model.onnx"), str(tmp / "model.onnx"), weight_type=quantization.QuantType.QInt8,
            per_channel=QUANTIZATION["per_channel"], op_types_to_quantize=QUANTIZATION["op_types"],
            use_external_data_format=big,
        )
    except Exception as exc:
        raise PrismError(f"{where}: cannot quantize the ONNX export {source} ({type(exc).__name__}: {exc}); "
                         f"use backend: onnx") from exc
    finally:
        quiet.setLevel(level)
    meta = json.loads((source / "export.json").read_text(encoding="utf-8"))
    meta = {k: meta[k] for k in ("pad_token_id", "truncation_side", "inputs", "versions") if k in meta}
    reference = _probe_outputs(_open_runtime(source, model_dir, kind, where))
    ours = _probe_outputs(_open_runtime(tmp, model_dir, kind, where))
    agreement = _agreement(ours, reference, kind)
    if kind == "embed" and agreement < INT8_MIN_COSINE:
        raise PrismError(f"{where}: int8 quantization of {model_dir} loses too much (cosine {agreement:.4f} < "
                         f"{INT8_MIN_COSINE} with the fp32 export on probe texts); use backend: onnx")
    meta["agreement_with_fp32"] = round(agreement, 5)
    return meta
