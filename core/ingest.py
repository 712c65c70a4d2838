"""Ingest: sources -> items -> batched encoding per retriever (through the cache) -> upsert.

Incremental by item id and content hash, resumable after a crash: each batch is durable once
upserted, and a re-run skips what is already stored with the same hash.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from .cache import EmbeddingCache
from .collection import Collection
from .contracts import HASH_KEY, ID_KEY, OWNER_KEY, RESERVED_PAYLOAD_KEYS, PointBatch, ProgressFn
from .errors import IngestError, ItemError, ItemSkipped
from .recipe import BuiltRecipe
from .types import Item, Media, Row, from_rows, rows_of

SOURCES = "sources"
"""The owner of the items the recipe's sources produce: `Engine.ingest` brings exactly these in
line with the sources (adds, updates, deletes) and leaves items of every other owner alone."""


def check_owner(owner: str) -> str:
    if not owner or "@" in owner or owner != owner.strip():
        raise IngestError(f"owner {owner!r}: give a non-empty name without '@' or surrounding spaces, e.g. 'python'")
    return owner


def stored_hash(digest: str, owner: str) -> str:
    """What the store keeps as an item's hash: its digest, plus `@owner` unless the sources own it
    (so items stored before owners existed read as the sources', and a change of owner is an update)."""
    return digest if owner == SOURCES else f"{digest}@{owner}"


def owner_of(stored: str) -> str:
    """The owner recorded in a stored hash."""
    return stored.rpartition("@")[2] if "@" in stored else SOURCES


@dataclass
class IngestReport:
    """What an ingest run did."""

    loaded: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    """Stored items of other owners that this run left alone, by owner."""
    errors: list[str] = field(default_factory=list)
    encoded: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, str] | None = field(default=None, repr=False)
    """With `track_items`: each item's fate by id (added, updated, unchanged, failed)."""
    item_errors: dict[str, list[str]] | None = field(default=None, repr=False)
    """With `track_items`: the error messages of each item that has any, by id."""

    @classmethod
    def tracking(cls) -> IngestReport:
        """A report that also records what happened to each item (to split a shared run's report)."""
        return cls(outcomes={}, item_errors={})

    def error(self, message: str, item_id: str | None = None) -> None:
        self.errors.append(message)
        if self.item_errors is not None and item_id is not None:
            self.item_errors.setdefault(item_id, []).append(message)

    def outcome(self, item_id: str, status: str) -> None:
        """Count an item as added, updated or unchanged, or record it as failed after loading."""
        if status != "failed":
            setattr(self, status, getattr(self, status) + 1)
        if self.outcomes is not None:
            self.outcomes[item_id] = status

    def part(self, ids: Sequence[str]) -> IngestReport:
        """The report of just these items of a tracked run (its seconds are the shared run's)."""
        if self.outcomes is None or self.item_errors is None:
            raise ValueError("part() needs a report made by IngestReport.tracking()")
        out = IngestReport(seconds=dict(self.seconds))
        for item_id in dict.fromkeys(ids):
            status = self.outcomes.get(item_id)
            if status is not None:
                out.loaded += 1
                if status != "failed":
                    setattr(out, status, getattr(out, status) + 1)
            out.errors.extend(self.item_errors.get(item_id, ()))
        return out

    @property
    def items_per_second(self) -> float:
        total = sum(self.seconds.values())
        return (self.added + self.updated) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("outcomes", "item_errors")}
        d["items_per_second"] = round(self.items_per_second, 2)
        return d



class IngestPipeline:
    """sources -> items -> per retriever, batched encoding (through the cache) -> upsert.

    It receives what it needs: the recipe, the collection, the embedding cache (None: off) and
    `write`, the context manager that makes each store write exclusive of searches.
    """

    def __init__(
        self,
        recipe: BuiltRecipe,
        collection: Collection,
        cache: Callable[[], EmbeddingCache | None],
        write: Callable[[], AbstractContextManager[Any]],
    ):
        self.recipe, self.collection, self._cache, self.write = recipe, collection, cache, write

    def load_sources(self, report: IngestReport, progress: ProgressFn) -> list[Item]:
        return load_sources(self.recipe, report, progress)

    def valid_items(self, items: Iterable[Item], report: IngestReport) -> dict[str, Item]:
        return valid_items(self.recipe, items, report)

    def run(
        self, items: Iterable[Item], report: IngestReport, progress: ProgressFn, delete_missing: bool | str,
        owner: str = SOURCES,
    ) -> IngestReport:
        """Store `items` as owned by `owner`. `delete_missing`: "owner" removes the owner's other
        items (the sources' ingest), True every other item whoever added it, False none."""
        t0 = time.perf_counter()
        unique = self.valid_items(items, report)
        collection, store = self.collection, self.collection.store
        with self.write():
            collection.open()
            # Deleting what is missing needs every stored id; adding items needs only theirs (a
            # server's small ingests must not scan a large collection under the write lock).
            stored = store.manifest() if delete_missing else stored_hashes(store, list(unique))
        hashes: dict[str, str] = {}
        states: dict[str, FileState | None] = {}
        todo: list[Item] = []
        for item_id, item in unique.items():
            try:
                states[item_id] = file_state(item)  # before the read: a write during it shows after encoding
                h = stored_hash(item.digest(item.content_hash()), owner)
            except OSError as exc:
                report.error(f"{item.source or item_id}: cannot read: {exc}", item_id)
                report.outcome(item_id, "failed")
                continue
            hashes[item_id] = h
            if stored.get(item_id) == h:
                report.outcome(item_id, "unchanged")
            else:
                todo.append(item)
        report.seconds["load"] = report.seconds.get("load", 0.0) + time.perf_counter() - t0

        # Recorded before any batch, so a cancelled or killed ingest still filters on its fields.
        with self.write():
            collection.record_payload_keys(_payload_keys(unique.values()))
        cache = self._cache() if self.recipe.spec.ingest.cache else None
        batch_size = self.recipe.spec.ingest.batch_size
        progress("encode", 0, len(todo))
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            self._batch(batch, [hashes[i.id] for i in batch], [states[i.id] for i in batch], stored, cache, report,
                        _BatchProgress(progress, start, len(batch), len(todo), len(self.recipe.retrievers)))
            progress("encode", start + len(batch), len(todo))

        if delete_missing:
            t = time.perf_counter()
            gone = [i for i in stored if i not in unique and (delete_missing is True or owner_of(stored[i]) == owner)]
            if gone:
                with self.write():
                    store.delete(gone)
            report.deleted = len(gone)
            report.seconds["delete"] = time.perf_counter() - t
        if delete_missing == "owner":
            for i, h in stored.items():
                if i not in unique and owner_of(h) != owner:
                    report.kept[owner_of(h)] = report.kept.get(owner_of(h), 0) + 1
        t = time.perf_counter()
        with self.write():
            store.optimize()
        report.seconds["index"] = time.perf_counter() - t
        return report

    def _batch(
        self, batch: Sequence[Item], hashes: Sequence[str], states: Sequence[FileState | None], stored: dict[str, str],
        cache: EmbeddingCache | None, report: IngestReport, tick: Callable[[int], None] = lambda n: None,
    ) -> None:
        rows, bad, skipped = self._encode_batch(batch, hashes, states, cache, report, tick)
        t = time.perf_counter()
        retrievers = self.recipe.retrievers
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, item in enumerate(batch):
            if i in bad:
                report.outcome(item.id, "failed")
                continue
            signature = tuple(name for name in rows if i in rows[name])
            if not signature:
                if i not in skipped:  # else every retriever that takes it skipped it, and said why
                    report.error(f"{item.source or item.id}: no retriever embeds {item.modality.value} documents; "
                                 f"item skipped", item.id)
                report.outcome(item.id, "failed")
                continue
            groups[signature].append(i)
        for signature, positions in groups.items():
            vectors: dict[str, Any] = {}
            for name in signature:
                encoded = from_rows(retrievers[name].encoder.output, [rows[name][i] for i in positions])
                vectors.update(self.collection.field_vectors(retrievers[name], encoded))
            payloads = [payload_of(batch[i], hashes[i], owner_of(hashes[i])) for i in positions]
            with self.write():  # a batch is one write: searches see all of it or none
                self.collection.store.upsert(PointBatch([batch[i].id for i in positions], vectors, payloads))
            for i in positions:
                report.outcome(batch[i].id, "updated" if batch[i].id in stored else "added")
        report.seconds["upsert"] = report.seconds.get("upsert", 0.0) + time.perf_counter() - t

    def _encode_batch(
        self, batch: Sequence[Item], hashes: Sequence[str], states: Sequence[FileState | None],
        cache: EmbeddingCache | None, report: IngestReport, tick: Callable[[int], None],
    ) -> tuple[dict[str, dict[int, Row]], set[int], set[int]]:
        """Each retriever's vector rows by batch position, the positions that failed in any
        retriever (reported; they are stored in none) and those a retriever skipped (reported;
        stored with the other retrievers' vectors). `tick(n)`: n more items done by one retriever.
        An item read from a file that changed since it was hashed (`states`) fails: its vectors
        may be of other content than its hash, and neither the store nor the cache may pair them."""
        rows: dict[str, dict[int, Row]] = {}
        bad: set[int] = set()
        skipped: set[int] = set()
        for name, retriever in self.recipe.retrievers.items():
            encoder = retriever.encoder
            t = time.perf_counter()
            positions = [i for i, it in enumerate(batch) if encoder.accepts(it.modality, "document")]
            fp = encoder.fingerprint()
            got: dict[int, Row] = {}
            if cache is not None and positions:
                cached = cache.get(fp, [_content_key(hashes[i]) for i in positions], encoder.output)
                got = {positions[j]: row for j, row in cached.items()}
            missing = [i for i in positions if i not in got]
            report.cache_hits[name] = report.cache_hits.get(name, 0) + len(got)
            tick(len(batch) - len(missing))
            fresh, failed, skips = _encode(encoder, [batch[i] for i in missing], tick)
            for j, problem in failed.items():
                (skipped if j in skips else bad).add(missing[j])
                report.error(problem, batch[missing[j]].id)
            encoded_pos = [missing[j] for j in range(len(missing)) if j not in failed]
            got.update(zip(encoded_pos, fresh, strict=True))
            report.encoded[name] = report.encoded.get(name, 0) + len(fresh)
            changed = {i for i in encoded_pos if states[i] is not None and file_state(batch[i]) != states[i]}
            for i in sorted(changed - bad):
                bad.add(i)
                report.error(f"{batch[i].source or batch[i].id}: the file changed while it was being ingested; not "
                             f"stored (ingest again to index its new content)", batch[i].id)
            keep = [k for k, i in enumerate(encoded_pos) if i not in changed]
            if cache is not None and keep:
                cache.put(fp, [_content_key(hashes[encoded_pos[k]]) for k in keep],
                          from_rows(encoder.output, [fresh[k] for k in keep]))
            rows[name] = got
            report.seconds[f"encode:{name}"] = report.seconds.get(f"encode:{name}", 0.0) + time.perf_counter() - t
        return rows, bad, skipped


FileState = tuple[int, int, int]
"""A file's inode, size and modification time (ns): any write or replacement changes it."""


def file_state(item: Item) -> FileState | None:
    """The state of the file an item's content is read from when encoded; None for content held
    in memory (text, bytes) and for a file that is gone."""
    content = item.content
    if not isinstance(content, Media) or content.data is not None or content.path is None:
        return None
    try:
        st = os.stat(content.path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def stored_hashes(store: Any, ids: Sequence[str]) -> dict[str, str]:
    """The stored content hash of each of `ids` that is in the store (a manifest of just them)."""
    out: dict[str, str] = {}
    for start in range(0, len(ids), 1024):
        for item_id, point in store.retrieve(ids[start : start + 1024]).items():
            h = point.payload.get(HASH_KEY)
            if isinstance(h, str):
                out[item_id] = h
    return out


def _encoder_batch(encoder: Any) -> int:
    """How many inputs to hand an encoder at once: its own `batch_size` param, else `max_batch`."""
    size = getattr(encoder.params, "batch_size", None)
    return size if isinstance(size, int) and size > 0 else max(1, int(encoder.max_batch))


class _BatchProgress:
    """Turns "n more items done by one retriever" into the ingest's item progress."""

    def __init__(self, progress: ProgressFn, start: int, size: int, total: int, retrievers: int):
        self.progress, self.start, self.size, self.total = progress, start, size, total
        self.retrievers, self.units = max(1, retrievers), 0

    def __call__(self, n: int) -> None:
        self.units += n
        # Below the batch's end: that count is reported once the batch is stored, so a count at a
        # batch boundary always means durable (a killed ingest keeps everything up to it).
        done = min(self.size - 1, self.units // self.retrievers)
        self.progress("encode", self.start + done, self.total)


def load_sources(recipe: BuiltRecipe, report: IngestReport, progress: ProgressFn) -> list[Item]:
    if not recipe.sources:
        raise IngestError(
            f"{recipe.source}: the recipe has no `sources`, so there is nothing to ingest. Add a "
            f"source (e.g. `sources: [{{use: text-files, path: docs/}}]`) or call engine.ingest_items(items)."
        )
    items: list[Item] = []
    for loader in recipe.sources:
        for entry in loader.load():
            if isinstance(entry, ItemError):
                report.errors.append(str(entry))
            else:
                items.append(entry)
            if len(items) % 256 == 0:
                progress("load", len(items), None)
    progress("load", len(items), len(items))
    return items



def valid_items(recipe: BuiltRecipe, items: Iterable[Item], report: IngestReport) -> dict[str, Item]:
    """The items by id, those with a problem (a duplicate id, a reserved metadata key) reported
    and left out; an `IngestError` when none is left, before anything in the store changes."""
    unique: dict[str, Item] = {}
    for item in items:
        problem = _item_problem(item, unique)
        if problem:
            report.error(problem, item.id)
        else:
            unique[item.id] = item
    report.loaded = len(unique)
    if not unique:
        detail = ("; ".join(report.errors[:5]) + (" ..." if len(report.errors) > 5 else "")) if report.errors else ""
        raise IngestError(
            f"{recipe.source}: empty corpus: the sources produced no items"
            + (f" (skipped: {detail})" if detail else "")
            + ". Check the source paths and globs; nothing in the index was changed."
        )
    return unique


def _content_key(digest: str) -> str:
    """The content-hash part of an item digest: what the embedding cache is keyed by."""
    return digest.split(".", 1)[0]


def _item_problem(item: Item, seen: dict[str, Item]) -> str | None:
    for what, value in (("id", item.id), ("text", item.text or "")):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8, or a lone surrogate
            shown = value.encode("utf-8", "backslashreplace").decode()
            fix = " (a file name that is not valid UTF-8: rename the file)" if what == "id" else ""
            return f"{shown if what == 'id' else item.id.encode('utf-8', 'backslashreplace').decode()}: its {what} is not valid Unicode{fix}; skipped"
    if item.id in seen:
        return (
            f"{item.source or item.id}: duplicate item id {item.id!r} (also from {seen[item.id].source}); kept the "
            f"first. Two sources with files of the same relative path need an `id_prefix` on one of them."
        )
    clash = RESERVED_PAYLOAD_KEYS.intersection(item.metadata)
    if clash:
        return f"{item.source or item.id}: metadata uses reserved key(s) {sorted(clash)}; rename them"
    return None


def _payload_keys(items: Iterable[Item]) -> set[str]:
    keys: set[str] = set(RESERVED_PAYLOAD_KEYS)
    for item in items:
        keys.update(item.metadata)
    return keys


def payload_of(item: Item, content_hash: str, owner: str = SOURCES) -> dict[str, Any]:
    """What the store keeps next to an item's vectors."""
    payload: dict[str, Any] = {
        ID_KEY: item.id, HASH_KEY: content_hash, OWNER_KEY: owner, "modality": item.modality.value,
    }
    if isinstance(item.content, str):
        payload["text"] = item.content
    elif isinstance(item.content, Media) and item.content.path is not None:
        payload["path"] = str(item.content.path)
    if item.parent_id is not None:
        payload["parent_id"] = item.parent_id
    if item.span is not None:
        payload["span"] = item.span.to_payload()
    if item.source is not None:
        payload["source"] = item.source
    payload.update(item.metadata)
    return payload



def _encode_isolating(
    encoder: Any, items: Sequence[Item], positions: list[int], modality: Any, out: dict[int, Row], failed: dict[int, str],
    skips: set[int],
) -> None:
    """Encode items[positions]; on an ItemError drop the failing items (one by one when the
    error does not say which) and encode the rest together. `skips` gets the positions whose
    error is an `ItemSkipped`."""
    try:
        vectors = encoder.encode_batch([items[i].content for i in positions], modality, "document")
        out.update(zip(positions, rows_of(vectors), strict=True))
        return
    except ItemError as exc:
        if len(positions) == 1:
            failed[positions[0]] = f"{items[positions[0]].source or items[positions[0]].id}: {exc.message}"
            if isinstance(exc, ItemSkipped):
                skips.add(positions[0])
            return
        known_bad = {positions[p] for p in exc.positions if p < len(positions)}
    if known_bad:
        for i in sorted(known_bad):
            _encode_isolating(encoder, items, [i], modality, out, failed, skips)  # for its own message
        rest = [i for i in positions if i not in known_bad]
        if rest:
            _encode_isolating(encoder, items, rest, modality, out, failed, skips)
    else:
        for i in positions:
            _encode_isolating(encoder, items, [i], modality, out, failed, skips)


def _encode(
    encoder: Any, items: Sequence[Item], tick: Callable[[int], None] = lambda n: None,
) -> tuple[list[Row], dict[int, str], set[int]]:
    """Encode items grouped by modality, in the encoder's own batches (`tick` after each);
    isolate items that fail so the rest go on. Returns the rows, the failures by position and
    which of them are skips (`ItemSkipped`)."""
    if not items:
        return [], {}, set()
    by_modality: dict[Any, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_modality[item.modality].append(i)
    out: dict[int, Row] = {}
    failed: dict[int, str] = {}
    skips: set[int] = set()
    step = _encoder_batch(encoder)
    for modality, positions in by_modality.items():
        # Longest texts first, as sentence-transformers orders a batch itself: batches of similar
        # lengths pad little, and handing them over one by one lets progress advance per batch.
        positions.sort(key=lambda i: -len(items[i].content) if isinstance(items[i].content, str) else 0)
        for start in range(0, len(positions), step):
            part = positions[start : start + step]
            _encode_isolating(encoder, items, part, modality, out, failed, skips)
            tick(len(part))
    order = [i for i in range(len(items)) if i not in failed]
    return [out[i] for i in order], failed, skips
