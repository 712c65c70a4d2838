"""The `audio` loader: audio files as items, long recordings cut into overlapping time windows.

Each file is streamed once (never loaded whole) to learn its true length and the level of each
window; a window is one item whose content is an `AudioWindow` (the file plus its span), so the
encoders decode only that window. Silent windows are left out; a file that is all silence, empty,
truncated, of an absurd sample rate or not audio at all is one `ItemError`, and the rest goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from prismrag.contracts import Item, ItemError, Loader, Modality, Span, extensions_of, hookimpl

from ._audio import AudioError, AudioInfo, AudioWindow, blocks, overlap_below_window, probe, spans
from ._files import SourceParams, relpath
from ._speech import SpeechParams, TranscribingLoader
from ._whisper import tidy


class AudioParams(SourceParams):
    window_s: float = Field(30.0, gt=0, description="Length of the windows a long recording is cut into (seconds).")
    overlap_s: float = Field(2.0, ge=0, description="Seconds shared by consecutive windows, so no word is cut in two.")
    silence_db: float = Field(
        -60.0, le=0, description="Windows whose peak stays below this level (dBFS) are silence and left out."
    )
    transcribe: SpeechParams | None = Field(
        None,
        description="Transcribe each window while loading (Whisper settings, as the `whisper` encoder takes): "
        "the payload gets `transcript`, `no_speech` and `route` (speech or sound). Give the same settings as "
        "the recipe's `whisper` encoders and each window is transcribed once.",
    )

    _overlap_below_window = model_validator(mode="after")(overlap_below_window)


class AudioLoader(TranscribingLoader):
    """Audio files (wav, flac, ogg, mp3, m4a/aac, opus) as audio items, windowed with overlap."""

    name = "audio"
    description = "Audio files from a file or folder; long recordings become overlapping time windows with spans."
    modality, extra = Modality.AUDIO, "audio"
    extensions = extensions_of(modality)
    Params = AudioParams
    params: AudioParams

    def with_transcripts(self, items: list[Item]) -> Iterator[Item | ItemError]:
        """The items with their transcript, Whisper's no-speech probability and the route."""
        if not items:
            return
        p = self.params.transcribe
        assert p is not None
        found, bad = self.transcripts([i.content for i in items])
        for k, (item, t) in enumerate(zip(items, found, strict=True)):
            if t is None:
                yield ItemError(item.source or item.id, f"cannot transcribe: {bad.get(k)}; skipped")
                continue
            text = tidy(t.text, p.spell_numbers)
            meta = {**item.metadata, "transcript": text, "no_speech": round(t.no_speech, 3),
                    "route": "speech" if text.split() else "sound"}
            yield replace(item, metadata=meta)

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        rel = relpath(path, root)
        where = self.display(path)
        try:
            info = probe(path)
            duration, peaks = self._scan(path, info)
        except AudioError as exc:
            yield ItemError(where, f"{exc}; skipped")
            return
        if duration <= 0:
            yield ItemError(where, "holds no audio samples (zero length); skipped")
            return
        p = self.params
        windows = spans(duration, p.window_s, p.overlap_s)
        loud = [w for w in windows if _peak(peaks, w) >= p.silence_db]
        if not loud:
            yield ItemError(
                where,
                f"is silence only (peak below {p.silence_db:g} dBFS over {duration:.1f} s); skipped. "
                f"Lower `silence_db` to index quiet recordings.",
            )
            return
        item_id = p.id_prefix + rel
        meta = {
            "file": rel,
            "duration_s": round(duration, 3),
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "codec": info.codec,
        }
        resolved = path.resolve()
        single = len(windows) == 1
        for n, (start, end) in enumerate(windows):
            if (start, end) not in loud:
                continue
            yield Item(
                item_id if single else f"{item_id}#{n}",
                Modality.AUDIO,
                AudioWindow(path=resolved, start_s=start, end_s=end),
                {**meta, "start_s": start, "end_s": end},
                parent_id=None if single else item_id,
                span=Span(t_start=start, t_end=end),
                source=rel,
            )

    def _scan(self, path: Path, info: AudioInfo) -> tuple[float, np.ndarray]:
        """The decoded duration and the peak level (dBFS) of each second, in one streaming pass."""
        rate = info.sample_rate
        peaks: list[np.ndarray] = []
        carry = np.zeros(0, np.float32)
        total = 0
        for block in blocks(path, info):
            total += len(block)
            block = np.concatenate([carry, block]) if len(carry) else block
            whole = len(block) // rate * rate
            if whole:
                peaks.append(np.abs(block[:whole]).reshape(-1, rate).max(axis=1))
            carry = block[whole:]
        if len(carry):
            peaks.append(np.array([np.abs(carry).max()], np.float32))
        level = np.concatenate(peaks) if peaks else np.zeros(0, np.float32)
        with np.errstate(divide="ignore"):
            return total / rate, 20 * np.log10(level.astype(np.float64))


def _peak(per_second: np.ndarray, window: tuple[float, float]) -> float:
    a, b = int(math.floor(window[0])), max(int(math.ceil(window[1])), int(math.floor(window[0])) + 1)
    part = per_second[a:b]
    return float(part.max()) if len(part) else -math.inf


@hookimpl
def register_loaders(register: Callable[[type[Loader]], None]) -> None:
    register(AudioLoader)
