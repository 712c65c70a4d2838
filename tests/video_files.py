"""Real video files for the video tests, written with PyAV (FFmpeg): no fixtures on disk.

`write_video` draws each frame as a flat colour (the colour of the scene it belongs to) with a
small moving square, so scene cuts, frame times and rotation can be checked on the decoded
pixels; the sound track is a tone or any mono signal (espeak-ng speech in the speech tests).
The other helpers make the bad inputs: cut-off and corrupt bytes, a zero-length video, a file
with no video stream, and a codec FFmpeg does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 220, 40), (200, 40, 210), (30, 200, 210)]


def frame_at(t: float, scenes: Sequence[float], size: tuple[int, int]) -> np.ndarray:
    """The picture at time `t`: the colour of the scene `t` falls in (scenes start at the given
    times), with a dark square that moves across the frame as time goes."""
    w, h = size
    scene = max(0, int(np.searchsorted(np.asarray(scenes), t, side="right")) - 1)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = COLOURS[scene % len(COLOURS)]
    side = max(2, h // 6)
    x = int((t * 7) % max(1, w - side))
    img[h // 3 : h // 3 + side, x : x + side] = 20
    return img


def write_video(
    path: Path,
    seconds: float = 4.0,
    fps: int = 10,
    size: tuple[int, int] = (96, 64),
    *,
    codec: str = "libx264",
    scenes: Sequence[float] = (0.0,),
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    audio_codec: str = "aac",
    rotation: int | None = None,
    frame_times: Sequence[float] | None = None,
    faststart: bool = False,
    gop: int | None = None,
) -> Path:
    """A video of `seconds` at `fps` (or frames at exactly `frame_times`: a variable frame rate),
    with an optional mono sound track `audio` (float32 at `audio_rate`) and display rotation."""
    import av

    times = list(frame_times) if frame_times is not None else [i / fps for i in range(int(round(seconds * fps)))]
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", **({"g": str(gop)} if gop else {})}
        elif gop:
            stream.codec_context.gop_size = gop
        if frame_times is not None:  # pts in milliseconds: any frame time can be written
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            sound = out.add_stream(audio_codec, rate=audio_rate)
            sound.layout = "mono"
        fed = 0  # sound samples written so far: interleaved with the pictures, as a real file is
        for i, t in enumerate(times):
            if sound is not None and audio is not None:
                upto = min(len(audio), int(round(t * audio_rate)))
                _encode_sound(sound, out, audio, fed, upto)
                fed = upto
            frame = av.VideoFrame.from_ndarray(frame_at(t, scenes, size), format="rgb24")
            frame.pts = int(round(t * 1000)) if frame_times is not None else i
            if frame_times is not None:
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if sound is not None and audio is not None:
            _encode_sound(sound, out, audio, fed, len(audio))
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def _encode_sound(stream: object, out: object, audio: np.ndarray, start: int, end: int, step: int = 1024) -> None:
    """Encode samples [start, end) of a mono float32 signal (pts in samples)."""
    import av

    for a in range(start, end, step):
        chunk = np.ascontiguousarray(audio[a : min(a + step, end)], dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, a  # type: ignore[attr-defined]
        for packet in stream.encode(frame):  # type: ignore[attr-defined]
            out.mux(packet)  # type: ignore[attr-defined]


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech(text: str, folder: Path, rate: int = 16000) -> np.ndarray:
    """`text` said by espeak-ng, as mono float32 at `rate`."""
    import subprocess

    import soundfile as sf

    from prismrag.plugins._audio import resample

    wav = folder / f"say-{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
    data, sr = sf.read(str(wav), dtype="float32")
    return resample(data if data.ndim == 1 else data.mean(axis=1), sr, rate)


def audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An .mp4 holding only a sound track (AAC): no video stream."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        signal = tone(seconds)
        _encode_sound(stream, out, signal, 0, len(signal))
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def zero_length(path: Path) -> Path:
    """A well-formed container with a video stream and not one frame (give an .avi path: the mp4
    muxer drops a track without samples, Matroska writes no readable header)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # the header is written although no frame ever comes
    return path


def truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first `keep` of `source`'s bytes."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def corrupt_middle(source: Path, path: Path, seed: int = 0) -> Path:
    """`source` with a run of its middle bytes overwritten by noise (the header intact)."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    a, b = len(data) * 2 // 5, len(data) * 3 // 5
    data[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def unknown_codec(path: Path) -> Path:
    """An AVI whose video stream is tagged with a FourCC no FFmpeg decoder knows ('ZZZZ')."""
    tmp = path.with_suffix(".tmp.avi")
    write_video(tmp, seconds=1.0, codec="mpeg4")
    data = tmp.read_bytes()
    for tag in (b"FMP4", b"XVID", b"DIVX", b"MP4V", b"mp4v"):
        data = data.replace(tag, b"ZZZZ")
    path.write_bytes(data)
    tmp.unlink()
    return path
