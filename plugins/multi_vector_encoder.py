"""The `multi-vector` encoder: token vectors for late interaction (ColBERT, PyLate models) from
sentence-transformers' `MultiVectorEncoder`, stored in a `multi` index and scored by MaxSim.

```yaml
encoder: {use: multi-vector, model: lightonai/answerai-colbert-small-v1, pool_factor: 2}
encoder: {use: multi-vector, model: lightonai/GTE-ModernColBERT-v1, truncate_dim: 64}
```

Queries and documents are encoded asymmetrically (`encode_query` / `encode_document`: the
model's own prompts, query expansion and punctuation skip-list); `pool_factor` > 1 merges similar
document tokens (hierarchical clustering, about 1/pool_factor of them kept), queries are never
pooled. Importing this module imports neither torch nor sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from prismrag import Encoder, Modality, hookimpl
from prismrag.contracts import Content, MultiBatch, PrismError, Role, as_text

from ._st import load_model
from ._st_base import STEncoder, STParams


class MultiVectorParams(STParams):
    model: str
    """A model id (Hugging Face hub) or a path to a sentence-transformers MultiVectorEncoder folder."""
    query_prompt: str | None = None
    """A literal prefix for queries (default: the model's own `query` prompt)."""
    document_prompt: str | None = None
    """A literal prefix for documents (default: the model's own `document` prompt)."""
    pool_factor: float = Field(1.0, ge=1.0, le=64.0)
    """Keep about 1/pool_factor of each document's token vectors (hierarchical token pooling)."""
    truncate_dim: int | None = Field(None, gt=0)
    """Keep the first N dimensions of each token vector (re-normalised)."""


class MultiVectorEncoder(STEncoder):
    """Token vectors from a sentence-transformers MultiVectorEncoder, loaded lazily."""

    name = "multi-vector"
    Params = MultiVectorParams
    description = (
        "Late-interaction token vectors (ColBERT/PyLate models via sentence-transformers' "
        "MultiVectorEncoder), query/document prompts, token pooling, optional truncate_dim."
    )
    output = "multi"
    metric = "cosine"
    max_batch = 1024

    params: MultiVectorParams
    _pooler: Any = None  # token pooling for documents, made with the model when pool_factor > 1

    def _load(self) -> Any:
        p = self.params
        where = self.context.where or self.name
        model = load_model(self, "MultiVectorEncoder", "6")
        full = model.get_embedding_dimension()
        if p.truncate_dim is not None and full is not None and p.truncate_dim > full:
            raise PrismError(f"{where}: truncate_dim {p.truncate_dim} exceeds the model's token dimension {full}")
        if p.pool_factor > 1:
            from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling

            self._pooler = HierarchicalTokenPooling(pool_factor=p.pool_factor)
        return model

    def dimension(self) -> int:
        model = self.model
        return int(self.params.truncate_dim or model.get_embedding_dimension())

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> MultiBatch:
        p, model = self.params, self.model
        texts = [as_text(c) for c in contents]
        method = model.encode_query if role == "query" else model.encode_document
        prompt = p.query_prompt if role == "query" else p.document_prompt
        prompt_name = p.query_prompt_name if role == "query" else p.document_prompt_name
        extra: dict[str, Any] = {}
        if self._pooler is not None and role == "document":
            extra["token_pooling"] = self._pooler
        out = method(
            texts, prompt=prompt, prompt_name=prompt_name, batch_size=p.batch_size, show_progress_bar=False,
            convert_to_numpy=True, truncate_dim=p.truncate_dim, **extra,
        )
        matrices = [np.ascontiguousarray(np.asarray(m, dtype=np.float32)) for m in out]
        empty = [i for i, m in enumerate(matrices) if m.ndim != 2 or m.shape[0] == 0]
        if empty:
            raise PrismError(f"{self.context.where or self.name}: no token vectors for input(s) {empty[:3]} (empty text?)")
        return MultiBatch(matrices)


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(MultiVectorEncoder)
