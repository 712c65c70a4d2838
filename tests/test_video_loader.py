"""The `video` loader and the video helpers on real files written by PyAV: containers, segments
by fixed windows and by scene change, frame times on a variable frame rate, rotation, the
segment payload, and every bad input of issue 10 as one ItemError each (or its documented
fallback). The shared smoke clips are checked too when they are there."""

from __future__ import annotations

import base64
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from video_files import (
    COLOURS,
    audio_only,
    corrupt_middle,
    tone,
    truncated,
    unknown_codec,
    write_video,
    zero_length,
)

from prismrag.contracts import Context, Item, ItemError, Modality
from prismrag.testing import check_loader

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("av") is None or importlib.util.find_spec("PIL") is None,
    reason='needs the video extra: pip install "prismrag[video]"',
)

SMOKE = SHARED_DATA / "video-smoke"


def _loader(path: Path, **params):
    from prismrag.plugins.video_loader import VideoLoader

    return VideoLoader(VideoLoader.Params(path=str(path), **params), Context(base_dir=path.parent))


def _load(path: Path, **params) -> tuple[dict[str, Item], list[ItemError]]:
    out = list(_loader(path, **params).load())
    return {x.id: x for x in out if isinstance(x, Item)}, [x for x in out if isinstance(x, ItemError)]


def _colour(rgb: np.ndarray) -> int:
    """Index of the scene colour a picture shows (its median pixel, nearest of COLOURS)."""
    median = np.median(rgb.reshape(-1, 3), axis=0)
    return int(np.argmin([np.abs(median - np.array(c)).sum() for c in COLOURS]))


def test_fixed_windows_give_time_coded_segments_with_their_payload(tmp_path):
    from prismrag.plugins._video import VideoSegment

    write_video(tmp_path / "talk.mp4", seconds=9.0, fps=10, size=(96, 64), audio=tone(9.0))
    items, errors = _load(tmp_path, window_s=4.0, keyframes={"every_s": 1.0, "max": 3, "size": 32})
    assert not errors, errors
    assert sorted(items) == ["talk.mp4#0", "talk.mp4#1", "talk.mp4#2"]
    spans = [(items[f"talk.mp4#{n}"].span.t_start, items[f"talk.mp4#{n}"].span.t_end) for n in range(3)]
    assert spans == [(0.0, 4.0), (4.0, 8.0), (8.0, 9.0)]
    last = items["talk.mp4#2"]
    assert last.modality == Modality.VIDEO and last.parent_id == "talk.mp4" and last.source == "talk.mp4"
    meta = last.metadata
    assert (meta["file"], meta["codec"], meta["width"], meta["height"], meta["fps"]) == ("talk.mp4", "h264", 96, 64, 10.0)
    assert meta["duration_s"] == 9.0 and meta["has_audio"] is True and meta["audio_codec"] == "aac"
    assert (meta["start_s"], meta["end_s"]) == (8.0, 9.0) and meta["rotation"] == 0
    assert meta["keyframes"] == [8.5]  # a one-second segment: one keyframe, in its middle
    assert items["talk.mp4#0"].metadata["keyframes"] == [0.667, 2.0, 3.333]  # capped at three
    content = last.content
    assert isinstance(content, VideoSegment) and content.frame_times == (8.5,) and content.frame_size == 32
    # the thumbnail is a small PNG of the middle keyframe, and says which frame it is
    uri = meta["thumbnail"]
    assert uri.startswith("data:image/png;base64,") and meta["thumbnail_s"] == pytest.approx(8.5, abs=0.1)
    from PIL import Image

    thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert max(thumb.shape[:2]) == 64 and thumb.shape[1] > thumb.shape[0]
    # the content hash covers the span's own data: windows differ, two loads agree
    again, _ = _load(tmp_path, window_s=4.0, keyframes={"every_s": 1.0, "max": 3, "size": 32})
    hashes = {k: v.content_hash() for k, v in items.items()}
    assert hashes == {k: v.content_hash() for k, v in again.items()} and len(set(hashes.values())) == 3
    bigger, _ = _load(tmp_path, window_s=4.0, keyframes={"every_s": 1.0, "max": 3, "size": 64})
    assert bigger["talk.mp4#0"].content_hash() != hashes["talk.mp4#0"]  # other keyframes: other vectors
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.mp4").write_bytes(b"")
    check_loader(lambda p: _loader(p), [tmp_path / "talk.mp4"], tmp_path / "bad" / "empty.mp4")


def test_scene_changes_cut_segments_where_the_picture_changes(tmp_path):
    write_video(tmp_path / "show.mp4", seconds=12.0, fps=10, scenes=(0.0, 3.0, 3.4, 7.0))
    items, errors = _load(tmp_path, segment="scenes", window_s=4.0, min_scene_s=1.0)
    assert not errors, errors
    spans = [(i.span.t_start, i.span.t_end) for i in items.values()]
    # the cut at 3.4 s is 0.4 s after the one at 3.0 s (a flash): ignored; the 5-s scene at the end
    # is longer than window_s, so it is cut into windows
    assert spans == [(0.0, 3.0), (3.0, 7.0), (7.0, 11.0), (11.0, 12.0)]
    from prismrag.plugins._video import frames_at

    for item in items.values():
        shown = frames_at(item.content.path, item.content.frame_times, 32)
        scenes = {_colour(rgb) for _, rgb in shown}
        assert len(scenes) == 1 or item.span.t_start == 3.0, (item.id, scenes)  # one scene each (3-7 holds the flash)


def test_containers_and_codecs(tmp_path):
    write_video(tmp_path / "a.mkv", seconds=2.0)
    write_video(tmp_path / "b.webm", seconds=2.0, codec="libvpx-vp9", audio=tone(2.0, 48000), audio_rate=48000,
                audio_codec="libopus")
    write_video(tmp_path / "c.mov", seconds=2.0)
    write_video(tmp_path / "d.avi", seconds=2.0, codec="mpeg4")
    items, errors = _load(tmp_path)
    assert not errors, errors
    codecs = {i.metadata["file"]: (i.metadata["codec"], i.metadata.get("audio_codec")) for i in items.values()}
    assert codecs == {"a.mkv": ("h264", None), "b.webm": ("vp9", "opus"), "c.mov": ("h264", None), "d.avi": ("mpeg4", None)}
    assert all(i.metadata["duration_s"] == pytest.approx(2.0, abs=0.05) for i in items.values())


def test_frames_follow_the_presentation_times_of_a_variable_frame_rate(tmp_path):
    from prismrag.plugins._video import frames_at, probe

    times = [0.0, 0.1, 0.5, 0.55, 1.5, 2.0, 2.1, 3.0]  # irregular gaps, a new scene colour at 0.5, 1.5, 2.1
    path = write_video(tmp_path / "vfr.mp4", frame_times=times, scenes=(0.0, 0.5, 1.5, 2.1))
    info = probe(path)
    assert info.variable_frame_rate and info.frames == 8 and info.duration == pytest.approx(3.1, abs=0.01)
    asked = [0.05, 0.52, 1.4, 1.6, 2.05, 2.5, 9.0]
    got = frames_at(path, asked, 32)
    # the frame shown at a time is the last one that started before it (the end: the last frame)
    assert [round(t, 2) for t, _ in got] == [0.0, 0.5, 0.55, 1.5, 2.0, 2.1, 3.0]
    assert [_colour(rgb) for _, rgb in got] == [0, 1, 1, 2, 2, 3, 3]
    items, _ = _load(path)
    assert items["vfr.mp4#0"].metadata["variable_frame_rate"] is True


def test_rotation_metadata_turns_frames_upright(tmp_path):
    from prismrag.plugins._video import frames_at

    path = write_video(tmp_path / "phone.mp4", seconds=1.0, size=(96, 48), rotation=90)
    items, errors = _load(tmp_path)
    assert not errors
    meta = items["phone.mp4#0"].metadata
    assert (meta["rotation"], meta["width"], meta["height"]) == (90, 48, 96)  # shown portrait
    (_, rgb), = frames_at(path, [0.0], 48)
    assert rgb.shape[:2] == (96, 48)
    # the dark square, drawn at the left edge of the coded (landscape) frame, ends up at the bottom
    # once the picture is turned a quarter counter-clockwise, as FFmpeg's players show a display
    # matrix of +90 degrees
    dark = np.argwhere(rgb.sum(axis=2) < 150)
    assert len(dark) and dark[:, 0].min() > 96 // 2  # in the lower half of the upright picture


def test_bad_inputs_are_one_error_each_and_the_rest_is_indexed(tmp_path):
    good = write_video(tmp_path / "good.mp4", seconds=3.0, audio=tone(3.0))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video at all")
    src_mp4 = write_video(tmp_path / "src.mp4", seconds=4.0, audio=tone(4.0))
    truncated(src_mp4, tmp_path / "cut_index.mp4")  # the index (moov) is at the end: cut off with it
    fast = write_video(tmp_path / "fast.mp4", seconds=4.0, audio=tone(4.0), faststart=True)
    truncated(fast, tmp_path / "cut_tail.mp4")  # the index first: the first half of the frames are there
    corrupt_middle(fast, tmp_path / "noisy.mp4")
    audio_only(tmp_path / "podcast.mp4")
    zero_length(tmp_path / "nothing.avi")
    unknown_codec(tmp_path / "alien.avi")
    silent = write_video(tmp_path / "silent.mov", seconds=2.0)
    for p in (src_mp4, fast):
        p.unlink()
    items, errors = _load(tmp_path)
    by_file = {e.where.rsplit("/", 1)[-1]: e.message for e in errors}
    assert by_file["empty.mp4"] == "the file is empty (0 bytes); skipped"
    assert "not a decodable video file" in by_file["notes.mp4"] and "mp4, mkv, webm, mov or avi" in by_file["notes.mp4"]
    assert "not a decodable video file" in by_file["cut_index.mp4"] and "cut off" in by_file["cut_index.mp4"]
    assert by_file["podcast.mp4"] == "holds no video stream, only sound: index it with the `audio` loader; skipped"
    assert by_file["nothing.avi"] == "holds no video frames (zero length); skipped"
    assert "codec is unknown to FFmpeg" in by_file["alien.avi"] and "convert" in by_file["alien.avi"]
    assert len(errors) == 6, errors
    files = {i.metadata["file"] for i in items.values()}
    assert files == {"good.mp4", "cut_tail.mp4", "noisy.mp4", "silent.mov"}
    # a cut-off file is indexed with what is there, and says so
    tail = items["cut_tail.mp4#0"].metadata
    assert tail["truncated"] is True and tail["header_duration_s"] == 4.0 and 0.5 < tail["duration_s"] < 3.0
    assert items["silent.mov#0"].metadata["has_audio"] is False
    assert "truncated" not in items["good.mp4#0"].metadata
    # damaged packets in the middle are skipped: every keyframe still decodes to a picture
    from prismrag.plugins._video import frames_at

    noisy = items["noisy.mp4#0"].content
    assert all(f is not None for f in frames_at(noisy.path, noisy.frame_times, 32))
    assert good.exists() and silent.exists()


@pytest.mark.skipif(not SMOKE.is_dir(), reason="the shared smoke clips are not there")
def test_the_smoke_clips(tmp_path):
    items, errors = _load(SMOKE, segment="scenes", window_s=10.0)
    assert not errors, errors
    by_file: dict[str, list[Item]] = {}
    for item in items.values():
        by_file.setdefault(item.metadata["file"], []).append(item)
    bunny = by_file["bigbuckbunny.mp4"]
    assert len(bunny) == 1 and bunny[0].metadata["width"] == 1280 and bunny[0].metadata["has_audio"]
    assert by_file["carphone_pristine.mp4"][0].metadata["fps"] == pytest.approx(29.97, abs=0.01)
    bikes = sorted(by_file["bikes.mp4"], key=lambda i: i.span.t_start)
    assert len(bikes) >= 4  # a montage of shots: each shot its own segment
    from prismrag.plugins._video import frames_at

    path = bikes[0].content.path
    for before, after in zip(bikes, bikes[1:], strict=False):
        cut = after.span.t_start
        assert before.span.t_end == cut
        step = 1 / bikes[0].metadata["fps"]  # the two frames before the cut, and the first after it
        (_, a), (_, b), (_, c) = frames_at(path, [cut - 1.9 * step, cut - 0.9 * step, cut + 0.1 * step], 64)
        within = np.abs(a.astype(int) - b).mean()
        across = np.abs(b.astype(int) - c).mean()
        assert across > 2 * within, (cut, within, across)


def test_a_4k_video_is_decoded_in_bounded_memory(tmp_path):
    """30 frames of 3840x2160 are 750 MB as full-size RGB; loading, scene detection and keyframes
    keep only what the decoder has in flight and the small frames asked for."""
    import subprocess
    import sys
    import textwrap

    path = write_video(tmp_path / "uhd.mp4", seconds=6.0, fps=5, size=(3840, 2160), scenes=(0.0, 3.0))
    code = textwrap.dedent(f"""
        import resource, sys
        from pathlib import Path
        import av, PIL.Image  # imported before the baseline: their code is not the frames
        from prismrag.contracts import Context
        from prismrag.plugins.video_loader import VideoLoader
        from prismrag.plugins._video import frames_at
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        loader = VideoLoader(VideoLoader.Params(path={str(path)!r}, segment="scenes", window_s=4.0), Context())
        items = list(loader.load())
        times = [t for item in items for t in item.content.frame_times]
        frames = frames_at(Path({str(path)!r}), times, 224)
        assert [i.span.t_start for i in items] == [0.0, 3.0] and all(f[1].shape == (224, 398, 3) for f in frames)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grew_mb = float(out.stdout.strip().splitlines()[-1])
    assert grew_mb < 300, f"peak memory grew by {grew_mb:.0f} MB"


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["validate", "recipes/video.yaml"]])
def test_light_commands_import_no_video_decoder(argv):
    import textwrap

    from test_cli import _modules_after

    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(f"""
        import os
        os.chdir({str(root)!r})
        from prismrag.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        """)
    heavy = {"av", "PIL", "torch", "faster_whisper", "open_clip"} & _modules_after(code)
    assert not heavy, f"prism {' '.join(argv)} imported {heavy}"
