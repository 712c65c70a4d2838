"""A value loaded on first use, once: how components hold their models, so that the engine can
ask whether a component is `ready` and `warm_up` it without knowing what it loads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoadOnce(Generic[T]):
    """Calls `load` on first use, once even when several threads ask at the same time.

    A failed load raises to its caller and is tried again on the next call.
    """

    def __init__(self, load: Callable[[], T]):
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
        return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None
