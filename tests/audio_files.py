"""Real audio files for the audio tests, written with soundfile and PyAV (no fixtures on disk)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def tone(seconds: float, rate: int = 8000, freq: float = 440.0, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path: Path, data: np.ndarray, rate: int = 8000, **kw: object) -> Path:
    import soundfile as sf

    sf.write(str(path), data, rate, **kw)
    return path


def write_compressed(path: Path, data: np.ndarray, rate: int, codec: str) -> Path:
    """Encode a mono float signal with FFmpeg (PyAV): codec 'aac' (.m4a) or 'libopus' (.opus)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_len = 1024
        pts = 0
        for start in range(0, len(data), frame_len):
            chunk = data[start : start + frame_len].reshape(1, -1).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def with_sample_rate(path: Path, rate: int) -> Path:
    """Patch a PCM WAV header to claim another sample rate (a broken header)."""
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ")
    channels, bits = struct.unpack_from("<H", data, fmt + 10)[0], struct.unpack_from("<H", data, fmt + 22)[0]
    struct.pack_into("<I", data, fmt + 12, rate)
    struct.pack_into("<I", data, fmt + 16, rate * channels * bits // 8)
    path.write_bytes(bytes(data))
    return path


def long_wav(path: Path, seconds: float, rate: int = 2000, block_s: float = 600.0) -> Path:
    """A long tone written block by block (never whole in memory)."""
    import soundfile as sf

    with sf.SoundFile(str(path), "w", rate, 1, subtype="PCM_16") as fh:
        done = 0.0
        while done < seconds:
            n = min(block_s, seconds - done)
            fh.write(tone(n, rate, freq=200.0, amp=0.3))
            done += n
    return path
