"""Private: sentence-transformers models run by onnxruntime, without torch.

Hand-written on purpose. sentence-transformers' own ONNX backend (`backend="onnx"`) imports
torch, transformers and the rest of sentence-transformers before it runs anything (about 15 s
of imports on a 2-core machine, more than the whole query), and it exports through optimum-onnx,
whose releases pin transformers < 4.58. This module needs numpy, `tokenizers` and `onnxruntime`
only: it reads the model folder's sentence-transformers configuration (modules.json, the
Pooling and Normalize modules, max_seq_length, lower-casing, prompts) and tokenizes, pools and
normalises itself, the way sentence-transformers does for plain text.

An export (made by `_onnx_export`, which may import torch, once) is a folder holding the
transformer as `model.onnx`, the tokenizer exactly as transformers loads it as
`tokenizer.json`, and `export.json` (how it was made, and the tokenizer's padding settings).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prismrag.contracts import PrismError
from prismrag.support import import_optional

EXTRA = "onnx"
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_ACTIVATIONS = {
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Identity": lambda x: x,
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0.0),
}
"""Cross-encoder activations a config may name (`torch.nn.modules.activation.Sigmoid`...)."""


def _read_json(path: Path, where: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PrismError(f"{where}: cannot read {path} ({exc})") from exc
    if not isinstance(data, dict):
        raise PrismError(f"{where}: {path} does not hold a JSON object")
    return data


def _optional_json(path: Path, where: str) -> dict[str, Any]:
    return _read_json(path, where) if path.is_file() else {}


# --------------------------------------------------------------------------- the folder's config


@dataclass(frozen=True)
class StConfig:
    """What a sentence-transformers folder says about turning token states into a vector."""

    pooling: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    token_dimension: int | None = None

    @property
    def dimension(self) -> int | None:
        return None if self.token_dimension is None else self.token_dimension * len(self.pooling)


def _module_kind(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def read_st_config(folder: Path, where: str) -> StConfig:
    """The pooling, normalisation, length and prompt settings of a sentence-transformers folder.

    A folder without modules.json is a bare transformers model: sentence-transformers then adds
    mean pooling, and so does this. Modules other than Transformer, Pooling and Normalize (Dense,
    Router, custom code) are refused, naming them: use the torch backend for those models.
    """
    modules_path = folder / "modules.json"
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8")) if modules_path.is_file() else []
    except (OSError, ValueError) as exc:
        raise PrismError(f"{where}: cannot read {modules_path} ({exc})") from exc
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise PrismError(f"{where}: {modules_path} does not hold a list of modules")
    kinds = [_module_kind(m) for m in modules]
    unsupported = sorted({k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")})
    if unsupported or (kinds and kinds[0] != "Transformer"):
        raise PrismError(
            f"{where}: the ONNX backend runs sentence-transformers models made of a Transformer, Pooling "
            f"and Normalize modules; {folder} has {', '.join(kinds) or 'no modules'}. Use backend: torch "
            f"for this model."
        )
    transformer_dir = folder / str(modules[0].get("path", "")) if modules else folder
    sbert = _optional_json(transformer_dir / "sentence_bert_config.json", where)
    task = sbert.get("transformer_task")
    if task not in (None, "feature-extraction"):
        raise PrismError(f"{where}: the ONNX backend runs feature-extraction transformers, not {task!r}; use backend: torch")
    modality = sbert.get("modality_config")
    if isinstance(modality, dict) and set(modality) - {"text"}:
        raise PrismError(f"{where}: the ONNX backend embeds text only; {folder} takes {', '.join(modality)}; use backend: torch")

    pooling, include_prompt, token_dim = ("mean",), True, None
    for entry, kind in zip(modules, kinds, strict=True):
        if kind == "Pooling":
            pooling, include_prompt, token_dim = _pooling(folder / str(entry.get("path", "")), where)
    st = _optional_json(folder / "config_sentence_transformers.json", where)
    prompts = {str(k): str(v) for k, v in (st.get("prompts") or {}).items() if isinstance(v, str)}
    if token_dim is None:
        token_dim = _optional_json(transformer_dir / "config.json", where).get("hidden_size")
    return StConfig(
        pooling=pooling,
        include_prompt=include_prompt,
        normalize="Normalize" in kinds,
        max_seq_length=_max_seq_length(transformer_dir, sbert, where),
        do_lower_case=bool(sbert.get("do_lower_case", False)),
        prompts=prompts,
        default_prompt_name=st.get("default_prompt_name") or None,
        token_dimension=int(token_dim) if isinstance(token_dim, int) else None,
    )


def _pooling(folder: Path, where: str) -> tuple[tuple[str, ...], bool, int | None]:
    cfg = _read_json(folder / "config.json", where)
    mode = cfg.get("pooling_mode")
    if mode is None:
        modes = tuple(m for k, m in _LEGACY_POOLING.items() if cfg.get(k)) or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad:
        raise PrismError(f"{where}: pooling mode {bad[0]!r} in {folder} is not one of {', '.join(POOLING_MODES)}")
    dim = cfg.get("embedding_dimension", cfg.get("word_embedding_dimension"))
    return modes, bool(cfg.get("include_prompt", True)), dim if isinstance(dim, int) else None


def _max_seq_length(folder: Path, sbert: dict[str, Any], where: str) -> int | None:
    """sentence_bert_config's max_seq_length; else the tokenizer's model_max_length capped by
    the model's max_position_embeddings, as sentence-transformers sets it."""
    if isinstance(sbert.get("max_seq_length"), int):
        return int(sbert["max_seq_length"])
    limit = _optional_json(folder / "tokenizer_config.json", where).get("model_max_length")
    positions = _optional_json(folder / "config.json", where).get("max_position_embeddings")
    candidates = [v for v in (limit, positions) if isinstance(v, int | float) and 0 < v < 10**9]  # -1: no limit
    return int(min(candidates)) if candidates else None


# ---------------------------------------------------------------------------- onnxruntime


def import_onnxruntime(where: str) -> Any:
    """The `onnxruntime` module, or MissingDependencyError naming the `onnx` extra."""
    return import_optional("onnxruntime", where, EXTRA)


def cpu_count() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def open_session(model: Path, *, device: str | None, where: str) -> Any:
    """An onnxruntime session on `model` that runs each call on one thread: the callers run
    several calls at once instead (measured on 2 cores: int8 MiniLM 40 docs/s with two one-thread
    calls in parallel, against 23 with one call on two threads, which spend half their time
    synchronising on the small matrices of a single text)."""
    ort = import_onnxruntime(where)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initializers are not the user's business
    try:
        return ort.InferenceSession(str(model), options, providers=_providers(ort, device, where))
    except Exception as exc:  # onnxruntime raises its own classes for a damaged or foreign file
        raise CorruptExport(f"{where}: onnxruntime cannot load {model} ({type(exc).__name__}: {exc})") from exc


def _providers(ort: Any, device: str | None, where: str) -> list[Any]:
    if device in (None, "cpu"):
        return ["CPUExecutionProvider"]
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise PrismError(f"{where}: the ONNX backend runs on 'cpu' or 'cuda[:N]', not {device!r}; use backend: torch")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise PrismError(
            f"{where}: device {device!r} needs onnxruntime with CUDA (pip install onnxruntime-gpu); "
            f"the installed onnxruntime offers {', '.join(ort.get_available_providers())}"
        )
    return [("CUDAExecutionProvider", {"device_id": int(match.group(1) or 0)}), "CPUExecutionProvider"]


class CorruptExport(PrismError):
    """An export folder that onnxruntime or the tokenizer cannot load: made again by the caller."""


def load_tokenizer(export: Path, *, max_length: int | None, do_lower_case: bool, where: str) -> Any:
    """The export's tokenizer, truncating to `max_length` (longest first) and never padding."""
    tokenizers = import_optional("tokenizers", where, EXTRA)
    try:
        tok = tokenizers.Tokenizer.from_file(str(export / "tokenizer.json"))
    except Exception as exc:
        raise CorruptExport(f"{where}: cannot load the tokenizer of {export} ({exc})") from exc
    meta = read_export_meta(export, where)
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length, strategy="longest_first", direction=meta.get("truncation_side", "right"))
    else:
        tok.no_truncation()
    if do_lower_case and not _lowercases(tok):
        tok.normalizer = tokenizers.normalizers.Sequence(
            [tokenizers.normalizers.Lowercase(), *([tok.normalizer] if tok.normalizer is not None else [])]
        )
    return tok


def _lowercases(tok: Any) -> bool:
    """The check sentence-transformers makes: a Lowercase normalizer, alone or in a Sequence."""
    norm = json.loads(tok.to_str()).get("normalizer") or {}
    parts = norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm]
    return any(isinstance(p, dict) and p.get("type") == "Lowercase" for p in parts)


def read_export_meta(export: Path, where: str) -> dict[str, Any]:
    try:
        return _read_json(export / "export.json", where)
    except PrismError as exc:
        raise CorruptExport(str(exc)) from exc


def _pad(encodings: Sequence[Any], pad_id: int) -> dict[str, np.ndarray]:
    """Right-padded int64 input ids, attention mask and token type ids of a batch."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros((len(encodings), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = 1
        types[row, :n] = enc.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class _Graph:
    """An export's session and tokenizer, run over length-sorted slices of a batch, `threads`
    slices at a time (one CPU thread each; one at a time on a GPU)."""

    def __init__(self, export: Path, *, max_length: int | None, do_lower_case: bool, threads: int | None,
                 device: str | None, where: str):
        self.meta = read_export_meta(export, where)
        self.tokenizer = load_tokenizer(export, max_length=max_length, do_lower_case=do_lower_case, where=where)
        self.session = open_session(export / "model.onnx", device=device, where=where)
        self.workers = 1 if device not in (None, "cpu") else threads or cpu_count()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = set(self.inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise CorruptExport(f"{where}: {export / 'model.onnx'} takes inputs {sorted(unknown)} this runtime does not feed")
        self.pad_id = int(self.meta.get("pad_token_id") or 0)
        # Dynamic quantization scales activations over the whole call (batch mates and padding
        # included): one input per call keeps an input's vector independent of its neighbours,
        # and costs nothing on CPU (measured: as fast as slices of 32, or faster).
        self.one_per_call = self.meta.get("variant") == "int8"

    def run(self, inputs: Sequence[str | tuple[str, str]], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(positions, attention mask, first output) per slice: everything is tokenized at once,
        then slices of similar length (little padding) go through the graph."""
        encodings = self.tokenizer.encode_batch(list(inputs))
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        step = 1 if self.one_per_call else min(batch_size, -(-len(order) // self.workers))  # every worker busy
        slices = [order[start : start + step] for start in range(0, len(order), step)]

        def run_one(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            arrays = _pad([encodings[i] for i in positions], self.pad_id)
            output = self.session.run(None, {name: arrays[name] for name in self.inputs})[0]
            return positions, arrays["attention_mask"], output

        if len(slices) == 1 or self.workers == 1:  # a query: no hand-over to a worker thread
            yield from map(run_one, slices)
        else:
            yield from self._executor().map(run_one, slices)  # onnxruntime releases the GIL

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="prism-onnx")
            return self._pool


# ---------------------------------------------------------------------------------- embedder


class OnnxEmbedder:
    """Text embeddings from an export of a sentence-transformers model: what
    `SentenceTransformer.encode` gives for plain text, from onnxruntime."""

    def __init__(self, export: Path, config: StConfig, *, max_seq_length: int | None = None,
                 threads: int | None = None, device: str | None = None, where: str = "onnx"):
        self.config = config
        self.max_seq_length = max_seq_length or config.max_seq_length
        self.prompts = dict(config.prompts)
        self.default_prompt_name = config.default_prompt_name
        self._graph = _Graph(export, max_length=self.max_seq_length, do_lower_case=config.do_lower_case,
                             threads=threads, device=device, where=where)
        self._prompt_lengths: dict[str, int] = {}

    def get_embedding_dimension(self) -> int | None:
        return self.config.dimension

    def resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        """A literal prompt wins, then a named one, then the model's default (as sentence-transformers)."""
        if prompt is not None:
            return prompt
        name = prompt_name if prompt_name is not None else self.default_prompt_name
        return self.prompts.get(name) if name is not None else None

    def _prompt_length(self, prompt: str) -> int:
        """Tokens of the prompt without a trailing special token ([SEP], </s>)."""
        if prompt not in self._prompt_lengths:
            enc = self._graph.tokenizer.encode(prompt)
            n = len(enc.ids)
            if n and enc.special_tokens_mask[-1]:
                n -= 1
            self._prompt_lengths[prompt] = n
        return self._prompt_lengths[prompt]

    def encode(self, texts: Sequence[str], *, prompt: str | None = None, prompt_name: str | None = None,
               batch_size: int = 32) -> np.ndarray:
        """float32 [n, d]: pooled (and normalised, when the model has a Normalize module)."""
        prompt = self.resolve_prompt(prompt, prompt_name)
        inputs = [prompt + t for t in texts] if prompt else list(texts)
        skip = self._prompt_length(prompt) if prompt and not self.config.include_prompt else 0
        vectors = np.zeros((0, self.config.dimension or 0), np.float32)
        for positions, mask, states in self._graph.run(inputs, batch_size):
            pooled = pool(states.astype(np.float32, copy=False), mask, self.config.pooling, skip)
            if len(vectors) != len(inputs):
                vectors = np.empty((len(inputs), pooled.shape[1]), dtype=np.float32)
            vectors[positions] = pooled
        if self.config.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def pool(states: np.ndarray, mask: np.ndarray, modes: Sequence[str], skip: int = 0) -> np.ndarray:
    """sentence-transformers' Pooling over right-padded token states [b, t, h]; `skip` leading
    tokens (a prompt, for models that exclude it) count as padding."""
    if skip:
        mask = mask.copy()
        mask[:, :skip] = 0
    m = mask[:, :, None].astype(np.float32)
    parts = []
    for mode in modes:
        if mode == "cls":
            first = mask.argmax(axis=1)
            parts.append(states[np.arange(len(states)), first])
        elif mode == "max":
            parts.append(np.where(m > 0, states, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            count = np.maximum(m.sum(axis=1), 1e-9)
            parts.append((states * m).sum(axis=1) / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "weightedmean":
            w = m * np.arange(1, states.shape[1] + 1, dtype=np.float32)[None, :, None]
            parts.append((states * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9))
        elif mode == "lasttoken":
            last = np.maximum(mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1), 0)
            last = np.where(mask.any(axis=1), last, mask.shape[1] - 1)
            parts.append(states[np.arange(len(states)), last] * mask[np.arange(len(states)), last][:, None])
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------ scorer


class OnnxScorer:
    """(query, passage) scores from an export of a sequence-classification model: what
    sentence-transformers' `CrossEncoder.predict` gives, activation included."""

    def __init__(self, export: Path, model_dir: Path, *, max_length: int | None = None,
                 threads: int | None = None, device: str | None = None, where: str = "onnx"):
        config = _optional_json(model_dir / "config.json", where)
        self.num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 1) or 1)
        self.activation = _activation(config, self.num_labels, where)
        limit = max_length or _max_seq_length(model_dir, {}, where)
        self._graph = _Graph(export, max_length=limit, do_lower_case=False, threads=threads, device=device, where=where)

    def predict(self, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32) -> np.ndarray:
        """float32 [n] (one label) or [n, labels]."""
        out = np.zeros((len(pairs), self.num_labels), dtype=np.float32)
        for positions, _, logits in self._graph.run([(a, b) for a, b in pairs], batch_size):
            out[positions] = logits.reshape(len(positions), -1)
        scores = self.activation(out).astype(np.float32)
        return scores[:, 0] if self.num_labels == 1 else scores


def _activation(config: dict[str, Any], labels: int, where: str) -> Any:
    st = config.get("sentence_transformers")
    path = (st.get("activation_fn") if isinstance(st, dict) else None) or config.get("sbert_ce_default_activation_function")
    if not path:
        return _ACTIVATIONS["Sigmoid" if labels == 1 else "Identity"]
    name = str(path).rsplit(".", 1)[-1]
    if not str(path).startswith("torch.") or name not in _ACTIVATIONS:
        raise PrismError(
            f"{where}: the model's activation {path!r} is not one the ONNX backend knows "
            f"({', '.join(_ACTIVATIONS)}); use backend: torch"
        )
    return _ACTIVATIONS[name]

