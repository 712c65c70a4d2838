"""The recipe's collection: its store, the vector fields of every retriever, and the metadata
record that ties the stored vectors to the encoders that made them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .contracts import Filter, Store, VectorField, Vectors
from .errors import IndexMismatchError, QueryError
from .recipe import BuiltRecipe, Retriever

META_VERSION = 1
RECIPE_SUFFIXES = (".yaml", ".yml", ".toml")
log = logging.getLogger("prismrag.collection")


def encoder_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What differs between the encoder an index was built with and the recipe's, in words."""
    if not old:
        return "another encoder or encoder params (this index predates the record of which)"
    if old.get("encoder") != new.get("encoder"):
        return f"encoder {old.get('encoder')!r} → {new.get('encoder')!r}"
    before, after = old.get("params", {}), new.get("params", {})
    parts = [f"{k} {before.get(k)!r} → {after.get(k)!r}"
             for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if old.get("weights") != new.get("weights"):
        parts.append("the model files changed")
    return ", ".join(parts) or "encoder settings changed"


def stored_dimensions(meta: dict[str, Any], fingerprints: dict[str, str]) -> dict[str, int]:
    """The vector dimensions the metadata record holds for retrievers built by the encoders
    the recipe names now (same fingerprint): those need not load a model to learn them."""
    built_with, dims = meta.get("encoders", {}), meta.get("dimensions", {})
    if not isinstance(built_with, dict) or not isinstance(dims, dict):
        return {}
    return {name: int(dims[name]) for name, fp in fingerprints.items()
            if built_with.get(name) == fp and isinstance(dims.get(name), int) and dims[name] > 0}


class Collection:
    """Opens the store lazily, checks it was built by the recipe's encoders, and keeps the
    payload keys seen so far (for filter checks). Callers serialise writes (the engine does)."""

    def __init__(self, recipe: BuiltRecipe, store: Store | None = None):
        self.recipe = recipe
        self.store: Store = store if store is not None else recipe.store
        """The recipe's store, or another (the staging store of a rebuild)."""
        self._fields: dict[str, list[VectorField]] = {}
        self._meta: dict[str, Any] = {}
        self._stored_dimensions: dict[str, int] = {}
        """Dimensions recorded with the index for retrievers whose encoder is unchanged: opening
        a built collection needs no model load."""
        self._opened = False
        self._claimed = False
        self._open_lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._opened

    def fields_of(self, retriever: str) -> list[VectorField]:
        """The vector fields of one retriever, the main one first (loads encoders that must
        report a dimension)."""
        if retriever not in self._fields:
            r = self.recipe.retrievers[retriever]
            dim = None
            if r.encoder.output != "sparse":
                dim = self._stored_dimensions.get(retriever) or r.encoder.dimension()
            self._fields[retriever] = r.index.fields(retriever, r.encoder, dim)
        return self._fields[retriever]

    def all_fields(self) -> list[VectorField]:
        return [f for name in self.recipe.retrievers for f in self.fields_of(name)]

    def field_vectors(self, retriever: Retriever, vectors: Vectors, role: str = "document") -> dict[str, Vectors]:
        """The encoder's vectors of one retriever (documents, or a query with role="query") as
        the vectors of each of its fields."""
        derive = retriever.index.derive_query if role == "query" else retriever.index.derive
        return {f.name: derive(f, vectors) for f in self.fields_of(retriever.name)}

    def fingerprints(self) -> dict[str, str]:
        return {name: r.encoder.fingerprint() for name, r in self.recipe.retrievers.items()}

    def open(self) -> None:
        """Create or open the collection and check that it was built by the same encoders."""
        if self._opened:
            return
        with self._open_lock:
            if self._opened:
                return
            self.store.claim()  # before any model loads: a busy store fails fast
            self._claimed = True
            meta = self.store.read_meta() or {}
            self._check_owner(meta)
            expected = self.fingerprints()
            self._stored_dimensions = stored_dimensions(meta, expected)
            self.store.open(self.all_fields())
            records = {name: r.encoder.fingerprint_record() for name, r in self.recipe.retrievers.items()}
            built_with = meta.get("encoders", {})
            changed = [n for n in expected if n in built_with and built_with[n] != expected[n]]
            if changed:
                old_records = meta.get("encoder_records", {})
                what = "; ".join(f"{n}: {encoder_change(old_records.get(n), records[n])}" for n in changed)
                source = self.recipe.source
                raise IndexMismatchError(
                    f"{source}: the index was built with other encoder settings than the recipe names now "
                    f"({what}). Run `prism ingest {source} --rebuild` to re-index, or restore the previous settings."
                )
            recipe_file = self._recipe_file()
            self._warn_if_shared(meta.get("recipe_file"), recipe_file)
            self._meta = {
                "version": META_VERSION,
                "recipe": self.recipe.spec.name,
                "recipe_file": recipe_file,
                "encoders": expected,
                "encoder_records": records,
                "dimensions": {name: fields[0].dimension for name, fields in self._fields.items()
                               if fields[0].dimension is not None},
                "payload_keys": sorted(meta.get("payload_keys", [])),
            }
            if meta != self._meta:
                self.store.write_meta(self._meta)
            self._opened = True

    def _recipe_file(self) -> str | None:
        """The recipe's file, absolute (None for a recipe built in code)."""
        path = Path(self.recipe.source)
        return str(path.resolve()) if path.suffix.lower() in RECIPE_SUFFIXES and path.is_file() else None

    def _warn_if_shared(self, before: Any, now: str | None) -> None:
        """A copy of a recipe that kept its `name` (and so its default store folder) writes the
        same index as the original: say so while both files exist."""
        if isinstance(before, str) and now is not None and before != now and Path(before).is_file():
            where = getattr(self.store, "root", self.store.where)
            log.warning(
                "%s: recipe %r shares its data folder %s with %s (a copy that kept the name?): both read and "
                "write one index. Give this recipe its own `name` or `store.path`.",
                self.recipe.source, self.recipe.spec.name, where, before,
            )

    def _check_owner(self, meta: dict[str, Any]) -> None:
        """Refuse a store that another recipe (another name) built: its items would be replaced."""
        owner = meta.get("recipe")
        name = self.recipe.spec.name
        if owner and owner != name:
            where = self.store.info().location if self._opened else getattr(self.store, "root", self.store.where)
            raise IndexMismatchError(
                f"{self.recipe.source}: the store at {where} belongs to recipe {owner!r}, not {name!r}; two recipes "
                f"on one store would replace each other's items. Give recipe {name!r} its own `store.path` "
                f"(or delete that folder if recipe {owner!r} is gone)."
            )

    def close(self) -> None:
        # Always: a claim whose open failed is given back too, and so is one a rebuild made
        # through the store alone (reading the old collection's items). Stores close idempotently.
        self.store.close()
        self._opened = self._claimed = False

    def forget(self) -> None:
        """After the store's collection was replaced (a rebuild swapped in): open it again on next use."""
        self._opened = False
        self._fields, self._meta, self._stored_dimensions = {}, {}, {}

    def claim_for_rebuild(self) -> None:
        """Lock the store and refuse a rebuild over another recipe's index."""
        self.store.claim()
        self._claimed = True
        self._check_owner(self.store.read_meta() or {})

    def drop(self) -> None:
        """Delete every stored vector of the recipe and open an empty collection."""
        self.claim_for_rebuild()
        self.store.drop()
        self._opened = False
        self._fields = {}
        self.open()

    def ingested(self) -> bool:
        """Whether anything was ever ingested into this collection."""
        return bool(self._meta.get("payload_keys"))

    def exists(self) -> bool:
        """Whether the store holds this collection's record (it was opened once), read without
        opening it: a recipe never ingested creates nothing and loads no model to say so."""
        return self._opened or self.store.read_meta() is not None

    def nothing_indexed(self) -> QueryError:
        source = self.recipe.source
        return QueryError(
            f"{source}: nothing is indexed yet for recipe {self.recipe.spec.name!r}; run `prism ingest {source}` first"
        )

    def payload_keys(self) -> list[str]:
        return list(self._meta.get("payload_keys", []))

    def record_payload_keys(self, keys: Iterable[str]) -> None:
        known = set(self._meta.get("payload_keys", []))
        keys = set(keys)
        if not keys <= known:
            self._meta["payload_keys"] = sorted(known | keys)
            self.store.write_meta(self._meta)

    def check_filter(self, flt: Filter) -> None:
        known = set(self._meta.get("payload_keys", []))
        unknown = sorted(k for k in flt.keys if k.split(".")[0] not in known)
        if unknown:
            raise QueryError(
                f"filter on unknown field(s) {', '.join(unknown)}: no ingested item has them. "
                f"Known fields: {', '.join(sorted(k for k in known if not k.startswith('_')))}"
            )
