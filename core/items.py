"""Stored items by id or by filter: get, list, count, delete, and the values a field holds.

Listing and counting by filter read the stored payloads in pages and test them with
`prismrag.filters.matches` (the reference semantics of every store's native filter), so they
work on any store; they cost one pass over the collection's payloads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contracts import HASH_KEY, ID_KEY, OWNER_KEY, Filter, Store
from .filters import matches, payload_value
from .ingest import owner_of
from .types import Item, Media, Modality, Span

PAGE = 512


@dataclass(frozen=True)
class StoredItem:
    """An item as stored: its id, who added it (`sources` or an `ingest_items` owner) and its
    payload (text or path, modality, parent, span, source and metadata)."""

    id: str
    owner: str
    payload: Mapping[str, Any]

    @property
    def text(self) -> str | None:
        return self.payload.get("text")

    @property
    def metadata(self) -> dict[str, Any]:
        """The payload without the keys the engine writes for every item."""
        from .contracts import RESERVED_PAYLOAD_KEYS

        return {k: v for k, v in self.payload.items() if k not in RESERVED_PAYLOAD_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "payload": dict(self.payload)}


def _item(item_id: str, payload: Mapping[str, Any]) -> StoredItem:
    owner = payload.get(OWNER_KEY) or owner_of(str(payload.get(HASH_KEY, "")))
    return StoredItem(item_id, owner, {k: v for k, v in payload.items() if not k.startswith("_")})


def get_items(store: Store, ids: Sequence[str]) -> dict[str, StoredItem]:
    """The stored items of `ids` that exist, by id (in the order asked)."""
    points = store.retrieve(list(ids))
    return {i: _item(i, points[i].payload) for i in ids if i in points}


def iter_items(store: Store, flt: Filter | None = None, owner: str | None = None) -> Iterator[StoredItem]:
    """Every stored item that passes `flt` (and belongs to `owner`), in id order."""
    ids = sorted(store.manifest())
    for start in range(0, len(ids), PAGE):
        page = ids[start : start + PAGE]
        points = store.retrieve(page)
        for i in page:
            point = points.get(i)
            if point is None or not matches(flt, point.payload):
                continue
            item = _item(i, point.payload)
            if owner is None or item.owner == owner:
                yield item


def count_items(store: Store, flt: Filter | None = None, owner: str | None = None) -> int:
    if flt is None and owner is None:
        return len(store.manifest())
    if flt is None:
        return sum(1 for h in store.manifest().values() if owner_of(h) == owner)
    return sum(1 for _ in iter_items(store, flt, owner))


def field_values(store: Store, key: str, limit: int = 5000) -> list[Any]:
    """The distinct values (list elements counted one by one) that `key` holds in the first
    `limit` stored items, most frequent first."""
    counts: dict[Any, int] = {}
    ids = sorted(store.manifest())[:limit]
    for start in range(0, len(ids), PAGE):
        for point in store.retrieve(ids[start : start + PAGE]).values():
            value = payload_value(point.payload, key)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, (str, int, float, bool)):
                    counts[v] = counts.get(v, 0) + 1
    return sorted(counts, key=lambda v: (-counts[v], str(v)))


def empty_result_hint(store: Store, flt: Filter) -> str | None:
    """Why a filter may have matched nothing: for each string condition (=, in, prefix) whose
    value the field never holds, the values it does hold, and stored values that end with the
    asked one (`file=MPL-2.0.txt` when files are stored as `licenses/MPL-2.0.txt`)."""
    from .filters import describe_values

    notes = []
    for c in flt.conditions:
        if c.op not in ("eq", "in", "prefix"):
            continue
        asked = [v for v in (c.value if c.op == "in" else [c.value]) if isinstance(v, str)]
        if not asked:
            continue
        values = [v for v in field_values(store, c.key) if isinstance(v, str)]
        if c.op == "prefix":
            if any(v.startswith(asked[0]) for v in values):
                continue
        elif set(asked) & set(values):
            continue
        near = [v for v in values if any(v.endswith(a) or a.lower() == v.lower() for a in asked)]
        if near:
            notes.append(f"{c.key}: no item holds {', '.join(map(repr, asked))}; did you mean {describe_values(near, 3)}?")
        elif values:
            notes.append(f"{c.key}: no item holds {', '.join(map(repr, asked))}; it holds e.g. {describe_values(values)}")
        else:
            notes.append(f"{c.key}: no stored item has a text value for this field")
    return "; ".join(notes) or None


def as_item(stored: StoredItem) -> Item:
    """The item a stored payload was made from (text, or media by path), to index it again."""
    p = stored.payload
    content: Any = p["text"] if "text" in p else Media(path=Path(p["path"]))
    span = Span(**p["span"]) if isinstance(p.get("span"), Mapping) else None
    return Item(stored.id, Modality(p.get("modality", "text")), content, stored.metadata,
                parent_id=p.get("parent_id"), span=span, source=p.get("source"))


def stored_items_by_owner(store: Store, exclude: str) -> dict[str, list[Item]]:
    """Every stored item not owned by `exclude`, as items, by owner (what a rebuild re-adds)."""
    out: dict[str, list[Item]] = {}
    ids = sorted(i for i, h in store.manifest().items() if owner_of(h) != exclude)
    for stored in get_items(store, ids).values():
        if "text" in stored.payload or "path" in stored.payload:
            out.setdefault(stored.owner, []).append(as_item(stored))
    return out


def _ids_of(store: Store, ids: Sequence[str] | None, flt: Filter | None, owner: str | None) -> list[str]:
    if ids is not None:
        found = get_items(store, ids)
        return [i for i, item in found.items() if matches(flt, item.payload | {ID_KEY: i}) and owner in (None, item.owner)]
    return [item.id for item in iter_items(store, flt, owner)]


def delete_items(store: Store, ids: Sequence[str] | None, flt: Filter | None, owner: str | None) -> list[str]:
    """Delete the given ids (those that exist), or every item matching `flt` and `owner`; the
    ids deleted. The caller holds the write lock."""
    gone = _ids_of(store, ids, flt, owner)
    if gone:
        store.delete(gone)
    return gone
