"""A persistent embedding cache shared by every recipe on the machine.

Keyed by (encoder fingerprint, content hash): a second recipe with the same encoder and params,
or a re-ingest after a rebuild, encodes nothing twice. SQLite in WAL mode, so a crash never
corrupts it and concurrent ingests are safe.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .types import Row, SparseBatch, VectorKind, Vectors

CACHE_ENV = "PRISMRAG_CACHE_DIR"
_CHUNK = 500  # SQLite's variable limit is 999 on old builds


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prismrag"


class EmbeddingCache:
    """get/put batches of vectors of one kind under one encoder fingerprint."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or default_cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "embeddings.sqlite"
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        # One connection serves every thread (TUI workers, engines sharing a cache); sqlite3
        # connections are not safe for concurrent use, so calls take turns.
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (fp TEXT NOT NULL, h TEXT NOT NULL, v BLOB NOT NULL, PRIMARY KEY (fp, h))"
        )
        self._db.commit()

    def get(self, fingerprint: str, hashes: Sequence[str], kind: VectorKind) -> dict[int, Row]:
        """Cached rows as {position in `hashes`: row}, for the hashes that are cached."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(hashes))
        with self._lock:
            for i in range(0, len(unique), _CHUNK):
                part = unique[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(f"SELECT h, v FROM emb WHERE fp = ? AND h IN ({marks})", [fingerprint, *part])
                found.update(rows.fetchall())
        return {pos: _decode(found[h], kind) for pos, h in enumerate(hashes) if h in found}

    def put(self, fingerprint: str, hashes: Sequence[str], vectors: Vectors) -> None:
        rows = [(fingerprint, h, _encode_row(vectors, i)) for i, h in enumerate(hashes)]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb (fp, h, v) VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _encode_row(vectors: Vectors, i: int) -> bytes:
    if isinstance(vectors, np.ndarray):
        return np.ascontiguousarray(vectors[i], dtype=np.float32).tobytes()
    if isinstance(vectors, SparseBatch):
        idx, val = vectors.row(i)
        return struct.pack("<I", len(idx)) + idx.astype(np.uint32).tobytes() + val.astype(np.float32).tobytes()
    m = np.ascontiguousarray(vectors.matrices[i], dtype=np.float32)
    return struct.pack("<II", *m.shape) + m.tobytes()


def _decode(blob: bytes, kind: VectorKind) -> Row:
    if kind == "dense":
        return np.frombuffer(blob, dtype=np.float32)
    if kind == "sparse":
        (n,) = struct.unpack_from("<I", blob)
        idx = np.frombuffer(blob, dtype=np.uint32, count=n, offset=4).astype(np.int64)
        val = np.frombuffer(blob, dtype=np.float32, count=n, offset=4 + 4 * n)
        return idx, val
    rows, dim = struct.unpack_from("<II", blob)
    return np.frombuffer(blob, dtype=np.float32, offset=8).reshape(rows, dim)
