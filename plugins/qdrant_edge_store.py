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
`retrieve` returns those. Helpers shared with the `qdrant` store live in `_qdrant.py`.

A multi-stage search plan is one query with nested prefetches; the lists of the earlier stages
(for provenance) come from the same batch request, as shorter chains.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import qdrant_edge as qe

from prismrag.contracts import (
    HASH_KEY,
    ID_KEY,
    Context,
    Filter,
    IndexMismatchError,
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
from prismrag.support import FolderLock

from ._edge_files import damaged_files, mapped_gaps, stored_layout, swap_folders
from ._edge_filters import edge_filter, payload_schema
from ._edge_ids import ItemIds
from ._qdrant import (
    SCROLL_PAGE,
    QdrantBase,
    batch_points,
    check_fields,
    chunks,
    disk_bytes,
    field_info,
    field_named,
    layout_problems,
    mismatch_error,
    prefetch_chain,
    query_row,
    score_sign,
    scroll_manifest,
    stage_exact,
    stage_quantization,
    stored_points,
    write_json_atomic,
)
from ._space import MARGIN, WRITE_FACTOR, batch_bytes, free_bytes, require_space

log = logging.getLogger("prismrag.store")
META_FILE = "prism-meta.json"
STAGING_DIR = "rebuild"
"""Where `--rebuild` builds the new index, inside the store's folder, while the old one answers."""
OLD_SHARD_DIR = "shard.old"
SHARD_DIR = "shard"
UPSERT_CHUNK = 1024
RETRIEVE_CHUNK = 1024


# ------------------------------------------------------------------------------------ the store

_DISTANCES = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid, "manhattan": qe.Distance.Manhattan}


class QdrantEdgeParams(Params):
    path: str | None = None
    """Folder of this recipe's data, relative to the recipe; default `.prism/<recipe name>`."""
    max_search_threads: int | None = None
    """Threads searching segments in parallel; None derives it from the CPU count."""
    payload_indexes: bool = True
    """Index a payload field the first time a filter uses it: keyword, bool, datetime, or one
    float index for every number (integers included), by the filter's value."""


class QdrantEdgeStore(QdrantBase):
    """Qdrant Edge shard on local disk, opened in-process (one writer process at a time)."""

    name = "qdrant-edge"
    description = (
        "Embedded Qdrant engine (qdrant-edge-py) on local disk: HNSW, quantization with rescoring, "
        "sparse vectors with IDF, multivector MaxSim, payload filters; no server needed."
    )
    Params = QdrantEdgeParams
    params: QdrantEdgeParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        path = self.params.path
        self.root = self.context.path(path) if path else self.context.base_dir / ".prism" / self.context.recipe
        self.shard_dir = self.root / SHARD_DIR
        self.meta_path = self.root / META_FILE
        self._shard: Any = None
        self.fields: dict[str, VectorField] = {}
        self._params: dict[tuple[str, bool], Any] = {}
        self._dirty = False
        self._indexed: set[str] = set()
        self._item_ids = ItemIds()
        self._lock = threading.RLock()
        self._folder_lock = FolderLock(self.root, f"index of recipe {self.context.recipe!r}")

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
        # Edge builds scalar-quantized copies only when it optimizes a segment past the indexing
        # threshold (10 MB by default): with quantization asked for, every segment qualifies.
        quantized = any(f.quantization != "none" for f in fields.values() if f.kind != "sparse")
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=1) if quantized else None
        return qe.EdgeConfig(
            vectors=vectors, sparse_vectors=sparse, max_search_threads=self.params.max_search_threads,
            optimizers=optimizers,
        )

    def claim(self) -> None:
        """Refuse a folder the store did not make, then lock it (before the engine opens a file)."""
        with self._lock:
            if self._folder_lock.held:
                return
            if self.root.is_dir() and not self.root.is_symlink():
                made = (self.meta_path, self._folder_lock.path, self.shard_dir / "edge_config.json", self.shard_dir / "wal")
                entries = sorted(p.name for p in self.root.iterdir())
                if entries and not any(p.exists() for p in made):
                    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                    raise PrismError(
                        f"{self.root}: store `path` names a folder that holds files of its own ({shown}) and "
                        f"is not a prismrag index. Point `store.path` at a new or empty folder; nothing there "
                        f"was changed."
                    )
            elif self.root.exists():
                raise PrismError(f"{self.root}: store `path` exists and is not a folder; choose another path")
            self._folder_lock.acquire()

    def open(self, fields: Sequence[VectorField]) -> None:
        with self._lock:
            wanted = check_fields(fields, self.name)
            if self._shard is not None:
                if wanted == self.fields:
                    return
                self.close()
            self.claim()
            old = self.root / OLD_SHARD_DIR
            if old.is_dir() and not self.shard_dir.exists():  # a swap interrupted after its first rename
                old.rename(self.shard_dir)
            config = self._config(wanted)
            exists = (self.shard_dir / "edge_config.json").exists() or (self.shard_dir / "segments").exists()
            if exists:
                damaged = damaged_files(self.shard_dir)
                if damaged:  # a mismatch of a kind: what is stored cannot be read; a rebuild replaces it
                    raise IndexMismatchError(
                        f"{self.root}: the index is damaged: " + "; ".join(damaged[:5]) + ". Run `prism ingest "
                        "RECIPE --rebuild` to re-index (the embedding cache makes it quick), or restore the folder."
                    )
                require_space(self.root, mapped_gaps(self.shard_dir), "opening the index (the engine maps the "
                              "vector chunks of its unoptimized segment in full)")
            try:
                if exists:
                    stored = stored_layout(self.shard_dir)
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
            self._shard, self.fields, self._params = shard, wanted, {}
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
            return bool(shard.optimize()) if self._room_to_optimize() else False

    def _room_to_optimize(self) -> bool:
        """Whether the disk can take a rewrite of the segments (an optimize on a full disk dies
        with SIGBUS); when not, say so: searches work without it, only slower."""
        per_point = sum(4 * (f.dimension or 256) if f.kind != "sparse" else 1024 for f in self.fields.values())
        need = int(self._shard.info().points_count) * (2 * per_point + 4096)
        if free_bytes(self.root) >= need + MARGIN:
            return True
        log.warning("%s: too little free disk space to build the search index (needs about %.1f MB); searches "
                    "still work, by brute force. Free some space and the next write builds it.", self.root, need / 1e6)
        return False

    def close(self) -> None:
        with self._lock:
            if self._shard is None:
                self._folder_lock.release()
                return
            try:
                if self._dirty and self._room_to_optimize():
                    self._shard.optimize()
                self._shard.flush()
            finally:
                self._shard.close()
                self._shard, self._dirty = None, False
                self._folder_lock.release()

    def drop(self) -> None:
        with self._lock:
            self.claim()
            if self._shard is not None:
                self._shard.close()
                self._shard, self._dirty = None, False
            shutil.rmtree(self.shard_dir, ignore_errors=True)
            self.meta_path.unlink(missing_ok=True)

    def staging(self) -> QdrantEdgeStore:
        """A store in `<path>/rebuild` (nothing is written until it is opened)."""
        root = self.root / STAGING_DIR
        params = self.params.model_copy(update={"path": str(root)})
        return type(self)(params, self.context)

    def swap_in(self, staged: Store) -> None:
        """Renames: the live shard aside, the staged one in, its record over ours, the old shard
        gone. A crash between the first two renames leaves `shard.old`, which `open` restores."""
        if not isinstance(staged, QdrantEdgeStore) or staged.root.parent != self.root:
            raise PrismError(f"{self.root}: can only swap in a store made by staging()")
        with self._lock:
            self.claim()
            staged.close()
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard, self._dirty = None, False
            swap_folders(self.shard_dir, staged.shard_dir, self.root / OLD_SHARD_DIR, staged.meta_path, self.meta_path)
            shutil.rmtree(staged.root, ignore_errors=True)
            self.fields, self._params, self._indexed = {}, {}, set()

    def discard(self) -> None:
        with self._lock:
            self.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def _need(self) -> Any:
        if self._shard is None:
            raise PrismError(f"store {self.name!r} at {self.root} is not open; call open(fields) first")
        return self._shard

    def _field(self, name: str) -> VectorField:
        return field_named(self.fields, name)

    # -------------------------------------------------------------- writes

    def upsert(self, batch: PointBatch) -> None:
        shard = self._need()
        require_space(self.root, WRITE_FACTOR * batch_bytes(batch.vectors, batch.payloads), f"storing {len(batch.ids)} points")
        points = [qe.Point(uid, vectors, payload) for uid, vectors, payload in batch_points(batch, self.fields, qe.SparseVector)]
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

    def _search_params(self, field: VectorField, exact: bool, handoff: bool = False) -> Any:
        key = (field.name, exact, handoff)
        params = self._params.get(key)
        if params is None:
            quant = stage_quantization(field, exact, handoff)
            quant = qe.QuantizationSearchParams(**quant) if quant else None
            params = qe.SearchParams(hnsw_ef=field.search_ef, exact=exact, quantization=quant)
            self._params[key] = params
        return params

    def search_many(self, queries: Sequence[QuerySearches]) -> list[list[StageLists]]:
        """Every plan's requests of every query in one engine call: the binding holds the GIL for
        a whole call, so one call per retriever or per query from several threads would only
        take turns."""
        shard = self._need()
        if self._dirty:
            self.optimize()
        requests: list[Any] = []
        signs: list[float] = []
        spans = []  # per query, per plan: (first request, searched)
        for searches, flt, exact in queries:
            if flt is not None and self.params.payload_indexes and not flt.keys <= self._indexed:
                self._index_payload(flt)
            where = edge_filter(flt)
            own = []
            for plan, vectors in searches:
                made = self._requests(plan, vectors, where, exact)
                own.append((len(requests), made is not None))
                if made is not None:
                    requests += made
                    signs += [score_sign(self._field(stage.field)) for stage in plan.stages]
            spans.append(own)
        fields = ", ".join(dict.fromkeys(f for searches, _, _ in queries for plan, _ in searches for f in plan.fields))
        try:
            found = [] if not requests else [shard.query(requests[0])] if len(requests) == 1 else \
                shard.query_batch(qe.QueryBatchRequest(requests))
            lists = self._item_ids.ranked(found, signs, lambda points: shard.retrieve(points, [ID_KEY], False))
        except Exception as exc:
            raise QueryError(f"{self.root}: search on {fields} failed: {exc}") from exc
        return [[lists[start : start + len(plan.stages)] if searched else [[] for _ in plan.stages]
                 for (start, searched), (plan, _) in zip(own, searches, strict=True)]
                for own, (searches, _, _) in zip(spans, queries, strict=True)]

    def _requests(self, plan: SearchPlan, vectors: Mapping[str, Vectors], where: Any, exact: bool | None) -> list[Any] | None:
        """One query request per stage of `plan` (each a chain of the stages before it); None
        when a sparse query vector is empty (no term to match: every list is empty)."""
        rows: dict[str, Any] = {}
        for name in plan.fields:
            f = self._field(name)
            row = query_row(vectors[name], f)
            if f.kind == "sparse":
                if not row[0]:
                    return None
                row = qe.SparseVector(*row)
            rows[name] = row

        def prefetch(stage: Stage, inner: list[Any] | None, first: bool) -> Any:
            f = self._field(stage.field)
            return qe.Prefetch(
                limit=int(stage.limit), query=qe.Query.Nearest(rows[stage.field], using=stage.field), prefetches=inner,
                params=self._search_params(f, stage_exact(stage, f, exact, first), handoff=True),
                filter=where if first else None,
            )

        requests = []
        for n in range(1, len(plan.stages) + 1):
            last = plan.stages[n - 1]
            f = self._field(last.field)
            requests.append(qe.QueryRequest(
                limit=int(last.limit),
                query=qe.Query.Nearest(rows[last.field], using=last.field),
                prefetches=prefetch_chain(plan.stages[: n - 1], prefetch),
                filter=where,
                params=self._search_params(f, stage_exact(last, f, exact, n == 1), handoff=n < len(plan.stages)),
                with_payload=False,  # item ids come from self._item_ids (see _edge_ids)
            ))
        return requests

    def _index_payload(self, flt: Filter) -> None:
        """Create payload indexes for filtered keys: filters on unindexed keys read every
        candidate's payload from disk (10-25x slower at 10k points)."""
        with self._lock:
            shard = self._need()
            for c in flt.conditions:
                if c.key in self._indexed:
                    continue
                schema = payload_schema(c.op, c.value)
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
            stored_points(shard.retrieve([point_uuid(i) for i in part], True, list(kinds) if kinds else False), kinds, out)
        return out

    def manifest(self) -> dict[str, str]:
        shard = self._need()
        return scroll_manifest(lambda offset: shard.scroll(
            qe.ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=[ID_KEY, HASH_KEY], with_vector=False)
        ))

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
        try:
            write_json_atomic(self.meta_path, meta)
        except OSError as exc:  # e.g. a full or read-only disk: the old record stays whole
            raise PrismError(f"{self.meta_path}: cannot write the metadata record ({exc.strerror or exc})") from exc

    def info(self) -> StoreInfo:
        shard = self._need()
        return StoreInfo(
            points=int(shard.info().points_count),
            fields={name: field_info(f) for name, f in self.fields.items()},
            location=str(self.root),
            disk_bytes=disk_bytes(self.root),
        )


@hookimpl
def register_stores(register: Callable[[type[Store]], None]) -> None:
    register(QdrantEdgeStore)
