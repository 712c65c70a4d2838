"""Encoders served by another process over HTTP (httpx, the `remote` extra):

- `openai-embeddings`: any OpenAI-compatible `/embeddings` (OpenAI, TEI, Infinity, vLLM, Ollama,
  `prism serve` itself);
- `tei` and `tei-sparse`: Text Embeddings Inference's native `/embed` and `/embed_sparse`.

Keys come from `api_key: {$env: NAME}` and are kept out of fingerprints, logs and errors.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from prismrag.contracts import (
    Content,
    Context,
    Encoder,
    Modality,
    Params,
    Role,
    SparseBatch,
    hookimpl,
)
from prismrag.plugins._http import (
    CONNECTION_PARAMS,
    HttpService,
    RemoteParams,
    RemoteResponseError,
    expect,
)

_BATCHING = frozenset({"batch_size"})


class _RemoteEncoder(Encoder):
    """Splits into `batch_size` requests, sends up to `max_concurrency` at once, owns the client."""

    extra = "remote"
    max_batch = 4096
    fingerprint_excludes = Encoder.fingerprint_excludes | CONNECTION_PARAMS | _BATCHING
    path = ""

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.service = HttpService(self.params, self.where)  # type: ignore[arg-type]
        self._dimension: int | None = getattr(self.params, "dimension", None)
        self._dim_lock = threading.Lock()

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Any:
        texts = [self.prefix(role) + (c if isinstance(c, str) else c.read().decode("utf-8", "replace")) for c in contents]
        size = self.params.batch_size  # type: ignore[attr-defined]
        parts = self.service.map(lambda chunk: self.request(chunk, role), [texts[i : i + size] for i in range(0, len(texts), size)])
        return self.join(parts)

    def prefix(self, role: Role) -> str:
        return str(getattr(self.params, f"{role}_prefix", ""))

    def request(self, texts: list[str], role: Role) -> Any:
        raise NotImplementedError

    def join(self, parts: list[Any]) -> Any:
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, self._dimension or 0), np.float32)

    def dense(self, rows: list[Any], url: str, n: int) -> np.ndarray:
        expect(len(rows) == n, url, f"returned {len(rows)} vectors for {n} inputs")
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise RemoteResponseError(url, "the vectors are not lists of numbers of one length") from None
        expect(matrix.ndim == 2, url, "the vectors are not lists of numbers of one length")
        expected = getattr(self.params, "dimension", None)
        if expected is not None:
            expect(matrix.shape[1] == expected, url, f"returned {matrix.shape[1]}-d vectors; the recipe says dimension {expected}")
        return matrix

    def dimension(self) -> int | None:
        if self.output != "dense":
            return None
        with self._dim_lock:
            if self._dimension is None:  # one probe request
                self._dimension = int(self.encode(["dimension probe"], Modality.TEXT, "query").shape[1])
            return self._dimension

    def close(self) -> None:
        self.service.close()


class OpenAIEmbeddingsParams(RemoteParams):
    model: str
    """The served model's name (for `prism serve`: `recipe/retriever`)."""
    dimension: int | None = Field(None, ge=1)
    """The vectors' length; None asks the service once."""
    batch_size: int = Field(64, ge=1)
    """Texts per request."""
    encoding_format: Literal["float", "base64"] = "float"
    """How the service sends vectors: JSON numbers, or base64 of little-endian float32 (smaller)."""
    query_prefix: str = ""
    """Text put before every query (e.g. "query: " for E5 models)."""
    document_prefix: str = ""
    """Text put before every document."""
    input_type: bool = False
    """Send `input_type: query|document` (prism serve, Cohere-style and NVIDIA services read it)."""


class OpenAIEmbeddingsEncoder(_RemoteEncoder):
    """Text embeddings from an OpenAI-compatible `POST {url}/embeddings`."""

    name = "openai-embeddings"
    Params = OpenAIEmbeddingsParams
    description = "Text embeddings from any OpenAI-compatible /embeddings endpoint (TEI, Infinity, vLLM, Ollama, prism serve)"
    path = "embeddings"

    def request(self, texts: list[str], role: Role) -> np.ndarray:
        p: OpenAIEmbeddingsParams = self.params  # type: ignore[assignment]
        body: dict[str, Any] = {"model": p.model, "input": texts, "encoding_format": p.encoding_format}
        if p.input_type:
            body["input_type"] = role
        url = self.service.endpoint(self.path)
        answer = self.service.post(self.path, body)
        data = answer.get("data") if isinstance(answer, dict) else None
        expect(isinstance(data, list), url, "the answer has no `data` list")
        try:
            ordered = sorted(data, key=lambda d: d["index"])
            rows = [_row(d["embedding"]) for d in ordered]
        except (KeyError, TypeError, ValueError):
            raise RemoteResponseError(url, "the answer's `data` entries lack `index` or a valid `embedding`") from None
        return self.dense(rows, url, len(texts))


def _row(value: Any) -> Any:
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4")
    return value


class _TeiBaseParams(RemoteParams):
    batch_size: int = Field(32, ge=1)
    """Texts per request."""
    truncate: bool = True
    """Let the server cut inputs longer than the model's limit (else it refuses them)."""
    query_prompt_name: str | None = None
    """A prompt the TEI model defines, used for queries (e.g. "query")."""
    document_prompt_name: str | None = None
    """A prompt the TEI model defines, used for documents."""
    query_prefix: str = ""
    """Text put before every query."""
    document_prefix: str = ""
    """Text put before every document."""


class TeiParams(_TeiBaseParams):
    dimension: int | None = Field(None, ge=1)
    """The vectors' length; None asks the service once."""
    normalize: bool = True
    """Ask the server for unit-length vectors."""


class TeiEncoder(_RemoteEncoder):
    """Dense vectors from Text Embeddings Inference's `POST {url}/embed`."""

    name = "tei"
    Params = TeiParams
    description = "Dense text embeddings from a Text Embeddings Inference server (/embed)"
    path = "embed"

    def body(self, texts: list[str], role: Role) -> dict[str, Any]:
        p: TeiParams = self.params  # type: ignore[assignment]
        body: dict[str, Any] = {"inputs": texts, "truncate": p.truncate}
        prompt = p.query_prompt_name if role == "query" else p.document_prompt_name
        if prompt:
            body["prompt_name"] = prompt
        return body

    def request(self, texts: list[str], role: Role) -> np.ndarray:
        body = dict(self.body(texts, role), normalize=self.params.normalize)  # type: ignore[attr-defined]
        answer = self.service.post(self.path, body)
        url = self.service.endpoint(self.path)
        expect(isinstance(answer, list), url, "the answer is not a list of vectors")
        return self.dense(answer, url, len(texts))


class TeiSparseParams(_TeiBaseParams):
    pass


class TeiSparseEncoder(TeiEncoder):
    """Sparse vectors (SPLADE and the like) from TEI's `POST {url}/embed_sparse`."""

    name = "tei-sparse"
    Params = TeiSparseParams
    description = "Sparse text vectors from a Text Embeddings Inference server (/embed_sparse)"
    output = "sparse"
    metric = "dot"
    path = "embed_sparse"

    def request(self, texts: list[str], role: Role) -> SparseBatch:
        answer = self.service.post(self.path, self.body(texts, role))
        url = self.service.endpoint(self.path)
        expect(isinstance(answer, list) and len(answer) == len(texts), url, f"expected {len(texts)} sparse vectors")
        try:
            rows = [(np.asarray([e["index"] for e in row], np.int64), np.asarray([e["value"] for e in row], np.float32))
                    for row in answer]
        except (KeyError, TypeError, ValueError):
            raise RemoteResponseError(url, "sparse entries must be {index, value} objects") from None
        return SparseBatch.from_rows(rows)

    def join(self, parts: list[Any]) -> SparseBatch:
        return SparseBatch.from_rows([r for p in parts for r in p.rows()])


@hookimpl
def register_encoders(register):
    register(OpenAIEmbeddingsEncoder)
    register(TeiEncoder)
    register(TeiSparseEncoder)
