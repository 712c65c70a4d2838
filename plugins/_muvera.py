"""MUVERA fixed-dimensional encodings (Dhulipala et al., "MUVERA: Multi-Vector Retrieval via
Fixed Dimensional Encodings", 2024), in numpy.

A set of token vectors becomes one dense vector whose inner product with another set's encoding
approximates their Chamfer (MaxSim) similarity, so a dense nearest-neighbour search can shortlist
candidates for exact MaxSim rescoring. Per repetition:

- SimHash partitions: `simhash_bits` random hyperplanes split the space into B = 2^bits parts;
- an optional inner projection to `projection` dimensions (random +-1 / sqrt(projection));
- a query block is the SUM of its projected vectors in each part; a document block is their
  MEAN, and an empty part of a document takes its vector nearest in Hamming distance (the
  paper's fill_empty_partitions), so every query vector meets some document vector.

The repetitions are concatenated (repetitions x B x projection dimensions), then optionally
count-sketched to `final_dimension`. For one query vector q that falls in part k of a
repetition, the repetition adds <q, mean of the document's vectors in part k>: with enough bits,
the document vectors sharing q's part are those nearest q, so the sum approximates Chamfer.
Encodings are deterministic for a `seed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHUNK_TOKENS = 200_000
"""Token vectors handled at once (bounds the temporary memory of a batch)."""


@dataclass(frozen=True)
class FdeConfig:
    dimension: int
    repetitions: int = 20
    simhash_bits: int = 5
    projection: int | None = None
    """Inner projection dimension per part (None: the token dimension, no projection)."""
    final_dimension: int | None = None
    """Count-sketch the concatenation to this many dimensions (None: keep it)."""
    fill_empty: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dimension < 1 or self.repetitions < 1 or not 0 <= self.simhash_bits <= 12:
            raise ValueError("FDE needs dimension >= 1, repetitions >= 1 and 0 <= simhash_bits <= 12")

    @property
    def parts(self) -> int:
        return 1 << self.simhash_bits

    @property
    def block(self) -> int:
        return self.projection or self.dimension

    @property
    def output_dimension(self) -> int:
        return self.final_dimension or self.repetitions * self.parts * self.block


class Fde:
    """Encoder of token-vector sets into fixed-dimensional vectors (query and document sides)."""

    def __init__(self, config: FdeConfig):
        self.config = c = config
        rng = np.random.default_rng(c.seed)
        self.planes = rng.standard_normal((c.repetitions, c.dimension, c.simhash_bits)).astype(np.float32)
        self.proj = None
        if c.projection is not None:
            signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(c.repetitions, c.dimension, c.projection))
            self.proj = signs / np.float32(np.sqrt(c.projection))
        self.sketch = None
        if c.final_dimension is not None:
            full = c.repetitions * c.parts * c.block
            self.sketch = (rng.integers(0, c.final_dimension, full), rng.choice(np.array([-1.0, 1.0], np.float32), full))
        self._powers = (1 << np.arange(c.simhash_bits)).astype(np.int64)

    # ------------------------------------------------------------------ public

    def queries(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        """Query encodings [len(sets), output_dimension] (sums per part)."""
        return self._encode(sets, document=False)

    def documents(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        """Document encodings [len(sets), output_dimension] (means per part, empty parts filled)."""
        return self._encode(sets, document=True)

    # ------------------------------------------------------------------ work

    def _encode(self, sets: Sequence[np.ndarray], document: bool) -> np.ndarray:
        c = self.config
        out = np.zeros((len(sets), c.output_dimension), np.float32)
        start = 0
        while start < len(sets):
            stop, tokens = start, 0
            while stop < len(sets) and (stop == start or tokens + len(sets[stop]) <= CHUNK_TOKENS):
                tokens += len(sets[stop])
                stop += 1
            out[start:stop] = self._chunk(sets[start:stop], document)
            start = stop
        return out

    def _chunk(self, sets: Sequence[np.ndarray], document: bool) -> np.ndarray:
        c = self.config
        lengths = np.array([len(s) for s in sets])
        if (lengths == 0).any():
            raise ValueError("every set needs at least one vector")
        x = np.concatenate([np.asarray(s, np.float32) for s in sets])
        if x.ndim != 2 or x.shape[1] != c.dimension:
            raise ValueError(f"FDE of dimension {c.dimension} got token vectors of shape {x.shape}")
        owner = np.repeat(np.arange(len(sets)), lengths)
        blocks = []
        for r in range(c.repetitions):
            bits = (x @ self.planes[r]) > 0  # [T, bits]
            part = bits.astype(np.int64) @ self._powers  # [T]
            y = x if self.proj is None else x @ self.proj[r]  # [T, block]
            slot = owner * c.parts + part
            sums = _group_sum(y, slot, len(sets) * c.parts)
            if document:
                counts = np.bincount(slot, minlength=len(sets) * c.parts).astype(np.float32)
                sums /= np.maximum(counts, 1.0)[:, None]
                if c.fill_empty and c.simhash_bits > 0:
                    self._fill(sums.reshape(len(sets), c.parts, c.block), counts.reshape(len(sets), c.parts),
                               part, owner, lengths, y)
            blocks.append(sums.reshape(len(sets), c.parts * c.block))
        fde = np.concatenate(blocks, axis=1)
        if self.sketch is not None:
            index, sign = self.sketch
            return _group_sum((fde * sign).T, index, c.final_dimension or 0).T.copy()
        return fde

    def _fill(self, blocks: np.ndarray, counts: np.ndarray, part: np.ndarray, owner: np.ndarray,
              lengths: np.ndarray, y: np.ndarray) -> None:
        """Empty parts of each document take its vector nearest in Hamming distance to the part
        (the first such vector on ties)."""
        c = self.config
        empty = counts == 0
        if not empty.any():
            return
        diff = part[:, None] ^ np.arange(c.parts)[None, :]  # [T, parts]
        ham = np.zeros(diff.shape, np.int8)
        for b in range(c.simhash_bits):
            ham += ((diff >> b) & 1).astype(np.int8)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        padded = np.full((len(lengths), int(lengths.max()), c.parts), np.iinfo(np.int8).max, np.int8)
        padded[owner, np.arange(len(part)) - offsets[owner]] = ham
        best = offsets[:, None] + padded.argmin(axis=1)  # [docs, parts]: a token index per part
        blocks[empty] = y[best[empty]]


def _group_sum(rows: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """[groups, width]: the sum of the rows in each group (zeros for an empty one)."""
    order = np.argsort(group, kind="stable")
    keys, starts = np.unique(group[order], return_index=True)
    out = np.zeros((groups, rows.shape[1]), np.float32)
    out[keys] = np.add.reduceat(rows[order], starts, axis=0)
    return out
