"""`prism init`: a starter recipe for a folder (issue 15 item 8)."""

from __future__ import annotations

import numpy as np
import pytest

from prismrag.cli import main


def test_init_writes_a_valid_recipe_for_the_kinds_of_files_found(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\nsome text")
    (folder / "sub" / "b.txt").write_text("more text")
    np.save(folder / "cube.npy", np.random.default_rng(0).normal(size=(64, 3)).astype("float32"))
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "x.wav").write_bytes(b"not looked at")
    monkeypatch.chdir(tmp_path)
    assert main(["init", "notes"]) == 0
    out = tmp_path / "notes.yaml"
    text = out.read_text()
    assert "# Found: 1 shape file(s), 2 text file(s)." in text
    assert "use: sentence-transformers" in text and "use: bm25" in text and "use: shape-descriptor" in text
    assert "whisper" not in text  # the hidden folder's clip is not counted
    assert "fusion: {use: rrf" in text and "path: notes}" in text
    assert "wrote notes.yaml" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0  # valid as written, comments and all

    assert main(["init", "notes"]) == 2  # never replaces a file unasked
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["init", "notes", "--force", "--out", "recipes/n.yaml"]) == 0
    assert "path: ../notes}" in (tmp_path / "recipes" / "n.yaml").read_text()  # relative to the recipe


def test_init_on_a_folder_without_known_files_and_on_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "data.xyz123").write_text("?")
    assert main(["init", "odd"]) == 0
    text = (tmp_path / "odd.yaml").read_text()
    assert "nothing found that a built-in retriever embeds" in text and "fusion" not in text
    assert main(["validate", str(tmp_path / "odd.yaml")]) == 0
    assert main(["init", "odd/data.xyz123"]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["My Notes!", "..."])
def test_init_names_are_valid_recipe_names(tmp_path, monkeypatch, name):
    (tmp_path / name).mkdir()
    (tmp_path / name / "a.md").write_text("text")
    monkeypatch.chdir(tmp_path)
    assert main(["init", name, "--out", "r.yaml"]) == 0
    assert main(["validate", "r.yaml"]) == 0


def test_init_gives_videos_the_speech_route_once_with_audio_or_alone(tmp_path, capsys, monkeypatch):
    pytest.importorskip("av")
    from video_files import write_video

    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "a.mp4", seconds=1.0)
    assert main(["init", "clips"]) == 0
    text = (tmp_path / "clips.yaml").read_text()
    assert "# video: each segment's sound track" in text and text.count("use: whisper") == 1
    assert "no built-in video retriever" not in text
    assert main(["validate", "clips.yaml"]) == 0

    (tmp_path / "clips" / "b.wav").write_bytes(b"RIFF")  # counted by extension only
    assert main(["init", "clips", "--force"]) == 0
    text = (tmp_path / "clips.yaml").read_text()
    assert text.count("use: whisper") == 1 and "their sound tracks go through the speech retriever" in text
