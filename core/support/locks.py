"""A cross-process lock on a store folder, taken before the store's engine touches any file.

An embedded engine (Qdrant Edge) may write to its files while it finds out that another process
holds them; a lock of our own, taken first, keeps a refused second process from touching the
store at all, and tells it who holds the folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import PrismError

LOCK_FILE = ".prism.lock"
_HOLDER_BYTES = 4096


class StoreBusyError(PrismError):
    """Another process (or another open store in this one) holds the store folder."""


class FolderLock:
    """An exclusive, non-blocking lock on `folder` (file `.prism.lock` inside it), released by
    `release()` or when the process ends (the OS drops it even after SIGKILL)."""

    def __init__(self, folder: Path, what: str = "store"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise StoreBusyError naming the holder; a no-op when already held."""
        if self._fd is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise PrismError(
                f"{self.folder}: cannot write here ({exc.strerror}), and the {self.what} needs to: an embedded "
                f"index is opened for writing even to search it (its engine maps its files read-write). Make the "
                f"folder writable, or copy it to a writable disk and point the store's `path` there."
            ) from None
        try:
            _lock(fd)
        except OSError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise StoreBusyError(
                f"{self.folder}: the {self.what} is open {holder}. Only one process may open an "
                f"embedded index at a time: wait for it to finish (or close it), then retry."
            ) from None
        record = {"pid": os.getpid(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500], "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        with contextlib.suppress(OSError):  # a full disk: the lock holds, only the holder's name is missing
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the lock


def _lock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "in another process"
    if holder["pid"] == os.getpid():
        return f"elsewhere in this process (pid {holder['pid']}: another open engine on the same store)"
    return f"in another process: pid {holder['pid']} (`{holder.get('command', '?')}`, since {holder.get('since', '?')})"
