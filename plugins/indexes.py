"""Built-in index kinds: `dense`, `sparse` and `multi`.

An index says how one retriever's vectors are kept and searched; it turns its recipe params into
a `VectorField`, which the store creates as one named vector of the recipe's collection.

```yaml
index: {use: dense, distance: cosine, hnsw: {m: 16, ef_construct: 100, ef: 128},
        quantization: {type: scalar, rescore: true, oversampling: 2.0}, exact: false, on_disk: false}
index: {use: sparse, idf: true}       # idf: null inherits the encoder's wish (BM25 wants it)
index: {use: multi, distance: cosine}  # late interaction: MaxSim over token vectors
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from pydantic import Field

from prismrag.components import Encoder, Index, Params, VectorField
from prismrag.errors import PluginError
from prismrag.hookspecs import hookimpl
from prismrag.types import Distance


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


class DenseIndex(_GraphIndex):
    name = "dense"
    vector_kind = "dense"
    description = (
        "One float vector per item; HNSW approximate search (or exact), optional scalar/binary "
        "quantization with rescoring."
    )


class MultiIndex(_GraphIndex):
    name = "multi"
    vector_kind = "multi"
    description = (
        "Several vectors per item (e.g. ColBERT tokens, image patches), scored by MaxSim: the sum "
        "over query vectors of the best match among the item's vectors."
    )


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
