"""Private video helpers (PyAV/FFmpeg): probe a file, cut it into segments, grab frames.

Nothing here holds more than a few frames: `probe` demuxes (reads packets, decodes one frame),
`scene_cuts` decodes the video once, scaling every frame down to a 64-pixel-wide thumbnail as it
comes out of the decoder, and `frames_at` seeks and decodes only up to the frames it is asked for,
converting just those (scaled down to the size the image encoder reads). A 4K or three-hour file
costs its decoding time, not its size in memory.

Times are seconds from the start of the video stream (what a player shows as 00:00), whatever
the container's own clock says. Frames come upright: a display rotation (a phone video) is
applied. Heavy imports (av, PIL) happen inside the functions.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prismrag.contracts import Content, Media
from prismrag.support import import_optional

from ._audio import AudioWindow

SEEK_GAP_S = 2.0
"""Frames further apart than this are reached by a seek; nearer ones by decoding on."""
SCENE_WIDTH = 64
"""Width (pixels) of the thumbnails scene detection compares."""
FORMATS = "mp4, mkv, webm, mov or avi"


class VideoError(Exception):
    """A file that cannot be used as video; the message says why and what to do."""


def _av() -> Any:
    return import_optional("av", "video decoding", "video")


def _pil_image() -> Any:
    return import_optional("PIL.Image", "video frames", "video", package="pillow")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, learnt by demuxing it (not from its header alone)."""

    duration: float
    """Seconds of video that are there (a cut-off file is shorter than its header says)."""
    header_duration: float | None
    fps: float | None
    width: int
    """Width as shown (after the display rotation)."""
    height: int
    codec: str
    rotation: int
    """Degrees (0, 90, 180, 270) the decoded picture is turned counter-clockwise to be shown upright."""
    frames: int
    variable_frame_rate: bool
    audio_codec: str | None
    """None: no sound track."""
    container: str

    @property
    def truncated(self) -> bool:
        """The header promises clearly more than the file holds."""
        if self.header_duration is None:
            return False
        slack = max(0.5, 2.0 / self.fps) if self.fps else 0.5
        return self.duration < self.header_duration - slack

    def metadata(self) -> dict[str, Any]:
        """The payload fields (filterable) of every segment of the file."""
        meta: dict[str, Any] = {
            "duration_s": round(self.duration, 3),
            "fps": round(self.fps, 3) if self.fps else None,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "rotation": self.rotation,
            "has_audio": self.audio_codec is not None,
            "variable_frame_rate": self.variable_frame_rate,
        }
        if self.audio_codec:
            meta["audio_codec"] = self.audio_codec
        if self.truncated:
            meta["truncated"] = True
            meta["header_duration_s"] = round(self.header_duration or 0.0, 3)
        return {k: v for k, v in meta.items() if v is not None}


@dataclass(frozen=True)
class VideoSegment(AudioWindow):
    """A time span of a video file, the content of one segment item: the file, the span, the
    times of the keyframes an image route embeds and the size they are read at.

    It is an `AudioWindow` of the same file, so the audio routes decode its sound track over the
    same span. `read()` returns a digest of the span's own compressed packets (video and sound)
    and of the keyframe settings, not a playable file: the item's content hash changes exactly
    when what its encoders see changes, and computing it costs a demux of the span, never a decode.
    """

    frame_times: tuple[float, ...] = ()
    frame_size: int = 224
    has_audio: bool = True

    def read(self) -> bytes:
        if self.path is None:
            return super().read()
        try:
            digest = span_digest(Path(self.path), self.start_s, self.end_s)
        except VideoError as exc:  # the file changed or went away since it was loaded
            raise OSError(f"{Path(self.path).name}: {exc}") from exc
        keys = f"{self.frame_times}|{self.frame_size}".encode()
        return b"prismrag-video-segment:" + hashlib.blake2b(digest + keys, digest_size=16).hexdigest().encode()


def video_path(content: Content) -> Path:
    """The file of video content (a segment or a whole file); VideoError for text or bytes."""
    if isinstance(content, Media) and content.path is not None:
        return Path(content.path)
    if isinstance(content, Media) and content.data is not None:
        raise VideoError("video given as bytes: save it to a file and search with its path")
    raise VideoError(f"expected a video file, got {type(content).__name__}")


def span_label(content: Content) -> str:
    """`00:05.0–00:10.0: ` for a segment (messages name the part of a file), else ''."""
    if not isinstance(content, VideoSegment):
        return ""
    return f"{clock(content.start_s)}\u2013{clock(content.end_s)}: "


def clock(seconds: float) -> str:
    """`mm:ss.s` (as hits print time spans)."""
    tenths = int(round(max(0.0, seconds) * 10))
    minutes, rest = divmod(tenths, 600)
    return f"{minutes:02d}:{rest // 10:02d}.{rest % 10}"


def has_sound(content: Content) -> bool:
    """Whether video content has a sound track (a segment knows; a whole file is opened)."""
    if isinstance(content, VideoSegment):
        return content.has_audio
    try:
        with _open(video_path(content)) as container:
            return bool(container.streams.audio)
    except VideoError:
        return True  # not readable: the audio decoder says why, as an error of the item


# --------------------------------------------------------------------------------- probing


def _open(path: Path) -> Any:
    av = _av()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoError(f"cannot read: {exc.strerror or exc}") from exc
    if size == 0:
        raise VideoError("the file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many error classes all mean "not readable"
        raise VideoError(
            f"not a decodable video file (FFmpeg: {_short(exc)}). Check that it is a complete {FORMATS} file "
            f"(a file cut off before its index, or not video at all, cannot be opened)"
        ) from exc


def _short(exc: BaseException) -> str:
    """An FFmpeg error in one line, without the file name it repeats."""
    raw = getattr(exc, "strerror", None) or str(exc)
    text = str(raw).strip().splitlines()[0] if str(raw).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _video_stream(container: Any) -> Any:
    streams = container.streams.video
    if not streams:
        if container.streams.audio:
            raise VideoError("holds no video stream, only sound: index it with the `audio` loader")
        raise VideoError("holds no video stream")
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoError(
            "its video codec is unknown to FFmpeg (no decoder in this build); convert the file (e.g. to "
            "H.264 in mp4) to index it"
        )
    return stream


def _start(stream: Any) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def rotation_of(frame: Any) -> int:
    """The display rotation of a decoded frame, as 0, 90, 180 or 270 degrees counter-clockwise."""
    try:
        angle = float(frame.rotation or 0.0)
    except Exception:  # noqa: BLE001 - no display matrix
        return 0
    if not math.isfinite(angle):
        return 0
    return int(round(angle / 90.0)) % 4 * 90


def probe(path: Path) -> VideoInfo:
    """What the file holds: its packets are read (not decoded) to learn its true length and frame
    rate, and its first frame is decoded to check that the codec works and to learn its rotation."""
    av = _av()
    with _open(path) as container:
        stream = _video_stream(container)
        tb = stream.time_base
        start = _start(stream)
        header = None
        if stream.duration is not None and tb is not None:
            header = float(stream.duration * tb)
        elif container.duration:
            header = container.duration / 1_000_000
        times = array("d")
        last_duration = 0.0
        try:
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or stamp is None:
                    continue
                times.append(float(stamp * tb))
                last_duration = float(packet.duration * tb) if packet.duration else 0.0
        except av.error.FFmpegError:
            pass  # a cut-off or damaged tail: the packets before it are what the file holds
        audio = container.streams.audio[0].codec_context if container.streams.audio else None
        audio_codec = (audio.name if audio is not None else "unknown") if container.streams.audio else None
        fmt = container.format.name.split(",")[0]
        codec = str(stream.codec_context.name)
        rate = float(stream.average_rate) if stream.average_rate else None
    if not times:
        raise VideoError("holds no video frames (zero length)")
    stamps = np.unique(np.frombuffer(times, dtype=np.float64))
    steps = np.diff(stamps)
    step = float(np.median(steps)) if len(steps) else (1.0 / rate if rate else 0.0)
    duration = max(0.0, float(stamps[-1]) - start + (last_duration or step))
    if len(stamps) == 1 and duration == 0:
        duration = 1.0 / rate if rate else 0.04
    variable = bool(len(steps) >= 2 and step > 0 and (steps.max() - steps.min()) > 0.25 * step)
    fps = rate if rate and not variable else (len(stamps) / duration if duration > 0 else rate)
    first = first_frame(path)
    rotation = rotation_of(first)
    w, h = first.width, first.height
    if rotation in (90, 270):
        w, h = h, w
    return VideoInfo(duration, header, fps, w, h, codec, rotation, len(stamps), variable, audio_codec, fmt)


def first_frame(path: Path) -> Any:
    """The first frame that decodes; VideoError when none does."""
    frames = _decoded(path, 0.0, limit_errors=50)
    try:
        for _, frame in frames:
            return frame
    finally:
        frames.close()  # closes the file now, not when the generator is collected
    raise VideoError("its video stream does not decode (no frame came out); the file is corrupt")


def _decoded(path: Path, seek_s: float, limit_errors: int = 1000) -> Any:
    """(time, frame) of the video stream from the keyframe before `seek_s` on, in display order,
    to the end (the caller stops when it has what it needs). Damaged packets are skipped (up to
    `limit_errors` of them); a cut-off tail ends the stream."""
    av = _av()
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        tb = stream.time_base
        start = _start(stream)
        if seek_s > 0:
            try:
                container.seek(int((seek_s + start) / tb), stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                container.seek(0, stream=stream)
        errors = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    errors += 1
                    if errors > limit_errors:
                        raise VideoError(f"too many damaged packets ({_short(exc)}); the file is corrupt") from exc
                    continue
                for frame in frames:
                    stamp = frame.pts if frame.pts is not None else frame.dts
                    if stamp is None:
                        continue
                    yield float(stamp * tb) - start, frame
        except av.error.FFmpegError:
            return  # a cut-off tail: what decoded is what there is


# --------------------------------------------------------------------------------- frames


def keyframe_times(start: float, end: float, every_s: float, most: int) -> tuple[float, ...]:
    """Times of the frames an image route embeds for a span: about one every `every_s` seconds
    (at least one, at most `most`), each in the middle of its share of the span."""
    length = max(0.0, end - start)
    n = int(min(most, max(1, round(length / every_s))))
    return tuple(round(start + (i + 0.5) * length / n, 3) for i in range(n))


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The size with the shorter side at most `short_side` (never enlarged), aspect kept."""
    scale = min(1.0, short_side / max(1, min(width, height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_rgb(frame: Any, short_side: int, rotation: int | None = None) -> np.ndarray:
    """The frame upright as uint8 RGB [h, w, 3], scaled (by FFmpeg, before any copy) so that its
    shorter side is at most `short_side`."""
    w, h = scaled_size(frame.width, frame.height, short_side)
    small = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    turns = (rotation if rotation is not None else rotation_of(frame)) // 90
    return np.ascontiguousarray(np.rot90(small, turns)) if turns else small


def frames_at(path: Path, times: Sequence[float], short_side: int) -> list[tuple[float, np.ndarray] | None]:
    """For each time, the frame shown then (the last one that starts at or before it; the first
    frame for a time before it, the last for a time past the end) as (its time, upright RGB).
    None for a time whose neighbourhood does not decode. Only the asked frames are converted."""
    out: list[tuple[float, np.ndarray] | None] = [None] * len(times)
    order = sorted(range(len(times)), key=lambda i: times[i])
    k = 0
    while k < len(order):
        start_k = k
        prev: tuple[float, Any] | None = None
        reseek = False
        for t, frame in _decoded(path, max(0.0, times[order[k]] - 1e-3)):
            while k < len(order) and t > times[order[k]] + 1e-6:
                shown = prev if prev is not None else (t, frame)
                out[order[k]] = (shown[0], to_rgb(shown[1], short_side))
                k += 1
                if k < len(order) and times[order[k]] - t > SEEK_GAP_S:
                    reseek = True
                    break
            if reseek or k >= len(order):
                break
            prev = (t, frame)
        else:  # the stream ended: the remaining times get the last frame
            while k < len(order) and prev is not None:
                out[order[k]] = (prev[0], to_rgb(prev[1], short_side))
                k += 1
        if k == start_k:  # nothing decoded near this time
            k += 1
    return out


def png(rgb: np.ndarray, level: int = 1) -> bytes:
    """RGB uint8 [h, w, 3] as PNG bytes."""
    image = _pil_image().fromarray(rgb, "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def thumbnail_uri(rgb: np.ndarray, side: int) -> str:
    """A small PNG data URI of a frame, its longer side `side` pixels (the TUI draws it)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    image = _pil_image().fromarray(rgb, "RGB")
    if scale < 1:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample=4)  # BOX
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------- segments


def scene_cuts(path: Path, threshold: float, min_scene_s: float) -> list[float]:
    """Times where the picture changes at once: the mean absolute difference (0-255) between a
    frame and the one before it, both scaled to 64 pixels wide, is above `threshold`. A cut
    closer than `min_scene_s` to the previous one is ignored (flashes, fast editing)."""
    cuts: list[float] = []
    prev: np.ndarray | None = None
    last = 0.0
    for t, frame in _decoded(path, 0.0):
        w, h = SCENE_WIDTH, max(1, round(frame.height * SCENE_WIDTH / max(1, frame.width)))
        small = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray().astype(np.int16)
        if prev is not None and prev.shape == small.shape:
            change = float(np.abs(small - prev).mean())
            if change > threshold and t - last >= min_scene_s:
                cuts.append(round(t, 3))
                last = t
        prev = small
    return cuts


def split(bounds: Sequence[tuple[float, float]], window_s: float, overlap_s: float) -> list[tuple[float, float]]:
    """Spans longer than `window_s` cut into windows (overlapping by `overlap_s`)."""
    from ._audio import spans

    out: list[tuple[float, float]] = []
    for a, b in bounds:
        out.extend((round(a + x, 3), round(a + y, 3)) for x, y in spans(b - a, window_s, overlap_s))
    return out


def scene_spans(duration: float, cuts: Sequence[float], min_scene_s: float) -> list[tuple[float, float]]:
    """The scenes between cuts; a last scene shorter than `min_scene_s` joins the one before."""
    edges = [0.0] + [c for c in cuts if 0 < c < duration] + [duration]
    spans = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1) if edges[i + 1] > edges[i]]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_scene_s:
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return [(round(a, 3), round(b, 3)) for a, b in spans]


def span_digest(path: Path, start_s: float, end_s: float) -> bytes:
    """A digest of the compressed packets (video and sound) of a span of the file."""
    av = _av()
    h = hashlib.blake2b(digest_size=16)
    try:
        with _open(path) as container:
            video = _video_stream(container)
            streams = [video, *container.streams.audio[:1]]
            start = _start(video)
            if start_s > 0:
                container.seek(int((start_s + start) / video.time_base), stream=video, backward=True)
            done: set[int] = set()
            for packet in container.demux(*streams):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or stamp is None:
                    continue
                t = float(stamp * packet.time_base) - start
                if t >= end_s:
                    done.add(packet.stream.index)
                    if len(done) == len(streams):
                        break
                    continue
                if packet.stream.type == "audio" and t < start_s - 0.1:
                    continue
                h.update(f"{packet.stream.index}:{stamp}:{packet.size}".encode())
                h.update(bytes(packet))
    except av.error.FFmpegError as exc:
        h.update(f"error:{_short(exc)}".encode())  # a damaged tail: what was read is the content
    return h.digest()
