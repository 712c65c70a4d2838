"""The `maxsim` reranker: late-interaction rescoring of any retriever's candidates with the
stored token vectors of a multi-vector retriever.

```yaml
rerankers:
  - {use: maxsim, retriever: colbert, top_n: 100}
```

The score is MaxSim: for each query token vector, its best similarity (cosine by default) among
the candidate's token vectors, summed over the query's tokens. The named retriever supplies the
query's token vectors (its encoder) and each candidate's stored ones; a candidate it does not
store is an error naming it. A dense retriever works too (one vector each side: plain cosine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from prismrag.contracts import (
    Candidate,
    Query,
    RerankContext,
    Reranker,
    RerankParams,
    ScoredId,
    hookimpl,
    score_rows,
)


class MaxSimParams(RerankParams):
    retriever: str
    """The multi-vector retriever whose stored token vectors (and query encoder) score candidates."""
    similarity: Literal["cosine", "dot"] = "cosine"
    """Token similarity inside MaxSim (cosine re-normalises both sides)."""


class MaxSimReranker(Reranker):
    """Rescores candidates by MaxSim over a multi-vector retriever's token vectors; ties keep the
    prior order."""

    name = "maxsim"
    Params = MaxSimParams
    params: MaxSimParams
    description = "late-interaction MaxSim rescoring with a multi-vector retriever's token vectors"

    def rerank(self, query: Query, candidates: Sequence[Candidate], ctx: RerankContext) -> list[ScoredId]:
        p = self.params
        if not candidates:
            return []
        q = np.atleast_2d(np.asarray(ctx.query_vector(p.retriever), dtype=np.float64))
        rows = [np.atleast_2d(np.asarray(r, dtype=np.float64)) for r in ctx.rows(p.retriever, [c.id for c in candidates])]
        scores = maxsim(q, rows, p.similarity)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
        return [ScoredId(candidates[i].id, float(scores[i])) for i in order]


def maxsim(query: np.ndarray, docs: Sequence[np.ndarray], similarity: str = "cosine") -> np.ndarray:
    """MaxSim of one query matrix [n, d] against each document matrix [m_i, d]."""
    return score_rows(query, list(docs), "multi", similarity)


@hookimpl
def register_rerankers(register: Callable[[type[Reranker]], None]) -> None:
    register(MaxSimReranker)
