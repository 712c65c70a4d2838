"""Free-space checks for stores on local disk.

An embedded engine that writes through memory maps (Qdrant Edge's write-ahead log and vector
chunks) does not get an error when the disk is full: the process dies with SIGBUS. A store checks
the free space before each write and before opening, and refuses with a clear error instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prismrag.contracts import PrismError

MARGIN = 8 << 20
"""Bytes always left free on the store's disk."""
WRITE_FACTOR = 4
"""A write lands in the write-ahead log, the segment's vectors and payload storage, and may
start a new log segment: reserve this many times its raw size."""


class DiskFullError(PrismError):
    """Not enough free space on the store's disk for the next write."""


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the disk that holds `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def batch_bytes(vectors: Mapping[str, Any], payloads: Iterable[Mapping[str, Any]]) -> int:
    """A rough size of a batch of points: vector numbers and payload text."""
    size = 0
    for rows in vectors.values():
        if hasattr(rows, "nbytes"):  # dense
            size += int(rows.nbytes)
        elif hasattr(rows, "matrices"):  # multi
            size += sum(int(m.nbytes) for m in rows.matrices)
        else:  # sparse
            size += int(rows.indices.nbytes) + int(rows.values.nbytes)
    size += sum(len(str(p)) for p in payloads)
    return size


def require_space(root: Path, need: int, what: str) -> None:
    """Raise DiskFullError unless `need` bytes plus the margin are free where `root` lives."""
    free = free_bytes(root)
    if free < need + MARGIN:
        raise DiskFullError(
            f"{root}: disk full: {what} needs about {(need + MARGIN) / 1e6:,.1f} MB free, and only "
            f"{free / 1e6:,.1f} MB are. Nothing was written; the index is as it was. Free some space "
            f"(or move the store's `path` to a larger disk) and run the command again."
        )
