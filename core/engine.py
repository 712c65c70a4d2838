"""The engine of one recipe: open the store, ingest, search, describe."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .cache import EmbeddingCache
from .components import Filter, Fusion, VectorField
from .errors import IndexMismatchError, QueryError
from .filters import filter_from_dict
from .ingest import IngestReport, ProgressFn, ingest_items, load_sources, valid_items
from .recipe import BuiltRecipe, ComponentSpec, build_recipe, load_recipe_spec
from .registry import Registry
from .searching import SearchResult, as_query, run_search
from .types import Hit, Item, Modality

META_VERSION = 1


def _quiet(stage: str, done: int, total: int | None) -> None:
    pass


class Engine:
    """Runs one validated recipe. Build it with `prismrag.load_recipe(path)`."""

    def __init__(self, recipe: BuiltRecipe, registry: Registry, cache: EmbeddingCache | None = None):
        self.recipe = recipe
        self.registry = registry
        self._cache = cache
        self._owns_cache = cache is None  # a cache handed in may serve other engines: not ours to close
        self._opened = False
        self._fields: dict[str, VectorField] = {}
        self._meta: dict[str, Any] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        registry: Registry | None = None,
        store: Mapping[str, Any] | None = None,
        cache: EmbeddingCache | None = None,
    ) -> Engine:
        """Load a recipe file. `store` replaces the recipe's store spec (e.g. a temporary path)."""
        spec, source, base_dir = load_recipe_spec(path)
        if store is not None:
            spec = spec.model_copy(update={"store": ComponentSpec.model_validate(dict(store))})
        registry = registry or Registry()
        return cls(build_recipe(spec, source, base_dir, registry), registry, cache)

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        return self.recipe.spec.name

    @property
    def store(self):  # noqa: ANN201 - a Store
        return self.recipe.store

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache()
        return self._cache

    def query_modalities(self) -> set[Modality]:
        return {m for r in self.recipe.retrievers.values() for m in r.encoder.query_modalities}

    def fingerprint(self, retriever: str) -> str:
        return self.recipe.retrievers[retriever].encoder.fingerprint()

    # ------------------------------------------------------------------ lifecycle

    def fields(self) -> dict[str, VectorField]:
        """The vector field of each retriever (loads encoders that must report a dimension)."""
        if not self._fields:
            for name, r in self.recipe.retrievers.items():
                dim = r.encoder.dimension() if r.encoder.output != "sparse" else None
                self._fields[name] = r.index.field(name, r.encoder, dim)
        return self._fields

    def open(self) -> None:
        """Create or open the collection and check that it was built by the same encoders."""
        with self._lock:
            if self._opened:
                return
            fields = self.fields()
            self.store.open(list(fields.values()))
            meta = self.store.read_meta() or {}
            expected = {name: self.fingerprint(name) for name in fields}
            built_with = meta.get("encoders", {})
            changed = [n for n in expected if n in built_with and built_with[n] != expected[n]]
            if changed:
                raise IndexMismatchError(
                    f"{self.recipe.source}: retriever(s) {', '.join(changed)} were indexed with another "
                    f"encoder or encoder params than the recipe names now. Run `prism ingest "
                    f"{self.recipe.source} --rebuild` to re-index, or restore the previous settings."
                )
            self._meta = {
                "version": META_VERSION,
                "recipe": self.name,
                "encoders": expected,
                "payload_keys": sorted(meta.get("payload_keys", [])),
            }
            if meta != self._meta:
                self.store.write_meta(self._meta)
            self._opened = True

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.store.close()
            self._opened = False
            if self._cache is not None and self._owns_cache:
                self._cache.close()
                self._cache = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rebuild(self) -> None:
        """Drop every stored vector of this recipe (the embedding cache is kept)."""
        with self._lock:
            self.store.drop()
            self._opened = False
            self._fields = {}
            self.open()

    # ------------------------------------------------------------------ ingest

    def ingest(self, progress: ProgressFn | None = None, *, rebuild: bool = False) -> IngestReport:
        """Load the recipe's sources and bring the index in line with them (adds, updates, deletes)."""
        with self._lock:
            report = IngestReport()
            items = load_sources(self, report, progress or _quiet)
            if rebuild:
                # Checked before the drop: a rebuild from an empty corpus must not wipe the index.
                items = list(valid_items(self, items, report).values())
                self.rebuild()
            return ingest_items(self, items, report, progress or _quiet, delete_missing=True)

    def ingest_items(
        self, items: Iterable[Item], progress: ProgressFn | None = None, *, delete_missing: bool = False
    ) -> IngestReport:
        """Index the given items (e.g. from a data set); with `delete_missing`, remove all others."""
        with self._lock:
            return ingest_items(self, items, IngestReport(), progress or _quiet, delete_missing)

    def ingested(self) -> bool:
        """Whether anything was ever ingested into this recipe's store."""
        return bool(self._meta.get("payload_keys"))

    def record_payload_keys(self, keys: set[str]) -> None:
        known = set(self._meta.get("payload_keys", []))
        if not keys <= known:
            self._meta["payload_keys"] = sorted(known | keys)
            self.store.write_meta(self._meta)

    # ------------------------------------------------------------------ search

    def search(
        self,
        query: Any,
        *,
        top_k: int | None = None,
        filter: Mapping[str, Any] | Filter | None = None,
        weights: Mapping[str, float] | None = None,
        modality: Modality | str | None = None,
        exact: bool | None = None,
    ) -> list[Hit]:
        """Search with text, a file path, bytes (with `modality`) or a `Query`; best first.

        `weights` overrides the named retrievers' fusion weights for this query (the others keep
        the recipe's); `exact` forces
        (True) or forbids (False) brute-force search instead of each index's own setting.
        """
        return self.search_detailed(
            query, top_k=top_k, filter=filter, weights=weights, modality=modality, exact=exact
        ).hits

    def search_detailed(
        self,
        query: Any,
        *,
        top_k: int | None = None,
        filter: Mapping[str, Any] | Filter | None = None,
        weights: Mapping[str, float] | None = None,
        modality: Modality | str | None = None,
        exact: bool | None = None,
    ) -> SearchResult:
        """Like `search`, plus per-stage timings and the retrievers the query went to."""
        k = self.recipe.spec.search.top_k if top_k is None else top_k
        if k <= 0:
            raise QueryError(f"top_k must be positive, got {k}")
        return run_search(self, as_query(query, modality), k, filter_from_dict(filter), weights, exact)

    def check_filter(self, flt: Filter) -> None:
        known = set(self._meta.get("payload_keys", []))
        unknown = sorted(k for k in flt.keys if k.split(".")[0] not in known)
        if unknown:
            raise QueryError(
                f"filter on unknown field(s) {', '.join(unknown)}: no ingested item has them. "
                f"Known fields: {', '.join(sorted(k for k in known if not k.startswith('_')))}"
            )

    def fusion_with(self, weights: Mapping[str, float] | None) -> Fusion | None:
        fusion = self.recipe.fusion
        if fusion is None or not weights:
            return fusion
        unknown = set(weights) - set(self.recipe.retrievers)
        if unknown:
            raise QueryError(f"weights name unknown retriever(s) {sorted(unknown)}; retrievers: {sorted(self.recipe.retrievers)}")
        if "weights" not in type(fusion.params).model_fields:
            raise QueryError(f"fusion {fusion.name!r} takes no weights")
        # Overrides go over the recipe's weights: a retriever not named keeps its recipe weight.
        data = fusion.params.model_dump(by_alias=True)
        data["weights"] = {**data.get("weights", {}), **weights}
        try:
            params = type(fusion.params).model_validate(data)
        except ValueError as exc:
            raise QueryError(f"invalid fusion weights {dict(weights)}: {exc}") from exc
        return type(fusion)(params, fusion.context)

    # ------------------------------------------------------------------ info

    def info(self) -> dict[str, Any]:
        self.open()
        store = self.store.info()
        return {
            "recipe": self.name,
            "source": self.recipe.source,
            "store": {"use": self.store.name, "location": store.location, "disk_bytes": store.disk_bytes},
            "points": store.points,
            "retrievers": {
                name: {
                    "encoder": r.encoder.name,
                    "kind": self._fields[name].kind,
                    "dimension": self._fields[name].dimension,
                    "distance": self._fields[name].distance if self._fields[name].kind != "sparse" else None,
                    "query_modalities": sorted(m.value for m in r.encoder.query_modalities),
                    "store": dict(store.fields.get(name, {})),
                }
                for name, r in self.recipe.retrievers.items()
            },
            "fusion": self.recipe.fusion.name if self.recipe.fusion else None,
            "rerank": [r.name for r in self.recipe.rerankers],
            "payload_keys": [k for k in self._meta.get("payload_keys", []) if not k.startswith("_")],
        }
