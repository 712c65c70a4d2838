"""The item ids of qdrant-edge points, remembered between searches.

A search needs each hit's item id, which the store keeps in the point's payload. Asking the
query for that one payload key costs as much as the whole payload: qdrant-edge decodes a point's
entire payload (its text included) to select a key, ~6 us a point, 0.6 ms for 100 hits, for
every retriever of every query. A point's id is uuid5 of its item id, so the pair never changes:
once read, an item id can be reused by every later search with no staleness to manage. Searches
ask for no payload; ids not yet known come from one `retrieve` of only those points.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prismrag.contracts import ID_KEY, ScoredId

LIMIT = 200_000
"""Ids remembered at most (~45 MB with short item ids); past it the map starts again, so memory
stays bounded."""


class ItemIds:
    """Point uuid -> item id, learned from the points' payloads the first time each is seen."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._ids: dict[uuid.UUID, str] = {}
        self._lock = threading.Lock()

    def ranked(self, found: Sequence[Sequence[Any]], signs: Sequence[float],
               fetch: Callable[[list[Any]], Iterable[Any]]) -> list[list[ScoredId]]:
        """Each list of engine points (`.id`, `.score`) as ScoredIds, the score times its list's
        sign; `fetch(point_ids)` reads the `ID_KEY` payload of points not seen before. A point
        deleted since the query is left out."""
        known = self._ids
        rows = []
        missing: set[Any] = set()
        for points in found:
            row = []
            for p in points:
                pid = p.id  # the binding builds a uuid.UUID on every read: read it once
                item = known.get(pid)
                if item is None:
                    missing.add(pid)
                row.append((pid, item, p.score))
            rows.append(row)
        learned = self._learn(list(missing), fetch) if missing else {}
        out = []
        for row, sign in zip(rows, signs, strict=True):
            lst = []
            for pid, item, score in row:
                if item is None:
                    item = learned.get(pid)
                    if item is None:
                        continue
                lst.append(ScoredId(item, sign * score))
            out.append(lst)
        return out

    def _learn(self, points: list[Any], fetch: Callable[[list[Any]], Iterable[Any]]) -> dict[uuid.UUID, str]:
        learned = {}
        for record in fetch(points):  # a point deleted since the query is simply absent
            item_id = (record.payload or {}).get(ID_KEY)
            if item_id is not None:
                key = record.id if isinstance(record.id, uuid.UUID) else uuid.UUID(str(record.id))
                learned[key] = item_id
        with self._lock:
            if len(self._ids) + len(learned) > self.limit:
                self._ids = {}  # start again: memory stays bounded
            self._ids.update(learned)
        return learned

    def __len__(self) -> int:
        return len(self._ids)
