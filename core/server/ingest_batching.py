"""Concurrent ingest requests merged into one engine run (dynamic batching for writes).

An engine ingests one run at a time (the engine's concurrency contract), and each run pays a
fixed cost: the write lock, a flush, an index update, and an encoder call per retriever however few
items it has. Run one request at a time under a load of many small ingests and the requests queue
behind each other, each holding a worker thread that searches then lack. Here requests wait on
the event loop instead, and a single drainer hands every request that arrived meanwhile to one
`ingest_items` call (with per-item tracking), then gives each request the part of the report that
is its own. While one run works, the next batch gathers: the busier the server, the larger the
batch. Requests that cannot share a run (another owner, an id another pending request also names,
`delete_missing`) go in a later one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..engine import Engine
from ..errors import IngestError
from ..ingest import IngestReport
from ..types import Item

Run = Callable[[Callable[[], IngestReport]], Awaitable[IngestReport]]


@dataclass
class _Request:
    items: list[Item]
    owner: str
    future: asyncio.Future[IngestReport]


class IngestCoalescer:
    """Merges concurrent `ingest(items, owner)` calls for one engine; `run` executes the engine call
    off the event loop (with the server's ingest timeout), `max_wait` is how long the first of a
    batch waits for company, `max_items` caps a merged run."""

    def __init__(self, engine: Engine, run: Run, max_wait: float, max_items: int = 512,
                 observe: Callable[[float], None] | None = None):
        self.engine, self.run, self.max_wait, self.max_items = engine, run, max_wait, max(1, max_items)
        self.observe = observe
        self._pending: list[_Request] = []
        self._drainer: asyncio.Task[None] | None = None

    async def ingest(self, items: Sequence[Item], owner: str) -> IngestReport:
        """This request's report, once the run that carried its items has finished."""
        future: asyncio.Future[IngestReport] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(list(items), owner, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)  # a client that goes away does not cancel the others' run

    async def _drain(self) -> None:
        while self._pending:
            if self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
            batch = self._take()
            items = [item for request in batch for item in request.items]
            if self.observe is not None:
                self.observe(len(batch))
            try:
                report = await self.run(partial(self.engine.ingest_items, items, owner=batch[0].owner, track_items=True))
            except Exception as exc:  # the run failed as a whole: every request in it hears why
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            for request in batch:
                if not request.future.done():
                    _settle(request, report)

    def _take(self) -> list[_Request]:
        """The oldest pending request and those that can share its run, in arrival order."""
        first = self._pending[0]
        taken, ids, count, rest = [first], {i.id for i in first.items}, len(first.items), []
        for request in self._pending[1:]:
            mine = {i.id for i in request.items}
            if request.owner == first.owner and not mine & ids and count + len(request.items) <= self.max_items:
                taken.append(request)
                ids |= mine
                count += len(request.items)
            else:
                rest.append(request)
        self._pending = rest
        return taken


def _settle(request: _Request, report: IngestReport) -> None:
    part = report.part([i.id for i in request.items])
    if part.loaded == 0:  # as a run of its own would have: nothing of it could be ingested
        detail = "; ".join(part.errors[:5]) + (" ..." if len(part.errors) > 5 else "")
        request.future.set_exception(IngestError(
            f"none of the {len(request.items)} item(s) could be ingested" + (f": {detail}" if detail else "")))
    else:
        request.future.set_result(part)

