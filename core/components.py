"""The contracts plugins implement: encoders, indexes, stores, fusions, rerankers and loaders.

Each component class declares what it is as class attributes (data, not code), takes its own
pydantic `Params` model, and implements one required method (stores, which own persistence,
implement a handful). Base classes do the batching and the checks.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from .errors import ItemError, QueryError
from .types import (
    Content,
    Distance,
    Item,
    Modality,
    Query,
    Role,
    ScoredId,
    SparseBatch,
    VectorKind,
    Vectors,
    batch_len,
)


class Params(BaseModel):
    """Base of every component's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class Context:
    """What the engine hands each component: where relative paths start, and shared services."""

    base_dir: Path = field(default_factory=Path.cwd)
    recipe: str = "prism"
    """The recipe's name: stores use it as the collection name and default folder name."""
    where: str = ""
    """The recipe field path of this component, for error messages."""
    resolve_model: Callable[[str], str | None] = lambda name: None
    loader_for_path: Callable[[Path], type[Loader] | None] = lambda path: None

    def path(self, value: str | Path) -> Path:
        """A path from a recipe, relative to the recipe's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


class Component:
    """Common base: a registered name, a kind, a Params model and self-description."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    description: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    """The pip extra that brings this component's dependencies, if any."""

    def __init__(self, params: Params | None = None, context: Context | None = None):
        self.params = params if params is not None else self.Params()
        self.context = context or Context()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "kind": cls.kind, "description": cls.description, "extra": cls.extra}


# --------------------------------------------------------------------------------------- encoders


class Encoder(Component):
    """Turns a batch of contents of one modality into vectors.

    Subclasses declare `output`, `document_modalities`, `query_modalities` and `metric`, and
    implement `encode`. Everything else (modality checks, batching, query handling) is here.
    """

    kind = "encoder"
    output: ClassVar[VectorKind] = "dense"
    document_modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})
    query_modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})
    metric: ClassVar[Distance | None] = "cosine"
    """The metric the model was trained for; an index inherits it unless told otherwise."""
    sparse_idf: ClassVar[bool] = False
    """True when the encoder leaves inverse document frequency to the index (BM25)."""
    max_batch: ClassVar[int] = 64
    """Largest batch handed to `encode` at once; encoders that batch internally raise it."""
    fingerprint_excludes: ClassVar[frozenset[str]] = frozenset({"batch_size", "device", "show_progress"})
    """Params that do not change the vectors, left out of the embedding-cache key."""

    @abstractmethod
    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        """Encode a batch of one modality. Dense output is float32 [n, d]."""

    def dimension(self) -> int | None:
        """The output dimension (None for sparse). May load the model to learn it."""
        return getattr(self.params, "dimension", None)

    def fingerprint(self) -> str:
        """Identifies the vectors this encoder produces: name plus the params that matter."""
        data = self.params.model_dump(mode="json", exclude=set(self.fingerprint_excludes))
        blob = json.dumps({"encoder": self.name, "params": data}, sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        data = super().describe()
        data.update(
            output=cls.output,
            document_modalities=sorted(m.value for m in cls.document_modalities),
            query_modalities=sorted(m.value for m in cls.query_modalities),
            metric=cls.metric,
        )
        return data

    def accepts(self, modality: Modality, role: Role) -> bool:
        pool = self.document_modalities if role == "document" else self.query_modalities
        return modality in pool

    def encode_batch(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        """Check the modality, split into `max_batch` slices, encode, and check the result."""
        if not self.accepts(modality, role):
            raise QueryError(
                f"{self.context.where or self.name}: encoder {self.name!r} does not embed "
                f"{modality.value} {role}s (it embeds {role}s of: "
                f"{', '.join(sorted(m.value for m in (self.document_modalities if role == 'document' else self.query_modalities)))})"
            )
        parts = []
        for start in range(0, len(contents), self.max_batch):
            try:
                parts.append(self.encode(contents[start : start + self.max_batch], modality, role))
            except ItemError as exc:  # positions relative to the whole batch
                raise ItemError(exc.where, exc.message, tuple(start + p for p in exc.positions)) from exc
        out = concat_vectors(parts, self.output)
        if batch_len(out) != len(contents):
            raise ItemError(self.name, f"returned {batch_len(out)} vectors for {len(contents)} inputs")
        if isinstance(out, np.ndarray) and out.dtype != np.float32:
            out = out.astype(np.float32)
        return out

    def encode_query(self, query: Query) -> Vectors:
        """Encode one query; returns a batch of one row."""
        return self.encode_batch([query.content], query.modality, "query")


def concat_vectors(parts: Sequence[Vectors], kind: VectorKind) -> Vectors:
    """Join batches of one kind."""
    if kind == "dense":
        if not parts:
            return np.zeros((0, 0), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    if kind == "sparse":
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [len(p.indices) for p in parts[:-1]])  # type: ignore[union-attr]
        indptr = np.concatenate([parts[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True)])  # type: ignore[union-attr]
        return SparseBatch(
            indptr.astype(np.int64),
            np.concatenate([p.indices for p in parts]),  # type: ignore[union-attr]
            np.concatenate([p.values for p in parts]),  # type: ignore[union-attr]
        )
    from .types import MultiBatch

    return MultiBatch([m for p in parts for m in p.matrices])  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------- indexes

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
    """Describes how one retriever's vectors are stored and searched; stores implement it."""

    kind = "index"
    vector_kind: ClassVar[VectorKind]

    @abstractmethod
    def field(self, name: str, encoder: Encoder, dimension: int | None) -> VectorField:
        """The vector field for retriever `name` fed by `encoder`."""


# ----------------------------------------------------------------------------------------- stores


@dataclass(frozen=True)
class Condition:
    """One filter condition on a payload field."""

    key: str
    op: Literal["eq", "in", "gt", "gte", "lt", "lte", "ne"]
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


def point_uuid(item_id: str) -> str:
    """The UUID point id under which a store keeps item `item_id` (Qdrant ids are ints or UUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "prismrag:" + item_id))


RESERVED_PAYLOAD_KEYS = frozenset({"_id", "_hash", "modality", "text", "path", "parent_id", "span", "source"})
"""Payload keys the engine writes for every item; item metadata may not use them."""

HASH_KEY = "_hash"
"""Payload key holding an item's content hash; stores must keep it and `manifest` reads it."""
ID_KEY = "_id"
"""Payload key holding the item id (stores may need a UUID point id of their own)."""


class Store(Component):
    """Holds every retriever's vectors as named vectors of one collection, one point per item."""

    kind = "store"

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

    def close(self) -> None:
        """Release files and connections."""


# --------------------------------------------------------------------------------------- fusions


@dataclass(frozen=True)
class FusedEntry:
    id: str
    score: float
    contributions: Mapping[str, float]


class Fusion(Component):
    """Merges the ranked lists of several retrievers (keyed by item id) into one."""

    kind = "fusion"

    @abstractmethod
    def fuse(self, lists: Mapping[str, Sequence[ScoredId]]) -> list[FusedEntry]:
        """Best first. `contributions` says what each retriever added to the fused score."""


def order_fused(scores: Mapping[str, float], contributions: Mapping[str, dict[str, float]]) -> list[FusedEntry]:
    """Sort by fused score, ties broken by id so results are deterministic."""
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [FusedEntry(i, float(s), contributions[i]) for i, s in ordered]


# ------------------------------------------------------------------------------------- rerankers


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    payload: Mapping[str, Any]


class RerankContext:
    """What a reranker may ask of the engine: stored vectors and query vectors per retriever."""

    def vectors(self, retriever: str, ids: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def query_vector(self, retriever: str) -> np.ndarray:
        raise NotImplementedError


class RerankParams(Params):
    top_n: int = 50
    """How many of the best candidates this stage rescores; the rest keep their order below."""


class Reranker(Component):
    """Rescores the head of a candidate list."""

    kind = "reranker"
    Params: ClassVar[type[Params]] = RerankParams

    @abstractmethod
    def rerank(self, query: Query, candidates: Sequence[Candidate], ctx: RerankContext) -> list[ScoredId]:
        """The candidates in their new order with this stage's scores (all of them, none added)."""


# --------------------------------------------------------------------------------------- loaders


class Loader(Component):
    """Turns a source (a folder, a file, a record stream) into items.

    `load` yields items, and `ItemError`s for inputs it had to skip, so one bad file never stops
    the rest. Loaders that handle single files list `extensions` and implement `load_file`, so the
    `files` walker can hand them files.
    """

    kind = "loader"
    extensions: ClassVar[frozenset[str]] = frozenset()
    modality: ClassVar[Modality | None] = None

    @abstractmethod
    def load(self) -> Iterator[Item | ItemError]:
        """Yield items (and errors for skipped inputs)."""

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        """Items of one file; `root` makes ids relative and stable."""
        raise NotImplementedError(f"{self.name} does not load single files")
