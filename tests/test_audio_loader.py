"""The `audio` loader and the audio decoding helpers on real files: formats, windows with spans,
bounded memory on a 3-hour file, and every bad input of issue 9 as one ItemError each."""

from __future__ import annotations

import importlib.util
import textwrap
import tracemalloc

import numpy as np
import pytest
from audio_files import long_wav, tone, with_sample_rate, write, write_compressed

import prismrag
from prismrag.contracts import Context, Item, ItemError, Media, Modality
from prismrag.testing import check_loader

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("soundfile") is None or importlib.util.find_spec("av") is None,
    reason='needs the audio extra: pip install "prismrag[audio]"',
)


def _loader(path, **params):
    from prismrag.plugins.audio_loader import AudioLoader

    return AudioLoader(AudioLoader.Params(path=str(path), **params), Context(base_dir=path.parent))


def _load(path, **params):
    out = list(_loader(path, **params).load())
    return [x for x in out if isinstance(x, Item)], [x for x in out if isinstance(x, ItemError)]


def test_formats_load_as_mono_with_metadata(tmp_path):
    from prismrag.plugins._audio import decode

    write(tmp_path / "a.wav", tone(1.5, 8000))
    write(tmp_path / "b.flac", tone(1.0, 44100, channels=2), 44100)
    write(tmp_path / "c.ogg", tone(1.0, 22050), 22050, format="OGG", subtype="VORBIS")
    write_compressed(tmp_path / "d.m4a", tone(2.0, 16000), 16000, "aac")
    write_compressed(tmp_path / "e.opus", tone(2.0, 48000), 48000, "libopus")
    items, errors = _load(tmp_path)
    assert not errors, errors
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["a.wav", "b.flac", "c.ogg", "d.m4a", "e.opus"]
    assert by_id["a.wav"].metadata["duration_s"] == 1.5 and by_id["a.wav"].metadata["sample_rate"] == 8000
    assert by_id["b.flac"].metadata["channels"] == 2
    assert by_id["a.wav"].span.t_start == 0.0 and by_id["a.wav"].span.t_end == 1.5
    for item in items:
        assert item.modality == Modality.AUDIO
        x = decode(item.content, 16000)
        assert x.ndim == 1 and x.dtype == np.float32
        expected = item.metadata["duration_s"] * 16000
        assert abs(len(x) - expected) < 0.06 * 16000, (item.id, len(x), expected)  # codec padding at most
        assert 0.2 < np.abs(x).max() < 0.75  # the tone, downmixed, not clipped or lost
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.wav").write_bytes(b"")
    check_loader(lambda p: _loader(p), [tmp_path / "a.wav", tmp_path / "d.m4a"], tmp_path / "bad" / "empty.wav")


def test_a_long_file_is_windowed_with_correct_spans(tmp_path):
    from prismrag.plugins._audio import decode

    x = np.concatenate([tone(10, 8000, freq=f) for f in (200, 400, 600, 800, 1000, 1200, 1400)])  # 70 s
    write(tmp_path / "talk.wav", x)
    items, errors = _load(tmp_path / "talk.wav", window_s=30, overlap_s=5)
    assert not errors
    assert [i.id for i in items] == ["talk.wav#0", "talk.wav#1", "talk.wav#2"]
    assert [(i.span.t_start, i.span.t_end) for i in items] == [(0.0, 30.0), (25.0, 55.0), (50.0, 70.0)]
    assert {i.parent_id for i in items} == {"talk.wav"}
    assert items[1].metadata["start_s"] == 25.0 and items[1].metadata["end_s"] == 55.0
    second = decode(items[1].content, 8000)
    assert len(second) == 30 * 8000
    np.testing.assert_allclose(second, x[25 * 8000 : 55 * 8000], atol=1e-3)
    # Each window hashes its own samples: the embedding cache never confuses two windows.
    assert len({i.content_hash() for i in items}) == 3


def test_silent_windows_are_left_out_and_silence_only_is_an_error(tmp_path):
    x = np.concatenate([tone(20, 8000), np.zeros(40 * 8000, np.float32)])
    write(tmp_path / "half.wav", x)
    write(tmp_path / "quiet.wav", np.zeros(3 * 8000, np.float32))
    items, errors = _load(tmp_path, window_s=20, overlap_s=0)
    assert [i.id for i in items] == ["half.wav#0"]
    assert len(errors) == 1 and "quiet.wav" in str(errors[0]) and "silence only" in str(errors[0])


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("empty.wav", lambda p: p.write_bytes(b""), "empty"),
        ("notes.wav", lambda p: p.write_text("these are notes, not sound\n" * 20), "not a decodable audio file"),
        ("one-hertz.wav", lambda p: with_sample_rate(write(p, tone(1.0, 8000)), 1), "sample rate 1 Hz"),
        ("header-only.wav", lambda p: p.write_bytes(write(p, tone(1.0, 8000)).read_bytes()[:44]), "zero length"),
        ("cut.m4a", lambda p: p.write_bytes(write_compressed(p, tone(3.0, 16000), 16000, "aac").read_bytes()[:900]),
         "not a decodable audio file"),
    ],
)
def test_bad_files_are_one_clear_error_each_and_the_rest_loads(tmp_path, name, make, message):
    write(tmp_path / "good.wav", tone(1.0))
    make(tmp_path / name)
    items, errors = _load(tmp_path)
    assert [i.id for i in items] == ["good.wav"]
    assert len(errors) == 1, errors
    assert name in str(errors[0]) and message in str(errors[0]) and "skipped" in str(errors[0])


def test_a_lying_extension_is_decoded_by_what_the_file_is(tmp_path):
    from prismrag.plugins._audio import decode

    write(tmp_path / "really-ogg.mp3", tone(1.0, 22050), 22050, format="OGG", subtype="VORBIS")
    write_compressed(tmp_path / "really-aac.m4a", tone(1.0, 16000), 16000, "aac").rename(tmp_path / "really-aac.wav")
    items, errors = _load(tmp_path)
    assert not errors and len(items) == 2
    assert all(len(decode(i.content, 16000)) > 0.9 * 16000 for i in items)


def test_a_truncated_wav_keeps_what_is_there(tmp_path):
    data = write(tmp_path / "t.wav", tone(4.0)).read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) // 2])
    items, errors = _load(tmp_path)
    assert not errors and abs(items[0].metadata["duration_s"] - 2.0) < 0.01  # the samples present, not the header's


def test_a_three_hour_file_streams_in_bounded_memory(tmp_path):
    path = long_wav(tmp_path / "long.wav", 3 * 3600, rate=2000)  # 43 MB of PCM, 86 MB as float32
    tracemalloc.start()
    try:
        items, errors = _load(path, window_s=60, overlap_s=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not errors
    assert len(items) == 180 and items[-1].span.t_end == 3 * 3600
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_files_walker_dispatches_audio_and_an_engine_indexes_it(tmp_path):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "a.wav", tone(1.0, 8000, freq=300))
    write(tmp_path / "data" / "b.wav", tone(1.0, 8000, freq=2000))
    (tmp_path / "data" / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: sounds
        store: {use: qdrant-edge, path: store}
        sources: [{use: files, path: data}]
        retrievers:
          sound: {encoder: {use: audio-descriptor}}
        """))
    with prismrag.load_recipe(recipe) as engine:
        report = engine.ingest()
        assert report.added == 2 and len(report.errors) == 1 and "broken.wav" in report.errors[0]
        hits = engine.search(tmp_path / "data" / "a.wav")
        assert hits[0].id == "a.wav" and hits[0].payload["span"] == {"t_start": 0.0, "t_end": 1.0}
        with pytest.raises(prismrag.QueryError, match="query clip"):
            engine.search(b"definitely not audio", modality="audio")
        with pytest.raises(prismrag.QueryError, match="query clip"):
            engine.search(prismrag.Query(Modality.AUDIO, Media(data=b"")))


def test_time_codes_label_hits_from_recordings():
    from prismrag.types import time_span_label

    assert time_span_label({"file": "talks/clip.wav", "span": {"t_start": 12.44, "t_end": 15.0}}) == \
        "clip.wav @ 00:12.4\u201300:15.0"
    assert time_span_label({"source": "long.mp3", "span": {"t_start": 3725.0, "t_end": 3755.25}}) == \
        "long.mp3 @ 1:02:05.0\u20131:02:35.2"
    assert time_span_label({"file": "a.md", "span": {"start": 0, "end": 800}}) is None


def test_prism_search_prints_the_span_and_json_carries_it(tmp_path, capsys):
    import json

    from prismrag.cli import main

    (tmp_path / "data").mkdir()
    x = np.concatenate([tone(10, 8000, freq=300), tone(10, 8000, freq=2500)])
    write(tmp_path / "data" / "two.wav", x)
    write(tmp_path / "q.wav", tone(3, 8000, freq=2500))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: spans
        store: {use: qdrant-edge, path: store}
        sources: [{use: audio, path: data, window_s: 10, overlap_s: 0}]
        retrievers:
          sound: {encoder: {use: audio-descriptor}}
        """))
    assert main(["ingest", str(recipe)]) == 0
    capsys.readouterr()
    assert main(["search", str(recipe), str(tmp_path / "q.wav"), "--top-k", "1"]) == 0
    assert "two.wav @ 00:10.0\u201300:20.0" in capsys.readouterr().out
    assert main(["search", str(recipe), str(tmp_path / "q.wav"), "--top-k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)[0]
    assert hit["id"] == "two.wav#1" and hit["payload"]["span"] == {"t_start": 10.0, "t_end": 20.0}
