"""The engine of one recipe: its collection, the ingest and search pipelines, and the one
concurrency contract every front end (CLI, TUI, server) relies on.

Concurrency: any number of threads may search one engine at once. One ingest runs at a time
(a second waits). While an ingest encodes, searches go on; each store write (one batch of
upserts, the deletes, building indexes, a rebuild's drop) excludes searches, so a search sees
every item either as it was before the batch or as it is after, never half-written. A search
encodes its query first and reads the store (all its lists, payloads and reranking) in one read
section after it, so encoding never holds back a write.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypedDict

from typing_extensions import Unpack

from .cache import EmbeddingCache
from .collection import Collection
from .concurrency import ReadWriteLock
from .contracts import Component, Filter, Fusion, ProgressFn, Store, VectorField, no_progress
from .errors import IndexMismatchError, QueryError
from .filters import parse_filter
from .ingest import SOURCES, IngestPipeline, IngestReport, check_owner
from .items import (
    StoredItem,
    count_items,
    delete_items,
    empty_result_hint,
    get_items,
    iter_items,
    stored_items_by_owner,
)
from .query import as_query
from .recipe import BuiltRecipe, ComponentSpec, build_recipe, load_recipe_spec, validate_recipe_file
from .registry import Registry
from .search import PreparedSearch, SearchPipeline, SearchResult
from .types import Hit, Item, Modality

FilterSpec = str | Sequence[str] | Mapping[str, Any] | Filter | None
"""A filter in any form: one line of expressions, a list of expressions, a dict, or a Filter."""


class SearchOptions(TypedDict, total=False):
    """The keyword options of `Engine.search`, `search_detailed`, `search_many` and `prepare_search`."""

    top_k: int | None
    filter: FilterSpec
    weights: Mapping[str, float] | None
    modality: Modality | str | None
    exact: bool | None
    retrievers: Sequence[str] | None


class Engine:
    """Runs one validated recipe. Build it with `prismrag.load_recipe(path)`."""

    def __init__(self, recipe: BuiltRecipe, registry: Registry, cache: EmbeddingCache | None = None):
        self.recipe = recipe
        self.registry = registry
        self._cache = cache
        self._owns_cache = cache is None  # a cache handed in may serve other engines: not ours to close
        self._cache_lock = threading.Lock()
        self.collection = Collection(recipe)
        self._rw = ReadWriteLock()
        self._ingest_lock = threading.Lock()
        self._ingest = IngestPipeline(recipe, self.collection, self._ingest_cache, self._rw.write)
        self._search = SearchPipeline(recipe, self.collection)
        self._closed = False

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
        registry = registry or Registry()
        if store is None:
            return cls(validate_recipe_file(path, registry), registry, cache)
        spec, source, base_dir = load_recipe_spec(path)
        spec = spec.model_copy(update={"store": ComponentSpec.model_validate(dict(store))})
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
        with self._cache_lock:
            if self._cache is None:
                self._cache = EmbeddingCache()
            return self._cache

    def _ingest_cache(self) -> EmbeddingCache:
        return self.cache

    def query_modalities(self) -> set[Modality]:
        return {m for r in self.recipe.retrievers.values() for m in r.encoder.query_modalities}

    def fingerprint(self, retriever: str) -> str:
        return self.recipe.retrievers[retriever].encoder.fingerprint()

    def components(self) -> list[Component]:
        """Every component of the recipe, each once."""
        r = self.recipe
        parts: list[Component] = [r.store, *r.sources]
        for retriever in r.retrievers.values():
            parts += [retriever.encoder, retriever.index]
        parts += ([r.fusion] if r.fusion else []) + list(r.rerankers)
        return list({id(c): c for c in parts}.values())

    # ------------------------------------------------------------------ lifecycle

    def fields(self) -> dict[str, VectorField]:
        """Every vector field of the collection by name (loads encoders that must report a dimension)."""
        return {f.name: f for f in self.collection.all_fields()}

    def open(self) -> None:
        """Create or open the collection and check that it was built by the same encoders."""
        if not self.collection.opened:
            with self._rw.write():
                self.collection.open()

    def close(self) -> None:
        """Close the store and every component (models, connections), after running work ends."""
        with self._ingest_lock, self._rw.write():
            errors = []
            for close, where in [(self.collection.close, self.store.where)] + [
                (c.close, c.where) for c in self.components() if c is not self.store
            ]:
                try:
                    close()
                except Exception as exc:  # close the rest, then report
                    errors.append(f"{where}: {type(exc).__name__}: {exc}")
            if self._cache is not None and self._owns_cache:
                self._cache.close()
                self._cache = None
            if errors:
                from .errors import PrismError

                raise PrismError("closing the engine failed for: " + "; ".join(errors))

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rebuild(self) -> None:
        """Drop every stored vector of this recipe (the embedding cache is kept)."""
        with self._ingest_lock, self._rw.write():
            self.collection.drop()

    # ------------------------------------------------------------------ ingest

    def ingest(self, progress: ProgressFn | None = None, *, rebuild: bool = False) -> IngestReport:
        """Load the recipe's sources and bring their items in line with them (adds, updates,
        deletes). Items added with `ingest_items` belong to their own owner and are kept; a
        `rebuild` re-encodes them from their stored text (or file path) with the new encoders.
        `progress("encode", done, total)` advances with every encoder batch; a count at the end
        of an ingest batch (`ingest.batch_size`) is reported once those items are stored."""
        with self._ingest_lock:
            report = IngestReport()
            items = self._ingest.load_sources(report, progress or no_progress)
            staged = self.store.staging() if rebuild else None
            if staged is not None:
                return self._rebuild_beside(staged, items, report, progress or no_progress)
            others: dict[str, list[Item]] = {}
            if rebuild:
                # Checked before the drop: a rebuild from an empty corpus must not wipe the index.
                items = list(self._ingest.valid_items(items, report).values())
                with self._rw.write():
                    others = self._items_to_carry(report)
                    self.collection.drop()
            self._ingest.run(items, report, progress or no_progress, delete_missing="owner", owner=SOURCES)
            for owner, kept in others.items():
                again = self._ingest.run(kept, IngestReport(), progress or no_progress, False, owner)
                report.kept[owner] = again.added
                report.errors.extend(again.errors)
            return report

    def _rebuild_beside(
        self, staged: Store, items: list[Item], report: IngestReport, progress: ProgressFn,
    ) -> IngestReport:
        """Build the new index in the staging store while this one answers searches, and swap it
        in only when complete; on any failure the staging store is deleted and the old index
        stays as it was."""
        items = list(self._ingest.valid_items(items, report).values())  # an empty corpus fails here
        try:
            self.collection.claim_for_rebuild()  # held: no other process rebuilds this store now
            staged.discard()  # what a killed rebuild left
            with self._rw.read():
                others = self._items_to_carry(report)
            building = IngestPipeline(self.recipe, Collection(self.recipe, staged), self._ingest_cache, nullcontext)
            building.run(items, report, progress, delete_missing="owner", owner=SOURCES)
            for owner, kept in others.items():
                again = building.run(kept, IngestReport(), progress, False, owner)
                report.kept[owner] = again.added
                report.errors.extend(again.errors)
            with self._rw.write():  # searches wait only for the renames
                self.store.swap_in(staged)
                self.collection.forget()
        except BaseException:
            staged.discard()
            raise
        self.open()
        return report

    def _items_to_carry(self, report: IngestReport) -> dict[str, list[Item]]:
        """Before a rebuild's drop: the items of other owners than the sources, to re-encode
        after it. Read through the store alone (the encoders may have changed); a store whose
        layout the new encoders cannot open (another dimension) loses them, and the report says so."""
        try:
            self.store.open(self.collection.all_fields())
            return stored_items_by_owner(self.store, exclude=SOURCES)
        except IndexMismatchError as exc:
            report.errors.append(
                f"{self.recipe.source}: the rebuild could not read the old collection with the new layout ({exc}); "
                f"any items added with ingest_items or the server (not from the sources) were dropped with it: add them again"
            )
            return {}

    def ingest_items(
        self, items: Iterable[Item], progress: ProgressFn | None = None, *, owner: str = "python",
        delete_missing: bool = False, track_items: bool = False,
    ) -> IngestReport:
        """Index the given items as owned by `owner` (items the recipe's sources produce are owned
        by `"sources"`). `ingest()` deletes only the sources' items, so these survive it; with
        `delete_missing`, every other stored item, whoever added it, is removed (eval does that,
        as `"sources"`, to index exactly its data set). `track_items`: the report also says what
        happened to each item (`IngestReport.part` splits it, e.g. among merged requests)."""
        check_owner(owner)
        report = IngestReport.tracking() if track_items else IngestReport()
        with self._ingest_lock:
            return self._ingest.run(items, report, progress or no_progress, delete_missing, owner)

    def ingested(self) -> bool:
        """Whether anything was ever ingested into this recipe's store."""
        self.open()
        return self.collection.ingested()

    # ------------------------------------------------------------------ items

    def get_items(self, ids: Sequence[str]) -> dict[str, StoredItem]:
        """The stored items with these ids (those that exist), by id."""
        self.open()
        with self._rw.read():
            return get_items(self.store, ids)

    def list_items(
        self, filter: FilterSpec = None, *, owner: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[StoredItem]:
        """Stored items passing `filter` (any form `search` takes) and of `owner`, in id order."""
        flt = self._item_filter(filter)
        with self._rw.read():
            found = iter_items(self.store, flt, owner)
            return list(itertools.islice(found, offset, None if limit is None else offset + limit))

    def count(self, filter: FilterSpec = None, *, owner: str | None = None) -> int:
        """How many stored items pass `filter` (and belong to `owner`)."""
        flt = self._item_filter(filter)
        with self._rw.read():
            return count_items(self.store, flt, owner)

    def delete(
        self, ids: Sequence[str] | None = None, *, filter: FilterSpec = None, owner: str | None = None
    ) -> list[str]:
        """Delete items by id, or every item passing `filter` (and of `owner`); the ids deleted.
        With neither ids nor a filter nor an owner it refuses (use `rebuild` to empty the store)."""
        if isinstance(ids, str):
            ids = [ids]
        flt = self._item_filter(filter)
        if ids is None and flt is None and owner is None:
            raise QueryError("delete: give item ids, a filter or an owner (to delete everything, rebuild)")
        with self._ingest_lock, self._rw.write():
            return delete_items(self.store, ids, flt, owner)

    def _item_filter(self, filter: FilterSpec) -> Filter | None:
        flt = parse_filter(filter)
        self.open()
        if flt is not None and self.collection.ingested():
            self.collection.check_filter(flt)
        return flt

    # ------------------------------------------------------------------ search

    def search(self, query: Any, **options: Unpack[SearchOptions]) -> list[Hit]:
        """Search with text, a file path, bytes (with `modality`) or a `Query`; best first.

        Options: `top_k`; `filter`: one line of expressions (`"tags contains rag date>=2024-01-01"`,
        the syntax of the CLI and TUI, see docs/recipes.md), a list of them, a dict or a Filter; `weights`, which override the named
        retrievers' fusion weights for this query (the others keep the recipe's); `modality`;
        `exact`, which forces (True) brute-force search on each retriever's main field instead
        of its plan, or forbids it (False); `retrievers`, which searches only the named ones (e.g.
        those `loading()` does not list). Safe to call from many threads at once.
        """
        return self.search_detailed(query, **options).hits

    def search_detailed(self, query: Any, **options: Unpack[SearchOptions]) -> SearchResult:
        """Like `search`, plus per-stage timings and the retrievers the query went to."""
        [result] = self.search_prepared([self.prepare_search(query, **options)])
        if isinstance(result, Exception):
            raise result
        return result

    def search_many(self, queries: Sequence[Any], **options: Unpack[SearchOptions]) -> list[SearchResult]:
        """`search_detailed` of many queries with the same options, in one encoder call per
        retriever and one store call: much faster than one by one (an evaluation, a batch job).
        Raises the first query's error if any fails."""
        prepared = [self.prepare_search(q, **options) for q in queries]
        results = self.search_prepared(prepared)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results  # type: ignore[return-value]

    def prepare_search(
        self,
        query: Any,
        *,
        top_k: int | None = None,
        filter: FilterSpec = None,
        weights: Mapping[str, float] | None = None,
        modality: Modality | str | None = None,
        exact: bool | None = None,
        retrievers: Sequence[str] | None = None,
    ) -> PreparedSearch:
        """A query checked and made ready to search (see `search` for the options); raises what
        is wrong with it before any model runs. Then `search_prepared`."""
        k = self.recipe.spec.search.top_k if top_k is None else top_k
        if k <= 0:
            raise QueryError(f"top_k must be positive, got {k}")
        q = as_query(query, modality, self.registry.claimed_extensions())
        flt = parse_filter(filter)
        if not self.collection.exists():  # said before any model loads or any folder is made
            self._search.route(q, retrievers)
            self._search.fusion_with(weights)
            raise self.collection.nothing_indexed()
        self.open()
        return self._search.prepare(q, k, flt, weights, exact, retrievers)

    def search_prepared(self, prepared: Sequence[PreparedSearch]) -> list[SearchResult | Exception]:
        """The results of prepared queries: encoded (one encoder call per retriever and modality,
        no lock taken), then searched in one read section; a query that failed gets its exception
        in its place (the others their results). How `prism serve` runs a batch of concurrent
        queries."""
        self._search.encode_many(prepared)
        results = self._search.search_prepared(prepared, reading=self._rw.read)
        for p, result in zip(prepared, results, strict=True):
            if not isinstance(result, Exception) and not result.hits and p.filter is not None:
                with self._rw.read():
                    hint = empty_result_hint(self.store, p.filter)
                if hint:
                    result.notes.append(hint)
        return results

    def fusion_with(self, weights: Mapping[str, float] | None) -> Fusion | None:
        """The recipe's fusion with query-time `weights` over its own (validated like them)."""
        return self._search.fusion_with(weights)

    def check_filter(self, flt: Filter) -> None:
        self.collection.check_filter(flt)

    def modality_of(self, path: str | Path) -> Modality | None:
        """The modality of a file by its extension, asking installed loaders first."""
        from .types import modality_of_path

        return modality_of_path(path, self.registry.claimed_extensions())

    # ------------------------------------------------------------------ models

    def retrievers_for(self, modality: Modality | str) -> list[str]:
        """The retrievers a query of this modality goes to."""
        m = Modality(modality)
        return [name for name, r in self.recipe.retrievers.items() if r.encoder.accepts(m, "query")]

    def loading(self) -> list[str]:
        """The retrievers whose encoder still has a model to load before it can encode."""
        return [name for name, r in self.recipe.retrievers.items() if not r.encoder.ready]

    def warm_up(self, done: Callable[[str], None] | None = None) -> None:
        """Load every component's model now, the retrievers' encoders first, one by one;
        `done(retriever name)` after each retriever becomes ready."""
        for name, r in self.recipe.retrievers.items():
            r.encoder.warm_up()
            if done is not None:
                done(name)
        for component in self.components():
            component.warm_up()

    # ------------------------------------------------------------------ info

    def info(self) -> dict[str, Any]:
        """The store, its points and disk use, each retriever's fields and plan. A recipe never
        ingested is described from the recipe alone (no store is created, no model loaded)."""
        if not self.collection.exists():
            return self._recipe_info()
        self.open()
        with self._rw.read():
            store = self.store.info()
        fields = {name: self.collection.fields_of(name) for name in self.recipe.retrievers}
        return {
            "recipe": self.name,
            "source": self.recipe.source,
            "store": {"use": self.store.name, "location": store.location, "disk_bytes": store.disk_bytes},
            "points": store.points,
            "ingested": True,
            "retrievers": {
                name: {
                    "encoder": r.encoder.name,
                    "kind": fields[name][0].kind,
                    "dimension": fields[name][0].dimension,
                    "distance": fields[name][0].distance if fields[name][0].kind != "sparse" else None,
                    "query_modalities": sorted(m.value for m in r.encoder.query_modalities),
                    "store": dict(store.fields.get(name, {})),
                    "fields": [f.name for f in fields[name]],
                    "plan": [
                        {"field": s.field, "limit": s.limit}
                        for s in r.index.plan(fields[name], r.top_k).stages
                    ],
                }
                for name, r in self.recipe.retrievers.items()
            },
            "fusion": self.recipe.fusion.name if self.recipe.fusion else None,
            "rerank": [r.name for r in self.recipe.rerankers],
            "payload_keys": [k for k in self.collection.payload_keys() if not k.startswith("_")],
        }

    def _recipe_info(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "recipe": self.name,
            "source": r.source,
            "store": {"use": self.store.name, "location": str(getattr(self.store, "root", self.store.where)),
                      "disk_bytes": 0},
            "points": 0,
            "ingested": False,
            "retrievers": {
                name: {
                    "encoder": rr.encoder.name,
                    "kind": rr.encoder.output,
                    "dimension": None,
                    "distance": None,
                    "query_modalities": sorted(m.value for m in rr.encoder.query_modalities),
                    "store": {},
                    "fields": [],
                    "plan": [],
                }
                for name, rr in r.retrievers.items()
            },
            "fusion": r.fusion.name if r.fusion else None,
            "rerank": [x.name for x in r.rerankers],
            "payload_keys": [],
        }
