"""Dynamic micro-batching of query encodes, as TEI and Infinity do.

Concurrent searches each encode one query. A `QueryBatcher` puts those requests on a queue; its
worker thread takes the first, waits at most `max_wait` seconds for others (up to `max_batch`),
and encodes them in one `encode_batch` call per modality. While it encodes, new requests queue,
so under load batches fill without waiting. A batch that fails is retried query by query, so a
bad query fails alone. `BatchedQueries` is an engine's query encoding (`Engine.query_encoding`)
through one batcher per retriever: the search pipeline asks it, no encoder is patched.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from ..contracts import Encoder
from ..recipe import Retriever
from ..types import Query, Vectors, take_rows

_STOP = object()


class QueryBatcher:
    """Encodes the queries of many threads for one encoder through one worker."""

    def __init__(self, encoder: Encoder, max_wait: float, max_batch: int, name: str = "",
                 on_batch: Callable[[int], None] | None = None):
        self.encoder, self.max_wait, self.max_batch = encoder, max_wait, max(1, max_batch)
        self.on_batch = on_batch
        """Called with the number of queries of each encoder call (for metrics)."""
        self.name = name or encoder.name
        self._queue: queue.Queue[Any] = queue.Queue()
        self.batches = 0
        self.encoded = 0
        self._thread = threading.Thread(target=self._work, name=f"prism-batcher-{self.name}", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Queries waiting to be encoded."""
        return self._queue.qsize()

    def encode_query(self, query: Query) -> Vectors:
        """The query's vectors, encoded in a batch with the queries that arrive with it."""
        future: Future[Vectors] = Future()
        self._queue.put((query, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker (after the batch it is encoding)."""
        self._queue.put(_STOP)
        self._thread.join(timeout=5)

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.perf_counter() + self.max_wait
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait() if self.max_wait <= 0 else self._queue.get(
                        timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[Query, Future[Vectors]]]) -> None:
        by_modality: dict[Any, list[tuple[Query, Future[Vectors]]]] = defaultdict(list)
        for query, future in batch:
            if future.set_running_or_notify_cancel():
                by_modality[query.modality].append((query, future))
        for modality, group in by_modality.items():
            self.batches += 1
            self.encoded += len(group)
            if self.on_batch is not None:
                self.on_batch(len(group))
            try:
                vectors = self.encoder.encode_batch([q.content for q, _ in group], modality, "query")
            except BaseException as exc:
                if len(group) == 1:
                    group[0][1].set_exception(exc)
                    continue
                for query, future in group:  # each query gets its own outcome
                    try:
                        future.set_result(self.encoder.encode_query(query))
                    except BaseException as own:
                        future.set_exception(own)
                continue
            for i, (_, future) in enumerate(group):
                future.set_result(take_rows(vectors, [i]))


class BatchedQueries:
    """An engine's query encoding (`Engine.query_encoding`): each retriever's queries through its
    batcher; a retriever without one encodes on its own."""

    def __init__(self, batchers: Mapping[str, QueryBatcher]):
        self.batchers = dict(batchers)

    def __call__(self, retriever: Retriever, query: Query) -> Vectors:
        batcher = self.batchers.get(retriever.name)
        return retriever.encoder.encode_query(query) if batcher is None else batcher.encode_query(query)
