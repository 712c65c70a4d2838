"""A persistent embedding cache shared by every recipe on the machine.

Keyed by (encoder fingerprint, content hash): a second recipe with the same encoder and params,
or a re-ingest after a rebuild, encodes nothing twice. The fingerprint covers the model's local
files (`Encoder.weights_fingerprint`), so two models that go by one path never share vectors.
SQLite in WAL mode, so a crash never corrupts it and concurrent ingests are safe.

Nothing read back is trusted blindly: a row that does not decode, has another width than the
encoder's rows, or holds NaN or infinity is dropped from the cache (and re-encoded) with a
warning; a file that is not a readable cache is moved aside, with a warning naming both paths.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import PrismError
from .types import Row, SparseBatch, VectorKind, Vectors

CACHE_ENV = "PRISMRAG_CACHE_DIR"
_CHUNK = 500  # SQLite's variable limit is 999 on old builds
_COLUMNS = ["fp", "h", "v"]
log = logging.getLogger("prismrag.cache")


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prismrag"


class EmbeddingCache:
    """get/put batches of vectors of one kind under one encoder fingerprint."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or default_cache_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrismError(
                f"embedding cache folder {self.directory} cannot be created ({exc}); set {CACHE_ENV} to a writable folder"
            ) from exc
        self.path = self.directory / "embeddings.sqlite"
        # One connection serves every thread (TUI workers, engines sharing a cache); sqlite3
        # connections are not safe for concurrent use, so calls take turns.
        self._lock = threading.Lock()
        try:
            self._db = self._connect()
        except sqlite3.OperationalError as exc:  # cannot open or write it (read-only, no permission): not damage
            raise PrismError(
                f"embedding cache {self.path} cannot be opened for writing ({exc}); make {self.directory} writable, "
                f"set {CACHE_ENV} to a writable folder, or turn the cache off with `ingest: {{cache: false}}`"
            ) from None
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.damaged-{os.getpid()}")
            log.warning(
                "embedding cache %s is damaged or not a prismrag cache (%s); moved it to %s and started an "
                "empty one (vectors are re-encoded). Delete %s when you no longer need it.",
                self.path, exc, aside, aside,
            )
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS emb (fp TEXT NOT NULL, h TEXT NOT NULL, v BLOB NOT NULL, PRIMARY KEY (fp, h))"
            )
            columns = [row[1] for row in db.execute("PRAGMA table_info(emb)")]
            if columns != _COLUMNS:
                raise sqlite3.DatabaseError(f"table emb has columns {columns}, not {_COLUMNS}")
            db.commit()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def get(self, fingerprint: str, hashes: Sequence[str], kind: VectorKind) -> dict[int, Row]:
        """Cached rows as {position in `hashes`: row}, for the hashes that are cached and sound."""
        found: dict[str, object] = {}
        unique = list(dict.fromkeys(hashes))
        with self._lock:
            for i in range(0, len(unique), _CHUNK):
                part = unique[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(f"SELECT h, v FROM emb WHERE fp = ? AND h IN ({marks})", [fingerprint, *part])
                found.update(rows.fetchall())
        decoded: dict[str, Row] = {}
        bad: dict[str, str] = {}
        for h, blob in found.items():
            try:
                decoded[h] = _decode(blob, kind)
            except ValueError as exc:
                bad[h] = str(exc)
        if kind == "dense" and decoded:
            width = _common_width(decoded.values())
            bad.update({h: f"{len(r)} numbers where the others have {width}" for h, r in decoded.items() if len(r) != width})
        if bad:
            self._forget(fingerprint, bad)
        return {pos: decoded[h] for pos, h in enumerate(hashes) if h in decoded and h not in bad}

    def _forget(self, fingerprint: str, bad: dict[str, str]) -> None:
        example = next(iter(bad.values()))
        log.warning(
            "embedding cache %s: %d malformed row(s) for encoder fingerprint %s (e.g. %s) were dropped and "
            "will be re-encoded. If this repeats, delete %s (it only holds vectors that can be re-encoded).",
            self.path, len(bad), fingerprint, example, self.path,
        )
        with self._lock, self._db:
            self._db.executemany("DELETE FROM emb WHERE fp = ? AND h = ?", [(fingerprint, h) for h in bad])

    def put(self, fingerprint: str, hashes: Sequence[str], vectors: Vectors) -> None:
        """Store rows; rows holding NaN or infinity are not cached (the encoder is at fault)."""
        rows = [(fingerprint, h, _encode_row(vectors, i)) for i, h in enumerate(hashes)]
        rows = [r for r in rows if r[2] is not None]
        try:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO emb (fp, h, v) VALUES (?, ?, ?)", rows)
        except sqlite3.OperationalError as exc:  # a full or read-only disk: the vectors are stored all the same
            log.warning("embedding cache %s: could not save %d vectors (%s); they are not cached", self.path, len(rows), exc)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _common_width(rows: object) -> int:
    counts: dict[int, int] = {}
    for r in rows:  # type: ignore[attr-defined]
        counts[len(r)] = counts.get(len(r), 0) + 1
    return max(counts, key=lambda w: counts[w])


def _encode_row(vectors: Vectors, i: int) -> bytes | None:
    if isinstance(vectors, np.ndarray):
        row = np.ascontiguousarray(vectors[i], dtype=np.float32)
        return row.tobytes() if np.isfinite(row).all() else None
    if isinstance(vectors, SparseBatch):
        idx, val = vectors.row(i)
        if not np.isfinite(val).all():
            return None
        return struct.pack("<I", len(idx)) + idx.astype(np.uint32).tobytes() + val.astype(np.float32).tobytes()
    m = np.ascontiguousarray(vectors.matrices[i], dtype=np.float32)
    if not np.isfinite(m).all():
        return None
    return struct.pack("<II", *m.shape) + m.tobytes()


def _decode(blob: object, kind: VectorKind) -> Row:
    """One cached row, checked: the right length for its header, finite numbers (ValueError if not)."""
    if not isinstance(blob, bytes):
        raise ValueError(f"a {type(blob).__name__} where vector bytes belong")
    n = len(blob)
    if kind == "dense":
        if n == 0 or n % 4:
            raise ValueError(f"{n} bytes is no float32 vector")
        out: Row = np.frombuffer(blob, dtype=np.float32)
        values = out
    elif kind == "sparse":
        if n < 4 or n != 4 + 8 * struct.unpack_from("<I", blob)[0]:
            raise ValueError(f"{n} bytes do not match the sparse row's header")
        (count,) = struct.unpack_from("<I", blob)
        idx = np.frombuffer(blob, dtype=np.uint32, count=count, offset=4).astype(np.int64)
        values = np.frombuffer(blob, dtype=np.float32, count=count, offset=4 + 4 * count)
        out = (idx, values)
    else:
        if n < 8:
            raise ValueError(f"{n} bytes do not hold a multivector header")
        rows, dim = struct.unpack_from("<II", blob)
        if n != 8 + 4 * rows * dim or rows == 0 or dim == 0:
            raise ValueError(f"{n} bytes do not match a {rows}x{dim} multivector")
        values = np.frombuffer(blob, dtype=np.float32, offset=8).reshape(rows, dim)
        out = values
    if not np.isfinite(values).all():
        raise ValueError("NaN or infinity in the vector")
    return out
