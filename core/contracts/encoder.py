"""The encoder contract: a batch of contents of one modality in, a batch of vectors out."""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, get_args

import numpy as np

from ..errors import ItemError, ItemSkipped, QueryError
from ..types import (
    Content,
    Distance,
    Modality,
    MultiBatch,
    Query,
    Role,
    SparseBatch,
    VectorKind,
    Vectors,
    batch_len,
)
from .base import Component
from .weights import files_fingerprint, local_model_paths


class Encoder(Component):
    """Turns a batch of contents of one modality into vectors.

    Subclasses declare `output`, `document_modalities`, `query_modalities` and `metric`, and
    implement `encode`. Everything else (modality checks, batching, query handling) is here.
    """

    kind = "encoder"
    output: ClassVar[VectorKind] = "dense"
    document_modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})
    query_modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})
    metric: ClassVar[Distance | None] = "cosine"
    """The metric the model was trained for; an index inherits it unless told otherwise."""
    sparse_idf: ClassVar[bool] = False
    """True when the encoder leaves inverse document frequency to the index (BM25)."""
    max_batch: ClassVar[int] = 64
    """Largest batch handed to `encode` at once; encoders that batch internally raise it."""
    parts_key: ClassVar[str | None] = None
    """For multi-vector output whose vectors stand for parts of the item (a video's keyframes):
    the payload key listing them, one entry per vector. Search then marks which part of each hit
    matched the query best (`RetrieverTrace.best_part`, `part_label`)."""
    fingerprint_excludes: ClassVar[frozenset[str]] = frozenset({"batch_size", "device", "show_progress"})
    """Params that do not change the vectors, left out of the embedding-cache key."""

    @abstractmethod
    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        """Encode a batch of one modality. Dense output is float32 [n, d]."""

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = super().declaration_problems()
        if cls.output not in get_args(VectorKind):
            problems.append(f"`output` is {cls.output!r}; it must be one of {', '.join(get_args(VectorKind))}")
        for attr in ("document_modalities", "query_modalities"):
            value = getattr(cls, attr)
            if not isinstance(value, frozenset) or not all(isinstance(m, Modality) for m in value):
                problems.append(f"`{attr}` must be a frozenset of prismrag.Modality, got {value!r}")
        if not cls.document_modalities and not cls.query_modalities:
            problems.append("it embeds no modality (`document_modalities` and `query_modalities` are empty)")
        if cls.metric is not None and cls.metric not in get_args(Distance):
            problems.append(f"`metric` is {cls.metric!r}; it must be None or one of {', '.join(get_args(Distance))}")
        if not isinstance(cls.max_batch, int) or cls.max_batch < 1:
            problems.append(f"`max_batch` must be a positive int, got {cls.max_batch!r}")
        return problems

    def dimension(self) -> int | None:
        """The output dimension (None for sparse). May load the model to learn it."""
        return getattr(self.params, "dimension", None)

    def fingerprint(self) -> str:
        """Identifies the vectors this encoder produces: name, the params that matter, and what
        the local model files are (`weights_fingerprint`), so the embedding cache and the store
        never mix vectors of two different sets of weights that go by one name."""
        blob = json.dumps(self.fingerprint_record(), sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()

    def fingerprint_record(self) -> dict[str, Any]:
        """What `fingerprint` digests, readable: stored with the index so that a change can be
        named (which parameter, or that the model files changed)."""
        data = self.params.model_dump(mode="json", exclude=set(self.fingerprint_excludes))
        record: dict[str, Any] = {"encoder": self.name, "params": data}
        weights = self.weights_fingerprint()
        if weights:
            record["weights"] = weights
        return record

    def weights_paths(self) -> list[Any]:
        """The local files or folders of this encoder's model; by default those named by params
        called like `model`, `pretrained`, `checkpoint` or `weights` that exist on disk (relative
        to the recipe, or as a plugin's `resolve_model` hook maps them). Override to be exact."""
        if not hasattr(self, "_weights_paths"):
            values = self.params.model_dump(mode="python").items()
            self._weights_paths = local_model_paths(values, self.context.base_dir, self.context.resolve_model)
        return self._weights_paths

    def weights_fingerprint(self) -> str | None:
        """A digest of the model files (names, sizes, the first and last 64 KB of each), or None
        when the model has no local files (a hub id: its name and revision are its identity)."""
        paths = self.weights_paths()
        return "+".join(files_fingerprint(p) for p in paths) if paths else None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        data = super().describe()
        data.update(
            output=cls.output,
            document_modalities=sorted(m.value for m in cls.document_modalities),
            query_modalities=sorted(m.value for m in cls.query_modalities),
            metric=cls.metric,
        )
        return data

    def accepts(self, modality: Modality, role: Role) -> bool:
        pool = self.document_modalities if role == "document" else self.query_modalities
        return modality in pool

    def encode_batch(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        """Check the modality, split into `max_batch` slices, encode, and check the result."""
        if not self.accepts(modality, role):
            pool = self.document_modalities if role == "document" else self.query_modalities
            raise QueryError(
                f"{self.where}: encoder {self.name!r} does not embed {modality.value} {role}s (it embeds "
                f"{role}s of: {', '.join(sorted(m.value for m in pool))})"
            )
        parts = []
        for start in range(0, len(contents), self.max_batch):
            try:
                parts.append(self.encode(contents[start : start + self.max_batch], modality, role))
            except ItemError as exc:  # positions relative to the whole batch; a skip stays a skip
                kind = ItemSkipped if isinstance(exc, ItemSkipped) else ItemError
                raise kind(exc.where, exc.message, tuple(start + p for p in exc.positions)) from exc
        out = concat_vectors(parts, self.output)
        if batch_len(out) != len(contents):
            raise ItemError(self.name, f"returned {batch_len(out)} vectors for {len(contents)} inputs")
        if isinstance(out, np.ndarray) and out.dtype != np.float32:
            out = out.astype(np.float32)
        return out

    def encode_query(self, query: Query) -> Vectors:
        """Encode one query; returns a batch of one row."""
        return self.encode_batch([query.content], query.modality, "query")


def concat_vectors(parts: Sequence[Vectors], kind: VectorKind) -> Vectors:
    """Join batches of one kind."""
    if kind == "dense":
        if not parts:
            return np.zeros((0, 0), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)  # type: ignore[arg-type]
    if kind == "sparse":
        sparse = [p for p in parts if isinstance(p, SparseBatch)]
        if len(sparse) == 1:
            return sparse[0]
        if not sparse:
            return SparseBatch.from_rows([])
        offsets = np.cumsum([0] + [len(p.indices) for p in sparse[:-1]])
        indptr = np.concatenate([sparse[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(sparse, offsets, strict=True)])
        return SparseBatch(
            indptr.astype(np.int64),
            np.concatenate([p.indices for p in sparse]),
            np.concatenate([p.values for p in sparse]),
        )
    return MultiBatch([m for p in parts for m in p.matrices])  # type: ignore[union-attr]
