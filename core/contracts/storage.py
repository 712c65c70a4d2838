"""The storage contracts: vector fields, indexes (which fields a retriever needs and how they are
searched), filters, points, and stores (where a recipe's collection lives)."""

from __future__ import annotations

import functools
import uuid
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from ..types import Distance, ScoredId, VectorKind, Vectors
from .base import Component, Context, Params
from .encoder import Encoder
from .plans import SearchPlan, StageLists, order_scored, query_row, score_rows

Quantization = Literal["none", "scalar", "binary"]


@dataclass(frozen=True)
class VectorField:
    """One named vector of the collection: what a store must create for one retriever."""

    name: str
    kind: VectorKind
    dimension: int | None = None
    distance: Distance = "cosine"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    search_ef: int = 128
    exact: bool = False
    """Search by brute force instead of the HNSW graph."""
    quantization: Quantization = "none"
    oversampling: float = 2.0
    rescore: bool = True
    idf: bool = False
    """Sparse only: weight query terms by inverse document frequency computed by the store."""
    on_disk: bool = False

    def layout(self) -> dict[str, Any]:
        """The parts that fix the stored data; a change needs a re-index."""
        return {"kind": self.kind, "dimension": self.dimension, "distance": self.distance, "idf": self.idf}


class Index(Component):
    """Describes how one retriever's vectors are stored and searched; stores implement it.

    The one required method, `field`, gives the retriever's main field: the encoder's vectors as
    they are, named after the retriever. An index that searches in stages adds fields in
    `fields` (each filled by `derive` from the encoder's vectors, for documents and queries alike)
    and returns a multi-stage `plan`.
    """

    kind = "index"
    vector_kind: ClassVar[VectorKind]

    @abstractmethod
    def field(self, name: str, encoder: Encoder, dimension: int | None) -> VectorField:
        """The main vector field for retriever `name` fed by `encoder`."""

    def fields(self, name: str, encoder: Encoder, dimension: int | None) -> list[VectorField]:
        """Every field the retriever needs, the main one first."""
        return [self.field(name, encoder, dimension)]

    def derive(self, field: VectorField, vectors: Vectors) -> Vectors:
        """The vectors of `field` made from the encoder's batch (the main field: unchanged)."""
        return vectors

    def derive_query(self, field: VectorField, vectors: Vectors) -> Vectors:
        """Like `derive`, for a query's batch of one; override where the two sides differ (an
        asymmetric encoding such as MUVERA's). Default: `derive`."""
        return self.derive(field, vectors)

    def plan(self, fields: Sequence[VectorField], top_k: int) -> SearchPlan:
        """How the fields are searched for `top_k` results; default: one stage on the main field."""
        return SearchPlan.single(fields[0].name, top_k)

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = super().declaration_problems()
        if getattr(cls, "vector_kind", None) not in get_args(VectorKind):
            problems.append(f"`vector_kind` must be one of {', '.join(get_args(VectorKind))}")
        return problems


@dataclass(frozen=True)
class Condition:
    """One filter condition on a payload field."""

    key: str
    op: Literal[
        "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "prefix", "not_prefix", "contains", "not_contains", "exists"
    ]
    """eq/ne/in/not_in: a value or any of a list (numbers compare as numbers); gt/gte/lt/lte: a
    number, or an ISO date/time string; prefix/contains (and not_...): a string that starts
    with, or holds, the text; exists: True (present, not null, not []) or False. On a list field
    a condition holds when any element satisfies it; negations hold for items without the field."""
    value: Any


@dataclass(frozen=True)
class Filter:
    """All conditions must hold."""

    conditions: tuple[Condition, ...] = ()

    @property
    def keys(self) -> set[str]:
        return {c.key for c in self.conditions}


@dataclass(frozen=True)
class PointBatch:
    """Items ready to store: ids, per-field vectors (rows aligned with ids) and payloads."""

    ids: Sequence[str]
    vectors: Mapping[str, Vectors]
    payloads: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class StoredPoint:
    id: str
    payload: Mapping[str, Any]
    vectors: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreInfo:
    points: int
    fields: Mapping[str, Mapping[str, Any]]
    location: str
    disk_bytes: int | None = None


@functools.lru_cache(maxsize=1 << 16)
def point_uuid(item_id: str) -> str:
    """The UUID point id under which a store keeps item `item_id` (Qdrant ids are ints or UUIDs).
    Cached: search fetches the same hits' payloads again and again, and uuid5 costs ~10 us."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "prismrag:" + item_id))


RESERVED_PAYLOAD_KEYS = frozenset({"_id", "_hash", "_owner", "modality", "text", "path", "parent_id", "span", "source"})
"""Payload keys the engine writes for every item; item metadata may not use them."""

HASH_KEY = "_hash"
"""Payload key holding an item's content hash; stores must keep it and `manifest` reads it."""
OWNER_KEY = "_owner"
"""Payload key naming who added an item: `sources` for the recipe's sources (what `ingest`
brings in line, deletes included), another name for items added with `ingest_items`."""
ID_KEY = "_id"
"""Payload key holding the item id (stores may need a UUID point id of their own)."""


QuerySearches = tuple[Sequence[tuple[SearchPlan, Mapping[str, Vectors]]], Filter | None, bool | None]
"""One query's searches for `Store.search_many`: its (plan, vectors) per retriever, filter, exact."""


class Store(Component):
    """Holds every retriever's vectors as named vectors of one collection, one point per item.

    Thread safety: the engine never calls a write (`upsert`, `delete`, `optimize`, `drop`,
    `write_meta`) while another call runs; reads (`search`, `search_plan(s)`, `search_many`, `retrieve`) may run
    in many threads at once.
    """

    kind = "store"

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.fields: dict[str, VectorField] = {}
        """The fields of the open collection by name (set by `open`)."""

    def claim(self) -> None:
        """Take whatever exclusive hold the store needs (e.g. a lock on its folder) before any
        model loads and before `open`; raise a PrismError naming the holder if another has it.
        The collection calls it first; `close` gives it back. Default: nothing to take."""

    @abstractmethod
    def open(self, fields: Sequence[VectorField]) -> None:
        """Create the collection, or open it and verify its layout (IndexMismatchError if not)."""

    @abstractmethod
    def upsert(self, batch: PointBatch) -> None:
        """Insert or replace points; durable once it returns."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by item id."""

    @abstractmethod
    def search(
        self, field: str, vector: Vectors, limit: int, flt: Filter | None = None, exact: bool | None = None
    ) -> list[ScoredId]:
        """Search one named vector with a batch-of-one query vector; best first.

        Scores are higher-is-better for every distance (stores negate euclid and manhattan).
        """

    def search_plan(
        self, plan: SearchPlan, vectors: Mapping[str, Vectors], flt: Filter | None = None, exact: bool | None = None
    ) -> StageLists:
        """Run a plan; one ranked list per stage (the last is the result). `vectors` holds the
        batch-of-one query vector of each field the plan names.

        This default runs the first stage with `search` and rescores later stages client-side
        from the stored vectors; stores with multi-stage queries override it.
        """
        first = plan.stages[0]
        lists = [self.search(first.field, vectors[first.field], first.limit, flt, first.exact if exact is None else exact)]
        for stage in plan.stages[1:]:
            ids = [s.id for s in lists[-1]]
            f = self.fields[stage.field]
            points = self.retrieve(ids, with_vectors=[stage.field])
            ids = [i for i in ids if i in points and stage.field in points[i].vectors]
            rows = [points[i].vectors[stage.field] for i in ids]
            scores = score_rows(query_row(vectors[stage.field]), rows, f.kind, f.distance)
            lists.append(order_scored(ids, scores, stage.limit))
        return lists

    def search_plans(
        self, searches: Sequence[tuple[SearchPlan, Mapping[str, Vectors]]], flt: Filter | None = None,
        exact: bool | None = None,
    ) -> list[StageLists]:
        """Run the plans of one query's retrievers: `search_plan`'s lists for each (plan, vectors).

        This default runs them one after another; stores that can send several requests at once
        override it (the built-in ones: one batched engine call or HTTP request for all)."""
        return [self.search_plan(plan, vectors, flt, exact) for plan, vectors in searches]

    def search_many(self, queries: Sequence[QuerySearches]) -> list[list[StageLists]]:
        """`search_plans` of several queries, each (searches, filter, exact): the concurrent
        searches a server gathers. Raises if any fails (the caller then asks query by query).

        This default runs them one after another; stores that can send many requests at once
        override it (the built-in ones: one batched engine call or HTTP request for all)."""
        return [self.search_plans(searches, flt, exact) for searches, flt, exact in queries]

    @abstractmethod
    def retrieve(self, ids: Sequence[str], with_vectors: Sequence[str] = ()) -> dict[str, StoredPoint]:
        """Payloads (and optionally vectors, as numpy) of the given item ids that exist."""

    @abstractmethod
    def manifest(self) -> dict[str, str]:
        """Every stored item id with its content hash."""

    @abstractmethod
    def read_meta(self) -> dict[str, Any] | None:
        """The engine's metadata record for this collection, or None for a new one."""

    @abstractmethod
    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace the engine's metadata record, durably."""

    @abstractmethod
    def info(self) -> StoreInfo: ...

    def optimize(self) -> None:
        """Build pending indexes (e.g. HNSW graphs) now; the engine calls it after an ingest."""

    def drop(self) -> None:
        """Delete the collection and everything in it (for a rebuild); the store may be reopened."""
        raise NotImplementedError(f"store {self.name!r} cannot drop its collection")

    def staging(self) -> Store | None:
        """A new, empty store of the same kind beside this one, into which a rebuild writes while
        this one still answers searches; `swap_in` then makes it this store's collection. None
        (the default): this store rebuilds in place (drop, then ingest)."""
        return None

    def swap_in(self, staged: Store) -> None:
        """Replace this store's collection (and metadata record) with `staged`'s, which is closed
        and gone afterwards. This store stays claimed and is opened again by the next `open`."""
        raise NotImplementedError(f"store {self.name!r} does not stage rebuilds")

    def discard(self) -> None:
        """Delete a staging store's files: a failed rebuild's, or leftovers before one starts."""
        raise NotImplementedError(f"store {self.name!r} does not stage rebuilds")
