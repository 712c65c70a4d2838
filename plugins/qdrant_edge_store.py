"""The `qdrant-edge` store: Qdrant's own engine in-process (qdrant-edge-py), on local disk.

Files, under `path` (default `<recipe folder>/.prism/<recipe name>`):

- `shard/`: the Edge shard (segments, write-ahead log, `edge_config.json`);
- `prism-meta.json`: the engine's metadata record, replaced atomically.

Every retriever is one named vector of the shard; an item is one point whose id is
`point_uuid(item_id)` and whose payload carries `_id` and `_hash`. Scores are similarities, higher
is better: cosine and dot as Qdrant computes them, euclid and manhattan as negated distances.

Qdrant Edge builds HNSW graphs only when asked (`optimize()`); this store runs it before the first
search after opening or writing and when it is closed, so a fresh index is searchable at once
(brute force) and fast after that. A payload field gets an index the first time a filter uses it
(`payload_indexes: false` turns that off). Cosine fields keep unit-normalised vectors, so
`retrieve` returns those. Helpers shared with the `qdrant` store live here too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from prismrag.components import (
    HASH_KEY,
    ID_KEY,
    Context,
    Filter,
    Params,
    PointBatch,
    Store,
    StoredPoint,
    StoreInfo,
    VectorField,
    point_uuid,
)
from prismrag.errors import IndexMismatchError, PrismError, QueryError
from prismrag.hookspecs import hookimpl
from prismrag.types import MultiBatch, ScoredId, SparseBatch, Vectors

META_FILE = "prism-meta.json"
SHARD_DIR = "shard"
UPSERT_CHUNK = 1024
SCROLL_PAGE = 2048
RETRIEVE_CHUNK = 1024

# --------------------------------------------------------------------- shared with the qdrant store

DISTANCE_SIGN = {"cosine": 1.0, "dot": 1.0, "euclid": -1.0, "manhattan": -1.0}
"""Qdrant reports euclid/manhattan as distances (lower is better); we return -distance."""


def check_fields(fields: Sequence[VectorField], store: str) -> dict[str, VectorField]:
    """Fields by name, after checking names are unique and dense/multi have a dimension."""
    out: dict[str, VectorField] = {}
    for f in fields:
        if f.name in out:
            raise PrismError(f"store {store!r}: two vector fields are named {f.name!r}")
        if f.kind in ("dense", "multi") and not f.dimension:
            raise PrismError(f"store {store!r}: {f.kind} field {f.name!r} has no dimension")
        out[f.name] = f
    return out


def layout_of(field: VectorField) -> dict[str, Any]:
    """The parts of a field that fix the stored data, normalised for comparison."""
    if field.kind == "sparse":
        return {"kind": "sparse", "idf": bool(field.idf)}
    return {"kind": field.kind, "dimension": field.dimension, "distance": field.distance}


def layout_problems(requested: Mapping[str, VectorField], stored: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What differs between the recipe's fields and the stored layout, one line per problem."""
    problems = []
    for name, f in requested.items():
        if name not in stored:
            problems.append(f"retriever {name!r} is not in the stored index (stored: {', '.join(sorted(stored)) or 'none'})")
            continue
        want, have = layout_of(f), stored[name]
        for key in ("kind", "dimension", "distance", "idf"):
            if key in want and have.get(key) != want[key]:
                problems.append(f"retriever {name!r}: stored {key} is {have.get(key)!r}, the recipe asks for {want[key]!r}")
                break
    for name in sorted(set(stored) - set(requested)):
        problems.append(f"the stored index has a vector {name!r} that no retriever of the recipe names")
    return problems


def mismatch_error(location: str, recipe: str, problems: Sequence[str]) -> IndexMismatchError:
    return IndexMismatchError(
        f"{location}: the stored index was built with another layout than recipe {recipe!r} asks for: "
        + "; ".join(problems)
        + f". Run `prism ingest RECIPE --rebuild` to re-index {recipe!r} from scratch, "
        f"or restore the previous recipe."
    )


def dense_rows(vectors: Vectors, field: VectorField) -> list[list[float]]:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != field.dimension:
        raise IndexMismatchError(
            f"field {field.name!r} stores {field.dimension}-d vectors, got an array of shape {arr.shape}"
        )
    return arr.tolist()


def sparse_rows(vectors: Vectors, field: VectorField) -> list[tuple[list[int], list[float]]]:
    if not isinstance(vectors, SparseBatch):
        raise IndexMismatchError(f"field {field.name!r} is sparse, got {type(vectors).__name__}")
    bounds = vectors.indptr.tolist()
    indices = np.asarray(vectors.indices, dtype=np.int64).tolist()
    values = np.asarray(vectors.values, dtype=np.float32).tolist()
    return [(indices[a:b], values[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def multi_rows(vectors: Vectors, field: VectorField) -> list[list[list[float]]]:
    matrices = vectors.matrices if isinstance(vectors, MultiBatch) else list(vectors)  # type: ignore[union-attr, arg-type]
    out = []
    for m in matrices:
        arr = np.asarray(m, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != field.dimension or arr.shape[0] == 0:
            raise IndexMismatchError(
                f"field {field.name!r} stores multi-vectors of dimension {field.dimension}, got shape {arr.shape}"
            )
        out.append(arr.tolist())
    return out


def batch_rows(vectors: Vectors, field: VectorField) -> list[Any]:
    """Rows of a batch as Python lists (sparse rows as (indices, values)), converted in bulk."""
    if field.kind == "dense":
        return dense_rows(vectors, field)
    if field.kind == "sparse":
        return sparse_rows(vectors, field)
    return multi_rows(vectors, field)


def field_named(fields: Mapping[str, VectorField], name: str) -> VectorField:
    """The open field `name`, or a QueryError listing the fields there are."""
    try:
        return fields[name]
    except KeyError:
        raise QueryError(f"no vector field {name!r} in this index; fields: {', '.join(sorted(fields)) or 'none'}") from None


def batch_points(
    batch: PointBatch, fields: Mapping[str, VectorField], sparse: Callable[[list[int], list[float]], Any]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each point of a batch as (uuid, vector per field, payload with the item id), lengths checked;
    `sparse(indices, values)` builds the engine's own sparse vector."""
    n = len(batch.ids)
    if len(batch.payloads) != n:
        raise ValueError(f"{n} ids but {len(batch.payloads)} payloads")
    columns: dict[str, list[Any]] = {}
    for name, vectors in batch.vectors.items():
        field = field_named(fields, name)
        rows = batch_rows(vectors, field)
        if len(rows) != n:
            raise ValueError(f"{n} ids but {len(rows)} vectors for {name!r}")
        columns[name] = [sparse(ind, val) for ind, val in rows] if field.kind == "sparse" else rows
    return [
        (point_uuid(item_id), {k: col[i] for k, col in columns.items()}, {**batch.payloads[i], ID_KEY: item_id})
        for i, item_id in enumerate(batch.ids)
    ]


def query_row(vector: Vectors | Any, field: VectorField) -> Any:
    """The one query vector of a batch-of-one, as Python lists (sparse: (indices, values))."""
    if field.kind == "sparse":
        if isinstance(vector, SparseBatch):
            ind, val = vector.row(0)
        elif isinstance(vector, tuple) and len(vector) == 2:
            ind, val = vector
        else:
            raise QueryError(f"retriever {field.name!r} is sparse; got a {type(vector).__name__} query vector")
        return np.asarray(ind, dtype=np.int64).tolist(), np.asarray(val, dtype=np.float32).tolist()
    if field.kind == "multi":
        m = vector.matrices[0] if isinstance(vector, MultiBatch) else np.asarray(vector, dtype=np.float32)
        arr = np.asarray(m, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr[0]
        if arr.ndim != 2 or arr.shape[1] != field.dimension:
            raise QueryError(f"retriever {field.name!r} needs [n, {field.dimension}] query vectors, got shape {arr.shape}")
        return arr.tolist()
    if isinstance(vector, (SparseBatch, MultiBatch)):
        raise QueryError(f"retriever {field.name!r} is dense; got a {type(vector).__name__} query vector")
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[0]
    if arr.ndim != 1 or arr.shape[0] != field.dimension:
        raise QueryError(f"retriever {field.name!r} needs a {field.dimension}-d query vector, got shape {arr.shape}")
    return arr.tolist()


def numpy_vector(value: Any, kind: str) -> Any:
    """A stored vector as numpy: dense [d], sparse (indices int64, values float32), multi [n, d]."""
    if kind == "sparse":
        return np.asarray(value.indices, dtype=np.int64), np.asarray(value.values, dtype=np.float32)
    return np.asarray(value, dtype=np.float32)


def field_info(f: VectorField) -> dict[str, Any]:
    if f.kind == "sparse":
        return {"kind": "sparse", "idf": f.idf, "on_disk": f.on_disk}
    return {
        "kind": f.kind,
        "dimension": f.dimension,
        "distance": f.distance,
        "hnsw": None if f.exact else {"m": f.hnsw_m, "ef_construct": f.hnsw_ef_construct, "ef": f.search_ef},
        "exact": f.exact,
        "quantization": f.quantization
        if f.quantization == "none"
        else {"type": f.quantization, "rescore": f.rescore, "oversampling": f.oversampling},
        "on_disk": f.on_disk,
    }


Plan = list[tuple[str, str, str, Any]]
"""A filter as (clause, op, key, value): clause must/must_not; op match, any, range, datetime,
null, or `should` with a nested plan as value."""


def _number(v: Any, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise QueryError(f"filter on {key!r}: a range needs a finite number (or an ISO date string), got {v!r}")
    return float(v)


def _eq_plan(clause: str, key: str, value: Any) -> tuple[str, str, str, Any]:
    if value is None:
        return (clause, "null", key, None)
    if isinstance(value, (str, bool)):
        return (clause, "match", key, value)
    if isinstance(value, (int, float)):
        # A range, not an exact match: Qdrant matches integers only against integers, so `1`
        # would miss a stored 1.0 (and `1.5` cannot be matched exactly at all).
        number = _number(value, key)
        return (clause, "range", key, {"gte": number, "lte": number})
    raise QueryError(f"filter on {key!r}: cannot compare with {type(value).__name__} {value!r}; use a string, number or boolean")


def filter_plan(flt: Filter) -> Plan:
    """Translate a prismrag Filter into a backend-neutral plan (all conditions must hold)."""
    plan: Plan = []
    for c in flt.conditions:
        if c.op == "eq":
            plan.append(_eq_plan("must", c.key, c.value))
        elif c.op == "ne":
            plan.append(_eq_plan("must_not", c.key, c.value))
        elif c.op == "in":
            values = list(c.value) if isinstance(c.value, (list, tuple, set, frozenset)) else [c.value]
            if all(isinstance(v, str) for v in values):
                plan.append(("must", "any", c.key, values))  # an empty list matches nothing
            else:
                plan.append(("must", "should", c.key, [_eq_plan("must", c.key, v) for v in values]))
        elif c.op in ("gt", "gte", "lt", "lte"):
            if isinstance(c.value, str):
                plan.append(("must", "datetime", c.key, {c.op: c.value}))
            else:
                plan.append(("must", "range", c.key, {c.op: _number(c.value, c.key)}))
        else:
            raise QueryError(f"filter on {c.key!r}: unknown operator {c.op!r}; use eq, ne, in, gt, gte, lt, lte")
    return plan


def build_filter(plan: Plan, make: Callable[[str, str, Any], Any], combine: Callable[..., Any]) -> Any:
    """Build backend objects: `make(op, key, value)` one condition, `combine(must=, must_not=, should=)`."""
    must, must_not = [], []
    for clause, op, key, value in plan:
        if op == "should":
            cond = combine(must=None, must_not=None, should=[build_filter([p], make, combine) for p in value] or None)
        else:
            cond = make(op, key, value)
        (must if clause == "must" else must_not).append(cond)
    return combine(must=must or None, must_not=must_not or None, should=None)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON so a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(dict(data), fh, sort_keys=True, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if os.name == "posix":
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_bytes(root: Path) -> int:
    """Bytes allocated on disk under `root` (preallocated, still empty parts of sparse files are not counted)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
    return total


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# ------------------------------------------------------------------------------------ the store

_DISTANCES = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid, "manhattan": qe.Distance.Manhattan}


def _edge_condition(op: str, key: str, value: Any) -> Any:
    if op == "match":
        # qdrant-edge-py 0.9 reads a Python bool as the integer 1/0 (bool subclasses int), which
        # never matches a boolean payload; numpy's bool is no int and arrives as a boolean.
        return qe.FieldCondition(key, match=qe.MatchValue(np.bool_(value) if isinstance(value, bool) else value))
    if op == "any":
        return qe.FieldCondition(key, match=qe.MatchAny(value))
    if op == "range":
        return qe.FieldCondition(key, range=qe.RangeFloat(**value))
    if op == "datetime":
        return qe.FieldCondition(key, range=qe.RangeDateTime(**value))
    return qe.IsNullCondition(key)


def _payload_schema(op: str, value: Any) -> Any:
    """The payload index type that serves a condition, judged by its value; None if unclear."""
    if op == "in":
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values or len({type(v) for v in values}) != 1:
            return None
        value = values[0]
    if isinstance(value, bool):
        return qe.PayloadSchemaType.Bool
    if isinstance(value, (int, float)):  # one numeric index serves integer and float payloads alike
        return qe.PayloadSchemaType.Float
    if isinstance(value, str):
        return qe.PayloadSchemaType.Datetime if op in ("gt", "gte", "lt", "lte") else qe.PayloadSchemaType.Keyword
    return None


def _edge_filter(must: Any, must_not: Any, should: Any) -> Any:
    return qe.Filter(must=must, must_not=must_not, should=should)


class QdrantEdgeParams(Params):
    path: str | None = None
    """Folder of this recipe's data, relative to the recipe; default `.prism/<recipe name>`."""
    max_search_threads: int | None = None
    """Threads searching segments in parallel; None derives it from the CPU count."""
    payload_indexes: bool = True
    """Index a payload field the first time a filter uses it: keyword, bool, datetime, or one
    float index for every number (integers included), by the filter's value."""


class QdrantEdgeStore(Store):
    """Qdrant Edge shard on local disk, opened in-process (one writer process at a time)."""

    name = "qdrant-edge"
    description = (
        "Embedded Qdrant engine (qdrant-edge-py) on local disk: HNSW, quantization with rescoring, "
        "sparse vectors with IDF, multivector MaxSim, payload filters; no server needed."
    )
    Params = QdrantEdgeParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        p: QdrantEdgeParams = self.params  # type: ignore[assignment]
        self.root = self.context.path(p.path) if p.path else self.context.base_dir / ".prism" / self.context.recipe
        self.shard_dir = self.root / SHARD_DIR
        self.meta_path = self.root / META_FILE
        self._shard: Any = None
        self._fields: dict[str, VectorField] = {}
        self._params: dict[tuple[str, bool], Any] = {}
        self._dirty = False
        self._indexed: set[str] = set()
        self._lock = threading.RLock()

    # -------------------------------------------------------------- lifecycle

    def _config(self, fields: Mapping[str, VectorField]) -> Any:
        vectors, sparse = {}, {}
        for f in fields.values():
            if f.kind == "sparse":
                sparse[f.name] = qe.EdgeSparseVectorParams(
                    modifier=qe.Modifier.Idf if f.idf else None, memory=qe.Memory.Cold if f.on_disk else None
                )
                continue
            quant = None
            if f.quantization == "scalar":
                quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99)
            elif f.quantization == "binary":
                quant = qe.BinaryQuantizationConfig()
            vectors[f.name] = qe.EdgeVectorParams(
                size=int(f.dimension or 0),
                distance=_DISTANCES[f.distance],
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if f.kind == "multi" else None,
                quantization_config=quant,
                hnsw_config=qe.HnswIndexConfig(
                    m=0 if f.exact else f.hnsw_m, ef_construct=f.hnsw_ef_construct, full_scan_threshold=10_000
                ),
                memory=qe.Memory.Cold if f.on_disk else None,
            )
        p: QdrantEdgeParams = self.params  # type: ignore[assignment]
        return qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse, max_search_threads=p.max_search_threads)

    def _stored_layout(self) -> dict[str, dict[str, Any]] | None:
        """The layout recorded in the shard's own config file, or None if it cannot be read."""
        try:
            cfg = json.loads((self.shard_dir / "edge_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        out: dict[str, dict[str, Any]] = {}
        for name, v in (cfg.get("vectors") or {}).items():
            out[name] = {
                "kind": "multi" if v.get("multivector_config") else "dense",
                "dimension": v.get("size"),
                "distance": str(v.get("distance", "")).lower(),
            }
        for name, v in (cfg.get("sparse_vectors") or {}).items():
            out[name] = {"kind": "sparse", "idf": str(v.get("modifier") or "").lower() == "idf"}
        return out

    def open(self, fields: Sequence[VectorField]) -> None:
        with self._lock:
            wanted = check_fields(fields, self.name)
            if self._shard is not None:
                if wanted == self._fields:
                    return
                self.close()
            config = self._config(wanted)
            exists = (self.shard_dir / "edge_config.json").exists() or (self.shard_dir / "segments").exists()
            try:
                if exists:
                    stored = self._stored_layout()
                    if stored is not None:
                        problems = layout_problems(wanted, stored)
                        if problems:
                            raise mismatch_error(str(self.root), self.context.recipe, problems)
                    shard = qe.EdgeShard.load(str(self.shard_dir), config)
                else:
                    self.shard_dir.mkdir(parents=True, exist_ok=True)
                    shard = qe.EdgeShard.create(str(self.shard_dir), config)
            except IndexMismatchError:
                raise
            except Exception as exc:  # qdrant_edge raises plain Exception
                raise self._engine_error(exc) from exc
            self._shard, self._fields, self._params = shard, wanted, {}
            self._indexed = set(shard.info().payload_schema)
            # a shard left by a killed writer may hold unindexed points; a no-op optimize is ~50 us
            self._dirty = True

    def _engine_error(self, exc: Exception) -> PrismError:
        text = str(exc)
        if "WouldBlock" in text or "lock" in text.lower():
            return PrismError(
                f"{self.root}: the index is open in another process (a running ingest, server or "
                f"TUI?). Close it and retry. ({text})"
            )
        if "incompatible" in text.lower():
            return mismatch_error(str(self.root), self.context.recipe, [text])
        return PrismError(f"{self.root}: qdrant-edge could not open the index: {text}")

    def optimize(self) -> bool:
        """Build HNSW graphs and merge segments for what was written since the last call."""
        with self._lock:
            shard = self._need()
            self._dirty = False
            return bool(shard.optimize())

    def close(self) -> None:
        with self._lock:
            if self._shard is None:
                return
            try:
                if self._dirty:
                    self._shard.optimize()
                self._shard.flush()
            finally:
                self._shard.close()
                self._shard, self._dirty = None, False

    def drop(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard, self._dirty = None, False
            shutil.rmtree(self.shard_dir, ignore_errors=True)
            self.meta_path.unlink(missing_ok=True)

    def _need(self) -> Any:
        if self._shard is None:
            raise PrismError(f"store {self.name!r} at {self.root} is not open; call open(fields) first")
        return self._shard

    def _field(self, name: str) -> VectorField:
        return field_named(self._fields, name)

    # -------------------------------------------------------------- writes

    def upsert(self, batch: PointBatch) -> None:
        shard = self._need()
        points = [qe.Point(uid, vectors, payload) for uid, vectors, payload in batch_points(batch, self._fields, qe.SparseVector)]
        n = len(points)
        try:
            for part in chunks(points, UPSERT_CHUNK):
                shard.update(qe.UpdateOperation.upsert_points(list(part)))
            shard.flush()
        except Exception as exc:
            raise PrismError(f"{self.root}: qdrant-edge could not store {n} points: {exc}") from exc
        self._dirty = True

    def delete(self, ids: Sequence[str]) -> None:
        shard = self._need()
        if not ids:
            return
        for part in chunks([point_uuid(i) for i in ids], UPSERT_CHUNK):
            shard.update(qe.UpdateOperation.delete_points(list(part)))
        shard.flush()
        self._dirty = True

    # -------------------------------------------------------------- reads

    def _search_params(self, field: VectorField, exact: bool) -> Any:
        key = (field.name, exact)
        params = self._params.get(key)
        if params is None:
            quant = None
            if field.quantization != "none":
                quant = qe.QuantizationSearchParams(rescore=field.rescore, oversampling=field.oversampling)
            params = qe.SearchParams(hnsw_ef=field.search_ef, exact=exact, quantization=quant)
            self._params[key] = params
        return params

    def search(
        self, field: str, vector: Vectors, limit: int, flt: Filter | None = None, exact: bool | None = None
    ) -> list[ScoredId]:
        shard = self._need()
        f = self._field(field)
        if self._dirty:
            self.optimize()
        row = query_row(vector, f)
        if f.kind == "sparse":
            if not row[0]:
                return []
            row = qe.SparseVector(*row)
        if flt is not None and self.params.payload_indexes and not flt.keys <= self._indexed:  # type: ignore[attr-defined]
            self._index_payload(flt)
        request = qe.QueryRequest(
            limit=int(limit),
            query=qe.Query.Nearest(row, using=field),
            filter=build_filter(filter_plan(flt), _edge_condition, _edge_filter) if flt and flt.conditions else None,
            params=self._search_params(f, f.exact if exact is None else bool(exact)),
            with_payload=[ID_KEY],
        )
        try:
            points = shard.query(request)
        except Exception as exc:
            raise QueryError(f"{self.root}: search on {field!r} failed: {exc}") from exc
        sign = DISTANCE_SIGN[f.distance] if f.kind != "sparse" else 1.0
        if sign > 0:
            return [ScoredId(p.payload[ID_KEY], p.score) for p in points]
        return [ScoredId(p.payload[ID_KEY], -p.score) for p in points]

    def _index_payload(self, flt: Filter) -> None:
        """Create payload indexes for filtered keys: filters on unindexed keys read every
        candidate's payload from disk (10-25x slower at 10k points)."""
        with self._lock:
            shard = self._need()
            for c in flt.conditions:
                if c.key in self._indexed:
                    continue
                schema = _payload_schema(c.op, c.value)
                if schema is not None:  # an index only speeds filters up; they work without
                    with contextlib.suppress(Exception):
                        shard.update(qe.UpdateOperation.create_field_index(c.key, schema))
                self._indexed.add(c.key)
            shard.flush()

    def retrieve(self, ids: Sequence[str], with_vectors: Sequence[str] = ()) -> dict[str, StoredPoint]:
        shard = self._need()
        kinds = {name: self._field(name).kind for name in with_vectors}
        out: dict[str, StoredPoint] = {}
        for part in chunks(list(dict.fromkeys(ids)), RETRIEVE_CHUNK):
            records = shard.retrieve([point_uuid(i) for i in part], True, list(kinds) if kinds else False)
            for r in records:
                payload = r.payload or {}
                vectors = r.vector or {}
                item_id = payload.get(ID_KEY)
                if item_id is None:
                    continue
                vecs = {k: numpy_vector(vectors[k], kind) for k, kind in kinds.items() if k in vectors}
                out[item_id] = StoredPoint(item_id, payload, vecs)
        return out

    def manifest(self) -> dict[str, str]:
        shard = self._need()
        out: dict[str, str] = {}
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=[ID_KEY, HASH_KEY], with_vector=False)
            )
            for r in records:
                payload = r.payload or {}
                if ID_KEY in payload:
                    out[payload[ID_KEY]] = payload.get(HASH_KEY, "")
            if offset is None:
                return out

    def read_meta(self) -> dict[str, Any] | None:
        try:
            text = self.meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise PrismError(f"{self.meta_path}: unreadable metadata record ({exc}); rebuild the index") from exc

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        write_json_atomic(self.meta_path, meta)

    def info(self) -> StoreInfo:
        shard = self._need()
        return StoreInfo(
            points=int(shard.info().points_count),
            fields={name: field_info(f) for name, f in self._fields.items()},
            location=str(self.root),
            disk_bytes=disk_bytes(self.root),
        )


@hookimpl
def register_stores(register: Callable[[type[Store]], None]) -> None:
    register(QdrantEdgeStore)
