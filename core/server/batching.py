"""Dynamic micro-batching of query encodes, as TEI and Infinity do.

Concurrent searches each encode one query. A `QueryBatcher` puts those requests on a queue; its
worker thread takes the first, waits at most `max_wait` seconds for others (up to `max_batch`),
and encodes them in one `encode_batch` call per modality. While it encodes, new requests queue,
so under load batches fill without waiting. A batch that fails is retried query by query, so a
bad query fails alone.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..contracts import Encoder
from ..types import Query, Vectors, take_rows

_STOP = object()


class QueryBatcher:
    """Serves `encoder.encode_query` for many threads through one worker."""

    def __init__(self, encoder: Encoder, max_wait: float, max_batch: int, name: str = "",
                 on_batch: Callable[[int], None] | None = None):
        self.encoder, self.max_wait, self.max_batch = encoder, max_wait, max(1, max_batch)
        self.on_batch = on_batch
        """Called with the number of queries of each encoder call (for metrics)."""
        self.name = name or encoder.name
        self._queue: queue.Queue[Any] = queue.Queue()
        self._direct = encoder.encode_query  # the bound method, before `install` shadows it
        self.batches = 0
        self.encoded = 0
        self._thread = threading.Thread(target=self._work, name=f"prism-batcher-{self.name}", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Queries waiting to be encoded."""
        return self._queue.qsize()

    def encode_query(self, query: Query) -> Vectors:
        future: Future[Vectors] = Future()
        self._queue.put((query, future))
        return future.result()

    def install(self) -> None:
        """Route the encoder's `encode_query` (the search pipeline's one call) through the batcher."""
        self.encoder.encode_query = self.encode_query  # type: ignore[method-assign]

    def close(self) -> None:
        """Stop the worker and give the encoder its own `encode_query` back."""
        if self.encoder.__dict__.get("encode_query") == self.encode_query:
            del self.encoder.encode_query
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
                        future.set_result(self._direct(query))
                    except BaseException as own:
                        future.set_exception(own)
                continue
            for i, (_, future) in enumerate(group):
                future.set_result(take_rows(vectors, [i]))
