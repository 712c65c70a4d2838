"""The `sparse-encoder` encoder: learned sparse term weights (SPLADE and similar) from
sentence-transformers' `SparseEncoder`, stored in a `sparse` index and scored by dot product.

```yaml
encoder: {use: sparse-encoder, model: naver/splade-cocondenser-ensembledistil, max_active_dims: 256}
```

A masked-language-model folder (BertForMaskedLM) loads as SPLADE (MLM head, then max pooling of
log(1 + relu(logits)) over tokens). Queries use `encode_query`, documents `encode_document`
(the model's own prompts and, for inference-free models, its query-side router). The term ids
are the model's vocabulary ids. Importing this module imports neither torch nor
sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from prismrag import Encoder, Modality, hookimpl
from prismrag.contracts import Content, Role, SparseBatch, as_text

from ._st import load_model
from ._st_base import STEncoder, STParams


class SparseEncoderParams(STParams):
    model: str
    """A model id (Hugging Face hub), or a path to a SparseEncoder or masked-language-model folder."""
    max_active_dims: int | None = Field(None, gt=0)
    """Keep only the N largest term weights of each vector (None: the model's setting)."""


class SparseEncoder(STEncoder):
    """Learned sparse vectors from a sentence-transformers SparseEncoder, loaded lazily."""

    name = "sparse-encoder"
    Params = SparseEncoderParams
    description = "Learned sparse term weights (SPLADE-style) from a sentence-transformers SparseEncoder."
    output = "sparse"
    metric = "dot"
    sparse_idf = False
    max_batch = 1024

    params: SparseEncoderParams

    def _load(self) -> Any:
        return load_model(self, "SparseEncoder", "5")

    def dimension(self) -> int | None:
        return None

    def vocabulary_size(self) -> int:
        """The number of term ids the model can weight (its vocabulary)."""
        return int(self.model.get_embedding_dimension())

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> SparseBatch:
        p, model = self.params, self.model
        texts = [as_text(c) for c in contents]
        method = model.encode_query if role == "query" else model.encode_document
        out = method(
            texts,
            prompt=p.query_prompt if role == "query" else p.document_prompt,
            prompt_name=p.query_prompt_name if role == "query" else p.document_prompt_name,
            batch_size=p.batch_size, show_progress_bar=False, convert_to_tensor=True,
            convert_to_sparse_tensor=True, max_active_dims=p.max_active_dims,
        )
        coo = out.coalesce().cpu()
        rows, cols = coo.indices().numpy()
        values = coo.values().numpy().astype(np.float32)
        keep = values > 0
        rows, cols, values = rows[keep], cols[keep], values[keep]
        order = np.lexsort((cols, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(texts)), out=indptr[1:])
        return SparseBatch(indptr, cols.astype(np.int64), values)


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(SparseEncoder)
