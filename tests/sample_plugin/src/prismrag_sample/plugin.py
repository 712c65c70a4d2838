"""Registers `char-ngrams`: hashed character trigrams, a dense encoder with no model."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from prismrag.contracts import Encoder, Modality, Params, hookimpl


class CharNgramParams(Params):
    dimension: int = 256
    n: int = 3


class CharNgramEncoder(Encoder):
    name = "char-ngrams"
    Params = CharNgramParams
    description = "hashed character n-grams (sample third-party plugin)"
    document_modalities = frozenset({Modality.TEXT})
    query_modalities = frozenset({Modality.TEXT})

    def encode(self, contents: Sequence[str], modality: Modality, role: str) -> np.ndarray:
        dim, n = self.params.dimension, self.params.n
        out = np.zeros((len(contents), dim), np.float32)
        for i, text in enumerate(contents):
            padded = f" {text.lower()} "
            grams = [padded[j : j + n] for j in range(len(padded) - n + 1)]
            idx = np.fromiter((zlib.crc32(g.encode()) % dim for g in grams), dtype=np.int64, count=len(grams))
            np.add.at(out[i], idx, 1.0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def dimension(self) -> int:
        return self.params.dimension


@hookimpl
def register_encoders(register):
    register(CharNgramEncoder)
