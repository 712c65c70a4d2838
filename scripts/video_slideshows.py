"""Build narrated slideshow videos from COCO images and captions: a video evaluation set with the
exact time slot of every image.

    .venv/bin/python scripts/video_slideshows.py [--out .prism/video-slideshows] [--videos 20]
        [--per-video 7] [--seed 0] [--coco ../shared/data/coco-mini]
    prism eval recipes/video-slideshows.yaml --data .prism/video-slideshows

Each video shows `--per-video` images, each for one slot while espeak-ng (en-us) reads one of its
captions; a slot lasts max(speech + `--pause`, `--min-slot`) seconds, rounded up to a whole frame,
so the slot of each image is exact. Every image is used once in the whole set. The image's other
captions are the queries; each is judged relevant to the video that shows its image, and its slot
is the time span a hit should point at. What is written (`prism eval --data OUT` reads it):

    corpus/slideshow-00.mp4 ...   MPEG-4 + aac (mono) in mp4, 320x240 by default, 10 fps
    queries.jsonl                 {"_id", "text", "image"}: the captions not narrated
    qrels/test.tsv                query-id, corpus-id (the video file), score 1
    qrels/test.spans.tsv          query-id, corpus-id, start_s, end_s: the slot of the query's image
    slides.jsonl                  one row per slide: video, slot, image, the narrated caption
    manifest.json                 the options and files; a re-run with the same options writes nothing

The build is seeded and deterministic: the same options give the same slides, slots and queries.
Needs espeak-ng (Debian: apt-get install espeak-ng), PyAV and Pillow.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COCO = REPO.parent / "shared" / "data" / "coco-mini"
DEFAULT_OUT = REPO / ".prism" / "video-slideshows"
SPLITS = ("train2017", "val2017")
FORMAT_VERSION = 1
"""Bumped whenever the output for the same options changes, so a re-run rebuilds."""


@dataclass(frozen=True)
class Slide:
    """One image of one video: where it sits and what is said over it."""

    video: str
    index: int
    image: str
    image_id: int
    start_s: float
    end_s: float
    speech_s: float
    narrated: str
    queries: tuple[tuple[str, str], ...]
    """(query id, caption) of the captions not narrated."""


class BuildError(Exception):
    """The set cannot be built (missing input, a tool missing, too few images)."""


def read_coco(root: Path) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """(image path relative to root, image id, [(annotation id, caption)]) of every captioned image."""
    out = []
    for split in SPLITS:
        path = root / f"captions_{split}.json"
        if not path.is_file():
            raise BuildError(f"{path} is missing; --coco must name a COCO folder with captions_{{train,val}}2017.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        captions: dict[int, list[tuple[int, str]]] = {}
        for ann in data["annotations"]:
            text = " ".join(str(ann["caption"]).split())
            if text:
                captions.setdefault(int(ann["image_id"]), []).append((int(ann["id"]), text))
        for image in data["images"]:
            rel = f"{split}/{image['file_name']}"
            caps = sorted(captions.get(int(image["id"]), []))
            if len(caps) >= 2 and (root / rel).is_file():
                out.append((rel, int(image["id"]), caps))
    return sorted(out)


def speak(text: str, path: Path, voice: str, wpm: int) -> tuple[np.ndarray, int]:
    """espeak-ng's reading of `text`: int16 mono samples and their rate."""
    if shutil.which("espeak-ng") is None:
        raise BuildError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    run = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), "--stdin"], input=text.encode(), capture_output=True, check=False
    )
    if run.returncode != 0:
        raise BuildError(f"espeak-ng failed on {text!r}: {run.stderr.decode(errors='replace').strip()}")
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise BuildError(f"espeak-ng wrote {w.getnchannels()} channel(s) of {8 * w.getsampwidth()} bits, not 16-bit mono")
        return np.frombuffer(w.readframes(w.getnframes()), np.int16), w.getframerate()


def frame_of(path: Path, width: int, height: int) -> np.ndarray:
    """The image fitted into width x height (aspect kept, black bars), as RGB uint8."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((width, height), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(im, ((width - im.width) // 2, (height - im.height) // 2))
        return np.asarray(canvas)


def plan(images: list[tuple[str, int, list[tuple[int, str]]]], args: argparse.Namespace) -> list[list[tuple[str, int, list[tuple[int, str]], int]]]:
    """Which images go into which video (each once) and which caption of each is narrated."""
    need = args.videos * args.per_video
    if need > len(images):
        raise BuildError(
            f"{args.videos} videos x {args.per_video} images need {need} images; {args.coco} has {len(images)} "
            f"with captions. Lower --videos or --per-video."
        )
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(images))[:need]
    videos = []
    for v in range(args.videos):
        chosen = [images[i] for i in order[v * args.per_video : (v + 1) * args.per_video]]
        videos.append([(rel, iid, caps, int(rng.integers(len(caps)))) for rel, iid, caps in chosen])
    return videos


def build_video(path: Path, slides: list[tuple[np.ndarray, np.ndarray]], slots: list[tuple[float, float]],
                rate: int, args: argparse.Namespace) -> None:
    """Encode the slides (frame, speech) into `path`, one slot each, streaming (MPEG-4 + aac in mp4)."""
    import av

    width, height = args.size
    with av.open(str(path), "w", format="mp4") as out:
        # MPEG-4 part 2 on one thread: libx264 gave slightly different bytes from run to run
        video = out.add_stream("mpeg4", rate=args.fps)
        video.width, video.height, video.pix_fmt, video.bit_rate = width, height, "yuv420p", 400_000
        video.codec_context.thread_count = 1
        audio = out.add_stream("aac", rate=rate, layout="mono")
        frame_no, sample_no = 0, 0
        for (image, speech), (start, end) in zip(slides, slots, strict=True):
            picture = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p", threads=1)
            for n in range(round(start * args.fps), round(end * args.fps)):
                picture.pts = n
                picture.pict_type = av.video.frame.PictureType.I if n == round(start * args.fps) else av.video.frame.PictureType.NONE
                for packet in video.encode(picture):
                    out.mux(packet)
                frame_no = n + 1
            samples = np.zeros(round(end * rate) - sample_no, np.int16)
            samples[: len(speech)] = speech[: len(samples)]
            sound = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
            sound.sample_rate, sound.pts = rate, sample_no
            for packet in audio.encode(sound):
                out.mux(packet)
            sample_no += len(samples)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    if frame_no == 0:
        raise BuildError(f"{path}: no frame written")


def build(args: argparse.Namespace) -> tuple[list[Slide], bool]:
    """Build the set into args.out; returns the slides and whether anything was (re)written."""
    out: Path = args.out
    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(vars(args).items()) if k not in {"out", "coco"}}
    options["coco"] = str(args.coco)
    options["format"] = FORMAT_VERSION
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        files_ok = all((out / f).is_file() and (out / f).stat().st_size == size for f, size in old.get("files", {}).items())
        if old.get("options") == options and files_ok:
            slides = [Slide(**{**s, "queries": tuple(tuple(q) for q in s["queries"])}) for s in old["slides"]]
            return slides, False
    videos = plan(read_coco(args.coco), args)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    slides: list[Slide] = []
    files: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="slideshow-") as tmp:
        for v, chosen in enumerate(videos):
            name = f"slideshow-{v:02d}.mp4"
            frames, slots, start = [], [], 0.0
            rate = 0
            for k, (rel, iid, caps, narrated) in enumerate(chosen):
                speech, rate = speak(caps[narrated][1], Path(tmp) / f"{v}-{k}.wav", args.voice, args.wpm)
                speech_s = len(speech) / rate
                length = max(speech_s + args.pause, args.min_slot)
                length = math.ceil(round(length * args.fps, 6)) / args.fps
                end = round(start + length, 6)
                frames.append((frame_of(args.coco / rel, *args.size), speech))
                slots.append((start, end))
                queries = tuple((f"q{iid}-{aid}", text) for j, (aid, text) in enumerate(caps) if j != narrated)
                slides.append(Slide(name, k, rel, iid, start, end, round(speech_s, 3), caps[narrated][1], queries))
                start = end
            partial = out / "corpus" / f".{name}.partial"
            build_video(partial, frames, slots, rate, args)
            os.replace(partial, out / "corpus" / name)
            files[f"corpus/{name}"] = (out / "corpus" / name).stat().st_size
    keep = set(files)
    for stale in (out / "corpus").glob("slideshow-*.mp4"):
        if f"corpus/{stale.name}" not in keep:
            stale.unlink()
    queries = [{"_id": qid, "text": text, "image": s.image} for s in slides for qid, text in s.queries]
    texts = {
        "queries.jsonl": "".join(json.dumps(q) + "\n" for q in queries),
        "qrels/test.tsv": "query-id\tcorpus-id\tscore\n" + "".join(f"{qid}\t{s.video}\t1\n" for s in slides for qid, _ in s.queries),
        "qrels/test.spans.tsv": "query-id\tcorpus-id\tstart_s\tend_s\n"
        + "".join(f"{qid}\t{s.video}\t{s.start_s:.3f}\t{s.end_s:.3f}\n" for s in slides for qid, _ in s.queries),
        "slides.jsonl": "".join(json.dumps({k: v for k, v in asdict(s).items() if k != "queries"}) + "\n" for s in slides),
    }
    for rel, text in texts.items():
        (out / rel).write_text(text, encoding="utf-8")
        files[rel] = (out / rel).stat().st_size
    manifest = {"options": options, "files": files, "slides": [asdict(s) for s in slides]}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return slides, True


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 320x240, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be even and at least 16")
    return w, h


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--coco", type=Path, default=DEFAULT_COCO, help="COCO folder: captions_*2017.json, train2017/, val2017/")
    ap.add_argument("--videos", type=_positive(int), default=20, help="how many videos (default 20)")
    ap.add_argument("--per-video", type=_positive(int), default=7, help="images per video (default 7)")
    ap.add_argument("--seed", type=int, default=0, help="picks the images, their order and the narrated captions")
    ap.add_argument("--min-slot", type=_positive(float), default=4.0, help="shortest time an image is shown, s (default 4)")
    ap.add_argument("--pause", type=float, default=1.0, help="silence after each caption, s (default 1)")
    ap.add_argument("--fps", type=_positive(int), default=10, help="frame rate (default 10)")
    ap.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT (default 320x240)")
    ap.add_argument("--voice", default="en-us", help="espeak-ng voice (default en-us)")
    ap.add_argument("--wpm", type=_positive(int), default=175, help="speaking rate, words per minute (default 175)")
    args = ap.parse_args(argv)
    args.out, args.coco = args.out.resolve(), args.coco.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        slides, wrote = build(args)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    videos = sorted({s.video for s in slides})
    total = sum(s.end_s - s.start_s for s in slides)
    queries = sum(len(s.queries) for s in slides)
    verb = "wrote" if wrote else "up to date, nothing written:"
    print(f"{verb} {len(videos)} videos ({total / 60:.1f} min, {len(slides)} slides, slots "
          f"{min(s.end_s - s.start_s for s in slides):.1f}-{max(s.end_s - s.start_s for s in slides):.1f} s) "
          f"and {queries} queries into {args.out}")
    if wrote:
        for rel in ("corpus/", "queries.jsonl", "qrels/test.tsv", "qrels/test.spans.tsv", "slides.jsonl", "manifest.json"):
            print(f"  {args.out / rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
