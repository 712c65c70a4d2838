"""Private helpers of the speech route: transcribe many clips with faster-whisper, packed.

Whisper reads 30-second windows: a 0.4-second clip costs as much as 30 seconds of speech. Short
clips are therefore packed: laid end to end with `gap_s` of silence around each, up to
`PACK_S` seconds a buffer (in a fixed shuffled order, so neighbours differ), transcribed once
with word timestamps, and each word is handed back to the clip its midpoint falls in; a clip that
got no word is transcribed again on its own. Clips longer than `LONG_S` are transcribed alone.
Transcripts are remembered per (settings, clip) so several retrievers that share the same
speech settings (dense and BM25 over one transcript) transcribe each clip once.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE = 16000
TRANSCRIBER_VERSION = 2
"""Changes when the way clips are transcribed changes (packing, fallbacks): part of the `whisper`
encoder's fingerprint, so vectors of older transcripts are never served from the cache."""
PACK_S = 28.0
LONG_S = 20.0


@dataclass(frozen=True)
class Settings:
    """What changes a transcript (the model's path and the decoding options)."""

    model_path: str
    compute_type: str
    language: str | None
    beam_size: int
    initial_prompt: str | None
    hotwords: str | None
    vad: bool
    pack: bool
    gap_s: float
    threads: int
    where: str = field(default="whisper", compare=False)
    """The recipe field for error messages (not part of what keys a transcript)."""
    remote: bool = field(default=False, compare=False)
    """True when `model_path` is a hub id that faster-whisper downloads."""


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[tuple[float, float, str], ...]
    """(start_s, end_s, text) within the clip."""
    no_speech: float
    """Whisper's no-speech probability (the highest of the clip's segments; 1.0 when none)."""


_MODELS: dict[tuple[str, str, int], Any] = {}
_MEMO: OrderedDict[tuple[Settings, str], Transcript] = OrderedDict()
_MEMO_SIZE = 20000
_LOCK = threading.Lock()


def model_for(s: Settings) -> Any:
    """One loaded WhisperModel per (path, compute type, threads), shared by every encoder."""
    key = (s.model_path, s.compute_type, s.threads)
    with _LOCK:
        if key not in _MODELS:
            from faster_whisper import WhisperModel

            _MODELS[key] = WhisperModel(s.model_path, device="cpu", compute_type=s.compute_type, cpu_threads=s.threads)
        return _MODELS[key]


def release(s: Settings) -> None:
    with _LOCK:
        _MODELS.pop((s.model_path, s.compute_type, s.threads), None)


def remembered(s: Settings, keys: Sequence[str]) -> dict[int, Transcript]:
    with _LOCK:
        return {i: _MEMO[(s, k)] for i, k in enumerate(keys) if (s, k) in _MEMO}


def remember(s: Settings, key: str, t: Transcript) -> None:
    with _LOCK:
        _MEMO[(s, key)] = t
        _MEMO.move_to_end((s, key))
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)


def _options(s: Settings, words: bool) -> dict[str, Any]:
    return dict(
        language=s.language, beam_size=s.beam_size, initial_prompt=s.initial_prompt, hotwords=s.hotwords,
        vad_filter=s.vad, word_timestamps=words, condition_on_previous_text=False, temperature=0.0,
    )


def transcribe_one(model: Any, audio: np.ndarray, s: Settings) -> Transcript:
    segments, _ = model.transcribe(audio, **_options(s, words=False))
    segs = [(round(g.start, 2), round(g.end, 2), g.text.strip(), g.no_speech_prob) for g in segments]
    return Transcript(
        " ".join(t for _, _, t, _ in segs if t).strip(),
        tuple((a, b, t) for a, b, t, _ in segs if t),
        max((p for *_, p in segs), default=1.0),
    )


def _pack(durations: Sequence[float], gap: float) -> list[list[int]]:
    """Greedy buffers of clip positions, each at most PACK_S seconds with its gaps."""
    buffers: list[list[int]] = []
    current: list[int] = []
    length = 0.0
    for i, d in enumerate(durations):
        if current and length + d + gap > PACK_S:
            buffers.append(current)
            current, length = [], 0.0
        current.append(i)
        length += d + gap
    if current:
        buffers.append(current)
    return buffers


def transcribe_packed(model: Any, clips: Sequence[np.ndarray], s: Settings) -> list[Transcript]:
    """Transcripts of short clips, packed into shared Whisper windows."""
    gap = s.gap_s
    silence = np.zeros(int(round(gap / 2 * RATE)), np.float32)
    half = len(silence) / RATE
    out: list[Transcript | None] = [None] * len(clips)
    # Neighbours in a folder tend to say the same thing ("zero" thirty times), which Whisper
    # shortens; a fixed shuffle makes each buffer a mix.
    order = np.random.default_rng(0).permutation(len(clips))
    for packed in _pack([len(clips[i]) / RATE for i in order], gap):
        buffer = [int(order[k]) for k in packed]
        parts, bounds, t = [], [], 0.0
        for i in buffer:
            d = len(clips[i]) / RATE
            parts += [silence, clips[i], silence]
            bounds.append((t + half, t + half + d))
            t += d + 2 * half
        segments, _ = model.transcribe(np.concatenate(parts), **_options(s, words=True))
        words: list[list[tuple[float, float, str]]] = [[] for _ in buffer]
        no_speech = [1.0] * len(buffer)
        for seg in segments:
            for w in seg.words or ():
                k = _owner(bounds, (w.start + w.end) / 2)
                words[k].append((w.start - bounds[k][0], w.end - bounds[k][0], w.word))
                no_speech[k] = min(no_speech[k], seg.no_speech_prob)
        for k, i in enumerate(buffer):
            text = "".join(w for *_, w in words[k]).strip()
            d = bounds[k][1] - bounds[k][0]
            seg_t = ((max(0.0, round(words[k][0][0], 2)), min(d, round(words[k][-1][1], 2)), text),) if text else ()
            out[i] = Transcript(text, seg_t, no_speech[k] if text else 1.0)
    for i, t in enumerate(out):  # a clip that got no word in the pack is heard again alone
        if t is not None and not t.text:
            out[i] = transcribe_one(model, clips[i], s)
    return [t for t in out if t is not None]


def _owner(bounds: Sequence[tuple[float, float]], t: float) -> int:
    """The clip whose span (plus half the gaps around it) holds time `t`, else the nearest."""
    best, dist = 0, float("inf")
    for k, (a, b) in enumerate(bounds):
        d = 0.0 if a <= t <= b else min(abs(t - a), abs(t - b))
        if d < dist:
            best, dist = k, d
    return best


_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,2})(?![\w]|[.,]\d)")


def _say(n: int) -> str:
    if n < 20:
        return _SMALL[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens - 2] + ("" if ones == 0 else "-" + _SMALL[ones])


TEXT_VERSION = 1
"""Changes when `tidy` changes (part of the `whisper` encoder's fingerprint)."""
_WORD = re.compile(r"\S+")


def tidy(text: str, spell: bool) -> str:
    """A transcript as it is indexed: a word repeated back to back said once (Whisper's loops on
    short or unclear clips: "seven, seven, seven, ..."), numbers spelled out when `spell`."""
    kept: list[str] = []
    last = None
    for word in _WORD.findall(spell_numbers(text) if spell else text):
        key = re.sub(r"\W", "", word.lower())
        if key and key == last:
            continue
        kept.append(word)
        last = key or last
    return " ".join(kept)


def spell_numbers(text: str) -> str:
    """Whole numbers below 100 written as words ("7" -> "seven"), so that word queries and
    transcripts that chose digits meet."""
    return _NUMBER.sub(lambda m: _say(int(m.group(1))), text)
