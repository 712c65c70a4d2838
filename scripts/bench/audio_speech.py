"""Speech-route throughput on FSDD: packed clips against one faster-whisper call per clip.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/audio_speech.py [--clips 200] [--data ../shared/data/fsdd]

Both runs go through the `whisper` encoder (`pack: true` / `pack: false`), same model (tiny.en,
int8, beam 1), same prompt, same clips (the first N of the test split, in labels.csv order,
decoded beforehand so only transcription is timed). Prints clips/s, audio-seconds/s and how often
the spoken digit is in the transcript, as one JSON line per mode.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from prismrag.contracts import Context, Media
from prismrag.plugins import _whisper as W
from prismrag.plugins._audio import decode
from prismrag.plugins.whisper_speech import WhisperEncoder, resolve_model

PROMPT = "zero, one, two, three, four, five, six, seven, eight, nine."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/fsdd"))
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--naive-clips", type=int, default=60, help="the naive way is slow: time fewer clips")
    args = ap.parse_args()
    root = Path(args.data)
    rows = [r for r in csv.DictReader((root / "labels.csv").open()) if r["split"] == "test"]
    ctx = Context(resolve_model=resolve_model)
    for pack, n in ((True, args.clips), (False, args.naive_clips)):
        enc = WhisperEncoder(WhisperEncoder.Params(text={"use": "bm25"}, initial_prompt=PROMPT, pack=pack), ctx)
        settings = enc._settings()  # loads the model outside the timing
        chosen = rows[:n]
        audio = [decode(Media(path=root / "recordings" / r["file"]), W.RATE) for r in chosen]
        seconds = sum(len(a) for a in audio) / W.RATE
        model = W.model_for(settings)
        t = time.perf_counter()
        if pack:
            transcripts = W.transcribe_packed(model, audio, settings)
        else:
            transcripts = [W.transcribe_one(model, a, settings) for a in audio]
        dt = time.perf_counter() - t
        hits = sum(r["label"] in W.spell_numbers(tr.text).lower() for r, tr in zip(chosen, transcripts, strict=True))
        print(json.dumps({
            "mode": "packed" if pack else "naive", "clips": n, "audio_s": round(seconds, 1), "seconds": round(dt, 2),
            "clips_per_s": round(n / dt, 2), "audio_s_per_s": round(seconds / dt, 2),
            "word_in_transcript": round(hits / n, 3),
        }))


if __name__ == "__main__":
    main()
