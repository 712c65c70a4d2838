"""The `qdrant` store: a Qdrant server or cluster through qdrant-client (or its local mode).

```yaml
store: {use: qdrant, url: http://localhost:6333, api_key: {$env: QDRANT_API_KEY}, shards: 2, replicas: 2}
store: {use: qdrant, path: .prism/qdrant-local}   # qdrant-client's local mode (pure Python, slow)
store: {use: qdrant, location: ":memory:"}         # in memory, for tests
```

With none of `url`, `path` and `location` it connects to `http://localhost:6333`.

The recipe's collection (`collection`, default the recipe name) holds one point per item, id
`point_uuid(item_id)`, every retriever a named vector, exactly as in `qdrant-edge`. The engine's
metadata record lives in a second, vector-less collection `<collection>__prism_meta` as a single
point whose payload `meta` is the record as a JSON string; so it never shows up in searches,
counts or the manifest, and `drop()` removes both collections. Scores follow `qdrant-edge`:
higher is better (euclid and manhattan are negated distances). qdrant-client's local mode ignores
HNSW and quantization settings (it always searches exactly).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import Field, model_validator

from prismrag.contracts import (
    HASH_KEY,
    ID_KEY,
    Context,
    MissingDependencyError,
    Params,
    PointBatch,
    PrismError,
    QueryError,
    QuerySearches,
    SearchPlan,
    Stage,
    StageLists,
    Store,
    StoredPoint,
    StoreInfo,
    VectorField,
    Vectors,
    hookimpl,
    point_uuid,
)

from . import _qdrant as shared

META_SUFFIX = "__prism_meta"
META_POINT = "00000000-0000-0000-0000-000000000000"
"""The meta record's point id: uuid5 never yields the nil UUID, so no item can collide."""
UPSERT_CHUNK = 512
DEFAULT_URL = "http://localhost:6333"


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError as exc:
        raise MissingDependencyError("qdrant store", "qdrant_client", "qdrant") from exc
    return models


class QdrantParams(Params):
    url: str | None = None
    """Server URL, e.g. http://localhost:6333 (the default when no path or location is given)."""
    api_key: str | None = None
    """API key; write `{$env: NAME}` in the recipe to read it from the environment."""
    path: str | None = None
    """qdrant-client local mode on disk, relative to the recipe's folder."""
    location: str | None = None
    """`:memory:` for an in-memory local mode, or a URL."""
    collection: str | None = None
    """Collection name; default the recipe's name."""
    timeout: float = Field(10, gt=0)
    shards: int | None = Field(None, ge=1)
    replicas: int | None = Field(None, ge=1)
    prefer_grpc: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> QdrantParams:
        given = [k for k in ("url", "path", "location") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of url, path and location, not {' and '.join(given)}")
        return self


class QdrantStore(shared.QdrantBase):
    """A collection on a Qdrant server (or qdrant-client's local mode)."""

    name = "qdrant"
    extra = "qdrant"
    description = (
        "A Qdrant server or cluster through qdrant-client (shards, replicas, API key); its local "
        "mode (path or :memory:) runs without a server."
    )
    Params = QdrantParams
    params: QdrantParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        p = self.params
        self.collection = p.collection or self.context.recipe
        self.meta_collection = self.collection + META_SUFFIX
        self.local = p.path is not None or p.location == ":memory:"
        self._client: Any = None
        self._params: dict[tuple[str, bool], Any] = {}

    @property
    def location(self) -> str:
        p = self.params
        if p.path is not None:
            where = str(self.context.path(p.path))
        else:
            where = p.location or p.url or DEFAULT_URL
        return f"{where}#{self.collection}"

    # -------------------------------------------------------------- lifecycle

    def _connect(self) -> Any:
        if self._client is None:
            _models()
            from qdrant_client import QdrantClient

            p = self.params
            kwargs: dict[str, Any] = {"timeout": int(math.ceil(p.timeout)), "prefer_grpc": p.prefer_grpc}
            if p.path is not None:
                path = self.context.path(p.path)
                path.mkdir(parents=True, exist_ok=True)
                kwargs = {"path": str(path)}
            elif p.location is not None:
                kwargs["location"] = p.location
            else:
                kwargs["url"] = p.url or DEFAULT_URL
            if p.api_key is not None and not self.local:
                kwargs["api_key"] = p.api_key
            try:
                self._client = QdrantClient(**kwargs)
            except Exception as exc:
                raise PrismError(f"{self.location}: cannot open the Qdrant client: {exc}") from exc
        return self._client

    def _vector_params(self, f: VectorField) -> Any:
        m = _models()
        quant = None
        if f.quantization == "scalar":
            quant = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True))
        elif f.quantization == "binary":
            quant = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        return m.VectorParams(
            size=int(f.dimension or 0),
            distance=m.Distance(f.distance.capitalize()),
            hnsw_config=m.HnswConfigDiff(m=0 if f.exact else f.hnsw_m, ef_construct=f.hnsw_ef_construct),
            quantization_config=quant,
            on_disk=f.on_disk or None,
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM) if f.kind == "multi" else None,
        )

    def _sparse_params(self, f: VectorField) -> Any:
        m = _models()
        return m.SparseVectorParams(
            index=m.SparseIndexParams(on_disk=f.on_disk) if f.on_disk else None,
            modifier=m.Modifier.IDF if f.idf else None,
        )

    @staticmethod
    def _stored_layout(params: Any) -> dict[str, dict[str, Any]]:
        vectors = params.vectors if isinstance(params.vectors, Mapping) else ({"": params.vectors} if params.vectors else {})
        out: dict[str, dict[str, Any]] = {}
        for name, v in vectors.items():
            out[name] = {
                "kind": "multi" if v.multivector_config else "dense",
                "dimension": v.size,
                "distance": str(getattr(v.distance, "value", v.distance)).lower(),
            }
        for name, v in (params.sparse_vectors or {}).items():
            modifier = str(getattr(v.modifier, "value", v.modifier) or "").lower()
            out[name] = {"kind": "sparse", "idf": modifier == "idf"}
        return out

    def open(self, fields: Sequence[VectorField]) -> None:
        wanted = shared.check_fields(fields, self.name)
        client = self._connect()
        p = self.params
        try:
            if client.collection_exists(self.collection):
                config = client.get_collection(self.collection).config
                problems = shared.layout_problems(wanted, self._stored_layout(config.params))
                if problems:
                    raise shared.mismatch_error(self.location, self.context.recipe, problems)
                if not self.local:
                    self._update_tuning(config, wanted)
            else:
                client.create_collection(
                    self.collection,
                    vectors_config={f.name: self._vector_params(f) for f in wanted.values() if f.kind != "sparse"},
                    sparse_vectors_config={f.name: self._sparse_params(f) for f in wanted.values() if f.kind == "sparse"},
                    shard_number=p.shards,
                    replication_factor=p.replicas,
                )
        except PrismError:
            raise
        except Exception as exc:
            hint = "" if self.local else " Is the Qdrant server running and reachable, and the API key right?"
            raise PrismError(f"{self.location}: cannot open the collection: {exc}.{hint}") from exc
        self.fields, self._params = wanted, {}

    def _update_tuning(self, config: Any, wanted: Mapping[str, VectorField]) -> None:
        """Apply changed HNSW/quantization settings to an existing server collection."""
        m = _models()
        stored = config.params.vectors if isinstance(config.params.vectors, Mapping) else {}

        def effective(v: Any, attr: str) -> Any:  # per-vector setting, else the collection's
            value = getattr(v.hnsw_config, attr, None) if v.hnsw_config is not None else None
            return value if value is not None else getattr(config.hnsw_config, attr, None)

        diff = {}
        for name, f in wanted.items():
            v = stored.get(name)
            if f.kind == "sparse" or v is None:
                continue
            want = self._vector_params(f)
            have_quant = v.quantization_config or config.quantization_config
            if (
                effective(v, "m") != want.hnsw_config.m
                or effective(v, "ef_construct") != want.hnsw_config.ef_construct
                or type(have_quant) is not type(want.quantization_config)
            ):
                diff[name] = m.VectorParamsDiff(
                    hnsw_config=want.hnsw_config,
                    quantization_config=want.quantization_config or m.Disabled.DISABLED,
                )
        if diff:
            self._client.update_collection(self.collection, vectors_config=diff)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def drop(self) -> None:
        client = self._connect()
        for name in (self.collection, self.meta_collection):
            if client.collection_exists(name):
                client.delete_collection(name)
        self.fields = {}

    def _need(self) -> Any:
        if self._client is None or not self.fields:
            raise PrismError(f"store {self.name!r} at {self.location} is not open; call open(fields) first")
        return self._client

    def _field(self, name: str) -> VectorField:
        return shared.field_named(self.fields, name)

    # -------------------------------------------------------------- writes

    def upsert(self, batch: PointBatch) -> None:
        client = self._need()
        m = _models()
        points = [
            m.PointStruct(id=uid, vector=vectors, payload=payload)
            for uid, vectors, payload in shared.batch_points(
                batch, self.fields, lambda ind, val: m.SparseVector(indices=ind, values=val)
            )
        ]
        n = len(points)
        try:
            for part in shared.chunks(points, UPSERT_CHUNK):
                client.upsert(self.collection, points=list(part), wait=True)
        except Exception as exc:
            raise PrismError(f"{self.location}: could not store {n} points: {exc}") from exc

    def delete(self, ids: Sequence[str]) -> None:
        client = self._need()
        m = _models()
        for part in shared.chunks([point_uuid(i) for i in ids], UPSERT_CHUNK):
            client.delete(self.collection, points_selector=m.PointIdsList(points=list(part)), wait=True)

    # -------------------------------------------------------------- reads

    def _search_params(self, f: VectorField, exact: bool, handoff: bool = False) -> Any:
        key = (f.name, exact, handoff)
        if key not in self._params:
            m = _models()
            quant = shared.stage_quantization(f, exact, handoff)
            quant = m.QuantizationSearchParams(**quant) if quant else None
            self._params[key] = m.SearchParams(hnsw_ef=f.search_ef, exact=exact, quantization=quant)
        return self._params[key]

    @staticmethod
    def _condition(op: str, key: str, value: Any) -> Any:
        m = _models()
        if op == "match":
            return m.FieldCondition(key=key, match=m.MatchValue(value=value))
        if op == "any":
            return m.FieldCondition(key=key, match=m.MatchAny(any=value))
        if op == "range":
            return m.FieldCondition(key=key, range=m.Range(**value))
        if op == "datetime":
            return m.FieldCondition(key=key, range=m.DatetimeRange(**value))
        if op == "prefix":
            return m.FieldCondition(key=key, match=m.MatchPrefix(prefix=value))
        if op == "substring":
            return m.FieldCondition(key=key, match=m.MatchSubstring(substring=value))
        if op == "empty":
            return m.IsEmptyCondition(is_empty=m.PayloadField(key=key))
        return m.IsNullCondition(is_null=m.PayloadField(key=key))

    @staticmethod
    def _filter(must: Any, must_not: Any, should: Any) -> Any:
        return _models().Filter(must=must, must_not=must_not, should=should)

    def search_many(self, queries: Sequence[QuerySearches]) -> list[list[StageLists]]:
        """Every plan's requests of every query in one `query_batch_points` call: one round trip."""
        client = self._need()
        requests: list[Any] = []
        spans = []  # per query, per plan: (first request, searched)
        for searches, flt, exact in queries:
            qf = shared.build_filter(shared.filter_plan(flt), self._condition, self._filter) if flt and flt.conditions else None
            own = []
            for plan, vectors in searches:
                made = self._requests(plan, vectors, qf, exact)
                own.append((len(requests), made is not None))
                requests += made or []
            spans.append(own)
        fields = ", ".join(dict.fromkeys(f for searches, _, _ in queries for plan, _ in searches for f in plan.fields))
        try:
            found = [r.points for r in client.query_batch_points(self.collection, requests=requests)] if requests else []
        except Exception as exc:
            raise QueryError(f"{self.location}: search on {fields} failed: {exc}") from exc
        return [[[shared.scored(points, self._field(stage.field))
                  for points, stage in zip(found[start : start + len(plan.stages)], plan.stages, strict=True)]
                 if searched else [[] for _ in plan.stages]
                 for (start, searched), (plan, _) in zip(own, searches, strict=True)]
                for own, (searches, _, _) in zip(spans, queries, strict=True)]

    def _requests(self, plan: SearchPlan, vectors: Mapping[str, Vectors], qf: Any, exact: bool | None) -> list[Any] | None:
        """One query request per stage of `plan` (each a chain of the stages before it); None
        when a sparse query vector is empty (no term to match: every list is empty)."""
        m = _models()
        rows: dict[str, Any] = {}
        for name in plan.fields:
            f = self._field(name)
            row = shared.query_row(vectors[name], f)
            if f.kind == "sparse":
                if not row[0]:
                    return None
                row = m.SparseVector(indices=row[0], values=row[1])
            rows[name] = row

        def params(stage: Stage, first: bool, handoff: bool) -> Any:
            f = self._field(stage.field)
            return None if self.local else self._search_params(f, shared.stage_exact(stage, f, exact, first), handoff)

        def prefetch(stage: Stage, inner: list[Any] | None, first: bool) -> Any:
            return m.Prefetch(
                query=rows[stage.field], using=stage.field, limit=int(stage.limit), prefetch=inner,
                params=params(stage, first, True), filter=qf if first else None,
            )

        requests = []
        for n in range(1, len(plan.stages) + 1):
            last = plan.stages[n - 1]
            requests.append(m.QueryRequest(
                query=rows[last.field], using=last.field, limit=int(last.limit), filter=qf,
                prefetch=shared.prefetch_chain(plan.stages[: n - 1], prefetch), params=params(last, n == 1, n < len(plan.stages)),
                with_payload=[ID_KEY], with_vector=False,
            ))
        return requests

    def retrieve(self, ids: Sequence[str], with_vectors: Sequence[str] = ()) -> dict[str, StoredPoint]:
        client = self._need()
        kinds = {name: self._field(name).kind for name in with_vectors}
        out: dict[str, StoredPoint] = {}
        for part in shared.chunks(list(dict.fromkeys(ids)), UPSERT_CHUNK):
            records = client.retrieve(
                self.collection, ids=[point_uuid(i) for i in part], with_payload=True, with_vectors=list(kinds) if kinds else False
            )
            shared.stored_points(records, kinds, out)
        return out

    def manifest(self) -> dict[str, str]:
        client = self._need()
        return shared.scroll_manifest(lambda offset: client.scroll(
            self.collection, limit=shared.SCROLL_PAGE, offset=offset, with_payload=[ID_KEY, HASH_KEY], with_vectors=False
        ))

    def read_meta(self) -> dict[str, Any] | None:
        client = self._connect()
        if not client.collection_exists(self.meta_collection):
            return None
        records = client.retrieve(self.meta_collection, ids=[META_POINT], with_payload=True)
        if not records:
            return None
        return json.loads((records[0].payload or {}).get("meta") or "null")

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        client = self._connect()
        m = _models()
        if not client.collection_exists(self.meta_collection):
            client.create_collection(self.meta_collection, vectors_config={}, replication_factor=self.params.replicas)
        point = m.PointStruct(id=META_POINT, vector={}, payload={"meta": json.dumps(dict(meta), sort_keys=True)})
        client.upsert(self.meta_collection, points=[point], wait=True)

    def info(self) -> StoreInfo:
        client = self._need()
        p = self.params
        count = client.get_collection(self.collection).points_count or 0
        fields = {}
        for name, f in self.fields.items():
            data = shared.field_info(f)
            if self.local and f.kind != "sparse":
                data["note"] = "local mode: exact search, HNSW and quantization not applied"
            fields[name] = data
        return StoreInfo(
            points=int(count),
            fields=fields,
            location=self.location,
            disk_bytes=shared.disk_bytes(self.context.path(p.path)) if p.path is not None else None,
        )


@hookimpl
def register_stores(register: Callable[[type[Store]], None]) -> None:
    register(QdrantStore)
