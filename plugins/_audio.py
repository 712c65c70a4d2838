"""Private audio helpers: probe, stream, and decode spans of audio files to mono float32.

soundfile (libsndfile) reads PCM containers (wav, flac, ogg/vorbis, ...) and seeks exactly; PyAV
(FFmpeg) reads the compressed ones (mp3, m4a/aac, opus, ...). Which one reads a file is decided by
what the file is, not by its extension: soundfile is tried first, PyAV second, so a file whose
extension lies still decodes, and one that neither can read gets a clear `AudioError`.

Nothing here loads a whole file: `blocks` streams it, `read_span` seeks to a window. Heavy
imports (soundfile, av, scipy) happen inside the functions.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prismrag.contracts import Content, ItemError, Media, QueryError
from prismrag.support import import_optional

MIN_SAMPLE_RATE = 2000
"""Below this a file is not audio we can use (speech needs ~8 kHz; 1 Hz is a broken header)."""
BLOCK_S = 10.0
"""Seconds decoded at a time when streaming."""


class AudioError(Exception):
    """A file or buffer that cannot be decoded as audio; the message says why."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate, channels, duration (None when the header does not say)."""

    sample_rate: int
    channels: int
    duration: float | None
    backend: str  # "soundfile" or "av"
    codec: str


@dataclass(frozen=True)
class AudioWindow(Media):
    """A time window of an audio file, the content of one windowed item.

    `read()` returns the window itself as a small WAV file (mono, the file's rate), so the
    content hash covers exactly the window's samples and any consumer of bytes gets real audio.
    """

    start_s: float = 0.0
    end_s: float = 0.0

    def read(self) -> bytes:
        if self.path is None:
            return super().read()
        sf = _soundfile()
        info = probe(self.path)
        samples = read_span(self.path, self.start_s, self.end_s, info.sample_rate)
        buf = io.BytesIO()
        sf.write(buf, samples, info.sample_rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()


def _soundfile() -> Any:
    return import_optional("soundfile", "audio decoding", "audio")


def _av() -> Any:
    return import_optional("av", "audio decoding", "audio")


Source = Path | bytes


def source_of(content: Content) -> Source:
    """The path or bytes of audio content (a window's path; its span is read by `decode`)."""
    if isinstance(content, Media):
        if content.path is not None:
            return Path(content.path)
        if content.data is not None:
            return content.data
    raise AudioError(f"expected an audio file or bytes, got {type(content).__name__}")


def _sf_handle(src: Source) -> Any:
    return io.BytesIO(src) if isinstance(src, bytes) else str(src)


def _av_open(src: Source) -> Any:
    av = _av()
    return av.open(io.BytesIO(src) if isinstance(src, bytes) else str(src), mode="r")


def _describe(src: Source) -> str:
    return f"{len(src)} bytes" if isinstance(src, bytes) else Path(src).name


def probe(src: Source) -> AudioInfo:
    """Read the header; an `AudioError` when neither soundfile nor PyAV can open it."""
    if not isinstance(src, bytes):
        try:
            size = Path(src).stat().st_size
        except OSError as exc:
            raise AudioError(f"cannot read: {exc.strerror or exc}") from exc
        if size == 0:
            raise AudioError("the file is empty (0 bytes)")
    elif not src:
        raise AudioError("no audio bytes (empty)")
    sf = _soundfile()
    sf_problem = ""
    try:
        info = sf.info(_sf_handle(src))
        if info.frames > 0 or info.samplerate > 0:
            return _checked(AudioInfo(int(info.samplerate), int(info.channels), info.frames / max(info.samplerate, 1),
                                      "soundfile", str(info.format).lower()))
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile's errors are plain RuntimeErrors; PyAV is tried next
        sf_problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        with _av_open(src) as container:
            streams = container.streams.audio
            if not streams:
                raise AudioError("the file holds no audio stream")
            stream = streams[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / 1_000_000
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            channels = int(stream.codec_context.channels or 0)
            return _checked(AudioInfo(rate, channels, duration, "av", stream.codec_context.name))
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many error classes all mean "not decodable"
        detail = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        raise AudioError(
            f"not a decodable audio file (soundfile: {sf_problem or 'no samples'}; FFmpeg: {detail}). "
            f"Check that it is a complete wav, flac, ogg, mp3, m4a/aac or opus file"
        ) from exc


def _checked(info: AudioInfo) -> AudioInfo:
    if info.sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(
            f"sample rate {info.sample_rate} Hz is too low to be audio (at least {MIN_SAMPLE_RATE} Hz needed); "
            f"the header is broken or this is not a sound file"
        )
    if info.channels < 1:
        raise AudioError("the header declares no audio channel")
    return info


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling of a mono float32 signal (anti-aliased)."""
    if rate_in == rate_out or len(x) == 0:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def _mono(block: np.ndarray) -> np.ndarray:
    return (block.mean(axis=1) if block.ndim == 2 else block).astype(np.float32, copy=False)


def blocks(src: Source, info: AudioInfo | None = None, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Stream the file as mono float32 blocks at its own rate (memory: one block)."""
    info = info or probe(src)
    if info.backend == "soundfile":
        sf = _soundfile()
        frames = max(1, int(block_s * info.sample_rate))
        try:
            with sf.SoundFile(_sf_handle(src)) as fh:
                while True:
                    block = fh.read(frames, dtype="float32", always_2d=True)
                    if not len(block):
                        return
                    yield _mono(block)
        except RuntimeError as exc:
            raise AudioError(f"decoding failed part-way ({exc}); the file is corrupt or truncated") from exc
        return
    yield from _av_blocks(src, info.sample_rate, 0.0, None)


def _av_blocks(src: Source, rate: int, start_s: float, end_s: float | None) -> Iterator[np.ndarray]:
    """Mono float32 at `rate` from `start_s` to `end_s` (None: the end), decoded with PyAV."""
    av = _av()
    try:
        with _av_open(src) as container:
            stream = container.streams.audio[0]
            if start_s > 0:
                container.seek(int(start_s * 1_000_000), any_frame=False)  # in AV_TIME_BASE, before start
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            clock: float | None = None
            for frame in container.decode(stream):
                if clock is None:
                    clock = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                for out in resampler.resample(frame):
                    data = out.to_ndarray().reshape(-1)
                    t0, clock = clock, clock + len(data) / rate
                    if clock <= start_s:
                        continue
                    a = max(0, int(round((start_s - t0) * rate)))
                    b = len(data) if end_s is None else min(len(data), int(round((end_s - t0) * rate)))
                    if b > a:
                        yield data[a:b]
                    if end_s is not None and clock >= end_s:
                        return
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many error classes
        raise AudioError(f"decoding failed ({type(exc).__name__}: {exc}); the file is corrupt or truncated") from exc


def read_span(src: Source, start_s: float, end_s: float | None, rate: int, info: AudioInfo | None = None) -> np.ndarray:
    """Mono float32 samples at `rate` between `start_s` and `end_s` (None: to the end); only
    that span is decoded."""
    info = info or probe(src)
    if info.backend == "soundfile":
        sf = _soundfile()
        try:
            with sf.SoundFile(_sf_handle(src)) as fh:
                first = int(round(start_s * info.sample_rate))
                fh.seek(min(first, fh.frames))
                count = -1 if end_s is None else max(0, int(round(end_s * info.sample_rate)) - first)
                data = _mono(fh.read(count, dtype="float32", always_2d=True))
        except RuntimeError as exc:
            raise AudioError(f"decoding failed ({exc}); the file is corrupt or truncated") from exc
        return resample(data, info.sample_rate, rate)
    parts = list(_av_blocks(src, rate, start_s, end_s))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def decode(content: Content, rate: int) -> np.ndarray:
    """Mono float32 samples of audio content at `rate`: a window's span, or a whole file/buffer."""
    src = source_of(content)
    info = probe(src)
    if isinstance(content, AudioWindow):
        return read_span(src, content.start_s, content.end_s, rate, info)
    return read_span(src, 0.0, None, rate, info)


def spans(duration: float, window_s: float, overlap_s: float) -> list[tuple[float, float]]:
    """Windows of `window_s` seconds starting every `window_s - overlap_s`; the last one ends at
    `duration` (a tail shorter than the overlap is covered by the previous window already)."""
    if duration <= window_s:
        return [(0.0, duration)]
    hop = window_s - overlap_s
    out = []
    start = 0.0
    while True:
        end = min(start + window_s, duration)
        out.append((round(start, 3), round(end, 3)))
        if end >= duration:
            return out
        start += hop
        if duration - start <= overlap_s:
            return out


def overlap_below_window(params: Any) -> Any:
    """A Params validator: consecutive windows overlap by less than a window (`overlap_s`, `window_s`)."""
    if params.overlap_s >= params.window_s:
        raise ValueError(f"overlap_s ({params.overlap_s}) must be shorter than window_s ({params.window_s})")
    return params


def check_clips(where: str, bad: dict[int, str], role: str) -> None:
    """Raise for the clips of a batch that cannot be used (`bad`: position -> why), if any: a
    QueryError for a query clip, else an ItemError naming the first and carrying every position."""
    if not bad:
        return
    first = next(iter(bad.values()))
    if role == "query":
        raise QueryError(f"{where}: the query clip: {first}")
    raise ItemError(where, first, tuple(bad))


def level_db(x: np.ndarray) -> float:
    """Peak level in dBFS (-inf for digital silence)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf
