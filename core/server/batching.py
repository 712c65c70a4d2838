"""Dynamic micro-batching of concurrent searches, as TEI and Infinity do for encodes.

Concurrent searches each encode one query and then search the store. A `QueryBatcher` gathers
the encodes into one `encode_batch` call per modality; a `SearchBatcher` gathers the store
searches into one `Store.search_many` call. Both are a `Gatherer`: a worker thread takes the
first request, waits at most `max_wait` seconds for others (up to `max_batch`) and runs them at
once; while it runs, new requests queue, so under load batches fill without waiting. A batch
that fails is retried request by request, so a bad request fails alone. `BatchedQueries` is an
engine's query encoding (`Engine.query_encoding`) through one batcher per retriever, a
SearchBatcher its `Engine.store_search`: the search pipeline asks them, nothing is patched.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ..contracts import Encoder, Filter, QuerySearches, SearchPlan, StageLists, Store
from ..recipe import Retriever
from ..types import Query, Vectors, take_rows
from .security import ServerError

_STOP = object()
In = TypeVar("In")
Out = TypeVar("Out")


class Gatherer(Generic[In, Out]):
    """One worker thread that runs the requests of many threads in batches.

    The worker takes the first request, waits at most `max_wait` seconds for others (up to
    `max_batch`) and hands the batch to `run_batch`; while it runs, new requests queue, so under
    load batches fill without waiting."""

    def __init__(self, max_wait: float, max_batch: int, name: str,
                 on_batch: Callable[[int], None] | None = None):
        self.max_wait, self.max_batch, self.name = max_wait, max(1, max_batch), name
        self.on_batch = on_batch
        """Called with the size of each batch (for metrics)."""
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self.batches = 0
        self.handled = 0
        self._thread = threading.Thread(target=self._work, name=f"prism-{name}", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Requests waiting for the worker."""
        return self._queue.qsize()

    def submit(self, request: In) -> Out:
        """`request`'s outcome, run in a batch with the requests that arrive with it."""
        if self._closed:
            raise self._closed_error()
        future: Future[Out] = Future()
        self._queue.put((request, future))
        if self._closed and not self._thread.is_alive():  # closed while putting: nobody would answer
            self._fail_queued()
        return future.result()

    def close(self) -> None:
        """Stop the worker after what was asked before (later requests fail with a 503)."""
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=5)
        self._fail_queued()

    def _closed_error(self) -> ServerError:
        return ServerError(503, f"{self.name}: the server is shutting down")

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item[1].set_running_or_notify_cancel():
                item[1].set_exception(self._closed_error())

    def run_batch(self, batch: list[tuple[In, Future[Out]]]) -> None:
        """Set each future of `batch` (all are running)."""
        raise NotImplementedError

    def wait(self) -> float:
        """Seconds the next batch waits for company after its first request."""
        return self.max_wait

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            wait = self.wait()
            deadline = time.perf_counter() + wait
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait() if wait <= 0 else self._queue.get(
                        timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            running = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            if running:
                self.run_batch(running)
            if stop:
                return

    def _count(self, size: int) -> None:
        self.batches += 1
        self.handled += size
        if self.on_batch is not None:
            self.on_batch(size)


class QueryBatcher(Gatherer[Query, Vectors]):
    """Encodes the queries of many threads for one encoder through one worker: one
    `encode_batch` call per modality of a batch; a batch that fails is retried query by query,
    so a bad query fails alone."""

    def __init__(self, encoder: Encoder, max_wait: float, max_batch: int, name: str = "",
                 on_batch: Callable[[int], None] | None = None):
        self.encoder = encoder
        super().__init__(max_wait, max_batch, f"batcher-{name or encoder.name}", on_batch)

    def encode_query(self, query: Query) -> Vectors:
        """The query's vectors, encoded in a batch with the queries that arrive with it."""
        return self.submit(query)

    def run_batch(self, batch: list[tuple[Query, Future[Vectors]]]) -> None:
        by_modality: dict[Any, list[tuple[Query, Future[Vectors]]]] = defaultdict(list)
        for query, future in batch:
            by_modality[query.modality].append((query, future))
        for modality, group in by_modality.items():
            self._count(len(group))
            try:
                vectors = self.encoder.encode_batch([q.content for q, _ in group], modality, "query")
            except BaseException as exc:
                one_by_one(group, exc, self.encoder.encode_query)
                continue
            for i, (_, future) in enumerate(group):
                future.set_result(take_rows(vectors, [i]))


class SearchBatcher(Gatherer[QuerySearches, list[StageLists]]):
    """Runs the store searches of many threads' queries in one `Store.search_many` call (the
    qdrant-edge binding holds the GIL for each call: one call for a batch instead of one per
    query). Every requesting thread is inside the engine's read section while it waits, so no
    write runs meanwhile. `store()` is asked at each batch (a rebuild swaps the store)."""

    LOADED = 8
    """A batch at least this big says the server is loaded (see `wait`)."""

    def __init__(self, store: Callable[[], Store], max_wait: float, max_batch: int, name: str,
                 on_batch: Callable[[int], None] | None = None):
        self.store = store
        self._last = 0
        super().__init__(max_wait, max_batch, f"searches-{name}", on_batch)

    def wait(self) -> float:
        """Three times `max_wait` after a batch of `LOADED` searches or more, else `max_wait`.
        Under load the queries of one encode batch reach the store in waves (each thread needs
        the GIL for a moment first): 2 ms gathered ~17 of an encode batch's ~49, 6 ms ~29, for
        fewer GIL-holding engine calls; a lone query waits no longer than before."""
        return self.max_wait * 3 if self._last >= self.LOADED else self.max_wait

    def __call__(self, searches: Sequence[tuple[SearchPlan, Mapping[str, Vectors]]], flt: Filter | None,
                 exact: bool | None) -> list[StageLists]:
        """A `StoreSearch` (`Engine.store_search`)."""
        return self.submit((searches, flt, exact))

    def run_batch(self, batch: list[tuple[QuerySearches, Future[list[StageLists]]]]) -> None:
        self._count(len(batch))
        self._last = len(batch)
        store = self.store()
        try:
            found = store.search_many([request for request, _ in batch])
        except BaseException as exc:
            one_by_one(batch, exc, lambda r: store.search_plans(*r))
            return
        for (_, future), lists in zip(batch, found, strict=True):
            future.set_result(lists)


def one_by_one(group: Sequence[tuple[In, Future[Out]]], exc: BaseException, run: Callable[[In], Out]) -> None:
    """After a batch failed with `exc`: each request gets its own outcome (a bad one fails alone)."""
    if len(group) == 1:
        group[0][1].set_exception(exc)
        return
    for request, future in group:
        try:
            future.set_result(run(request))
        except BaseException as own:
            future.set_exception(own)


class BatchedQueries:
    """An engine's query encoding (`Engine.query_encoding`): each retriever's queries through its
    batcher; a retriever without one encodes on its own."""

    def __init__(self, batchers: Mapping[str, QueryBatcher]):
        self.batchers = dict(batchers)

    def __call__(self, retriever: Retriever, query: Query) -> Vectors:
        batcher = self.batchers.get(retriever.name)
        return retriever.encoder.encode_query(query) if batcher is None else batcher.encode_query(query)
