"""Built-in rerankers: a sentence-transformers cross-encoder, and maximal marginal relevance.

The engine hands each stage the head of the candidate list (its `top_n` best); a stage returns
every candidate it was given, in its new order, with its own scores. Neither module imports
torch at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field

from prismrag.contracts import (
    Candidate,
    Context,
    MissingDependencyError,
    Params,
    Query,
    QueryError,
    RerankContext,
    Reranker,
    RerankParams,
    ScoredId,
    hookimpl,
)
from prismrag.support import LoadOnce

# ------------------------------------------------------------------------------ cross-encoder


class CrossEncoderParams(RerankParams):
    model: str
    """A local model folder, or a model id that a plugin or the Hugging Face cache resolves."""
    batch_size: int = Field(32, ge=1)
    device: str | None = None
    """"cpu", "cuda", "cuda:1", "mps"...; None lets sentence-transformers pick."""
    max_length: int | None = Field(None, ge=1)
    """Truncate query + passage to this many tokens; None keeps the model's own limit."""
    text_field: str = "text"
    """The payload field holding the passage text."""
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    """What runs the model: `torch` (sentence-transformers), `onnx` (onnxruntime, exported once
    from the local weights and cached next to the embedding cache; reranking then never imports
    torch), or `onnx-int8` (that export with int8 weights: faster on CPU, scores close to torch's)."""
    threads: int | None = Field(None, ge=1)
    """ONNX backends: how many pairs (int8) or batches (fp32) run at once, one CPU thread each
    (None: one per CPU this process may use)."""


class CrossEncoderReranker(Reranker):
    """Scores (query, passage) pairs with a sentence-transformers CrossEncoder, in one batched
    `predict`; the new score is the model's output (after its activation, a sigmoid for the
    usual one-label rerankers). Ties keep the prior order.

    A candidate whose payload lacks text in `text_field` (an image, say) is not scored: it goes
    below the scored ones, in its prior order, with the lowest score given to a scored one.
    """

    name = "cross-encoder"
    Params = CrossEncoderParams
    description = "rescores text candidates with a sentence-transformers cross-encoder"
    extra = "text"

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        from prismrag.support import check_local_model

        check_local_model(self.params.model, self.context, self.where)  # `prism validate` reports it
        self._model = LoadOnce(self._load)

    @property
    def where(self) -> str:
        return self.context.where or self.name

    def model(self) -> Any:
        """The CrossEncoder, loaded on first use (once, even from several threads)."""
        return self._model()

    def _load(self) -> Any:
        params: CrossEncoderParams = self.params  # type: ignore[assignment]
        from prismrag.support import (
            HF_MODEL_FILES,
            ensure_torchvision_ops,
            is_local,
            model_errors,
            resolve_model_path,
            torch_device,
        )

        if params.backend != "torch":
            return self._load_onnx(params)
        path = resolve_model_path(params.model, self.context, self.where, HF_MODEL_FILES)
        try:
            ensure_torchvision_ops()
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise MissingDependencyError(self.where, "sentence_transformers", "text") from exc
        device = torch_device(params.device, self.where)
        with model_errors(params.model, self.where, remote=not is_local(path)):
            model = CrossEncoder(path, device=device, max_length=params.max_length)
        return self._one_label(model, params.model)

    def _load_onnx(self, params: CrossEncoderParams) -> Any:
        from prismrag.support import model_errors

        from ._onnx_export import local_model_folder, open_scorer

        folder = local_model_folder(params.model, self.context, self.where)
        with model_errors(params.model, self.where, remote=False):
            model = open_scorer(folder, "int8" if params.backend == "onnx-int8" else "fp32", max_length=params.max_length,
                                threads=params.threads, device=params.device, where=self.where)
        return self._one_label(model, params.model)

    def _one_label(self, model: Any, name: str) -> Any:
        labels = getattr(model, "num_labels", 1)
        if labels != 1:
            raise QueryError(
                f"{self.where}: model {name!r} has {labels} output labels; a reranker needs a "
                f"model with one relevance score per pair (num_labels=1)"
            )
        return model

    def rerank(self, query: Query, candidates: Sequence[Candidate], ctx: RerankContext) -> list[ScoredId]:
        params: CrossEncoderParams = self.params  # type: ignore[assignment]
        text = query.text_value
        if text is None:
            raise QueryError(
                f"{self.where}: the cross-encoder reranks text queries only, not a "
                f"{query.modality.value} query; drop this stage or query with text"
            )
        if not candidates:
            return []
        passages = [c.payload.get(params.text_field) for c in candidates]
        has_text = np.array([isinstance(p, str) for p in passages])
        if not has_text.any():
            raise QueryError(
                f"{self.where}: none of the {len(candidates)} candidates has text in payload field "
                f"{params.text_field!r}; set `text_field` to the field that holds the passage"
            )
        texted = np.flatnonzero(has_text)
        pairs = [(text, passages[i]) for i in texted]
        if params.backend != "torch":
            raw = self.model().predict(pairs, batch_size=params.batch_size)
        else:
            raw = self.model().predict(
                pairs, batch_size=params.batch_size, show_progress_bar=False, convert_to_numpy=True
            )
        scores = np.asarray(raw, dtype=np.float64).reshape(len(pairs))
        order = texted[np.argsort(-scores, kind="stable")]  # stable: ties keep the prior order
        by_pos = dict(zip(texted.tolist(), scores.tolist(), strict=True))
        floor = float(scores.min())
        out = [ScoredId(candidates[i].id, by_pos[i]) for i in order.tolist()]
        out += [ScoredId(candidates[i].id, floor) for i in np.flatnonzero(~has_text).tolist()]
        return out


# ---------------------------------------------------------------------------------------- mmr


class MMRParams(RerankParams):
    model_config = ConfigDict(populate_by_name=True)

    lambda_: float = Field(0.5, alias="lambda", ge=0.0, le=1.0)
    """Relevance against diversity: 1.0 ranks by relevance alone, 0.0 by diversity alone."""
    retriever: str
    """The dense retriever whose stored vectors and query vector measure similarity."""


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def mmr_order(query: np.ndarray, vectors: np.ndarray, lambda_: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy MMR over cosine similarity: the selection order and each pick's objective.

    At each step picks argmax_i  λ·cos(q, v_i) - (1-λ)·max_{j selected} cos(v_i, v_j), the max
    term being 0 for the first pick. Ties go to the earlier row. O(n²·d) in n numpy steps,
    keeping a running max-similarity array instead of a pairwise loop.
    """
    v = _unit_rows(np.asarray(vectors, dtype=np.float64))
    q = _unit_rows(np.asarray(query, dtype=np.float64).reshape(-1))
    n = v.shape[0]
    relevance = lambda_ * (v @ q)
    max_sim = np.zeros(n)  # for the first pick the diversity term is 0
    taken = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    objective = np.empty(n)
    for step in range(n):
        value = np.where(taken, -np.inf, relevance - (1.0 - lambda_) * max_sim)
        best = int(np.argmax(value))
        order[step], objective[step] = best, value[best]
        taken[best] = True
        sim = v @ v[best]
        max_sim = sim if step == 0 else np.maximum(max_sim, sim)
    return order, objective


class MMRReranker(Reranker):
    """Maximal marginal relevance: reorders candidates to trade relevance for diversity.

    Relevance is the cosine between the query vector and each candidate's stored vector of
    `retriever`; redundancy is a candidate's highest cosine to those already picked. The score
    returned is the MMR objective at the time of selection,
    λ·cos(q, d) - (1-λ)·max_{s picked before} cos(d, s) (λ·cos(q, d) for the first pick); it
    can rise when similarities are negative, so it is not sorted.
    """

    name = "mmr"
    Params = MMRParams
    params: MMRParams
    description = "maximal marginal relevance: diversify candidates with a dense retriever's vectors"

    def rerank(self, query: Query, candidates: Sequence[Candidate], ctx: RerankContext) -> list[ScoredId]:
        params = self.params
        if not candidates:
            return []
        where = self.context.where or self.name
        q = np.asarray(ctx.query_vector(params.retriever), dtype=np.float64).reshape(-1)
        vectors = np.asarray(ctx.vectors(params.retriever, [c.id for c in candidates]), dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape != (len(candidates), q.shape[0]):
            raise QueryError(
                f"{where}: retriever {params.retriever!r} gave vectors of shape {vectors.shape} for "
                f"{len(candidates)} candidates and a query of dimension {q.shape[0]}; MMR needs one "
                f"dense vector per candidate"
            )
        order, objective = mmr_order(q, vectors, params.lambda_)
        return [ScoredId(candidates[i].id, float(s)) for i, s in zip(order.tolist(), objective.tolist(), strict=True)]


@hookimpl
def register_rerankers(register: Callable[[type[Reranker]], None]) -> None:
    for cls in (CrossEncoderReranker, MMRReranker):
        register(cls)
