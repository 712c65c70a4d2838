"""Keystroke-to-results latency of the TUI's search screen on the quickstart corpus.

Runs the real app headless (Textual's pilot) on a temporary copy of recipes/quickstart.yaml (its
index in a temporary folder, ingested first), types queries one key at a time like a person
(`--gap` seconds between keys) and measures, for each keystroke, the time until that prefix's
results are on screen (the refresh after the results table was filled). Query encoding with the
real MiniLM model is included; the debounce delay is too.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/tui_latency.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBOUNCE = 0.025  # SearchScreen.DEBOUNCE, restated so the script imports no Textual before it runs
QUERIES = [
    "how do I write a plugin",
    "hybrid search with bm25",
    "recipe validation errors",
    "qdrant edge store",
    "reciprocal rank fusion weights",
    "ingest is incremental",
    "evaluate on a beir data set",
    "image queries with clip",
]


def temp_recipe(folder: Path) -> Path:
    """quickstart.yaml with its store (and sources, made absolute) moved out of the repository."""
    text = (ROOT / "recipes" / "quickstart.yaml").read_text()
    text = text.replace("path: ../.prism/quickstart", f"path: {folder / 'index'}")
    text = text.replace("path: ../docs", f"path: {ROOT / 'docs'}").replace("path: ..,", f"path: {ROOT},")
    recipe = folder / "quickstart.yaml"
    recipe.write_text(text)
    return recipe


async def measure(recipe: Path, queries: list[str], gap: float) -> list[float]:
    from prismrag.tui.app import PrismApp
    from prismrag.tui.search_screen import SearchScreen

    shown: dict[str, float] = {}
    detailed: dict[str, float] = {}

    class BenchApp(PrismApp):
        def on_search_screen_results_shown(self, message: SearchScreen.ResultsShown) -> None:
            query = message.request.query
            self.call_after_refresh(lambda: shown.setdefault(query, time.perf_counter()))

        def on_search_screen_detail_shown(self, message: SearchScreen.DetailShown) -> None:
            query = app.screen._request.query
            self.call_after_refresh(lambda: detailed.setdefault(query, time.perf_counter()))

    app = BenchApp(recipe)
    latencies: list[float] = []
    to_detail: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.engine_ready:
            await pilot.pause(0.05)
        if app.engine_status:
            raise SystemExit(f"engine not ready: {app.engine_status}")
        box = app.screen.query_one("#query")
        for query in queries:
            box.value = ""
            await pilot.pause(0.3)
            shown.clear()
            detailed.clear()
            pressed: dict[str, float] = {}
            for i, ch in enumerate(query):
                prefix = query[: i + 1].strip()
                pressed.setdefault(prefix, time.perf_counter())
                await pilot.press("space" if ch == " " else ch)
                await asyncio.sleep(max(0.0, gap - (time.perf_counter() - pressed[prefix])))
            await pilot.pause(0.3)
            latencies += [shown[p] - t for p, t in pressed.items() if p in shown]
            to_detail += [detailed[p] - t for p, t in pressed.items() if p in detailed]
    return latencies, to_detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gap", type=float, default=0.15, help="seconds between keystrokes (default 0.15)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import prismrag

    with tempfile.TemporaryDirectory(prefix="prism-tui-bench-") as tmp:
        os.environ.setdefault("PRISMRAG_CACHE_DIR", str(Path(tmp) / "cache"))
        recipe = temp_recipe(Path(tmp))
        with prismrag.load_recipe(recipe) as engine:
            report = engine.ingest()
            print(f"ingested {report.loaded} chunks of the quickstart corpus", file=sys.stderr)
        lat, detail = asyncio.run(measure(recipe, QUERIES, args.gap))
    print(f"{len(lat)} keystrokes ({len(QUERIES)} queries typed, {args.gap * 1000:.0f} ms between keys, "
          f"debounce {DEBOUNCE * 1000:.0f} ms included)")
    for label, values in (("results table", lat), ("detail panel", detail)):
        ms = sorted(x * 1000 for x in values)
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
        print(f"keystroke -> {label} on screen: p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
