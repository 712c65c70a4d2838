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
        lock = threading.Lock()
        self._readers_may_enter = threading.Condition(lock)
        self._writer_may_enter = threading.Condition(lock)
        """Two conditions on one lock, so a reader leaving wakes a waiting writer, not the
        hundred searches a server may have queued behind it."""
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        """How many times the writer holds the write lock (re-entered)."""
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._readers_may_enter:
            if self._writer != threading.get_ident():
                self._readers_may_enter.wait_for(lambda: self._writer is None and not self._waiting_writers)
            self._readers += 1
        try:
            yield
        finally:
            with self._readers_may_enter:
                self._readers -= 1
                if not self._readers and self._waiting_writers:
                    self._writer_may_enter.notify()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._writer_may_enter:
            if self._writer != me:
                self._waiting_writers += 1
                try:
                    self._writer_may_enter.wait_for(lambda: self._writer is None and not self._readers)
                except BaseException:  # interrupted: the readers it held back may enter
                    self._waiting_writers -= 1
                    if not self._waiting_writers and self._writer is None:
                        self._readers_may_enter.notify_all()
                    raise
                self._waiting_writers -= 1
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._writer_may_enter:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                    if self._waiting_writers:
                        self._writer_may_enter.notify()
                    else:
                        self._readers_may_enter.notify_all()
