"""The `video` loader: video files (mp4, mkv, webm, mov, avi) as time-coded segments.

Each file is cut into segments, by fixed windows or at scene changes (a recipe knob); a segment
is one item (`file#n`, parent id the file, span `t_start`/`t_end` in seconds) whose content is
a `VideoSegment`: the file, the span, the times of its keyframes and the size they are read at.
Encoders decode only that span: the keyframes for an image route (`video-frames`), the sound
track for the audio routes (`whisper`). Bad files (empty, cut off, corrupt, no video stream,
an unknown codec, zero frames) are one `ItemError` each, and the rest goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from prismrag.contracts import (
    Item,
    ItemError,
    Loader,
    Modality,
    Params,
    Span,
    extensions_of,
    hookimpl,
)

from ._audio import overlap_below_window
from ._audio import spans as windows
from ._files import SourceParams, relpath
from ._speech import SpeechParams, TranscribingLoader
from ._video import (
    VideoError,
    VideoInfo,
    VideoSegment,
    frames_at,
    keyframe_times,
    probe,
    scene_cuts,
    scene_spans,
    split,
    thumbnail_uri,
)
from ._whisper import tidy


class KeyframeParams(Params):
    """Which frames of a segment an image route embeds."""

    every_s: float = Field(2.0, gt=0, description="About one keyframe every this many seconds of a segment.")
    max: int = Field(8, ge=1, le=64, description="At most this many keyframes per segment.")
    size: int = Field(224, ge=16, le=2048, description="Keyframes are scaled down (while decoding) so that "
                      "their shorter side is at most this many pixels: the size the image encoder reads.")


class VideoParams(SourceParams):
    segment: Literal["fixed", "scenes"] = Field(
        "fixed", description="`fixed`: windows of `window_s`; `scenes`: cut where the picture changes at once "
        "(scenes longer than `window_s` are cut into windows too).")
    window_s: float = Field(10.0, gt=0, description="Length of a fixed window, and the longest a scene stays whole (seconds).")
    overlap_s: float = Field(0.0, ge=0, description="Seconds shared by consecutive windows.")
    scene_threshold: float = Field(
        30.0, gt=0, le=255, description="A scene change: the mean absolute difference (0-255) between two frames "
        "scaled to 64 pixels wide is above this.")
    min_scene_s: float = Field(1.0, ge=0, description="Scenes shorter than this are not cut off (flashes, fast editing).")
    keyframes: KeyframeParams = Field(default_factory=KeyframeParams, description="Keyframe sampling per segment.")
    thumbnail: int = Field(64, ge=0, le=512, description="Longer side in pixels of a keyframe thumbnail stored in "
                           "the payload (the TUI draws it); 0: none.")
    transcribe: SpeechParams | None = Field(
        None,
        description="Transcribe each segment's sound track while loading (Whisper settings, as the `whisper` encoder "
        "takes): the payload gets `transcript` and `no_speech`. Give the same settings as the recipe's `whisper` "
        "encoders and each segment is transcribed once.",
    )
    max_file_mb: float = Field(100_000.0, gt=0, description="Skip files larger than this many megabytes (video is "
                               "streamed: size costs time, not memory).")

    _overlap_below_window = model_validator(mode="after")(overlap_below_window)


class VideoLoader(TranscribingLoader):
    """Video files as time-coded segments: keyframes for image routes, the sound track for audio ones."""

    name = "video"
    description = "Video files (mp4, mkv, webm, mov, avi) cut into time-coded segments (fixed windows or scenes)."
    modality, extra = Modality.VIDEO, "video"
    extensions = extensions_of(modality)
    Params = VideoParams
    params: VideoParams

    def with_transcripts(self, items: list[Item]) -> Iterator[Item | ItemError]:
        """The items, those with a sound track with its transcript and Whisper's no-speech probability."""
        sounding = [k for k, item in enumerate(items) if isinstance(item.content, VideoSegment) and item.content.has_audio]
        if not sounding:
            yield from items
            return
        p = self.params.transcribe
        assert p is not None
        found, bad = self.transcripts([items[k].content for k in sounding])
        heard = {k: (found[j], bad.get(j)) for j, k in enumerate(sounding)}
        for k, item in enumerate(items):
            if k not in heard:
                yield item
                continue
            t, problem = heard[k]
            if t is None:
                yield ItemError(item.id, f"its sound track cannot be decoded ({problem}); indexed without a transcript")
                yield item
                continue
            meta = {**item.metadata, "transcript": tidy(t.text, p.spell_numbers), "no_speech": round(t.no_speech, 3)}
            yield replace(item, metadata=meta)

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        rel = relpath(path, root)
        where = self.display(path)
        p = self.params
        try:
            info = probe(path)
            segments = self._segments(path, info)
            keyframes = [keyframe_times(a, b, p.keyframes.every_s, p.keyframes.max) for a, b in segments]
            middles = [times[len(times) // 2] for times in keyframes]
            thumbs = frames_at(path, middles, p.thumbnail) if p.thumbnail else [None] * len(segments)
        except VideoError as exc:
            yield ItemError(where, f"{exc}; skipped")
            return
        item_id = p.id_prefix + rel
        meta = {"file": rel, **info.metadata()}
        resolved = path.resolve()
        for n, ((start, end), times, thumb) in enumerate(zip(segments, keyframes, thumbs, strict=True)):
            content = VideoSegment(path=resolved, start_s=start, end_s=end, frame_times=times,
                                   frame_size=p.keyframes.size, has_audio=info.audio_codec is not None)
            extra: dict[str, object] = {"start_s": start, "end_s": end, "keyframes": list(times)}
            if thumb is not None:
                extra["thumbnail"] = thumbnail_uri(thumb[1], p.thumbnail)
                extra["thumbnail_s"] = round(thumb[0], 3)
            yield Item(f"{item_id}#{n}", Modality.VIDEO, content, {**meta, **extra}, parent_id=item_id,
                       span=Span(t_start=start, t_end=end), source=rel)

    def _segments(self, path: Path, info: VideoInfo) -> list[tuple[float, float]]:
        p = self.params
        duration = round(info.duration, 3)
        if p.segment == "fixed":
            return windows(duration, p.window_s, p.overlap_s)
        cuts = scene_cuts(path, p.scene_threshold, p.min_scene_s)
        return split(scene_spans(duration, cuts, p.min_scene_s), p.window_s, p.overlap_s)


@hookimpl
def register_loaders(register: Callable[[type[Loader]], None]) -> None:
    register(VideoLoader)
