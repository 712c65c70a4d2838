"""`http-rerank`: a reranker served over HTTP in the Cohere, Jina or TEI request shape (httpx,
the `remote` extra). The key comes from `api_key: {$env: NAME}` and stays out of errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from prismrag.contracts import (
    Candidate,
    Context,
    Params,
    Query,
    QueryError,
    RerankContext,
    Reranker,
    RerankParams,
    ScoredId,
    hookimpl,
)
from prismrag.plugins._http import HttpService, RemoteParams, RemoteResponseError


class HttpRerankParams(RerankParams, RemoteParams):
    url: str = Field(pattern=r"^https?://")
    """The full endpoint, e.g. http://localhost:8080/rerank or https://api.cohere.com/v2/rerank."""
    shape: Literal["cohere", "jina", "tei"] = "cohere"
    """cohere and jina send `documents` and read `results[].relevance_score`; tei sends `texts`
    and reads a list of `{index, score}`."""
    model: str | None = None
    """The model to ask for, when the service serves several (prism serve: `recipe/stage`)."""
    text_field: str = "text"
    """The payload field holding the passage text."""


class HttpReranker(Reranker):
    """Rescores text candidates with a remote reranker; one request per stage. A candidate
    without text goes below the scored ones, in its prior order."""

    name = "http-rerank"
    Params = HttpRerankParams
    params: HttpRerankParams
    description = "Rescores text candidates with a remote reranker (Cohere, Jina or TEI request shape)"
    extra = "remote"

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.service = HttpService(self.params, self.where)

    def rerank(self, query: Query, candidates: Sequence[Candidate], ctx: RerankContext) -> list[ScoredId]:
        p = self.params
        if query.text_value is None:
            raise QueryError(f"{self.where}: http-rerank reranks text queries, not {query.modality.value}")
        texted = [c for c in candidates if isinstance(c.payload.get(p.text_field), str)]
        rest = [c for c in candidates if not isinstance(c.payload.get(p.text_field), str)]
        if not texted:
            return [ScoredId(c.id, c.score) for c in candidates]
        texts = [c.payload[p.text_field] for c in texted]
        scores = self._scores(query.text_value, texts)
        order = sorted(range(len(texted)), key=lambda i: (-scores[i], i))
        ranked = [ScoredId(texted[i].id, scores[i]) for i in order]
        floor = min(scores)
        return ranked + [ScoredId(c.id, floor) for c in rest]

    def _scores(self, query: str, texts: list[str]) -> list[float]:
        p = self.params
        body: dict[str, Any]
        if p.shape == "tei":
            body = {"query": query, "texts": texts, "raw_scores": False}
        else:
            body = {"query": query, "documents": texts, "top_n": len(texts), "return_documents": False}
        if p.model:
            body["model"] = p.model
        answer = self.service.post("", body)
        results = answer if p.shape == "tei" else (answer.get("results") if isinstance(answer, dict) else None)
        key = "score" if p.shape == "tei" else "relevance_score"
        scores: list[float | None] = [None] * len(texts)
        try:
            for r in results:  # type: ignore[union-attr]
                scores[int(r["index"])] = float(r[key])
        except (KeyError, TypeError, ValueError, IndexError):
            raise RemoteResponseError(p.url, f"expected a list of {{index, {key}}} results") from None
        missing = [i for i, s in enumerate(scores) if s is None]
        if missing:
            raise RemoteResponseError(p.url, f"no score for {len(missing)} of {len(texts)} documents")
        return [float(s) for s in scores]  # type: ignore[arg-type]

    def close(self) -> None:
        self.service.close()


@hookimpl
def register_rerankers(register):
    register(HttpReranker)
