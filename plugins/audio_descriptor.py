"""`audio-descriptor`: audio-to-audio search without weights, from MFCC statistics.

A clip is resampled to 16 kHz, cut to its voiced part (frames within `trim_db` of its loudest),
turned into MFCCs (a log-mel spectrum through a DCT, numpy only) with cepstral mean
normalisation, and described by the mean MFCC of each of `segments` equal stretches of time (the
shape of the sound over time) plus the MFCC standard deviation over the whole clip. The vector
is L2-normalised for cosine search. Query by example: audio documents, audio queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from pydantic import Field

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.contracts import Content, Role

from ._audio import AudioError, check_clips, decode

RATE = 16000
N_FFT = 512
HOP = 160


class DescriptorParams(Params):
    n_mels: int = Field(40, ge=8, le=128)
    n_mfcc: int = Field(20, ge=4, le=64, description="Cepstral coefficients kept (the first, energy, is dropped).")
    segments: int = Field(4, ge=1, le=16, description="Equal stretches of time, each described by its mean MFCC.")
    trim_db: float = Field(35.0, gt=0, description="Frames quieter than the loudest by more than this are left out.")


class AudioDescriptorEncoder(Encoder):
    """MFCC statistics over time: a weight-free descriptor for query by example."""

    name = "audio-descriptor"
    Params = DescriptorParams
    description = "Weight-free audio descriptor (MFCC means over time segments plus deviations) for audio-to-audio search."
    extra = "audio"
    document_modalities = frozenset({Modality.AUDIO})
    query_modalities = frozenset({Modality.AUDIO})
    metric = "cosine"
    max_batch = 256

    params: DescriptorParams

    def dimension(self) -> int:
        p = self.params
        return (p.n_mfcc - 1) * (p.segments + 1)

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        out = np.zeros((len(contents), self.dimension()), np.float32)
        bad: dict[int, str] = {}
        for i, content in enumerate(contents):
            try:
                vec = describe(decode(content, RATE), self.params)
            except AudioError as exc:
                bad[i] = f"cannot decode audio: {exc}"
                continue
            if vec is None:
                bad[i] = "silence only: no sound to describe"
                continue
            out[i] = vec
        check_clips(self.where, bad, role)
        return out


@lru_cache(maxsize=8)
def _mel_bank(n_mels: int) -> np.ndarray:
    """Triangular mel filters [n_mels, N_FFT // 2 + 1] (HTK mel scale, 0 Hz to Nyquist)."""
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(np.array(0.0)), mel(np.array(RATE / 2)), n_mels + 2))
    freqs = np.linspace(0, RATE / 2, N_FFT // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


@lru_cache(maxsize=8)
def _dct(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II matrix [n_mfcc, n_mels]."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def mfcc(x: np.ndarray, n_mels: int, n_mfcc: int) -> tuple[np.ndarray, np.ndarray]:
    """MFCCs [frames, n_mfcc] of a 16 kHz signal, and each frame's log energy (dB)."""
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    count = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None] + HOP * np.arange(count)[:, None]
    frames = x[idx] * np.hanning(N_FFT).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = power @ _mel_bank(n_mels).T
    log_mel = np.log(mel + 1e-10)
    energy = 10 * np.log10(power.sum(axis=1) + 1e-20)
    return log_mel @ _dct(n_mels, n_mfcc).T, energy


def describe(x: np.ndarray, p: DescriptorParams) -> np.ndarray | None:
    """The descriptor of a 16 kHz mono signal, or None when it is silent."""
    if len(x) == 0 or not np.any(np.abs(x) > 1e-4):
        return None
    c, energy = mfcc(x.astype(np.float32), p.n_mels, p.n_mfcc)
    voiced = np.flatnonzero(energy >= energy.max() - p.trim_db)
    c = c[voiced[0] : voiced[-1] + 1, 1:]  # the voiced stretch; c0 (loudness) dropped
    c = c - c.mean(axis=0)  # cepstral mean normalisation: less room and microphone
    parts = np.array_split(c, p.segments) if len(c) >= p.segments else [c] * p.segments
    vec = np.concatenate([part.mean(axis=0) for part in parts] + [c.std(axis=0)])
    norm = float(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32) if norm > 0 else None


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(AudioDescriptorEncoder)
