"""A readers-writer lock: the engine's concurrency contract in one place.

Many searches run at once (readers); a store write (an ingest batch, a delete, building indexes,
a rebuild) runs alone (writer). Writers are preferred: once one waits, new readers queue behind
it, so a stream of searches cannot starve an ingest. The writing thread may re-enter the write
lock and may read; a reader must not ask for the write lock (it would wait for itself).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        """How many times the writer holds the write lock (re-entered)."""
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            if self._writer != threading.get_ident():
                self._cond.wait_for(lambda: self._writer is None and not self._waiting_writers)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                self._waiting_writers += 1
                try:
                    self._cond.wait_for(lambda: self._writer is None and not self._readers)
                finally:
                    self._waiting_writers -= 1
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                self._cond.notify_all()
