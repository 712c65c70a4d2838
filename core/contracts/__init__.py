"""The public surface a plugin implements: component bases, params, context, vectors, points,
filters, search plans and the hook markers. Plugins import from here, `prismrag.support` and
the top-level `prismrag` package only; everything else in prismrag is private.

    from prismrag.contracts import Encoder, Modality, Params, hookimpl
"""

from __future__ import annotations

from ..errors import (
    Cancelled,
    IndexMismatchError,
    IngestError,
    ItemError,
    ItemSkipped,
    MissingDependencyError,
    ModelNotAvailableError,
    PluginError,
    PrismError,
    QueryError,
)
from ..hookspecs import hookimpl, hookspec
from ..types import (
    Content,
    Distance,
    Item,
    Media,
    Modality,
    MultiBatch,
    Query,
    Role,
    Row,
    ScoredId,
    Span,
    SparseBatch,
    VectorKind,
    Vectors,
    as_text,
    batch_len,
    extensions_of,
    from_rows,
    rows_of,
    take_rows,
)
from .base import Component, Context, NoParams, Params, ProgressFn, no_progress
from .encoder import Encoder, concat_vectors
from .loader import Loader
from .plans import SearchPlan, Stage, StageLists, order_scored, query_row, score_rows
from .ranking import (
    Candidate,
    FusedEntry,
    Fusion,
    RerankContext,
    Reranker,
    RerankParams,
    order_fused,
)
from .storage import (
    HASH_KEY,
    ID_KEY,
    OWNER_KEY,
    RESERVED_PAYLOAD_KEYS,
    Condition,
    Filter,
    Index,
    PointBatch,
    Quantization,
    QuerySearches,
    Store,
    StoredPoint,
    StoreInfo,
    VectorField,
    point_uuid,
)

COMPONENT_BASES: dict[str, type[Component]] = {
    "encoder": Encoder,
    "index": Index,
    "store": Store,
    "fusion": Fusion,
    "reranker": Reranker,
    "loader": Loader,
}
"""Component kind -> the base class a registered component must subclass."""

__all__ = [
    "COMPONENT_BASES", "HASH_KEY", "ID_KEY", "OWNER_KEY", "RESERVED_PAYLOAD_KEYS", "Cancelled", "Candidate",
    "Component", "Condition", "Content", "Context", "Distance", "Encoder", "Filter", "FusedEntry",
    "Fusion", "Index", "IndexMismatchError", "IngestError", "Item", "ItemError", "ItemSkipped", "Loader", "Media",
    "MissingDependencyError", "Modality", "ModelNotAvailableError", "MultiBatch", "NoParams",
    "Params", "PluginError", "PointBatch", "PrismError", "ProgressFn", "Quantization", "Query",
    "QueryError", "QuerySearches", "RerankContext", "RerankParams", "Reranker", "Role", "Row", "ScoredId",
    "SearchPlan", "Span", "SparseBatch", "Stage", "StageLists", "Store", "StoreInfo",
    "StoredPoint", "VectorField", "VectorKind", "Vectors", "as_text", "batch_len",
    "concat_vectors", "extensions_of", "from_rows", "hookimpl", "hookspec", "no_progress",
    "order_fused", "order_scored", "point_uuid", "query_row", "rows_of", "score_rows", "take_rows",
]
