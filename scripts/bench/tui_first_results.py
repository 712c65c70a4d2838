"""Launch to first results: how long after `prism tui` starts a query's results are on screen.

Ingests the quickstart corpus into a temporary index (once), then, in a fresh process each run,
starts the real app headless (Textual's pilot) on that recipe, types a query as soon as the
search screen is up, and reports the seconds from the process start (the parent's clock, before
the child's interpreter starts) to the first results on screen, which retrievers they came
from, and when the results with every retriever (the dense model loaded) replaced them.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/tui_first_results.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tui_latency import temp_recipe  # noqa: E402

QUERY = "reciprocal rank fusion"

CHILD = r"""
import asyncio, json, os, sys, time
start = float(os.environ["BENCH_T0"])
from prismrag.tui.app import PrismApp
from prismrag.tui.search_screen import SearchScreen

shown = []

class BenchApp(PrismApp):
    def on_search_screen_results_shown(self, message):
        screen = self.screen
        record = {"s": None, "posted": time.time() - start, "hits": message.hits, "retrievers": list(screen._routed),
                  "waiting": list(screen._waiting)}
        shown.append(record)
        self.call_after_refresh(lambda: record.__setitem__("s", time.time() - start))

async def main():
    app = BenchApp(sys.argv[1])
    async with app.run_test(size=(120, 40)) as pilot:
        while not isinstance(app.screen, SearchScreen):
            await pilot.pause(0.01)
        app.screen.query_one("#query").value = sys.argv[2]
        deadline = time.time() + 120
        while time.time() < deadline and not (shown and shown[-1]["s"] and not shown[-1]["waiting"]):
            await pilot.pause(0.02)
    for record in shown:  # a results message superseded before its frame was drawn: when it was posted
        record["s"] = record["s"] if record["s"] is not None else record["posted"]
    print(json.dumps(shown))

asyncio.run(main())
"""


def one_run(recipe: Path, query: str) -> list[dict]:
    env = {**os.environ, "BENCH_T0": repr(time.time())}
    out = subprocess.run([sys.executable, "-c", CHILD, str(recipe), query], env=env, capture_output=True,
                         text=True, timeout=300)
    if out.returncode:
        raise SystemExit(f"the app run failed:\n{out.stderr[:4000]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--query", default=QUERY)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import prismrag

    with tempfile.TemporaryDirectory(prefix="prism-tui-first-") as tmp:
        os.environ.setdefault("PRISMRAG_CACHE_DIR", str(Path(tmp) / "cache"))
        recipe = temp_recipe(Path(tmp))
        with prismrag.load_recipe(recipe) as engine:
            engine.ingest()
        first, full = [], []
        for _ in range(args.runs):
            shown = one_run(recipe, args.query)
            first.append(shown[0]["s"])
            full.append(shown[-1]["s"])
            print(f"first results {shown[0]['s']:.2f} s ({shown[0]['hits']} hits from "
                  f"{', '.join(shown[0]['retrievers'])}; waiting: {', '.join(shown[0]['waiting']) or 'none'}); "
                  f"all retrievers {shown[-1]['s']:.2f} s")
    print(f"launch -> first results: median {statistics.median(first):.2f} s, max {max(first):.2f} s; "
          f"launch -> results of every retriever: median {statistics.median(full):.2f} s "
          f"({args.runs} fresh processes, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
