"""The recipe's collection: its store, the vector fields of every retriever, and the metadata
record that ties the stored vectors to the encoders that made them."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from .contracts import Filter, Store, VectorField, Vectors
from .errors import IndexMismatchError, QueryError
from .recipe import BuiltRecipe, Retriever

META_VERSION = 1


class Collection:
    """Opens the store lazily, checks it was built by the recipe's encoders, and keeps the
    payload keys seen so far (for filter checks). Callers serialise writes (the engine does)."""

    def __init__(self, recipe: BuiltRecipe):
        self.recipe = recipe
        self.store: Store = recipe.store
        self._fields: dict[str, list[VectorField]] = {}
        self._meta: dict[str, Any] = {}
        self._opened = False
        self._open_lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._opened

    def fields_of(self, retriever: str) -> list[VectorField]:
        """The vector fields of one retriever, the main one first (loads encoders that must
        report a dimension)."""
        if retriever not in self._fields:
            r = self.recipe.retrievers[retriever]
            dim = r.encoder.dimension() if r.encoder.output != "sparse" else None
            self._fields[retriever] = r.index.fields(retriever, r.encoder, dim)
        return self._fields[retriever]

    def all_fields(self) -> list[VectorField]:
        return [f for name in self.recipe.retrievers for f in self.fields_of(name)]

    def field_vectors(self, retriever: Retriever, vectors: Vectors) -> dict[str, Vectors]:
        """The encoder's vectors of one retriever as the vectors of each of its fields."""
        return {f.name: retriever.index.derive(f, vectors) for f in self.fields_of(retriever.name)}

    def fingerprints(self) -> dict[str, str]:
        return {name: r.encoder.fingerprint() for name, r in self.recipe.retrievers.items()}

    def open(self) -> None:
        """Create or open the collection and check that it was built by the same encoders."""
        if self._opened:
            return
        with self._open_lock:
            if self._opened:
                return
            self.store.open(self.all_fields())
            meta = self.store.read_meta() or {}
            expected = self.fingerprints()
            built_with = meta.get("encoders", {})
            changed = [n for n in expected if n in built_with and built_with[n] != expected[n]]
            if changed:
                source = self.recipe.source
                raise IndexMismatchError(
                    f"{source}: retriever(s) {', '.join(changed)} were indexed with another encoder or "
                    f"encoder params than the recipe names now. Run `prism ingest {source} --rebuild` to "
                    f"re-index, or restore the previous settings."
                )
            self._meta = {
                "version": META_VERSION,
                "recipe": self.recipe.spec.name,
                "encoders": expected,
                "payload_keys": sorted(meta.get("payload_keys", [])),
            }
            if meta != self._meta:
                self.store.write_meta(self._meta)
            self._opened = True

    def close(self) -> None:
        if self._opened:
            self.store.close()
        self._opened = False

    def drop(self) -> None:
        """Delete every stored vector of the recipe and open an empty collection."""
        self.store.drop()
        self._opened = False
        self._fields = {}
        self.open()

    def ingested(self) -> bool:
        """Whether anything was ever ingested into this collection."""
        return bool(self._meta.get("payload_keys"))

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
