"""Request and response bodies of the HTTP API (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ModalityName = Literal["text", "image", "audio", "video", "shape"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(BaseModel):
    status: int
    type: str
    message: str


class ErrorBody(BaseModel):
    """Every error: the same message the CLI prints after `error:`."""

    error: ErrorInfo


class SearchRequest(_Body):
    query: str | None = Field(None, description="query text")
    media_base64: str | None = Field(None, description="a media query as base64 (give `modality`)")
    media_path: str | None = Field(None, description="a media file under one of the server's --media-root folders")
    modality: ModalityName | None = None
    top_k: int | None = Field(None, ge=1, le=10_000)
    filter: dict[str, Any] | None = Field(None, description="a filter as a dict (the Python API's form)")
    filters: list[str] = Field(default_factory=list, description="the CLI's KEY=VALUE expressions, ANDed")
    weights: dict[str, float] | None = Field(None, description="fusion weights per retriever for this query")
    exact: bool | None = None
    explain: bool = False


class SearchResponse(BaseModel):
    recipe: str
    hits: list[dict[str, Any]] = Field(description="each hit as `prism search --json` prints it")
    retrievers: list[str]
    timings: dict[str, float]
    top_ks: dict[str, int] = Field(default_factory=dict, description="each routed retriever's list length")
    notes: list[str] = Field(default_factory=list, description="hints, e.g. the values a field holds when a filter matched nothing")
    explanations: list[list[str]] | None = Field(None, description="per hit, the lines `prism search --explain` prints")


class ItemIn(_Body):
    id: str = Field(min_length=1, max_length=1024)
    text: str | None = None
    content_base64: str | None = Field(None, description="media bytes (give `modality`)")
    modality: ModalityName = "text"
    metadata: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    source: str | None = None


class IngestRequest(_Body):
    items: list[ItemIn] = Field(min_length=1)
    owner: str = Field("api", min_length=1, description="who owns these items; sources' items are 'sources'")
    delete_missing: bool = Field(False, description="remove every stored item not in this request")


class IngestResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    loaded: int
    added: int
    updated: int
    unchanged: int
    deleted: int
    errors: list[str]


class CountResponse(BaseModel):
    recipe: str
    count: int


class RetrieverSummary(BaseModel):
    name: str
    encoder: str
    top_k: int = Field(description="the length of its ranked list")
    query_modalities: list[str]


class FusionSummary(BaseModel):
    name: str
    weights: dict[str, float] | None = Field(description="per retriever, the recipe's; null: the fusion takes no weights")


class RecipeSummary(BaseModel):
    name: str
    source: str
    retrievers: list[str]
    rerankers: list[str]
    query_modalities: list[str]
    top_k: int = Field(description="hits per search unless a request says otherwise (search.top_k)")
    fusion: FusionSummary | None = None
    retriever_details: list[RetrieverSummary]
    extensions: dict[str, ModalityName] = Field(description="file extensions the server's loaders read, and their modality")


class EmbeddingsRequest(_Body):
    input: str | list[str] = Field(description="a text or a list of texts (token arrays are not accepted)")
    model: str = Field(description="`recipe/retriever`, as GET /v1/models lists")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    input_type: Literal["query", "document", "search_query", "search_document", "passage"] | None = Field(
        None, description="prism extension: embed as queries or as documents (default: document)")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "prismrag"
    created: int = 0


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class RerankDocument(_Body):
    text: str


class RerankRequest(BaseModel):
    """Cohere/Jina (`documents`) or TEI (`texts`) shape."""

    model_config = ConfigDict(extra="ignore")
    query: str = Field(min_length=1)
    documents: list[str | RerankDocument] | None = None
    texts: list[str] | None = None
    model: str | None = Field(None, description="`recipe/stage` (stage index or reranker name); default: the only one")
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    return_text: bool = False


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    score: float
    document: RerankDocument | None = None
    text: str | None = None


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult]


class Health(BaseModel):
    status: str
    recipes: dict[str, str] = Field(default_factory=dict)


class StoredItemOut(BaseModel):
    id: str
    owner: str
    payload: dict[str, Any]


class ItemList(BaseModel):
    items: list[StoredItemOut]


class DeleteRequest(_Body):
    ids: list[str] | None = None
    filter: dict[str, Any] | None = None
    filters: list[str] = Field(default_factory=list)
    owner: str | None = None


class DeleteResponse(BaseModel):
    deleted: list[str]
