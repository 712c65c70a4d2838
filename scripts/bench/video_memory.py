"""Peak memory of `prism ingest` over one long 1080p video (issue 10: under 1.5 GB for 10 minutes).

    .venv/bin/python scripts/bench/video_memory.py [--minutes 10] [--fps 24] [--segment fixed --window-s 10]
        [--recipe recipes/video.yaml] [--baseline-s 30]

1. Synthesizes the video once (cached under .prism/bench/video-memory/): the ../shared/data/video-smoke
   clips decoded in turn, scaled to 1920x1080 and looped to `--minutes`, h264 + an aac sound track
   (espeak-ng reading a paragraph over and over, or a tone without espeak-ng). It is written with
   PyAV one frame at a time, so building it never holds the video in memory.
2. Runs `prism ingest` of the recipe (default recipes/video.yaml: the speech route, Whisper
   tiny.en + MiniLM + BM25) pointed at that one file, in a subprocess with an empty cache, and
   reads its peak resident memory: VmHWM polled from /proc/PID/status, and the children's
   ru_maxrss once it has exited.
3. With `--baseline-s N`, does the same on the first N seconds of the video, so that what the
   models take can be told from what the video's length adds.

Prints one JSON line per run (seconds, segments, peak MiB) and a verdict against `--limit-mb`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO.parent / "shared" / "data" / "video-smoke"
CACHE = REPO / ".prism" / "bench" / "video-memory"
WIDTH, HEIGHT = 1920, 1080
RATE = 22050
PARAGRAPH = (
    "This is a long test video for measuring memory. A rabbit walks through a green forest, then two "
    "people ride bicycles down a busy street. The picture is scaled up to full high definition, and "
    "this sentence is read again and again so that the speech route has something to transcribe."
)


def _speech() -> np.ndarray:
    """A paragraph read by espeak-ng plus a second of silence (int16 mono at RATE), or a tone."""
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "p.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "--stdin"], input=PARAGRAPH.encode(), check=True)
            import wave

            with wave.open(str(wav)) as w:
                if w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2:
                    speech = np.frombuffer(w.readframes(w.getnframes()), np.int16)
                    return np.concatenate([speech, np.zeros(RATE, np.int16)])
    t = np.arange(RATE * 5) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 8000 * (t % 1 < 0.5)).astype(np.int16)


def synthesize(path: Path, seconds: float, fps: int, clips: list[Path]) -> None:
    """Write a `seconds`-long 1920x1080 h264/aac mp4 made of `clips` looped, streaming."""
    import av

    frames_needed = round(seconds * fps)
    sound = _speech()
    partial = path.with_name(path.name + ".partial")
    with av.open(str(partial), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        n, samples = 0, 0
        while n < frames_needed:
            for clip in clips:
                with av.open(str(clip)) as src:
                    for frame in src.decode(video=0):
                        if n >= frames_needed:
                            break
                        big = frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
                        big.pts, big.time_base = n, Fraction(1, fps)
                        for packet in video.encode(big):
                            out.mux(packet)
                        n += 1
                        # keep the sound track level with the picture, one second at a time
                        while samples < n / fps * RATE:
                            start = samples % len(sound)
                            block = np.take(sound, np.arange(start, start + RATE), mode="wrap")
                            chunk = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
                            chunk.sample_rate, chunk.pts = RATE, samples
                            for packet in audio.encode(chunk):
                                out.mux(packet)
                            samples += RATE
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    os.replace(partial, path)


def cut(src: Path, dst: Path, seconds: float) -> None:
    """The first `seconds` of `src`, re-muxed without decoding (stream copy)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            if packet.pts is not None and float(packet.pts * packet.time_base) >= seconds:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def bench_recipe(base: Path, folder: Path, store: Path, segment: str | None, window_s: float | None) -> Path:
    """`base` with its video source reading `folder` and its store in `store` (other settings kept)."""
    import yaml

    spec: dict[str, Any] = yaml.safe_load(base.read_text(encoding="utf-8"))
    videos = [s for s in spec.get("sources", []) if s.get("use") == "video"]
    if not videos:
        raise SystemExit(f"{base}: no `video` source to point at the long video")
    source = {**videos[0], "path": str(folder.resolve())}
    if segment:
        source["segment"] = segment
    if window_s:
        source["window_s"] = window_s
    spec["sources"] = [source]
    spec["store"] = {**spec.get("store", {}), "path": str(store.resolve())}
    spec["name"] = f"{spec['name']}-memory"
    out = store.parent / f"{store.name}.yaml"
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


def measure(recipe: Path, cache_dir: Path) -> dict[str, Any]:
    """Run `prism ingest` on the recipe; its wall time, report and peak RSS (MiB)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PRISMRAG_CACHE_DIR": str(cache_dir)}
    prism = Path(sys.executable).with_name("prism")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(prism), "ingest", str(recipe), "--rebuild", "--json", "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hwm_kb, status = 0, Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm_kb = max(hwm_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        report = {"stdout": stdout[-2000:]}
    return {
        "rc": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_mib": round(max(hwm_kb, children_kb) / 1024, 1),
        "vmhwm_polled_mib": round(hwm_kb / 1024, 1),
        "ru_maxrss_children_mib": round(children_kb / 1024, 1),
        "items": report.get("loaded", report.get("added")),
        "errors": report.get("errors", [])[:5] if isinstance(report.get("errors"), list) else report.get("errors"),
        "stderr_tail": stderr[-1500:] if proc.returncode else "",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--recipe", type=Path, default=REPO / "recipes" / "video.yaml")
    ap.add_argument("--segment", choices=["fixed", "scenes"], default="fixed", help="override the recipe's segmentation")
    ap.add_argument("--window-s", type=float, default=10.0, help="override the recipe's window_s")
    ap.add_argument("--baseline-s", type=float, default=0, help="also measure the first N seconds alone (0: not)")
    ap.add_argument("--limit-mb", type=float, default=1536, help="the budget the peak is checked against (MiB)")
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    name = f"long-{args.minutes:g}min-1080p-{args.fps}fps"
    folder = args.cache / name
    video = folder / f"{name}.mp4"
    if not video.is_file():
        folder.mkdir(exist_ok=True)
        clips = sorted(SMOKE.glob("*.mp4"))
        if not clips:
            raise SystemExit(f"no clips in {SMOKE}")
        t0 = time.perf_counter()
        synthesize(video, args.minutes * 60, args.fps, clips)
        print(json.dumps({"built": str(video), "seconds": round(time.perf_counter() - t0, 1),
                          "mib": round(video.stat().st_size / 2**20, 1)}), flush=True)
    runs = [("long", folder)]
    if args.baseline_s:
        short = args.cache / f"{name}-first{args.baseline_s:g}s"
        short.mkdir(exist_ok=True)
        clip = short / f"first{args.baseline_s:g}s.mp4"
        if not clip.is_file():
            cut(video, clip, args.baseline_s)
        runs.insert(0, ("baseline", short))
    worst = 0.0
    for label, source in runs:
        with tempfile.TemporaryDirectory(prefix="prism-vmem-") as tmp:
            recipe = bench_recipe(args.recipe, source, Path(tmp) / "index", args.segment, args.window_s)
            result = measure(recipe, Path(tmp) / "cache")
        result = {"run": label, "video": str(next(source.glob("*.mp4"))), "recipe": str(args.recipe),
                  "segment": args.segment, "window_s": args.window_s, **result}
        print(json.dumps(result), flush=True)
        if result["rc"] != 0:
            return 1
        if label == "long":
            worst = result["peak_mib"]
    verdict = "under" if worst < args.limit_mb else "OVER"
    print(f"peak RSS while ingesting {args.minutes:g} min of 1080p: {worst:.0f} MiB, {verdict} the {args.limit_mb:.0f} MiB budget")
    return 0 if worst < args.limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
