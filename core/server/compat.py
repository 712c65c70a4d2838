"""The endpoints other ecosystems speak: OpenAI `/v1/embeddings` and `/v1/models`, and
`/v1/rerank` in the Cohere/Jina shape (TEI's `texts` accepted too)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI

from ..contracts import Candidate, RerankContext
from ..engine import Engine
from ..errors import QueryError
from ..types import Modality, Query, Row, Vectors, rows_of
from .schemas import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelList,
    RerankRequest,
    RerankResponse,
    RerankResult,
)
from .security import ServerError
from .state import Served

QUERY_TYPES = {"query", "search_query"}


def add_routes(app: FastAPI, served: Served, run: Any, config: Any, errors: dict[int | str, dict[str, Any]]) -> None:
    @app.get("/v1/models", response_model=ModelList, responses=errors)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "prismrag", "created": 0}
                                           for m in served.models()]}

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=errors)
    async def embeddings(body: EmbeddingsRequest) -> dict[str, Any]:
        engine, encoder = served.retriever(body.model)
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise ServerError(422, "`input` is empty")
        role = "query" if body.input_type in QUERY_TYPES else "document"
        if encoder.output != "dense":
            raise ServerError(400, f"{body.model} gives {encoder.output} vectors; /v1/embeddings serves dense ones")
        if not encoder.accepts(Modality.TEXT, role):
            raise ServerError(400, f"{body.model} does not embed text {role}s")
        vectors = await run(lambda: encoder.encode_batch(texts, Modality.TEXT, role), config.timeout)
        matrix = np.asarray(vectors, dtype=np.float32)
        if body.dimensions is not None and body.dimensions != matrix.shape[1]:
            raise ServerError(400, f"{body.model} gives {matrix.shape[1]}-dimensional vectors; leave `dimensions` "
                                   f"out or set it to {matrix.shape[1]}")
        data = [{"object": "embedding", "index": i, "embedding": _encode(row, body.encoding_format)}
                for i, row in enumerate(matrix)]
        words = sum(len(t.split()) for t in texts)
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": words, "total_tokens": words}}

    @app.post("/rerank", response_model=list[RerankResult], responses=errors)
    async def rerank_tei(body: RerankRequest) -> list[dict[str, Any]]:
        """TEI's native shape: a bare list of `{index, score, text?}`."""
        answer = await rerank(body)
        return [{k: v for k, v in r.items() if k != "document"} for r in answer["results"]]

    @app.post("/v1/rerank", response_model=RerankResponse, responses=errors)
    async def rerank(body: RerankRequest) -> dict[str, Any]:
        if (body.documents is None) == (body.texts is None):
            raise ServerError(422, "give the candidates as `documents` (Cohere, Jina) or `texts` (TEI), one of them")
        texts = [d if isinstance(d, str) else d.text for d in (body.documents or body.texts or [])]
        engine, reranker, model = served.reranker(body.model)
        if not texts:
            return {"model": model, "results": []}
        query = Query.text(body.query)
        candidates = [Candidate(str(i), 0.0, {"text": t}) for i, t in enumerate(texts)]
        ctx = TextsContext(engine, query, texts)
        ranked = await run(lambda: reranker.rerank(query, candidates, ctx), config.timeout)
        results = []
        for s in ranked[: body.top_n or len(ranked)]:
            i = int(s.id)
            doc = {"text": texts[i]} if body.return_documents else None
            results.append({"index": i, "relevance_score": float(s.score), "score": float(s.score), "document": doc,
                            "text": texts[i] if body.return_text else None})
        return {"model": model, "results": results}


def _encode(row: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return row.tolist()


class TextsContext(RerankContext):
    """Vectors for rerankers that ask for them (MMR): the recipe's encoders embed the texts."""

    def __init__(self, engine: Engine, query: Query, texts: Sequence[str]):
        self.engine, self.query, self.texts = engine, query, texts

    def _encoder(self, retriever: str) -> Any:
        if retriever not in self.engine.recipe.retrievers:
            raise QueryError(f"no retriever named {retriever!r}; retrievers: {', '.join(self.engine.recipe.retrievers)}")
        return self.engine.recipe.retrievers[retriever].encoder

    def rows(self, retriever: str, ids: Sequence[str]) -> list[Row]:
        encoder = self._encoder(retriever)
        return rows_of(encoder.encode_batch([self.texts[int(i)] for i in ids], Modality.TEXT, "document"))

    def query_vectors(self, retriever: str) -> Vectors:
        return self._encoder(retriever).encode_query(self.query)
