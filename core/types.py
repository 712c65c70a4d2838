"""Value types: items, vector batches, queries and hits with provenance."""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import numpy as np


class Modality(str, Enum):
    """What an item or a query is made of."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    SHAPE = "shape"


VectorKind = Literal["dense", "sparse", "multi"]
Distance = Literal["cosine", "dot", "euclid", "manhattan"]
Role = Literal["document", "query"]

EXTENSIONS: Mapping[Modality, frozenset[str]] = {
    Modality.TEXT: frozenset({".txt", ".md", ".markdown", ".rst"}),
    Modality.IMAGE: frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}),
    Modality.AUDIO: frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus", ".aac"}),
    Modality.VIDEO: frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi"}),
    Modality.SHAPE: frozenset({".npy", ".npz", ".ply", ".obj", ".off", ".stl", ".glb", ".gltf", ".pcd", ".xyz", ".pts"}),
}


"""The one table of file extensions per modality (lower case, with the dot). Loaders serve a
subset of it (`extensions_of`); a plugin's loader may claim more, which the registry adds."""


def extensions_of(modality: Modality) -> frozenset[str]:
    """The extensions that imply `modality`."""
    return EXTENSIONS[modality]


def modality_of_path(path: str | Path, claimed: Mapping[str, Modality] | None = None) -> Modality | None:
    """The modality a file's extension implies, or None when it implies none. `claimed` maps
    extensions that installed loaders claim to their modality; it is asked first."""
    suffix = Path(path).suffix.lower()
    if claimed and suffix in claimed:
        return claimed[suffix]
    for modality, suffixes in EXTENSIONS.items():
        if suffix in suffixes:
            return modality
    mime, _ = mimetypes.guess_type(str(path))
    if mime:
        head = mime.split("/", 1)[0]
        return {"image": Modality.IMAGE, "audio": Modality.AUDIO, "video": Modality.VIDEO}.get(head)
    return None


@dataclass(frozen=True)
class Media:
    """Non-text content: a path (loaded lazily) or bytes already in memory."""

    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError("Media has neither a path nor bytes")
        return self.path.read_bytes()


Content = str | Media


def as_text(content: Content) -> str:
    """Text content as a string (media bytes decoded as UTF-8, bad bytes replaced)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Media):
        return content.read().decode("utf-8", "replace")
    raise TypeError(f"expected text, got {type(content).__name__}")


@dataclass(frozen=True)
class Span:
    """Where a chunk sits in its parent: a character range, a page, or a time range in seconds."""

    start: int | None = None
    end: int | None = None
    page: int | None = None
    t_start: float | None = None
    t_end: float | None = None

    def to_payload(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def time_code(seconds: float) -> str:
    """`mm:ss.s` (or `h:mm:ss.s` from one hour on) for a time in a recording."""
    tenths = int(round(max(0.0, seconds) * 10))
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    s = f"{m:02d}:{rest // 10:02d}.{rest % 10}"
    return f"{h}:{s}" if h else s


def time_span_label(payload: Mapping[str, Any]) -> str | None:
    """`file @ 00:12.4–00:15.0` for a hit from a time span of a recording, else None."""
    span = payload.get("span")
    if not isinstance(span, Mapping) or span.get("t_start") is None or span.get("t_end") is None:
        return None
    name = Path(str(payload.get("file") or payload.get("source") or payload.get("path") or "")).name
    return f"{name} @ {time_code(span['t_start'])}\u2013{time_code(span['t_end'])}"


@dataclass(frozen=True)
class Item:
    """One retrievable unit. `id` is stable across runs and never the text itself."""

    id: str
    modality: Modality
    content: Content
    metadata: Mapping[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    span: Span | None = None
    source: str | None = None
    """Where it came from (a file path or a record locator), for reports and deletes."""

    @property
    def text(self) -> str | None:
        return self.content if isinstance(self.content, str) else None

    def content_hash(self) -> str:
        """A digest of the content alone: it changes exactly when the vectors may change."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.modality.value.encode())
        if isinstance(self.content, str):
            h.update(b"t")
            h.update(self.content.encode("utf-8", "surrogatepass"))
        else:
            h.update(b"m")
            h.update(self.content.read())
        return h.hexdigest()

    def digest(self, content_hash: str) -> str:
        """A digest of everything stored for the item (content hash, metadata, parent, span)."""
        extra = json.dumps(
            [dict(self.metadata), self.parent_id, self.span.to_payload() if self.span else None, self.source],
            sort_keys=True,
            default=str,
        )
        return content_hash + "." + hashlib.blake2b(extra.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class SparseBatch:
    """A batch of sparse vectors in CSR layout: row i is indices[indptr[i]:indptr[i+1]]."""

    indptr: np.ndarray  # int64 [n + 1]
    indices: np.ndarray  # int64 [nnz]; uint32 range
    values: np.ndarray  # float32 [nnz]

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.values[a:b]

    def rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self.row(i)

    def take(self, positions: Sequence[int]) -> SparseBatch:
        return SparseBatch.from_rows([self.row(i) for i in positions])

    @staticmethod
    def from_rows(rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> SparseBatch:
        lengths = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if rows:
            indices = np.concatenate([np.asarray(r[0], dtype=np.int64) for r in rows])
            values = np.concatenate([np.asarray(r[1], dtype=np.float32) for r in rows])
        else:
            indices, values = np.zeros(0, np.int64), np.zeros(0, np.float32)
        return SparseBatch(indptr, indices, values)


@dataclass(frozen=True)
class MultiBatch:
    """A batch of multi-vectors: one float32 [n_i, d] matrix per item."""

    matrices: Sequence[np.ndarray]

    def __len__(self) -> int:
        return len(self.matrices)

    def take(self, positions: Sequence[int]) -> MultiBatch:
        return MultiBatch([self.matrices[i] for i in positions])


Vectors = np.ndarray | SparseBatch | MultiBatch
"""What an encoder returns for a batch: dense float32 [n, d], sparse CSR, or multi-vectors."""


Row = np.ndarray | tuple[np.ndarray, np.ndarray]
"""One vector: dense float32 [d], sparse (indices, values), or multi float32 [n, d]."""


def rows_of(vectors: Vectors) -> list[Row]:
    """Split a batch into rows."""
    if isinstance(vectors, np.ndarray):
        return list(vectors)
    if isinstance(vectors, SparseBatch):
        return list(vectors.rows())
    return list(vectors.matrices)


def from_rows(kind: VectorKind, rows: Sequence[Row], dimension: int | None = None) -> Vectors:
    """Join rows into a batch of `kind`."""
    if kind == "dense":
        if not rows:
            return np.zeros((0, dimension or 0), np.float32)
        return np.stack(rows).astype(np.float32, copy=False)  # type: ignore[arg-type]
    if kind == "sparse":
        return SparseBatch.from_rows(rows)  # type: ignore[arg-type]
    return MultiBatch(list(rows))  # type: ignore[arg-type]


def take_rows(vectors: Vectors, positions: Sequence[int]) -> Vectors:
    """Select rows of any vector batch."""
    if isinstance(vectors, np.ndarray):
        return vectors[np.asarray(positions, dtype=np.int64)]
    return vectors.take(positions)


def batch_len(vectors: Vectors) -> int:
    return vectors.shape[0] if isinstance(vectors, np.ndarray) else len(vectors)


@dataclass(frozen=True)
class Query:
    """A search query: text, or media of another modality."""

    modality: Modality
    content: Content

    @staticmethod
    def text(text: str) -> Query:
        return Query(Modality.TEXT, text)

    @property
    def text_value(self) -> str | None:
        return self.content if isinstance(self.content, str) else None


@dataclass(frozen=True, slots=True)
class ScoredId:
    """One entry of a retriever's ranked list."""

    id: str
    score: float


@dataclass(frozen=True)
class StageTrace:
    """A hit's place in one stage of a retriever's search plan."""

    field: str
    rank: int  # 1-based
    score: float
    limit: int


@dataclass(frozen=True)
class RetrieverTrace:
    """A hit's place in one retriever's list (its final stage), and in each stage of a
    multi-stage plan."""

    rank: int  # 1-based
    score: float
    stages: tuple[StageTrace, ...] = ()
    best_part: int | None = None
    """For an encoder that names its parts (`Encoder.parts_key`, e.g. a video's keyframes): which
    of the hit's stored vectors matched the query best."""
    part_label: Any = None
    """That part's entry in the payload list `parts_key` names (e.g. the keyframe's time)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rank": self.rank, "score": self.score}
        if self.best_part is not None:
            data["best_part"], data["part_label"] = self.best_part, self.part_label
        if self.stages:
            data["stages"] = [{"field": s.field, "rank": s.rank, "score": s.score, "limit": s.limit} for s in self.stages]
        return data


@dataclass(frozen=True)
class RerankTrace:
    """What one rerank stage did to a hit."""

    stage: str
    score: float
    rank_before: int
    rank_after: int


@dataclass(frozen=True)
class Provenance:
    """Why a hit ranked where it did."""

    retrievers: Mapping[str, RetrieverTrace] = field(default_factory=dict)
    fusion: str | None = None
    contributions: Mapping[str, float] = field(default_factory=dict)
    fused_score: float | None = None
    rerank: Sequence[RerankTrace] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrievers": {k: v.to_dict() for k, v in self.retrievers.items()},
            "fusion": (
                {"name": self.fusion, "score": self.fused_score, "contributions": dict(self.contributions)}
                if self.fusion
                else None
            ),
            "rerank": [
                {"stage": r.stage, "score": r.score, "rank_before": r.rank_before, "rank_after": r.rank_after}
                for r in self.rerank
            ],
        }


@dataclass(frozen=True)
class Hit:
    """One search result. `payload` holds the item's stored fields (text, path, metadata)."""

    id: str
    score: float
    rank: int
    modality: Modality
    payload: Mapping[str, Any]
    provenance: Provenance

    @property
    def text(self) -> str | None:
        return self.payload.get("text")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "rank": self.rank,
            "modality": self.modality.value,
            "payload": dict(self.payload),
            "provenance": self.provenance.to_dict(),
        }
