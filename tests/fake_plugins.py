"""Tiny deterministic plugins for tests: no models, no torch."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.support import LoadOnce
from prismrag.types import Content, Media, Role

_WORD = re.compile(r"\w+")


class HashParams(Params):
    dimension: int = 64
    salt: str = ""
    delay: float = 0.0
    """Seconds to sleep per encode call, to make ingestion slow enough to interrupt."""


class HashEncoder(Encoder):
    """Bag of hashed words (and of bytes for media), L2-normalized. Counts what it encodes."""

    name = "hash"
    Params = HashParams
    description = "test encoder: hashed bag of words"
    document_modalities = frozenset({Modality.TEXT, Modality.IMAGE})
    query_modalities = frozenset({Modality.TEXT, Modality.IMAGE})
    fingerprint_excludes = Encoder.fingerprint_excludes | {"delay"}
    calls: ClassVar[list[int]] = []
    _lock = threading.Lock()

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        with self._lock:
            type(self).calls.append(len(contents))
        if self.params.delay:
            time.sleep(self.params.delay)
        dim = self.params.dimension
        out = np.zeros((len(contents), dim), np.float32)
        for i, content in enumerate(contents):
            tokens = [t for t in _WORD.findall(content.lower()) if len(t) > 2] if isinstance(content, str) else _chunks(content)
            for tok in tokens:
                out[i, zlib.crc32((self.params.salt + tok).encode()) % dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def dimension(self) -> int:
        return self.params.dimension

    @classmethod
    def encoded(cls) -> int:
        return sum(cls.calls)


class GatedHashEncoder(HashEncoder):
    """The hash encoder with a "model" that loads only once `gate` is set: a slow model whose
    loading the test controls. `loads` counts the loads."""

    name = "gated-hash"
    gate: ClassVar[threading.Event] = threading.Event()
    loads: ClassVar[list[int]] = []

    def __init__(self, params=None, context=None):
        super().__init__(params, context)
        self._model = LoadOnce(self._load)

    def _load(self) -> str:
        if not type(self).gate.wait(30):
            raise TimeoutError("the test never let the gated model load")
        type(self).loads.append(1)
        return "loaded"

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        self._model()
        return super().encode(contents, modality, role)


def _chunks(media: Media) -> list[str]:
    data = media.read()
    return [data[i : i + 8].hex() for i in range(0, min(len(data), 4096), 8)]


class TestPlugin:
    """Registers the fake components."""

    @hookimpl
    def register_encoders(self, register):
        register(HashEncoder)
        register(GatedHashEncoder)


def make_registry():
    from prismrag import Registry

    registry = Registry()
    registry.add_plugin(TestPlugin(), name="tests")
    return registry
