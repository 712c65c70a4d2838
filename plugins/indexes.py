"""Built-in index kinds: `dense`, `sparse` and `multi`.

An index says how one retriever's vectors are kept and searched; it turns its recipe params into
a `VectorField`, which the store creates as one named vector of the recipe's collection.

```yaml
index: {use: dense, distance: cosine, hnsw: {m: 16, ef_construct: 100, ef: 128},
        quantization: {type: scalar, rescore: true, oversampling: 2.0}, exact: false, on_disk: false}
index: {use: sparse, idf: true}       # idf: null inherits the encoder's wish (BM25 wants it)
index: {use: multi, distance: cosine}  # late interaction: MaxSim over token vectors
index: {use: multi, muvera: {repetitions: 10, simhash_bits: 4, projection: 8, limit: 500}}
index: {use: dense, shortlist: {dimensions: 64, limit: 200}}   # two stages, see below
index: {use: dense, quantization: {type: binary, oversampling: 4}}  # two stages, see below
```

A dense (or multi) index with quantization and `rescore: true` (the default) searches in two
stages on its one field: the compressed copies (int8 for `scalar`, one bit per dimension for
`binary`) keep `oversampling` x top_k candidates, which the original vectors then rescore; with
`rescore: false` the compressed scores are the result.

A multi index with `muvera` adds a dense field `<retriever>~fde-<tag>`: each item's MUVERA
fixed-dimensional encoding (documents and queries encoded asymmetrically, see `_muvera.py`),
searched first for `limit` candidates, which exact MaxSim on the token vectors rescores.

A dense index with a `shortlist` searches in two stages: the first `dimensions` of every vector
(re-normalised for cosine) are a second, smaller field `<retriever>~d<dimensions>` that is
searched for `limit` candidates; those are rescored with the full vectors. Matryoshka-trained
models lose least; `prism eval` reports the plan's recall against exact full search.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from prismrag.contracts import (
    Context,
    Distance,
    Encoder,
    Index,
    Params,
    PluginError,
    SearchPlan,
    Stage,
    VectorField,
    Vectors,
    hookimpl,
)


class HnswParams(Params):
    """The HNSW graph: `m` edges per node (0 builds no graph), `ef_construct` build effort,
    `ef` search effort (candidates kept while searching)."""

    m: int = Field(16, ge=0, le=256)
    ef_construct: int = Field(100, ge=4)
    ef: int = Field(128, ge=1)


class QuantizationParams(Params):
    """Compressed copies of the vectors searched first; `rescore` re-ranks the best
    `oversampling` x limit candidates with the original vectors."""

    type: Literal["scalar", "binary"]
    rescore: bool = True
    oversampling: float = Field(2.0, ge=1.0)


class ShortlistParams(Params):
    """A first stage on the leading `dimensions` of each vector, keeping `limit` candidates for
    rescoring at full dimension."""

    dimensions: int = Field(ge=1)
    limit: int = Field(200, ge=1, le=100_000)


class DenseParams(Params):
    distance: Distance | None = None
    """None: the encoder's own metric (cosine when it names none)."""
    hnsw: HnswParams = HnswParams()
    quantization: Literal["none", "scalar", "binary"] | QuantizationParams = "none"
    """`none`, `scalar`/`binary` (defaults for the rest), or `{type, rescore, oversampling}`."""
    exact: bool = False
    """Always search by brute force (no HNSW graph is built)."""
    on_disk: bool = False
    """Keep the original vectors on disk (memory-mapped) instead of in RAM."""


class DenseIndexParams(DenseParams):
    shortlist: ShortlistParams | None = None
    """Search a truncated copy first, then rescore its candidates with the full vectors."""


class SparseParams(Params):
    idf: bool | None = None
    """Weight query terms by inverse document frequency; None: what the encoder asks for."""
    on_disk: bool = False
    """Keep the inverted index on disk (memory-mapped) instead of in RAM."""


def _quantization(q: str | QuantizationParams) -> QuantizationParams | None:
    if isinstance(q, QuantizationParams):
        return q
    return None if q == "none" else QuantizationParams(type=q)  # type: ignore[arg-type]


def _need_dimension(index: Index, encoder: Encoder, dimension: int | None) -> int:
    if dimension is None or dimension <= 0:
        where = f"{index.context.where}: " if index.context.where else ""
        raise PluginError(
            f"{where}index {index.name!r} needs the vector dimension, but encoder "
            f"{encoder.name!r} did not report one (dimension() gave {dimension!r}). "
            f"Set the encoder's `dimension` param, or use an encoder that reports its dimension."
        )
    return int(dimension)


class _GraphIndex(Index):
    """Shared by dense and multi: a metric, an HNSW graph, optional quantization."""

    Params: ClassVar[type[Params]] = DenseParams

    def field(self, name: str, encoder: Encoder, dimension: int | None) -> VectorField:
        p: DenseParams = self.params  # type: ignore[assignment]
        q = _quantization(p.quantization)
        return VectorField(
            name=name,
            kind=self.vector_kind,
            dimension=_need_dimension(self, encoder, dimension),
            distance=p.distance or encoder.metric or "cosine",
            hnsw_m=p.hnsw.m,
            hnsw_ef_construct=p.hnsw.ef_construct,
            search_ef=p.hnsw.ef,
            exact=p.exact,
            quantization=q.type if q else "none",
            oversampling=q.oversampling if q else 2.0,
            rescore=q.rescore if q else True,
            on_disk=p.on_disk,
        )

    def _first_stage_limit(self) -> int | None:
        """How many candidates a derived first-stage field (the second of `fields`) passes to the
        main one; None when the index has no such stage."""
        return None

    def plan(self, fields: Sequence[VectorField], top_k: int) -> SearchPlan:
        """Two stages when the index derives a first-stage field (a shortlist, a MUVERA encoding): it
        keeps `_first_stage_limit()` candidates and the main field rescores them. Otherwise, with
        quantization and `rescore`: two stages on the main field, the compressed vectors keeping
        `oversampling` x top_k candidates, then the original vectors rescoring them."""
        limit = self._first_stage_limit()
        if limit is not None and len(fields) >= 2:
            return SearchPlan((Stage(fields[1].name, max(limit, top_k)), Stage(fields[0].name, top_k)))
        q = _quantization(self.params.quantization)  # type: ignore[attr-defined]
        if q is None or not q.rescore or self.params.exact:  # type: ignore[attr-defined]
            return super().plan(fields, top_k)
        main = fields[0].name
        return SearchPlan((Stage(main, max(top_k, math.ceil(q.oversampling * top_k))), Stage(main, top_k)))


SHORTLIST_SEPARATOR = "~"
"""Between a retriever's name and a derived field's suffix; retriever names cannot hold it."""


class DenseIndex(_GraphIndex):
    name = "dense"
    vector_kind = "dense"
    Params = DenseIndexParams
    description = (
        "One float vector per item; HNSW approximate search (or exact), optional scalar/binary "
        "quantization with rescoring, optional Matryoshka shortlist rescored at full dimension."
    )

    def fields(self, name: str, encoder: Encoder, dimension: int | None) -> list[VectorField]:
        main = self.field(name, encoder, dimension)
        shortlist = self.params.shortlist  # type: ignore[attr-defined]
        if shortlist is None:
            return [main]
        if main.quantization != "none":
            raise PluginError(
                f"{self.where}: a shortlist and quantization cannot be combined (the full vectors "
                f"rescore the shortlist); choose one: `shortlist` or `quantization`"
            )
        if shortlist.dimensions >= (main.dimension or 0):
            raise PluginError(
                f"{self.where}: shortlist.dimensions ({shortlist.dimensions}) must be below the "
                f"encoder's dimension ({main.dimension})"
            )
        short = replace(main, name=f"{name}{SHORTLIST_SEPARATOR}d{shortlist.dimensions}", dimension=shortlist.dimensions)
        return [main, short]

    def derive(self, field: VectorField, vectors: Vectors) -> Vectors:
        if SHORTLIST_SEPARATOR not in field.name:
            return vectors
        head = np.asarray(vectors, dtype=np.float32)[:, : field.dimension]
        if field.distance == "cosine":
            head = head / np.maximum(np.linalg.norm(head, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(head, dtype=np.float32)

    def _first_stage_limit(self) -> int | None:
        shortlist = self.params.shortlist  # type: ignore[attr-defined]
        return None if shortlist is None else shortlist.limit


class MuveraParams(Params):
    """A MUVERA fixed-dimensional encoding searched first (repetitions x 2^simhash_bits x
    projection dimensions, or `final_dimension`), its `limit` candidates rescored by exact MaxSim."""

    repetitions: int = Field(10, ge=1, le=64)
    simhash_bits: int = Field(4, ge=0, le=8)
    projection: int | None = Field(8, ge=1)
    """Inner projection per part (None: the token dimension)."""
    final_dimension: int | None = Field(None, ge=8)
    limit: int = Field(500, ge=1, le=100_000)
    seed: int = 0


class MultiIndexParams(DenseParams):
    muvera: MuveraParams | None = None
    """Search a MUVERA encoding first (a dense field `<retriever>~fde-<tag>`), then rescore by MaxSim."""


FDE_MARK = f"{SHORTLIST_SEPARATOR}fde-"
"""A MUVERA field is `<retriever>~fde-<crc32 of the encoding's parameters>`: another encoding
is another field, which the stored layout check turns into a clear re-index message."""


class MultiIndex(_GraphIndex):
    name = "multi"
    vector_kind = "multi"
    Params = MultiIndexParams
    description = (
        "Several vectors per item (e.g. ColBERT tokens, image patches), scored by MaxSim: the sum "
        "over query vectors of the best match among the item's vectors; optional MUVERA first stage."
    )

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self._fde: Any = None

    def _encoding(self, dimension: int) -> Any:
        from ._muvera import Fde, FdeConfig

        m: MuveraParams = self.params.muvera  # type: ignore[attr-defined]
        if self._fde is None or self._fde.config.dimension != dimension:
            self._fde = Fde(FdeConfig(dimension, m.repetitions, m.simhash_bits, m.projection, m.final_dimension, seed=m.seed))
        return self._fde

    def fields(self, name: str, encoder: Encoder, dimension: int | None) -> list[VectorField]:
        main = self.field(name, encoder, dimension)
        if self.params.muvera is None:  # type: ignore[attr-defined]
            return [main]
        main = replace(main, hnsw_m=0)  # only rescored: no graph over the token vectors
        fde = self._encoding(int(main.dimension or 0))
        key = self.params.muvera.model_dump(exclude={"limit"})  # type: ignore[attr-defined]
        tag = f"{zlib.crc32(json.dumps(key, sort_keys=True).encode()):08x}"
        return [main, replace(main, name=f"{name}{FDE_MARK}{tag}", kind="dense", dimension=fde.config.output_dimension,
                              distance="dot", hnsw_m=self.params.hnsw.m)]  # type: ignore[attr-defined]

    def _matrices(self, field: VectorField, vectors: Vectors) -> list[np.ndarray]:
        matrices = [np.asarray(m, dtype=np.float32) for m in vectors.matrices]  # type: ignore[union-attr]
        if self.params.distance in (None, "cosine"):  # type: ignore[attr-defined]
            matrices = [m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12) for m in matrices]
        return matrices

    def derive(self, field: VectorField, vectors: Vectors) -> Vectors:
        if FDE_MARK not in field.name or field.kind != "dense":
            return vectors
        return self._encoding(self._token_dim(vectors)).documents(self._matrices(field, vectors))

    def derive_query(self, field: VectorField, vectors: Vectors) -> Vectors:
        if FDE_MARK not in field.name or field.kind != "dense":
            return vectors
        return self._encoding(self._token_dim(vectors)).queries(self._matrices(field, vectors))

    @staticmethod
    def _token_dim(vectors: Vectors) -> int:
        return int(np.asarray(vectors.matrices[0]).shape[1])  # type: ignore[union-attr]

    def _first_stage_limit(self) -> int | None:
        m = self.params.muvera  # type: ignore[attr-defined]
        return None if m is None else m.limit


class SparseIndex(Index):
    name = "sparse"
    vector_kind = "sparse"
    Params = SparseParams
    description = (
        "Sparse term weights in an inverted index (BM25, SPLADE); exact dot-product search, with "
        "optional IDF weighting computed by the store."
    )

    def field(self, name: str, encoder: Encoder, dimension: int | None) -> VectorField:
        p: SparseParams = self.params  # type: ignore[assignment]
        return VectorField(
            name=name,
            kind="sparse",
            dimension=None,
            distance="dot",
            idf=encoder.sparse_idf if p.idf is None else p.idf,
            on_disk=p.on_disk,
        )


@hookimpl
def register_indexes(register: Callable[[type[Index]], None]) -> None:
    register(DenseIndex)
    register(SparseIndex)
    register(MultiIndex)
