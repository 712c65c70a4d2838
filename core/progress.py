"""A one-line progress display for terminals; silent when output is piped."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TerminalProgress:
    """progress(stage, done, total) -> a redrawn line with a bar and items per second."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._stage: str | None = None
        self._t0 = time.perf_counter()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if stage != self._stage:
            if self._stage is not None:
                self.stream.write("\n")
            self._stage, self._t0 = stage, now
        finished = total is not None and done >= total
        if not finished and now - self._last < 0.1:
            return
        self._last = now
        rate = done / max(now - self._t0, 1e-9)
        if total:
            width = 30
            filled = int(width * done / total)
            bar = "#" * filled + "-" * (width - filled)
            line = f"{stage:>8} [{bar}] {done}/{total} items  {rate:,.1f} items/s"
            if 0 < done < total:
                line += f"  ETA {_clock((total - done) / max(rate, 1e-9))}"
        else:
            line = f"{stage:>8} {done} items  {rate:,.1f} items/s"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    """`m:ss` (or `h:mm:ss`) for a remaining time."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
