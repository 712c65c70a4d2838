"""prismrag: plugin-based multimodal retrieval for RAG.

    >>> import prismrag
    >>> engine = prismrag.load_recipe("recipes/quickstart.yaml")
    >>> engine.ingest()
    >>> hits = engine.search("how do I write a plugin?")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .contracts import (
    Cancelled,
    Candidate,
    Component,
    Condition,
    Context,
    Encoder,
    Filter,
    FusedEntry,
    Fusion,
    Index,
    IndexMismatchError,
    IngestError,
    ItemError,
    Loader,
    MissingDependencyError,
    ModelNotAvailableError,
    Params,
    PluginError,
    PointBatch,
    PrismError,
    QueryError,
    RerankContext,
    Reranker,
    RerankParams,
    SearchPlan,
    Stage,
    Store,
    VectorField,
)
from .errors import RecipeError, UnknownComponentError
from .hookspecs import hookimpl
from .registry import Registry
from .types import (
    Hit,
    Item,
    Media,
    Modality,
    MultiBatch,
    Provenance,
    Query,
    ScoredId,
    Span,
    SparseBatch,
)

if TYPE_CHECKING:
    from .engine import Engine

__version__ = "0.1.0"

__all__ = [
    "Cancelled", "Candidate", "Component", "Condition", "Context", "Encoder", "Engine", "Filter", "FusedEntry",
    "Fusion", "Hit", "Index", "IndexMismatchError", "IngestError", "Item", "ItemError", "Loader",
    "Media", "MissingDependencyError", "Modality", "ModelNotAvailableError", "MultiBatch", "Params",
    "PluginError", "PointBatch", "PrismError", "Provenance", "Query", "QueryError", "RecipeError",
    "Registry", "RerankContext", "RerankParams", "Reranker", "SearchPlan", "Stage", "ScoredId", "Span", "SparseBatch", "Store",
    "UnknownComponentError", "VectorField", "hookimpl", "load_recipe",
]


def load_recipe(path: Any, *, registry: Registry | None = None, **overrides: Any) -> Engine:
    """Read, validate and build the engine of a recipe file (YAML or TOML)."""
    from .engine import Engine

    return Engine.from_file(path, registry=registry, **overrides)


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(name)
