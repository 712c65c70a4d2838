"""Helpers shared by the two Qdrant stores (`qdrant-edge` and `qdrant`): layout checks, vector
and filter conversion, multi-stage plans as nested prefetch requests, atomic metadata files.

Private to the built-in plugins (the leading underscore): third-party stores use
`prismrag.contracts` and copy what they need.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prismrag.contracts import (
    HASH_KEY,
    ID_KEY,
    Filter,
    IndexMismatchError,
    MultiBatch,
    PointBatch,
    PrismError,
    QueryError,
    ScoredId,
    SearchPlan,
    SparseBatch,
    Stage,
    StageLists,
    Store,
    StoredPoint,
    VectorField,
    Vectors,
    point_uuid,
)

SCROLL_PAGE = 2048

DISTANCE_SIGN = {"cosine": 1.0, "dot": 1.0, "euclid": -1.0, "manhattan": -1.0}
"""Qdrant reports euclid/manhattan as distances (lower is better); we return -distance."""


class QdrantBase(Store):
    """The base of both Qdrant stores: every search is a plan (nested prefetches), and every
    plan goes through `search_many` (the stores' one batched request)."""

    def search(
        self, field: str, vector: Vectors, limit: int, flt: Filter | None = None, exact: bool | None = None
    ) -> list[ScoredId]:
        return self.search_plan(SearchPlan.single(field, limit), {field: vector}, flt, exact)[-1]

    def search_plan(
        self, plan: SearchPlan, vectors: Mapping[str, Vectors], flt: Filter | None = None, exact: bool | None = None
    ) -> StageLists:
        return self.search_plans([(plan, vectors)], flt, exact)[0]

    def search_plans(
        self, searches: Sequence[tuple[SearchPlan, Mapping[str, Vectors]]], flt: Filter | None = None,
        exact: bool | None = None,
    ) -> list[StageLists]:
        return self.search_many([(searches, flt, exact)])[0]


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
    if isinstance(vector, SparseBatch) or (field.kind == "dense" and isinstance(vector, MultiBatch)):
        raise QueryError(f"retriever {field.name!r} is {field.kind}; got a {type(vector).__name__} query vector")
    rank = 2 if field.kind == "multi" else 1  # a multi query is [n, d], a dense one [d]
    arr = np.asarray(vector.matrices[0] if isinstance(vector, MultiBatch) else vector, dtype=np.float32)
    if arr.ndim == rank + 1:  # a batch of one
        arr = arr[0]
    if arr.ndim != rank or arr.shape[-1] != field.dimension:
        want = f"[n, {field.dimension}] query vectors" if rank == 2 else f"a {field.dimension}-d query vector"
        raise QueryError(f"retriever {field.name!r} needs {want}, got shape {arr.shape}")
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
null, prefix, substring, empty (missing, null or []), or `should` with a nested plan as value."""


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
        elif c.op in ("in", "not_in"):
            clause = "must" if c.op == "in" else "must_not"
            values = list(c.value) if isinstance(c.value, (list, tuple, set, frozenset)) else [c.value]
            if all(isinstance(v, str) for v in values):
                plan.append((clause, "any", c.key, values))  # an empty list matches nothing
            else:
                plan.append((clause, "should", c.key, [_eq_plan("must", c.key, v) for v in values]))
        elif c.op in ("prefix", "not_prefix", "contains", "not_contains"):
            if not isinstance(c.value, str):
                raise QueryError(f"filter on {c.key!r}: {c.op} needs a string, got {c.value!r}")
            clause = "must_not" if c.op.startswith("not_") else "must"
            plan.append((clause, "prefix" if c.op.endswith("prefix") else "substring", c.key, c.value))
        elif c.op == "exists":
            plan.append(("must_not" if c.value else "must", "empty", c.key, None))
        elif c.op in ("gt", "gte", "lt", "lte"):
            if isinstance(c.value, str):
                plan.append(("must", "datetime", c.key, {c.op: c.value}))
            else:
                plan.append(("must", "range", c.key, {c.op: _number(c.value, c.key)}))
        else:
            raise QueryError(
                f"filter on {c.key!r}: unknown operator {c.op!r}; use eq, ne, in, not_in, gt, gte, lt, lte, "
                f"prefix, not_prefix, contains, not_contains, exists"
            )
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


# ------------------------------------------------------------------------------ reads, shared


def score_sign(field: VectorField) -> float:
    """What turns the engine's score on `field` into higher-is-better."""
    return DISTANCE_SIGN[field.distance] if field.kind != "sparse" else 1.0


def scored(points: Iterable[Any], field: VectorField) -> list[ScoredId]:
    """Engine points (with `payload[ID_KEY]` and `score`) as higher-is-better ScoredIds."""
    sign = score_sign(field)
    return [ScoredId(p.payload[ID_KEY], sign * p.score) for p in points]


def stored_points(records: Iterable[Any], kinds: Mapping[str, str], out: dict[str, StoredPoint]) -> None:
    """Add retrieved records (payload, named vectors) to `out` by item id."""
    for r in records:
        payload = r.payload or {}
        item_id = payload.get(ID_KEY)
        if item_id is None:
            continue
        if not kinds:
            out[item_id] = StoredPoint(item_id, payload)
            continue
        vectors = r.vector if isinstance(r.vector, Mapping) else {}
        out[item_id] = StoredPoint(item_id, payload, {k: numpy_vector(vectors[k], kind) for k, kind in kinds.items() if k in vectors})


def scroll_manifest(page: Callable[[Any], tuple[Sequence[Any], Any]]) -> dict[str, str]:
    """Every stored item id with its content hash; `page(offset)` returns (records, next offset)."""
    out: dict[str, str] = {}
    offset = None
    while True:
        records, offset = page(offset)
        for r in records:
            payload = r.payload or {}
            if ID_KEY in payload:
                out[payload[ID_KEY]] = payload.get(HASH_KEY, "")
        if offset is None:
            return out


def prefetch_chain(stages: Sequence[Stage], make: Callable[[Stage, list[Any] | None, bool], Any]) -> list[Any] | None:
    """Nested prefetches for `stages` (innermost first): `make(stage, inner, first)` builds one
    engine prefetch around the `inner` ones; the first stage carries the filter."""
    inner: list[Any] | None = None
    for i, stage in enumerate(stages):
        inner = [make(stage, inner, i == 0)]
    return inner


def stage_exact(stage: Stage, field: VectorField, exact: bool | None, first: bool) -> bool:
    """Whether a stage searches by brute force: forced by the caller, else the stage's setting,
    else the field's. A rescoring stage scores only its candidates, which is exact anyway."""
    if not first:
        return True
    if exact is not None:
        return exact
    return field.exact if stage.exact is None else stage.exact


def stage_quantization(field: VectorField, exact: bool, handoff: bool) -> dict[str, Any] | None:
    """How a stage reads a quantized field, as QuantizationSearchParams keywords: an exact stage
    scores the original vectors only; a first stage that hands its candidates to a later stage
    keeps the compressed scores (the later stage rescores them); a plan's only stage uses the
    field's own `rescore` and `oversampling`. None for a field without quantization."""
    if field.quantization == "none":
        return None
    if exact:
        return {"ignore": True}
    if handoff:
        return {"rescore": False}
    return {"rescore": field.rescore, "oversampling": field.oversampling}
