"""Screenshots of every TUI screen, in the dark and the light theme, on the real quickstart recipe.

Drives `prism tui recipes/quickstart.yaml` headless (Textual's pilot) with the real MiniLM model,
on a temporary copy of the recipe (its index in a temporary folder), and saves one SVG per screen
and theme; with `rsvg-convert` (Debian's librsvg2-bin) on the PATH each is turned into a PNG too.
For looking at the UI as a person would; the pinned, deterministic pictures are the snapshot tests.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/tui_screenshots.py --out /tmp/prism-shots
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
from tui_latency import temp_recipe  # noqa: E402

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


async def until(pilot, condition, timeout: float = 60.0) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise SystemExit("timed out waiting for the app")
        await pilot.pause(0.05)


async def shoot(recipe: Path, data: Path | None, out: Path, light: bool, size: str) -> list[Path]:
    from prismrag.tui.app import PrismApp

    theme = ("light" if light else "dark") + "-" + size
    app = PrismApp(recipe, recipes_dir=ROOT / "recipes", light=light)
    saved: list[Path] = []

    def save(name: str) -> None:
        saved.append(Path(app.save_screenshot(filename=f"{name}-{theme}.svg", path=str(out))))

    async with app.run_test(size=SIZES[size]) as pilot:
        await until(pilot, lambda: app.engine_ready and type(app.screen).__name__ == "SearchScreen")
        screen = app.screen
        screen.query_one("#query").value = "how do I write a plugin"
        await until(pilot, lambda: len(getattr(screen, "_hits", [])) > 0)
        await pilot.press("ctrl+r", "down")
        await until(pilot, lambda: screen._pending_detail is None)
        await pilot.pause(0.5)
        save("search")
        for key, name in (("f2", "recipe"), ("f3", "ingest"), ("f6", "plugins")):
            await pilot.press(key)
            await pilot.pause(0.5)
            if name == "ingest":
                await pilot.press("i")
                await until(pilot, lambda: not app.screen._ingesting, timeout=120)
                await pilot.pause(0.3)
            save(name)
        if data is not None:
            await pilot.press("f5")
            eval_screen = app.screen
            eval_screen.query_one("#eval-data").value = str(data)
            eval_screen.query_one("#eval-other").value = str(ROOT / "recipes" / "nfcorpus-bm25.yaml")
            eval_screen.action_run()
            await until(pilot, lambda: eval_screen.outcome is not None, timeout=600)
            eval_screen.query_one("#eval-queries").focus()
            await pilot.pause(0.5)
            save("eval")
        await pilot.press("f1")
        await pilot.pause(0.3)
        save("help")
    return saved


def faithful(svg: str) -> str:
    """The SVG as rsvg-convert draws it cell for cell. Textual writes spaces as no-break spaces;
    rsvg drops those that open a text run and then stretches the run to its textLength, so a
    bold id seemed glued to the next column (`cats2`, `README.md#14score`) in the PNG although
    the terminal shows the gap. Plain spaces with xml:space="preserve" keep every cell."""
    return svg.replace("&#160;", " ").replace("<svg ", '<svg xml:space="preserve" ', 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "prism-shots")
    parser.add_argument("--data", type=Path, default=None, help="a small BEIR folder for the eval screen")
    parser.add_argument("--size", choices=[*SIZES, "all"], default="all", help="terminal size (default: both)")
    parser.add_argument("--theme", choices=["dark", "light", "both"], default="both")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prism-shots-") as tmp:
        os.environ.setdefault("PRISMRAG_CACHE_DIR", str(Path(tmp) / "cache"))
        recipe = temp_recipe(Path(tmp))
        import prismrag

        with prismrag.load_recipe(recipe) as engine:
            engine.ingest()
        saved = []
        sizes = list(SIZES) if args.size == "all" else [args.size]
        themes = [False, True] if args.theme == "both" else [args.theme == "light"]
        for size in sizes:
            for light in themes:
                saved += asyncio.run(shoot(recipe, args.data, args.out, light, size))
    converter = shutil.which("rsvg-convert")
    for svg in saved:
        if converter:
            subprocess.run([converter, "-w", "1400", "-o", str(svg.with_suffix(".png"))],
                           input=faithful(svg.read_text(encoding="utf-8")).encode(), check=True)
        print(svg.with_suffix(".png") if converter else svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
